package middleware_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/middleware"
)

const cfg = `
trusted_proxies: [192.0.2.0/24]
checks:
  iplist: {deny: [203.0.113.0/24]}
  ratelimit:
    policies: [{name: per-client, key: [ip], limits: [{rate: 2/m}]}]
routes:
  - name: admin
    path_prefix: /admin
    checks: {iplist: {allow: [10.0.0.0/8]}}
`

func quiet() middleware.Options {
	return middleware.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestWrap(t *testing.T) {
	t.Parallel()
	guard, err := middleware.Parse("mw.yaml", []byte(cfg), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer guard.Close(t.Context())
	h, err := guard.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	call := func(path, ip string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("X-Forwarded-For", ip)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	// The test server's client connects from 127.0.0.1, which is not a
	// trusted proxy here: the peer address is the client.
	if r := call("/public", "203.0.113.1"); r.StatusCode != 200 || r.Header.Get("X-Request-Id") == "" {
		t.Fatalf("untrusted X-Forwarded-For was believed, or no request id: %d", r.StatusCode)
	}
	r := call("/admin", "10.1.1.1")
	if r.StatusCode != 403 || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("admin from outside the allow list: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	// The global rate limit (2/m) covers the rest; the headers reach the
	// client. The refused /admin request was stopped by the IP list, an
	// earlier phase, so it was never counted: this is the second.
	if r := call("/public", ""); r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("RateLimit"), `"per-client";r=0`) {
		t.Fatalf("second counted request: %d %v", r.StatusCode, r.Header)
	}
	r = call("/public", "")
	if r.StatusCode != 429 || r.Header.Get("Retry-After") == "" || !strings.Contains(r.Header.Get("RateLimit-Policy"), `"per-client";q=2;w=60`) {
		t.Fatalf("third request: %d %v", r.StatusCode, r.Header)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(path, []byte("routes:\n  - name: a\n    path_prefx: /x\n"), 0o600)
	_, err := middleware.Load(path, quiet())
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:3: routes[0].path_prefx: unknown field") {
		t.Fatalf("want a file:line error, got %v", err)
	}
	if _, err := middleware.Load(filepath.Join(t.TempDir(), "missing.yaml"), quiet()); err == nil {
		t.Fatal("missing file accepted")
	}
}
