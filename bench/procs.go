package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process the harness started. Every child is registered in
// children and killed by killAll; on Linux it also gets SIGKILL from the
// kernel when the harness dies (Pdeathsig), and the re-executed roles exit
// on EOF of stdin.
type child struct {
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	logPath string
	done    chan struct{}
	waitErr error
}

var (
	childrenMu sync.Mutex
	children   []*child
)

// startChild starts argv with stdout+stderr appended to logPath. When
// announce is true, the child's first stdout line is returned (the rest of
// stdout still goes to the log).
func startChild(name string, argv []string, dir, logPath string, announce bool, timeout time.Duration) (*child, string, error) {
	// O_APPEND: stderr and the forwarded rest of stdout share the file.
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, "", err
	}
	defer logf.Close() // the child holds its own descriptors

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stderr = logf
	cmd.SysProcAttr = childSysProcAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	var pr, pw *os.File
	if announce {
		if pr, pw, err = os.Pipe(); err != nil {
			return nil, "", err
		}
		cmd.Stdout = pw
	} else {
		cmd.Stdout = logf
	}
	if err := cmd.Start(); err != nil {
		if pr != nil {
			pr.Close()
			pw.Close()
		}
		return nil, "", fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, stdin: stdin, logPath: logPath, done: make(chan struct{})}
	childrenMu.Lock()
	children = append(children, c)
	childrenMu.Unlock()
	go func() {
		c.waitErr = cmd.Wait()
		close(c.done)
	}()
	if !announce {
		return c, "", nil
	}
	pw.Close()
	lines := make(chan string, 1)
	logw, _ := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	go func() {
		defer pr.Close()
		br := bufio.NewReader(pr)
		line, err := br.ReadString('\n')
		if err != nil {
			close(lines)
		} else {
			lines <- strings.TrimSpace(line)
		}
		if logw != nil {
			_, _ = io.Copy(logw, br)
			logw.Close()
		} else {
			_, _ = io.Copy(io.Discard, br)
		}
	}()
	select {
	case line, ok := <-lines:
		if ok {
			return c, line, nil
		}
		<-c.done
		return c, "", fmt.Errorf("%s exited before announcing its address (%v)%s", name, c.waitErr, c.logTail())
	case <-time.After(timeout):
		return c, "", fmt.Errorf("%s did not announce its address within %v%s", name, timeout, c.logTail())
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// logTail returns the last lines of the child's log, formatted for an error.
func (c *child) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	lines = lines[max(0, len(lines)-15):]
	return "\n  log " + c.logPath + ":\n    " + strings.Join(lines, "\n    ")
}

// stop asks the child to exit (stdin EOF + SIGTERM), then kills it.
func (c *child) stop(grace time.Duration) {
	if c.exited() {
		return
	}
	_ = c.stdin.Close()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// killAll stops every child, concurrently.
func killAll(grace time.Duration) {
	childrenMu.Lock()
	cs := children
	children = nil
	childrenMu.Unlock()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { c.stop(grace) })
	}
	wg.Wait()
}

// repoRoot finds the module root: the -repo flag, else `go env GOMOD`, else
// the first directory with a go.mod walking up from the working directory.
func repoRoot(flagValue string) (string, error) {
	if flagValue != "" {
		return filepath.Abs(flagValue)
	}
	if out, err := exec.Command(goTool(), "env", "GOMOD").Output(); err == nil {
		gomod := strings.TrimSpace(string(out))
		if gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod), nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found above the working directory; pass -repo")
		}
		dir = parent
	}
}

// goTool is the go command: $GOROOT/bin/go when set, else go on $PATH.
func goTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "go"
}

// buildApiguard runs `go build -o out ./cmd/apiguard` in the repo root.
func buildApiguard(ctx context.Context, root, out string) error {
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", out, "./cmd/apiguard")
	cmd.Dir = root
	b, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(b))
		lines := strings.Split(msg, "\n")
		if len(lines) > 10 {
			lines = append(lines[:10], "...")
		}
		return fmt.Errorf("go build ./cmd/apiguard in %s: %v\n    %s", root, err, strings.Join(lines, "\n    "))
	}
	return nil
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago (the child binds it right after; a lost race surfaces as a start
// failure and is retried).
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

// waitReady polls until every check answers 2xx (each URL in order), the
// child exits, or timeout passes.
func waitReady(ctx context.Context, c *child, timeout time.Duration, urls ...string) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	deadline := time.Now().Add(timeout)
	var last error
	for i := 0; i < len(urls); {
		if c.exited() {
			return fmt.Errorf("%s exited during startup (%v)%s", c.name, c.waitErr, c.logTail())
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %v%s", c.name, timeout, last, c.logTail())
		}
		resp, err := client.Get(urls[i])
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				i++
				continue
			}
			err = fmt.Errorf("GET %s: %s", urls[i], resp.Status)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// cpuTimes sums the CPU time of pids (0 and ok=false when unsupported).
func cpuTimes(pids []int) (time.Duration, bool) {
	var total time.Duration
	for _, pid := range pids {
		d, err := processCPU(pid)
		if err != nil {
			return 0, false
		}
		total += d
	}
	return total, true
}

// settle waits until the children are idle (together under ~8% of a core
// over a 250 ms window), so background work left by one target (e.g. the
// event store draining its queue) does not steal CPU from the next target's
// measurement. It gives up after maxWait. Without per-process CPU accounting
// it just sleeps a second.
//
// With quietWait > 0 it then also waits, up to quietWait, for a window in
// which processes outside the benchmark use under a quarter of a core (for
// shared machines where builds and tests come and go).
func settle(ctx context.Context, pids []int, maxWait, quietWait time.Duration) (time.Duration, bool) {
	start := time.Now()
	const window = 250 * time.Millisecond
	const idle = 20 * time.Millisecond // CPU per window; 2 clock ticks
	prev, ok := cpuTimes(pids)
	if !ok {
		sleepCtx(ctx, time.Second)
		return time.Since(start), true
	}
	for {
		if !sleepCtx(ctx, window) {
			return time.Since(start), false
		}
		cur, _ := cpuTimes(pids)
		if cur-prev <= idle {
			break
		}
		if time.Since(start) >= maxWait {
			return time.Since(start), false
		}
		prev = cur
	}
	if quietWait <= 0 {
		return time.Since(start), true
	}
	qstart := time.Now()
	const qwindow = 500 * time.Millisecond
	for {
		a := snapCPU(pids)
		t0 := time.Now()
		if !sleepCtx(ctx, qwindow) {
			return time.Since(start), false
		}
		other := otherCores(a, snapCPU(pids), time.Since(t0))
		if other < 0.25 { // includes -1: unknown
			return time.Since(start), true
		}
		if time.Since(qstart) >= quietWait {
			return time.Since(start), false
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// cpuSnap is a snapshot of the machine's busy CPU time and of the part used
// by the harness and its children.
type cpuSnap struct {
	system, ours time.Duration
	ok           bool
}

func snapCPU(pids []int) cpuSnap {
	sys, err := systemCPU()
	if err != nil {
		return cpuSnap{}
	}
	ours, ok := cpuTimes(append([]int{os.Getpid()}, pids...))
	return cpuSnap{system: sys, ours: ours, ok: ok}
}

// otherCores is the average number of cores that processes outside the
// benchmark (and steal time) kept busy between a and b; -1 when unknown.
func otherCores(a, b cpuSnap, elapsed time.Duration) float64 {
	if !a.ok || !b.ok || elapsed <= 0 {
		return -1
	}
	other := (b.system - a.system) - (b.ours - a.ours)
	return max(0, float64(other)/float64(elapsed))
}
