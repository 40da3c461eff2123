package testutil

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RedisServer is a redis-server child process a test owns, so it can kill
// and restart it without touching the shared server other tests use.
type RedisServer struct {
	t     testing.TB
	bin   string
	Addr  string
	dir   string
	extra []string
	cmd   *exec.Cmd
}

// StartRedisServer starts redis-server on a free loopback port with extra
// arguments (e.g. cluster mode). It skips when the binary is missing,
// except under CI=true.
func StartRedisServer(t testing.TB, extra ...string) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		unavailable(t, "redis-server binary", err)
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	s := &RedisServer{t: t, bin: bin, Addr: addr, dir: t.TempDir(), extra: extra}
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// Start (re)starts the server on its address and waits until it answers.
func (s *RedisServer) Start() {
	s.t.Helper()
	_, port, _ := strings.Cut(s.Addr, ":")
	args := append([]string{"--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", s.dir}, s.extra...)
	s.cmd = exec.Command(s.bin, args...)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s not ready: %v", s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *RedisServer) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(os.Kill)
		_, _ = s.cmd.Process.Wait()
		s.cmd = nil
	}
}

// Signal sends sig to the server (SIGSTOP freezes it: connections are
// accepted but never answered).
func (s *RedisServer) Signal(sig os.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal redis-server: %v", err)
	}
}
