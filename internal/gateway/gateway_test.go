package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/events"
)

const basicConfig = `
trusted_proxies: [10.9.0.0/16]
upstreams:
  app: {targets: [$UPSTREAM_0]}
  other: {targets: [$UPSTREAM_1]}
routes:
  - name: api
    path_prefix: /api/
    methods: [GET, POST]
    upstream: app
    limits: {max_body_bytes: 1KiB, json_max_depth: 4, json_max_elements: 20}
  - name: admin
    path_prefix: /api/admin
    upstream: other
    checks:
      iplist: {allow: [10.20.0.0/16]}
  - name: shop-host
    host: shop.example.com
    path_prefix: /
    upstream: other
  - name: wild
    host: "*.tenant.example.com"
    path_prefix: /
    upstream: other
  - name: stripped
    path_prefix: /v2
    strip_prefix: true
    upstream: app
  - name: raw
    path_prefix: /raw/
    upstream: app
    mask_upstream_errors: false
  - name: root
    path_prefix: /
    upstream: app
checks:
  iplist: {deny: [203.0.113.0/24]}
`

func TestProxyBasics(t *testing.T) {
	t.Parallel()
	app, other := newEchoUpstream(t, "app"), newEchoUpstream(t, "other")
	g := startGateway(t, basicConfig, app.URL, other.URL)

	t.Run("passes and strips identifying headers", func(t *testing.T) {
		r := get(t, g.url+"/api/items/1?x=1")
		if r.status != 200 || r.echo == nil || r.echo.Backend != "app" || r.echo.Path != "/api/items/1" || r.echo.Query != "x=1" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		if r.header.Get("Server") != "" || r.header.Get("X-Powered-By") != "" {
			t.Fatalf("identifying headers leaked: %v", r.header)
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("nosniff missing")
		}
		id := r.header.Get("X-Request-Id")
		if len(id) != 32 || r.echo.Header.Get("X-Request-Id") != id {
			t.Fatalf("request id %q not generated and passed upstream (%q)", id, r.echo.Header.Get("X-Request-Id"))
		}
	})
	t.Run("request id kept when well formed, replaced when not", func(t *testing.T) {
		r := get(t, g.url+"/api/x", "X-Request-Id", "abc-123.def:4_5")
		if r.header.Get("X-Request-Id") != "abc-123.def:4_5" || r.echo.Header.Get("X-Request-Id") != "abc-123.def:4_5" {
			t.Fatalf("well-formed id not kept: %v", r.header)
		}
		r = get(t, g.url+"/api/x", "X-Request-Id", "bad id<script>")
		if id := r.header.Get("X-Request-Id"); id == "bad id<script>" || len(id) != 32 {
			t.Fatalf("malformed id kept: %q", id)
		}
	})

	routing := []struct {
		desc, method, path, host string
		status                   int
		backend, upstreamPath    string
		slug                     string
	}{
		{"longest prefix wins", "GET", "/api/admin/users", "", 403, "", "", "ip-not-allowed"},
		{"prefix route", "GET", "/api/products", "", 200, "app", "/api/products", ""},
		{"exact host", "GET", "/anything", "shop.example.com", 200, "other", "/anything", ""},
		{"wildcard host", "GET", "/x", "acme.tenant.example.com", 200, "other", "/x", ""},
		{"wildcard does not match apex", "GET", "/x", "tenant.example.com", 200, "app", "/x", ""},
		{"strip prefix", "GET", "/v2/items", "", 200, "app", "/items", ""},
		{"segment-aware prefix", "GET", "/v2x/items", "", 200, "app", "/v2x/items", ""},
		{"method not allowed", "DELETE", "/api/items/1", "", 405, "", "", "method-not-allowed"},
		{"dot segments normalised before routing", "GET", "/api/../api/admin/users", "", 403, "", "", "ip-not-allowed"},
		{"double slashes normalised", "GET", "/api//items", "", 200, "app", "/api/items", ""},
	}
	for _, tc := range routing {
		t.Run(tc.desc, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, g.url+"/", nil)
			req.URL.Opaque = tc.path // send the path exactly as written
			if tc.host != "" {
				req.Host = tc.host
			}
			r := do(t, req)
			if tc.slug != "" {
				wantProblem(t, r, tc.status, tc.slug)
				if tc.status == 405 && r.header.Get("Allow") != "GET, POST, HEAD" {
					t.Fatalf("Allow = %q", r.header.Get("Allow"))
				}
				return
			}
			if r.status != tc.status || r.echo == nil || r.echo.Backend != tc.backend || r.echo.Path != tc.upstreamPath {
				t.Fatalf("got %d backend=%v body=%s", r.status, r.echo, r.body)
			}
		})
	}
}

