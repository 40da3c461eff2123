//go:build !linux

package main

import "time"

// preciseSleep is time.Sleep outside Linux.
func preciseSleep(d time.Duration) { time.Sleep(d) }
