//go:build linux

package main

import (
	"syscall"
	"time"
)

// preciseSleep sleeps d in nanosleep(2). A Go timer wakes up on the
// netpoller's millisecond granularity (a 0.7 ms sleep often takes 1.1 ms),
// which would add up to a millisecond of scheduler lateness to every
// fixed-rate latency; nanosleep is typically within ~0.1 ms and does not
// spin.
func preciseSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}