func TestForwardedHeaders(t *testing.T) {
	t.Parallel()
	app := newEchoUpstream(t, "app")
	// The test client connects from 127.0.0.1, which the second gateway trusts.
	untrusted := startGateway(t, "upstreams: {app: {targets: [$UPSTREAM_0]}}\nroutes: [{name: r, upstream: app}]\n", app.URL)
	trusted := startGateway(t, "trusted_proxies: [127.0.0.1/32]\nupstreams: {app: {targets: [$UPSTREAM_0]}}\nroutes: [{name: r, upstream: app}]\n", app.URL)

	r := get(t, untrusted.url+"/", "X-Forwarded-For", "6.6.6.6", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "evil.example", "Forwarded", "for=6.6.6.6")
	h := r.echo.Header
	if h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("X-Forwarded-Proto") != "http" || strings.Contains(h.Get("X-Forwarded-Host"), "evil") {
		t.Fatalf("untrusted forwarded headers believed: %v", h)
	}
	if h.Get("Forwarded") != `for=127.0.0.1;host="`+strings.TrimPrefix(untrusted.url, "http://")+`";proto=http` {
		t.Fatalf("Forwarded = %q", h.Get("Forwarded"))
	}
	ev := untrusted.events.waitFor(t, func(e events.Event) bool { return e.Kind == events.KindRequest })
	if ev.ClientIP != "127.0.0.1" {
		t.Fatalf("client ip = %s, want the peer", ev.ClientIP)
	}

	r = get(t, trusted.url+"/", "X-Forwarded-For", "6.6.6.6, 198.51.100.7", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "api.example.com")
	h = r.echo.Header
	if h.Get("X-Forwarded-For") != "6.6.6.6, 198.51.100.7, 127.0.0.1" || h.Get("X-Forwarded-Proto") != "https" || h.Get("X-Forwarded-Host") != "api.example.com" {
		t.Fatalf("trusted chain not kept: %v", h)
	}
	ev = trusted.events.waitFor(t, func(e events.Event) bool { return e.Kind == events.KindRequest })
	if ev.ClientIP != "198.51.100.7" {
		t.Fatalf("client ip = %s, want the rightmost untrusted 198.51.100.7", ev.ClientIP)
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	app := newEchoUpstream(t, "app")
	g := startGateway(t, basicConfig+"limits: {max_header_bytes: 2KiB}\n", app.URL, app.URL)

	deep := strings.Repeat("[", 5) + strings.Repeat("]", 5)
	many := "[" + strings.Repeat("1,", 25) + "1]"
	cases := []struct {
		desc, ct, body string
		chunked        bool
		status         int
		slug           string
	}{
		{"json within limits passes", "application/json", `{"a":[1,2,{"b":"c"}]}`, false, 200, ""},
		{"body over route limit", "text/plain", strings.Repeat("x", 2000), false, 413, "body-too-large"},
		{"chunked body over limit", "text/plain", strings.Repeat("x", 2000), true, 413, "body-too-large"},
		{"chunked json over limit", "application/json", `"` + strings.Repeat("x", 2000) + `"`, true, 413, "body-too-large"},
		{"json too deep", "application/json", deep, false, 400, "json-too-deep"},
		{"json too many elements", "application/json", many, false, 413, "json-too-many-elements"},
		{"invalid json", "application/json; charset=utf-8", `{"a":}`, false, 400, "invalid-json"},
		{"truncated json", "application/vnd.api+json", `{"a":1`, false, 400, "invalid-json"},
		{"non-json is not parsed", "text/plain", `{"a":}`, false, 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // unknown length: sent chunked
			}
			req, _ := http.NewRequest(http.MethodPost, g.url+"/api/items", body)
			req.Header.Set("Content-Type", tc.ct)
			r := do(t, req)
			if tc.slug != "" {
				wantProblem(t, r, tc.status, tc.slug)
				return
			}
			if r.status != tc.status || r.echo.Body != tc.body {
				t.Fatalf("got %d, upstream body %q", r.status, r.echo.Body)
			}
			if tc.ct == "application/json" && (r.echo.CL != int64(len(tc.body)) || len(r.echo.TE) != 0) {
				t.Fatalf("buffered JSON not re-framed with Content-Length: cl=%d te=%v", r.echo.CL, r.echo.TE)
			}
		})
	}
	t.Run("headers over limit", func(t *testing.T) {
		r := get(t, g.url+"/api/x", "X-Big", strings.Repeat("a", 3000))
		wantProblem(t, r, 431, "headers-too-large")
	})
	t.Run("unknown route", func(t *testing.T) {
		g2 := startGateway(t, "upstreams: {app: {targets: [$UPSTREAM_0]}}\nroutes: [{name: r, path_prefix: /only, upstream: app}]\n", app.URL)
		wantProblem(t, get(t, g2.url+"/elsewhere"), 404, "not-found")
	})
}

