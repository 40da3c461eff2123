package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/gateway"
	"github.com/apiguard/apiguard/internal/testutil"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestExitCodesAndHelp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	_ = os.WriteFile(good, []byte("upstreams: {app: {targets: [http://127.0.0.1:9]}}\nroutes: [{name: r, upstream: app}]\n"), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("upstreams:\n  payments: {targets: [http://127.0.0.1:9]}\nroutes:\n  - name: r\n    upstream: paymnts\n    limits: {max_body_bytes: 10MB, json_depth: 3}\n"), 0o600)

	cases := []struct {
		args       []string
		code       int
		out, errRe string
	}{
		{[]string{}, exitUsage, "", "Usage:"},
		{[]string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{[]string{"version"}, exitOK, "apiguard dev", ""},
		{[]string{"--help"}, exitOK, "apiguard serve -c", ""},
		{[]string{"serve", "--help"}, exitOK, "", "-upstream"},
		{[]string{"check", "--help"}, exitOK, "", "Usage: apiguard check"},
		{[]string{"demo", "--help"}, exitOK, "", "-duration"},
		{[]string{"serve"}, exitUsage, "", "-c FILE or --upstream URL is required"},
		{[]string{"serve", "-c", good, "--upstream", "http://x"}, exitUsage, "", "not both"},
		{[]string{"serve", "--upstream", "ftp://x"}, exitUsage, "", `upstreams.default.targets\[0\]: must be an http`},
		{[]string{"serve", "--bogus"}, exitUsage, "", "flag provided but not defined"},
		{[]string{"check"}, exitUsage, "", "-c FILE is required"},
		{[]string{"check", "-c", good}, exitOK, "ok (1 routes, 1 upstreams)", ""},
		{[]string{"check", "-c", filepath.Join(dir, "missing.yaml")}, exitUsage, "", "no such file"},
		// Every error at once, with file:line and path.
		{[]string{"check", "-c", bad}, exitUsage, "", `(?s)bad.yaml:5: routes\[0\].upstream: no upstream named "paymnts" \(did you mean "payments"\?\).*bad.yaml:6: routes\[0\].limits.json_depth: unknown field \(did you mean "json_max_depth"\?\)`},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			if tc.out != "" && !strings.Contains(out, tc.out) {
				t.Fatalf("stdout %q lacks %q", out, tc.out)
			}
			if tc.errRe != "" && !regexp.MustCompile(tc.errRe).MatchString(errOut) {
				t.Fatalf("stderr %q does not match %q", errOut, tc.errRe)
			}
		})
	}
}

// TestDemoJSON runs the demo with the real gateway and checks the contract
// of its JSON summary: genuine clients pass, attacks are denied.
func TestDemoJSON(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	duration := "3s"
	if testutil.Race {
		duration = "12s" // every scenario must get through the WAF a few times
	}
	code, out, errOut := runCLI("demo", "--json", "--duration", duration, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir", dataDir)
	if code != exitOK {
		t.Fatalf("demo exit %d: %s", code, errOut)
	}
	var summary struct {
		Scenarios []struct {
			Name             string         `json:"name"`
			Kind             string         `json:"kind"`
			Requests         int            `json:"requests"`
			Allowed          int            `json:"allowed"`
			Denied           int            `json:"denied"`
			DeniedBy         map[string]int `json:"denied_by"`
			FirstDeniedAfter *float64       `json:"first_denied_after_s"`
		} `json:"scenarios"`
		Gateway struct {
			Requests int64   `json:"requests"`
			P50      float64 `json:"p50_ms"`
			P99      float64 `json:"p99_ms"`
		} `json:"gateway"`
	}
	if err := json.Unmarshal([]byte(out), &summary); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
	}
	total := 0
	for _, s := range summary.Scenarios {
		total += s.Requests
		if s.Requests == 0 || s.Allowed+s.Denied != s.Requests {
			t.Errorf("%s: inconsistent counts %+v", s.Name, s)
		}
		switch s.Kind {
		case "genuine":
			if s.Denied != 0 {
				t.Errorf("genuine scenario %s had %d denials: %v", s.Name, s.Denied, s.DeniedBy)
			}
		case "attack":
			if s.Denied == 0 || s.FirstDeniedAfter == nil {
				t.Errorf("attack scenario %s was never denied", s.Name)
			}
		default:
			t.Errorf("%s: kind %q", s.Name, s.Kind)
		}
	}
	// Requests in flight when the clients stop are seen by the gateway but
	// not counted by the (cancelled) clients: a few dozen at most.
	if summary.Gateway.Requests < int64(total) || summary.Gateway.Requests > int64(total)+50 ||
		summary.Gateway.P50 <= 0 || summary.Gateway.P99 < summary.Gateway.P50 {
		t.Errorf("gateway stats %+v for %d client requests", summary.Gateway, total)
	}
	if !strings.Contains(errOut, "admin_token=") {
		t.Errorf("the admin token is not shown on stderr in --json mode")
	}
	// Each scenario is stopped by the capability it is about.
	wantReason := map[string]string{
		"flood": "rate-limited", "sql-injection": "injection-detected", "xss": "injection-detected",
		"mass-assignment": "request-invalid", "shadow-endpoint": "undeclared-operation",
		"zombie-endpoint": "deprecated-operation", "ssrf-avatar": "ssrf-blocked",
	}
	for _, s := range summary.Scenarios {
		if r, ok := wantReason[s.Name]; ok && s.DeniedBy[r] == 0 {
			t.Errorf("%s: never denied with %s: %+v", s.Name, r, s)
		}
		delete(wantReason, s.Name)
	}
	if len(wantReason) > 0 {
		t.Errorf("scenarios missing from the summary: %v", wantReason)
	}

	// The demo recorded its traffic; suggest reads it back.
	code, out, errOut = runCLI("ratelimit", "suggest", "--data-dir", dataDir)
	if code != exitOK || !strings.Contains(out, "- name: api\n") || !strings.Contains(out, "key: [ip]") {
		t.Fatalf("ratelimit suggest: exit %d\n%s\n%s", code, out, errOut)
	}
	code, _, errOut = runCLI("ratelimit", "suggest", "--data-dir", t.TempDir())
	if code != exitRuntime || !strings.Contains(errOut, "no event store") {
		t.Fatalf("suggest without a store: %d %s", code, errOut)
	}
}

