//go:build linux

package main

import (
	"os"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	line := "1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 100 0 0"
	d, err := parseProcStat(line)
	if err != nil || d != 3250*time.Millisecond {
		t.Fatalf("parseProcStat = %v, %v; want 3.25s", d, err)
	}
	if _, err := processCPU(os.Getpid()); err != nil {
		t.Errorf("processCPU(self): %v", err)
	}
	sys, err := parseSystemStat("cpu  100 10 50 9999 7 1 2 3 0 0\ncpu0 1 2 3\n")
	if err != nil || sys != 1660*time.Millisecond {
		t.Fatalf("parseSystemStat = %v, %v; want 1.66s", sys, err)
	}
	if _, err := systemCPU(); err != nil {
		t.Errorf("systemCPU: %v", err)
	}
}