func TestUpstreamFailures(t *testing.T) {
	t.Parallel()
	app := newEchoUpstream(t, "app")
	dead := deadAddr(t)
	g := startGateway(t, `
upstreams:
  app: {targets: [$UPSTREAM_0], timeout: 300ms}
  dead: {targets: [$UPSTREAM_1]}
  mixed: {targets: [$UPSTREAM_1, $UPSTREAM_0], fail_timeout: 1m}
routes:
  - {name: dead, path_prefix: /dead, upstream: dead}
  - {name: mixed, path_prefix: /mixed, upstream: mixed}
  - {name: raw, path_prefix: /raw, strip_prefix: true, upstream: app, mask_upstream_errors: false}
  - {name: app, path_prefix: /, upstream: app}
`, app.URL, "http://"+dead)

	wantProblem(t, get(t, g.url+"/dead/x"), 502, "upstream-unavailable")
	wantProblem(t, get(t, g.url+"/slow?d=2s"), 504, "upstream-timeout")

	r := get(t, g.url+"/status/500")
	wantProblem(t, r, 500, "upstream-error")
	if strings.Contains(string(r.body), "hunter2") || strings.Contains(string(r.body), "db.go") {
		t.Fatalf("upstream internals leaked: %s", r.body)
	}
	r = get(t, g.url+"/raw/status/500")
	if r.status != 500 || !strings.Contains(string(r.body), "db.go") {
		t.Fatalf("mask_upstream_errors: false should pass the body: %d %s", r.status, r.body)
	}
	// A refusing target is skipped and the request retried on the next one:
	// nothing is lost, with or without a body.
	for i := range 6 {
		r := send(t, http.MethodPost, g.url+"/mixed/x", "text/plain", fmt.Sprintf("body-%d", i))
		if r.status != 200 || r.echo.Body != fmt.Sprintf("body-%d", i) {
			t.Fatalf("request %d through mixed upstream: %d %s", i, r.status, r.body)
		}
	}
}

// deadAddr returns an address on which nothing listens.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestRoundRobin(t *testing.T) {
	t.Parallel()
	a, b := newEchoUpstream(t, "a"), newEchoUpstream(t, "b")
	g := startGateway(t, "upstreams: {app: {targets: [$UPSTREAM_0, $UPSTREAM_1]}}\nroutes: [{name: r, upstream: app}]\n", a.URL, b.URL)
	seen := map[string]int{}
	for range 10 {
		seen[get(t, g.url+"/").echo.Backend]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("round robin split = %v", seen)
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	app := newEchoUpstream(t, "app")
	g := startGateway(t, `
upstreams: {app: {targets: [$UPSTREAM_0]}}
routes:
  - name: api
    methods: [GET, POST]
    upstream: app
    cors:
      allowed_origins: [https://app.example.com]
      allowed_headers: [Authorization, Content-Type]
      exposed_headers: [X-Request-Id]
      allow_credentials: true
      max_age: 10m
`, app.URL)

	pre := func(origin, method, headers string) result {
		req, _ := http.NewRequest(http.MethodOptions, g.url+"/api", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", method)
		if headers != "" {
			req.Header.Set("Access-Control-Request-Headers", headers)
		}
		return do(t, req)
	}
	r := pre("https://app.example.com", "POST", "authorization, content-type")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		r.header.Get("Access-Control-Allow-Credentials") != "true" || r.header.Get("Access-Control-Max-Age") != "600" ||
		r.header.Get("Access-Control-Allow-Methods") != "GET, POST" {
		t.Fatalf("allowed preflight: %d %v", r.status, r.header)
	}
	wantProblem(t, pre("https://evil.example", "POST", ""), 403, "cors-rejected")
	wantProblem(t, pre("https://app.example.com", "DELETE", ""), 403, "cors-rejected")
	wantProblem(t, pre("https://app.example.com", "GET", "X-Secret"), 403, "cors-rejected")

	r = get(t, g.url+"/x", "Origin", "https://app.example.com")
	if r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || r.header.Get("Access-Control-Expose-Headers") != "X-Request-Id" || r.header.Get("Vary") != "Origin" {
		t.Fatalf("actual request CORS headers: %v", r.header)
	}
	r = get(t, g.url+"/x", "Origin", "https://evil.example")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("disallowed origin got ACAO")
	}
}

