package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/events"
)

const forwardAuthConfig = `
trusted_proxies: [10.0.0.0/8]
checks:
  iplist: {deny: [203.0.113.0/24]}
routes:
  - name: admin
    path_prefix: /admin
    methods: [GET]
    upstream: app
    checks: {iplist: {allow: [10.20.0.0/16]}}
upstreams: {app: {targets: [http://127.0.0.1:1]}}
`

func TestForwardAuth(t *testing.T) {
	t.Parallel()
	g := startGateway(t, forwardAuthConfig)
	endpoint := g.admin + ForwardAuthPath

	cases := []struct {
		desc   string
		path   string
		method string
		hdr    []string
		status int
		slug   string
	}{
		{"nginx allowed", "", "GET", []string{"X-Original-Uri", "/api/items?x=1", "X-Original-Method", "POST", "X-Real-Ip", "198.51.100.4"}, 200, ""},
		{"nginx denied by global list", "", "GET", []string{"X-Original-Uri", "/api/items", "X-Original-Method", "GET", "X-Real-Ip", "203.0.113.5"}, 403, "ip-denied"},
		{"nginx route check", "", "GET", []string{"X-Original-Uri", "/admin/users", "X-Original-Method", "GET", "X-Real-Ip", "198.51.100.4"}, 403, "ip-not-allowed"},
		{"traefik allowed", "", "GET", []string{"X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/admin/users", "X-Forwarded-Host", "api.example.com", "X-Forwarded-Proto", "https", "X-Forwarded-For", "10.20.1.1"}, 200, ""},
		{"traefik denied", "", "GET", []string{"X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/x", "X-Forwarded-For", "203.0.113.77"}, 403, "ip-denied"},
		{"traefik method not allowed on route", "", "GET", []string{"X-Forwarded-Method", "DELETE", "X-Forwarded-Uri", "/admin/users", "X-Forwarded-For", "10.20.1.1"}, 405, "method-not-allowed"},
		{"envoy path prefix allowed", "/admin/users", "GET", []string{"X-Forwarded-For", "10.20.3.3"}, 200, ""},
		{"envoy denied", "/admin/users", "GET", []string{"X-Forwarded-For", "192.0.2.1"}, 403, "ip-not-allowed"},
		{"bad method header", "", "GET", []string{"X-Original-Uri", "/x", "X-Original-Method", "GE T"}, 400, "forward-auth-bad-header"},
		{"two proxies' headers at once are refused", "", "GET", []string{"X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/readonly", "X-Original-Method", "DELETE", "X-Original-Uri", "/readonly"}, 400, "forward-auth-bad-header"},
		{"uri without slash", "", "GET", []string{"X-Original-Uri", "http://evil/x", "X-Original-Method", "GET"}, 400, "forward-auth-bad-header"},
		{"control characters in uri", "", "GET", []string{"X-Forwarded-Uri", "/x\x01y", "X-Forwarded-Method", "GET"}, 400, "forward-auth-bad-header"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, endpoint+tc.path, nil)
			for i := 0; i+1 < len(tc.hdr); i += 2 {
				req.Header[http.CanonicalHeaderKey(tc.hdr[i])] = []string{tc.hdr[i+1]}
			}
			if tc.desc == "control characters in uri" {
				// net/http refuses to send CTLs; check the parser directly.
				if _, err := originalRequest(req, "auto"); err == nil {
					t.Fatal("accepted a URI with control characters")
				}
				return
			}
			r := do(t, req)
			if tc.slug != "" {
				wantProblem(t, r, tc.status, tc.slug)
				return
			}
			if r.status != 200 || r.header.Get("X-Request-Id") == "" || r.header.Get("Apiguard-Client-Ip") == "" {
				t.Fatalf("got %d %v %s", r.status, r.header, r.body)
			}
		})
	}
	ev := g.events.waitFor(t, func(e events.Event) bool { return e.Kind == events.KindVerdict && e.ClientIP == "203.0.113.77" })
	if ev.Path != "/x" || ev.Reason != "ip-denied" {
		t.Fatalf("forward-auth event describes the subrequest, not the original: %+v", ev)
	}
}

