//go:build !linux

package main

import (
	"errors"
	"syscall"
	"time"
)

// childSysProcAttr: no parent-death signal outside Linux; the harness kills
// its children explicitly and the re-executed roles exit on stdin EOF.
func childSysProcAttr() *syscall.SysProcAttr { return nil }

// processCPU is not implemented outside Linux.
func processCPU(pid int) (time.Duration, error) {
	return 0, errors.New("per-process CPU time is only read on Linux")
}

// systemCPU is not implemented outside Linux.
func systemCPU() (time.Duration, error) {
	return 0, errors.New("system CPU time is only read on Linux")
}
