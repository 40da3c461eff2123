package main

import (
	"io"
)

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	return exitRuntime
}