func FuzzForwardAuthHeaders(f *testing.F) {
	f.Add("GET", "/api/x?y=1", "", "api.example.com", "https", "/.apiguard/authz")
	f.Add("", "", "POST", "", "", "/.apiguard/authz/orders/1")
	f.Add("G\x00T", "//evil", "", "a\"b", "gopher", "/.apiguard/authz")
	f.Add("GET", "/%zz", "", "h:1", "http", "/.apiguard/authz?")
	f.Fuzz(func(t *testing.T, origMethod, origURI, fwdMethod, fwdHost, proto, path string) {
		req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
		if u, err := req.URL.Parse(path); err == nil {
			req.URL = u
		}
		req.Header["X-Original-Method"] = []string{origMethod}
		req.Header["X-Original-Uri"] = []string{origURI}
		req.Header["X-Forwarded-Method"] = []string{fwdMethod}
		req.Header["X-Forwarded-Host"] = []string{fwdHost}
		req.Header["X-Forwarded-Proto"] = []string{proto}
		orig, err := originalRequest(req, "auto")
		if err != nil {
			return
		}
		// Whatever passes must be a sane request.
		if !validToken(orig.Method) || !strings.HasPrefix(orig.URL.Path+"/", "/") || hasCTL(orig.RequestURI) || !validHost(orig.Host) {
			t.Fatalf("accepted malformed original request: %q %q host %q", orig.Method, orig.RequestURI, orig.Host)
		}
		for _, k := range forwardAuthMeta {
			if orig.Header.Get(k) != "" {
				t.Fatalf("meta header %s leaked into the original request", k)
			}
		}
	})
}

func TestReload(t *testing.T) {
	t.Parallel()
	app := newEchoUpstream(t, "app")
	g := startGateway(t, "upstreams: {app: {targets: [$UPSTREAM_0]}}\nroutes: [{name: r, path_prefix: /old, upstream: app}]\n", app.URL)
	path := g.srv.opts.ConfigPath
	orig, _ := os.ReadFile(path)

	if r := get(t, g.url+"/old"); r.status != 200 {
		t.Fatalf("before reload: %d", r.status)
	}
	// An invalid file keeps the running config and emits an event.
	broken := strings.Replace(string(orig), "upstream: app", "upstream: nope", 1)
	_ = os.WriteFile(path, []byte(broken), 0o600)
	if err := g.srv.Reload(); err == nil || !strings.Contains(err.Error(), `no upstream named "nope"`) || !strings.Contains(err.Error(), "apiguard.yaml:") {
		t.Fatalf("reload of a broken file: %v", err)
	}
	if r := get(t, g.url+"/old"); r.status != 200 {
		t.Fatalf("broken reload changed the running config: %d", r.status)
	}
	g.events.waitFor(t, func(e events.Event) bool { return e.Kind == events.KindConfig && e.Reason == "reload-failed" })

	// A file caught mid-write (empty) is not swapped in.
	_ = os.WriteFile(path, nil, 0o600)
	if err := g.srv.Reload(); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("reload of an empty file: %v", err)
	}
	if r := get(t, g.url+"/old"); r.status != 200 {
		t.Fatalf("empty reload changed the running config: %d", r.status)
	}

	// A valid file is swapped in atomically, under load.
	fixed := strings.Replace(string(orig), "/old", "/new", 1)
	_ = os.WriteFile(path, []byte(fixed), 0o600)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	failures := make(chan string, 100)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Get(g.url + "/old")
				if err != nil {
					failures <- err.Error()
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 && resp.StatusCode != 404 {
					failures <- resp.Status
				}
			}
		}()
	}
	if err := g.srv.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	close(stop)
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Errorf("request during reload: %s", f)
	}
	if r := get(t, g.url+"/new"); r.status != 200 {
		t.Fatalf("after reload /new: %d", r.status)
	}
	wantProblem(t, get(t, g.url+"/old"), 404, "not-found")
}

