package fingerprint

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// observed is what the test handler saw for one request.
type observed struct {
	proto     string
	hasTLS    bool
	tls       *TLSFingerprint
	h2        *HTTP2Fingerprint
	ja4h      string
	wireOrder bool
	ja4hRaw   string
	verdict   Verdict
}

// testServer is a real net/http server on 127.0.0.1 with Install applied.
// Its listener records the raw bytes each client sends (up to 64 KiB) so
// the test can parse the ClientHello itself.
type testServer struct {
	url  string
	pool *x509.CertPool
	obs  chan observed

	mu  sync.Mutex
	raw [][]byte
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	cert, pool := testCert(t)
	ts := &testServer{pool: pool, obs: make(chan observed, 64)}
	srv := &http.Server{
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ci := FromContext(r.Context())
			o := observed{proto: r.Proto, hasTLS: r.TLS != nil, tls: ci.TLS(), h2: ci.HTTP2()}
			o.ja4h, o.wireOrder = JA4H(r)
			o.ja4hRaw = JA4HRaw(r)
			o.verdict = Consistency(ParseUserAgent(r.UserAgent()), ci)
			ts.obs <- o
			_, _ = io.WriteString(w, "ok")
		}),
	}
	if err := Install(srv); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.url = fmt.Sprintf("https://localhost:%d/", ln.Addr().(*net.TCPAddr).Port)
	go func() { _ = srv.ServeTLS(&recordingListener{Listener: ln, ts: ts}, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return ts
}

func (ts *testServer) client(h2 bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ts.pool}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func (ts *testServer) get(t *testing.T, c *http.Client, ua string) observed {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ua != "" {
		req.Header.Set("User-Agent", ua)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return <-ts.obs
}

func (ts *testServer) firstRaw() []byte {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.raw) == 0 {
		return nil
	}
	return ts.raw[0]
}

type recordingListener struct {
	net.Listener
	ts *testServer
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.ts.mu.Lock()
	i := len(l.ts.raw)
	l.ts.raw = append(l.ts.raw, nil)
	l.ts.mu.Unlock()
	return &recordingConn{Conn: c, ts: l.ts, i: i}, nil
}

type recordingConn struct {
	net.Conn
	ts *testServer
	i  int
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.ts.mu.Lock()
	if len(c.ts.raw[c.i]) < 64<<10 {
		c.ts.raw[c.i] = append(c.ts.raw[c.i], p[:n]...)
	}
	c.ts.mu.Unlock()
	return n, err
}

func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// goH2Akamai is the Akamai fingerprint of Go's HTTP/2 client (SETTINGS
// ENABLE_PUSH=0, INITIAL_WINDOW_SIZE=4 MiB, MAX_FRAME_SIZE=16 KiB,
// MAX_HEADER_LIST_SIZE=10 MiB; a 1 GiB connection window; pseudo-headers
// a,m,p,s), as published for recent Go releases by several public
// fingerprinting write-ups and echo services.
const goH2Akamai = "2:0;4:4194304;5:16384;6:10485760|1073741824|0|a,m,p,s"

const chromeUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

func TestLiveGoClientHTTP2(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	c := ts.client(true)
	o := ts.get(t, c, "")
	if o.proto != "HTTP/2.0" || !o.hasTLS {
		t.Fatalf("proto %s, Request.TLS set %v: want HTTP/2.0 over TLS", o.proto, o.hasTLS)
	}
	if o.tls == nil {
		t.Fatal("no TLS fingerprint recorded for the connection")
	}
	w, err := parseWireHello(ts.firstRaw())
	if err != nil {
		t.Fatal(err)
	}
	want, wantRaw := naiveJA4(w)
	if o.tls.JA4 != want || o.tls.JA4R != wantRaw {
		t.Errorf("live JA4 %s\n          %s\nraw bytes %s\n          %s", o.tls.JA4, o.tls.JA4R, want, wantRaw)
	}
	if o.tls.Family != FamilyGo || o.tls.ServerName != "localhost" {
		t.Errorf("family %s, SNI %q: want go, localhost", o.tls.Family, o.tls.ServerName)
	}
	if o.h2 == nil || o.h2.Akamai != goH2Akamai {
		t.Errorf("HTTP/2 fingerprint = %+v, want %s", o.h2, goH2Akamai)
	}
	// Go's transport sends accept-encoding, then user-agent.
	if !o.wireOrder || !strings.HasPrefix(o.ja4hRaw, "ge20nn020000_accept-encoding,user-agent__") {
		t.Errorf("JA4H raw %q (wire order %v): want Go's header order from the capture", o.ja4hRaw, o.wireOrder)
	}
	if o.verdict.Mismatch {
		t.Errorf("Go client with Go's own User-Agent flagged: %+v", o.verdict)
	}

	// Same connection, browser User-Agent: the TLS stack gives it away.
	o = ts.get(t, c, chromeUA)
	if !o.verdict.Mismatch || o.verdict.Confidence < 0.8 {
		t.Errorf("Go client claiming Chrome: verdict %+v, want a confident mismatch", o.verdict)
	}
	if !o.wireOrder {
		t.Error("second request on the connection lost its wire order")
	}
}

// TestLiveConcurrentRequests runs many HTTP/2 streams on one connection
// while handlers read the capture; run with -race.
func TestLiveConcurrentRequests(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	c := ts.client(true)
	ts.get(t, c, "") // open the connection
	var wg sync.WaitGroup
	const n = 40
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, fmt.Sprintf("%s?i=%d", ts.url, i), nil)
			resp, err := c.Do(req)
			if err != nil {
				errs <- err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	for range n {
		o := <-ts.obs
		if o.h2 == nil || o.h2.Akamai != goH2Akamai || o.tls == nil {
			t.Errorf("concurrent request saw h2 %+v tls %+v", o.h2, o.tls)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestLiveGoClientHTTP1(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	o := ts.get(t, ts.client(false), "")
	if o.proto != "HTTP/1.1" || o.tls == nil || o.tls.Family != FamilyGo {
		t.Fatalf("proto %s, tls %+v: want HTTP/1.1 with a go TLS fingerprint", o.proto, o.tls)
	}
	// With HTTP/2 off, Go's transport sends no ALPN at all (Go 1.26 gives
	// t13d131100_f57a46bbacb6_ab7e3b40a677, also published for Go clients
	// without ALPN such as WebSocket dialers).
	if o.tls.JA4[8:10] != "00" {
		t.Errorf("JA4 %s: want no ALPN (00)", o.tls.JA4)
	}
	w, err := parseWireHello(ts.firstRaw())
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := naiveJA4(w); o.tls.JA4 != want {
		t.Errorf("live JA4 %s, raw bytes give %s", o.tls.JA4, want)
	}
	if o.h2 != nil {
		t.Errorf("HTTP/1.1 connection has an HTTP/2 fingerprint %+v", o.h2)
	}
	// HTTP/1: order is not recoverable, names are canonical and sorted after Host.
	if o.wireOrder || !strings.HasPrefix(o.ja4hRaw, "ge11nn030000_Host,Accept-Encoding,User-Agent__") {
		t.Errorf("JA4H raw %q, wire order %v", o.ja4hRaw, o.wireOrder)
	}
}
