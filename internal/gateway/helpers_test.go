package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/events"
)

// echo is what the test upstream saw.
type echo struct {
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	Query   string      `json:"query"`
	Host    string      `json:"host"`
	Header  http.Header `json:"header"`
	Body    string      `json:"body"`
	CL      int64       `json:"content_length"`
	TE      []string    `json:"transfer_encoding"`
	Remote  string      `json:"remote"`
	Backend string      `json:"backend"`
}

// newUpstream starts an upstream on 127.0.0.1 that echoes the request as
// JSON, with a few special paths to exercise the gateway.
func newEchoUpstream(t *testing.T, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case strings.HasPrefix(r.URL.Path, "/status/500"):
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, "panic: runtime error at db.go:42 (password=hunter2)")
			return
		case strings.HasPrefix(r.URL.Path, "/slow"):
			d, _ := time.ParseDuration(r.URL.Query().Get("d"))
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Server", "Apache/2.4.1 (Unix)")
		w.Header().Set("X-Powered-By", "PHP/5.6")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echo{
			Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Header: r.Header,
			Body: string(body), CL: r.ContentLength, TE: r.TransferEncoding, Remote: r.RemoteAddr, Backend: name,
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// captureSink records events for assertions.
type captureSink struct {
	mu  sync.Mutex
	evs []events.Event
}

func (*captureSink) Name() string { return "capture" }

func (c *captureSink) Write(_ context.Context, b []events.Event) error {
	c.mu.Lock()
	c.evs = append(c.evs, b...)
	c.mu.Unlock()
	return nil
}

// waitFor polls until an event matching f arrives.
func (c *captureSink) waitFor(t *testing.T, f func(events.Event) bool) events.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, e := range c.evs {
			if f(e) {
				c.mu.Unlock()
				return e
			}
		}
		c.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no matching event in %d events", len(c.evs))
	return events.Event{}
}

type testGateway struct {
	srv    *Server
	url    string
	admin  string
	token  string
	events *captureSink
}

const testAdminToken = "test-admin-token-0123456789"

// startGateway writes the YAML (with $UPSTREAM_n placeholders replaced) to a
// file, loads it like the CLI does and starts the gateway on free ports.
func startGateway(t *testing.T, yaml string, upstreams ...string) *testGateway {
	t.Helper()
	dir := t.TempDir()
	for i := len(upstreams) - 1; i >= 0; i-- {
		yaml = strings.ReplaceAll(yaml, "$UPSTREAM_"+string(rune('0'+i)), upstreams[i])
	}
	head := "listen: 127.0.0.1:0\nadmin: {listen: 127.0.0.1:0, token: " + testAdminToken + "}\ndata_dir: " + dir + "\n"
	if !strings.Contains(yaml, "\nevents:") {
		head += "events: {store: {driver: none}}\n"
	}
	path := dir + "/apiguard.yaml"
	if err := os.WriteFile(path, []byte(head+yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, config.Options{})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	sink := &captureSink{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := New(cfg, Options{Logger: log, Version: "test", ConfigPath: path, ExtraSinks: []events.Sink{sink}})
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return &testGateway{srv: srv, url: "http://" + srv.Addr("public"), admin: "http://" + srv.Addr("admin"), token: testAdminToken, events: sink}
}

type problemBody struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance"`
}

type result struct {
	status  int
	header  http.Header
	body    []byte
	echo    *echo
	problem *problemBody
}

func do(t *testing.T, req *http.Request) result {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	res := result{status: resp.StatusCode, header: resp.Header, body: body}
	switch ct := resp.Header.Get("Content-Type"); {
	case ct == "application/problem+json":
		res.problem = &problemBody{}
		if err := json.Unmarshal(body, res.problem); err != nil {
			t.Fatalf("problem body: %v: %s", err, body)
		}
	case ct == "application/json":
		res.echo = &echo{}
		_ = json.Unmarshal(body, res.echo)
	}
	return res
}

func get(t *testing.T, url string, hdr ...string) result {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func send(t *testing.T, method, url, contentType, body string, hdr ...string) result {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func wantProblem(t *testing.T, r result, status int, slug string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	if r.problem == nil {
		t.Fatalf("want problem+json %s, got Content-Type %q body %s", slug, r.header.Get("Content-Type"), r.body)
	}
	if r.problem.Type != "urn:apiguard:problem:"+slug {
		t.Fatalf("problem type = %q, want %q", r.problem.Type, slug)
	}
	if r.problem.Status != status || r.problem.Title == "" {
		t.Fatalf("problem = %+v", r.problem)
	}
	if id := r.header.Get("X-Request-Id"); id == "" || r.problem.Instance != id {
		t.Fatalf("instance %q != X-Request-Id %q", r.problem.Instance, id)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("problem headers: %v", r.header)
	}
}