func TestShutdownDrainsInFlight(t *testing.T) {
	t.Parallel()
	app := newEchoUpstream(t, "app")
	g := startGateway(t, "upstreams: {app: {targets: [$UPSTREAM_0]}}\nroutes: [{name: r, upstream: app}]\n", app.URL)

	type res struct {
		status int
		err    error
	}
	done := make(chan res, 5)
	for range 5 {
		go func() {
			resp, err := http.Get(g.url + "/slow?d=400ms")
			if err != nil {
				done <- res{err: err}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			done <- res{status: resp.StatusCode}
		}()
	}
	// Wait until all five are in flight, then shut down.
	deadline := time.Now().Add(3 * time.Second)
	for g.srv.engine.metrics.inflightValue() < 5 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for range 5 {
		if r := <-done; r.err != nil || r.status != 200 {
			t.Fatalf("in-flight request lost during shutdown: %+v", r)
		}
	}
	if _, err := http.Get(g.url + "/"); err == nil {
		t.Fatal("new connections still accepted after shutdown")
	}
	// Events published before shutdown were flushed to the sinks.
	g.events.waitFor(t, func(e events.Event) bool { return e.Kind == events.KindSystem && e.Reason == "stopped" })
}

func TestTLSAndHTTP2(t *testing.T) {
	t.Parallel()
	app := newEchoUpstream(t, "app")
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	g := startGateway(t, "tls: {cert_file: "+certFile+", key_file: "+keyFile+"}\nupstreams: {app: {targets: [$UPSTREAM_0]}}\nroutes: [{name: r, upstream: app}]\n", app.URL)
	url := strings.Replace(g.url, "http://", "https://", 1)

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	resp, err := client.Get(url + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Fatalf("proto %s status %d", resp.Proto, resp.StatusCode)
	}
	if resp.Header.Get("Strict-Transport-Security") == "" {
		t.Fatal("HSTS missing on TLS")
	}
	if !strings.Contains(string(body), `"X-Forwarded-Proto":["https"]`) {
		t.Fatalf("upstream not told the client used https: %s", body)
	}
	// The request's event carries the JA4 of the connection: TLS 1.3, SNI
	// absent (an IP address), ALPN h2.
	ev := g.events.waitFor(t, func(e events.Event) bool { return e.Path == "/x" && e.Kind == events.KindRequest })
	if !strings.HasPrefix(ev.JA4, "t13i") || !strings.Contains(ev.JA4, "h2_") || len(ev.JA4) != 36 {
		t.Errorf("JA4 of the Go client = %q", ev.JA4)
	}
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if _, err := old.Get(url + "/x"); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
}

func selfSigned(t *testing.T, dir string) (string, string, *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestConnectionsPerIP(t *testing.T) {
	t.Parallel()
	app := newEchoUpstream(t, "app")
	g := startGateway(t, "limits: {max_conns_per_ip: 2}\nupstreams: {app: {targets: [$UPSTREAM_0]}}\nroutes: [{name: r, upstream: app}]\n", app.URL)
	addr := strings.TrimPrefix(g.url, "http://")
	var conns []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	time.Sleep(50 * time.Millisecond) // let the server accept both
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	_ = third.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.WriteString(third, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if n, err := third.Read(make([]byte, 1)); err == nil || n > 0 {
		t.Fatalf("third connection from one address was served")
	}
	// Closing one frees a slot.
	_ = conns[0].Close()
	conns = conns[1:]
	time.Sleep(50 * time.Millisecond)
	if r := get(t, g.url+"/"); r.status != 200 {
		t.Fatalf("after a slot freed: %d", r.status)
	}
}

func TestMiddlewareMode(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse("mw.yaml", []byte(`
trusted_proxies: [192.0.2.0/24]
checks: {iplist: {deny: [203.0.113.0/24]}}
routes:
  - {name: admin, path_prefix: /admin, checks: {iplist: {allow: [10.0.0.0/8]}}}
`), config.Options{Middleware: true})
	if err != nil {
		t.Fatal(err)
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "handled "+r.URL.Path) })
	h, err := NewEngine(cfg, EngineOptions{Terminal: next})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path, ip string
		status   int
	}{
		{"/public", "198.51.100.1", 200},
		{"/public", "203.0.113.1", 403},
		{"/admin/x", "10.1.1.1", 200},
		{"/admin/x", "198.51.100.1", 403},
	}
	for _, tc := range cases {
		req := httptest.NewRequest(http.MethodGet, tc.path, nil)
		req.RemoteAddr = "192.0.2.10:1234"
		req.Header.Set("X-Forwarded-For", tc.ip)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != tc.status {
			t.Errorf("%s from %s: %d, want %d", tc.path, tc.ip, w.Code, tc.status)
		}
		if tc.status == 200 && w.Body.String() != "handled "+tc.path {
			t.Errorf("body %q", w.Body.String())
		}
		if tc.status != 200 && w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("deny is not a problem: %v", w.Header())
		}
	}
}
