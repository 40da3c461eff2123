package jwt

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/lestrrat-go/jwx/v3/jwa"
)

// jwksServer is a real JWKS endpoint on 127.0.0.1 whose document and
// health the test changes.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	status  int
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, status := s.body, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(status int, body []byte) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

// logBuf collects log output for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newJWKSCheck(t *testing.T, url string, minRefresh string, logs *logBuf) *Check {
	t.Helper()
	var log *slog.Logger
	if logs != nil {
		log = slog.New(slog.NewTextHandler(logs, nil))
	}
	c, err := New(Config{
		CacheSize: -1, // every request verifies, so key handling is exercised
		Issuers: []Issuer{{
			Issuer: testIss, Audiences: []string{testAud}, Algorithms: []string{"ES256", "EdDSA"},
			JWKSURL: url, MinRefreshInterval: minRefresh, RefreshInterval: "1h",
		}},
	}, &http.Client{Timeout: 2 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestJWKSRotation(t *testing.T) {
	t.Parallel()
	a := newES("a", elliptic.P256(), jwa.ES256())
	b := newEd("b")
	unknown := newES("c", elliptic.P256(), jwa.ES256())
	srv := newJWKSServer(t, jwksOf(t, a))
	c := newJWKSCheck(t, srv.URL, "300ms", nil)
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("initial fetches = %d, want 1", n)
	}
	if v, err := run(c, request(a.mint(t, claims(nil)))); v.Action != pipeline.Allow || err != nil {
		t.Fatalf("kid a: %+v %v", v, err)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("known kid fetched: %d", n)
	}

	// Rotation: b appears; a token with kid b triggers exactly one fetch.
	srv.serve(http.StatusOK, jwksOf(t, a, b))
	if v, err := run(c, request(b.mint(t, claims(nil)))); v.Action != pipeline.Allow || err != nil {
		t.Fatalf("kid b after rotation: %+v %v", v, err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("fetches after new kid = %d, want 2", n)
	}

	// A storm of unknown kids within the floor fetches nothing more.
	unknownTok := unknown.mint(t, claims(nil))
	for range 50 {
		v, err := run(c, request(unknownTok))
		if v.Reason != ReasonUnknownKey || err != nil {
			t.Fatalf("unknown kid: %+v %v", v, err)
		}
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = run(c, request(unknownTok))
		}()
	}
	wg.Wait()
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("fetches after unknown-kid storm = %d, want 2", n)
	}
	// After the floor, one more fetch is allowed.
	time.Sleep(350 * time.Millisecond)
	for range 10 {
		_, _ = run(c, request(unknownTok))
	}
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("fetches after the floor = %d, want 3", n)
	}
	// Both keys still verify.
	for _, s := range []signer{a, b} {
		if v, _ := run(c, request(s.mint(t, claims(nil)))); v.Action != pipeline.Allow {
			t.Errorf("kid %s: %+v", s.kid, v)
		}
	}
}

func TestJWKSDownKeepsKeys(t *testing.T) {
	t.Parallel()
	a := newES("a", elliptic.P256(), jwa.ES256())
	unknown := newEd("z")
	srv := newJWKSServer(t, jwksOf(t, a))
	logs := &logBuf{}
	c := newJWKSCheck(t, srv.URL, "1ms", logs)

	srv.serve(http.StatusServiceUnavailable, []byte("down"))
	time.Sleep(2 * time.Millisecond)
	// An unknown kid forces a fetch that fails: refused, with the error
	// reported for the record.
	v, err := run(c, request(unknown.mint(t, claims(nil))))
	if v.Reason != ReasonUnknownKey || v.Action != pipeline.Deny || err == nil {
		t.Fatalf("unknown kid while down: %+v %v", v, err)
	}
	if v, err := run(c, request(a.mint(t, claims(nil)))); v.Action != pipeline.Allow || err != nil {
		t.Fatalf("cached key while down: %+v %v", v, err)
	}

	// Server gone entirely.
	srv.Close()
	time.Sleep(2 * time.Millisecond)
	_, _ = run(c, request(unknown.mint(t, claims(nil))))
	if v, err := run(c, request(a.mint(t, claims(nil)))); v.Action != pipeline.Allow || err != nil {
		t.Fatalf("cached key with server closed: %+v %v", v, err)
	}
	if !bytes.Contains([]byte(logs.String()), []byte("keeping cached keys")) {
		t.Errorf("failure not logged: %s", logs.String())
	}
}