func TestChecksAndModes(t *testing.T) {
	t.Parallel()
	app := newEchoUpstream(t, "app")
	g := startGateway(t, `
trusted_proxies: [127.0.0.1/32]
upstreams: {app: {targets: [$UPSTREAM_0]}}
checks:
  iplist: {deny: [203.0.113.0/24]}
routes:
  - {name: watched, path_prefix: /watched, upstream: app, checks: {iplist: {mode: monitor, deny: [203.0.113.0/24]}}}
  - {name: open, path_prefix: /open, upstream: app, checks: {iplist: {mode: "off"}}}
  - {name: default, path_prefix: /, upstream: app}
`, app.URL)

	r := get(t, g.url+"/x", "X-Forwarded-For", "203.0.113.9")
	wantProblem(t, r, 403, "ip-denied")
	ev := g.events.waitFor(t, func(e events.Event) bool {
		return e.Kind == events.KindVerdict && e.RequestID == r.header.Get("X-Request-Id")
	})
	if ev.Check != "iplist" || ev.Action != "deny" || ev.Reason != "ip-denied" || ev.ClientIP != "203.0.113.9" || ev.Route != "default" {
		t.Fatalf("verdict event = %+v", ev)
	}

	r = get(t, g.url+"/watched", "X-Forwarded-For", "203.0.113.9")
	if r.status != 200 {
		t.Fatalf("monitor mode blocked: %d", r.status)
	}
	ev = g.events.waitFor(t, func(e events.Event) bool {
		return e.Kind == events.KindVerdict && e.RequestID == r.header.Get("X-Request-Id")
	})
	if ev.Action != "would-deny" {
		t.Fatalf("monitor verdict action = %q", ev.Action)
	}
	req := g.events.waitFor(t, func(e events.Event) bool {
		return e.Kind == events.KindRequest && e.RequestID == r.header.Get("X-Request-Id")
	})
	if req.Action != "would-deny" || req.Status != 200 || req.Latency <= 0 || req.Upstream <= 0 {
		t.Fatalf("request event = %+v", req)
	}

	if r := get(t, g.url+"/open", "X-Forwarded-For", "203.0.113.9"); r.status != 200 {
		t.Fatalf("mode off still checked: %d", r.status)
	}
	if r := get(t, g.url+"/x", "X-Forwarded-For", "198.51.100.1"); r.status != 200 {
		t.Fatalf("allowed address refused: %d", r.status)
	}
}

// TestSmuggling sends ambiguous framings on a raw connection.
func TestSmuggling(t *testing.T) {
	t.Parallel()
	app := newEchoUpstream(t, "app")
	g := startGateway(t, "upstreams: {app: {targets: [$UPSTREAM_0]}}\nroutes: [{name: r, upstream: app}]\n", app.URL)
	addr := strings.TrimPrefix(g.url, "http://")

	raw := func(t *testing.T, req string) (*http.Response, *bufio.Reader, net.Conn) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp, br, c
	}

	t.Run("conflicting content-length refused", func(t *testing.T) {
		resp, _, _ := raw(t, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")
		if resp.StatusCode != 400 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("content-length with transfer-encoding is re-framed and the connection closed", func(t *testing.T) {
		resp, br, _ := raw(t, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"body":"abc"`) || strings.Contains(string(body), "smuggled") {
			t.Fatalf("status %d body %s", resp.StatusCode, body)
		}
		if !resp.Close {
			t.Fatalf("connection not closed after a CL+TE request")
		}
		if _, err := http.ReadResponse(br, nil); err == nil {
			t.Fatalf("a second (smuggled) request was answered on the same connection")
		}
	})
	t.Run("unsupported transfer-encoding refused", func(t *testing.T) {
		resp, _, _ := raw(t, "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
		if resp.StatusCode < 400 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

func TestAdminPlane(t *testing.T) {
	t.Parallel()
	app := newEchoUpstream(t, "app")
	g := startGateway(t, "upstreams: {app: {targets: [$UPSTREAM_0]}}\nroutes: [{name: r, upstream: app}]\n", app.URL)
	get(t, g.url+"/x")

	if r := get(t, g.admin+"/healthz"); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}
	if r := get(t, g.admin+"/readyz"); r.status != 200 {
		t.Fatalf("readyz %d", r.status)
	}
	wantProblem(t, get(t, g.admin+"/metrics"), 401, "unauthorized")
	wantProblem(t, get(t, g.admin+"/metrics", "Authorization", "Bearer wrong-token-0123456789"), 401, "unauthorized")
	r := get(t, g.admin+"/metrics", "Authorization", "Bearer "+g.token)
	for _, want := range []string{
		`apiguard_requests_total{decision="allow",route="r",status="200"} 1`,
		"apiguard_request_duration_seconds_bucket", "apiguard_upstream_duration_seconds_bucket",
		"apiguard_events_queue_depth", "apiguard_build_info",
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