// TestServeBinary builds the real binary and drives it: serve from a file,
// reload on SIGHUP, drain on SIGTERM, exit 0.
func TestServeBinary(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "apiguard")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(500 * time.Millisecond)
		}
		fmt.Fprintf(w, "upstream saw %s", r.URL.Path)
	}))
	defer upstream.Close()

	dir := t.TempDir()
	pub, adm := freePort(t), freePort(t)
	cfgFile := filepath.Join(dir, "apiguard.yaml")
	writeCfg := func(prefix string) {
		yaml := fmt.Sprintf("listen: %s\nadmin: {listen: %s, token: cli-test-token-0123456789}\ndata_dir: %s\n"+
			"upstreams: {app: {targets: [%s]}}\nroutes: [{name: r, path_prefix: %s, upstream: app}]\n", pub, adm, filepath.Join(dir, "data"), upstream.URL, prefix)
		if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("/one")
	cmd := exec.Command(bin, "serve", "-c", cfgFile)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	logs := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs <- sc.Text()
		}
		close(logs)
	}()
	waitLog(t, logs, "apiguard started")

	status := func(path string) int {
		resp, err := http.Get("http://" + pub + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status("/one/x"); s != 200 {
		t.Fatalf("before reload: %d", s)
	}
	// A change to the file is picked up by the watcher.
	writeCfg("/two")
	waitStatus(t, status, "/two/x", 200)
	if s := status("/one/x"); s != 404 {
		t.Fatalf("after reload /one: %d", s)
	}
	// SIGHUP reloads too (the file is unchanged: the reload is logged).
	_ = cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, logs, "config reloaded")

	// A request in flight when SIGTERM arrives still gets its answer.
	writeCfg("/")
	waitStatus(t, status, "/x", 200)
	done := make(chan int, 1)
	go func() { done <- status("/slow") }()
	time.Sleep(150 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if s := <-done; s != 200 {
		t.Fatalf("in-flight request during shutdown: %d", s)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

func waitStatus(t *testing.T, status func(string) int, path string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := status(path)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %d (last %d)", path, want, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitLog(t *testing.T, logs <-chan string, want string) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case l, ok := <-logs:
			if !ok {
				t.Fatalf("process exited before logging %q", want)
			}
			if strings.Contains(l, want) {
				return
			}
		case <-timeout:
			t.Fatalf("no log line %q", want)
		}
	}
}

// TestAPIKeyLifecycle: create a key with the CLI, use it through the
// gateway, revoke it with the CLI, and see it refused.
func TestAPIKeyLifecycle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "key header upstream: ", r.Header.Get("X-Api-Key"))
	}))
	defer upstream.Close()
	cfgFile := filepath.Join(dir, "apiguard.yaml")
	_ = os.WriteFile(cfgFile, []byte(fmt.Sprintf("data_dir: %s\nupstreams: {app: {targets: [%s]}}\n"+
		"routes: [{name: r, upstream: app, checks: {apikey: {scopes: [orders:read]}}}]\n", filepath.Join(dir, "data"), upstream.URL)), 0o600)

	code, key, errOut := runCLI("apikey", "create", "--name", "partner", "--scopes", "orders:read,orders:write", "--expires", "24h", "-c", cfgFile)
	key = strings.TrimSpace(key)
	if code != exitOK || !strings.HasPrefix(key, "agk_") || !strings.Contains(errOut, "shown once") {
		t.Fatalf("create: %d %q %s", code, key, errOut)
	}
	code, list, _ := runCLI("apikey", "list", "-c", cfgFile)
	if code != exitOK || !strings.Contains(list, "partner") || !strings.Contains(list, "active") || strings.Contains(list, key) {
		t.Fatalf("list: %d\n%s", code, list)
	}
	id := strings.Split(strings.TrimPrefix(key, "agk_"), "_")[0]

	cfg, err := config.Load(cfgFile, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	srv, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	call := func(k string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+srv.Addr("public")+"/x", nil)
		req.Header.Set("X-Api-Key", k)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := call(key); status != 200 || body != "key header upstream: " {
		t.Fatalf("valid key: %d %q (the secret must not reach the upstream)", status, body)
	}
	if code, out, _ := runCLI("apikey", "revoke", id, "-c", cfgFile); code != exitOK || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %d %s", code, out)
	}
	// The memory backend has no cross-process feed: the gateway picks the
	// revocation up at its next poll (5 s); with Redis it is immediate.
	deadline := time.Now().Add(8 * time.Second)
	for {
		status, body := call(key)
		if status == 401 && strings.Contains(body, "api-key-revoked") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoked key still accepted: %d %s", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