func TestJWKSGarbageKeepsKeys(t *testing.T) {
	t.Parallel()
	a := newES("a", elliptic.P256(), jwa.ES256())
	unknown := newEd("z")
	srv := newJWKSServer(t, jwksOf(t, a))
	c := newJWKSCheck(t, srv.URL, "1ms", nil)
	for _, body := range [][]byte{
		[]byte("<html>oops</html>"),
		[]byte(`{"keys":[]}`),
		[]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","use":"enc"}]}`),
		bytes.Repeat([]byte("x"), maxJWKSBytes+10),
	} {
		srv.serve(http.StatusOK, body)
		time.Sleep(2 * time.Millisecond)
		before := srv.fetches.Load()
		if v, _ := run(c, request(unknown.mint(t, claims(nil)))); v.Reason != ReasonUnknownKey {
			t.Fatalf("unknown kid: %q", v.Reason)
		}
		if srv.fetches.Load() != before+1 {
			t.Fatalf("no refetch for body %.20q", body)
		}
		if v, err := run(c, request(a.mint(t, claims(nil)))); v.Action != pipeline.Allow || err != nil {
			t.Fatalf("cached key after garbage %.20q: %+v %v", body, v, err)
		}
	}
}

func TestJWKSInitialFailureRecovers(t *testing.T) {
	t.Parallel()
	a := newES("a", elliptic.P256(), jwa.ES256())
	srv := newJWKSServer(t, []byte("not yet"))
	c := newJWKSCheck(t, srv.URL, "1ms", nil)
	srv.serve(http.StatusOK, jwksOf(t, a))
	time.Sleep(2 * time.Millisecond)
	if v, err := run(c, request(a.mint(t, claims(nil)))); v.Action != pipeline.Allow || err != nil {
		t.Fatalf("after recovery: %+v %v", v, err)
	}
}

func TestJWKSWithdrawnKeyDropsCache(t *testing.T) {
	t.Parallel()
	a := newES("a", elliptic.P256(), jwa.ES256())
	b := newES("b", elliptic.P256(), jwa.ES256())
	srv := newJWKSServer(t, jwksOf(t, a, b))
	c, err := New(Config{Issuers: []Issuer{{
		Issuer: testIss, Audiences: []string{testAud}, Algorithms: []string{"ES256"},
		JWKSURL: srv.URL, MinRefreshInterval: "1ms",
	}}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tok := a.mint(t, claims(nil))
	if v, _ := run(c, request(tok)); v.Action != pipeline.Allow {
		t.Fatal(v)
	}
	// a is withdrawn; any fetch (here one triggered by the unknown kid c)
	// picks that up and the cached verdict for a's token goes.
	srv.serve(http.StatusOK, jwksOf(t, b))
	time.Sleep(2 * time.Millisecond)
	_, _ = run(c, request(newES("c", elliptic.P256(), jwa.ES256()).mint(t, claims(nil))))
	time.Sleep(2 * time.Millisecond)
	if v, _ := run(c, request(tok)); v.Reason != ReasonUnknownKey {
		t.Errorf("token of withdrawn key: %+v", v)
	}
}

func TestBackgroundRefresh(t *testing.T) {
	t.Parallel()
	a := newES("a", elliptic.P256(), jwa.ES256())
	b := newEd("b")
	srv := newJWKSServer(t, jwksOf(t, a))
	c, err := New(Config{Issuers: []Issuer{{
		Issuer: testIss, Audiences: []string{testAud}, Algorithms: []string{"ES256", "EdDSA"},
		JWKSURL: srv.URL, RefreshInterval: "20ms", MinRefreshInterval: "1h",
	}}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.serve(http.StatusOK, jwksOf(t, a, b))
	deadline := time.Now().Add(5 * time.Second)
	for srv.fetches.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// b is known without any unknown-kid fetch (the floor is 1h, and
	// the first miss would have been allowed, so check no miss happened).
	is := c.issuers[testIss]
	if ks := is.keys.Load(); len(ks.byKid["b"]) != 1 {
		t.Fatal("background refresh did not load b")
	}
	if v, _ := run(c, request(b.mint(t, claims(nil)))); v.Action != pipeline.Allow {
		t.Errorf("b: %+v", v)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// A fetch the cancellation cut short may still reach the server
	// after Close returned; let it land before counting.
	time.Sleep(30 * time.Millisecond)
	n := srv.fetches.Load()
	time.Sleep(60 * time.Millisecond)
	if srv.fetches.Load() != n {
		t.Error("refresh continued after Close")
	}
	_ = c.Close() // idempotent
	_ = context.Background()
}
