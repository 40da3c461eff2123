package bot

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	svc "github.com/apiguard/apiguard/internal/bot"
	"github.com/apiguard/apiguard/internal/decision"
	"github.com/apiguard/apiguard/internal/detect"
	"github.com/apiguard/apiguard/internal/events"
	"github.com/apiguard/apiguard/internal/fingerprint"
	"github.com/apiguard/apiguard/internal/geo"
	"github.com/apiguard/apiguard/internal/geo/geotest"
	"github.com/apiguard/apiguard/internal/goodbot"
	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/apiguard/apiguard/internal/state"
)

// The test geography: three documentation networks in three countries;
// every other address is unknown to the database.
var countries = map[string]string{
	"203.0.113.0/24":  "DE",
	"198.51.100.0/24": "US",
	"192.0.2.0/24":    "KP",
}

const (
	ipDE      = "203.0.113.5"
	ipUS      = "198.51.100.5"
	ipKP      = "192.0.2.5"
	ipUnknown = "100.64.0.5"
)

// env is a bot service over an in-memory backend and decision store.
type env struct {
	svc   *svc.Service
	store *decision.Store
	mem   *state.Memory
}

type envOptions struct {
	geo      bool
	goodBots bool
	resolver goodbot.Resolver
	// detectors defaults to probing and login only (the synthetic traffic
	// is periodic, which the timing detector would score too).
	detectors *detect.Config
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	mem := state.NewMemory(state.MemoryOptions{})
	t.Cleanup(func() { _ = mem.Close() })
	store, err := decision.NewStore(mem, decision.Options{})
	if err != nil {
		t.Fatal(err)
	}
	det := detectorsOnly()
	if o.detectors != nil {
		det = *o.detectors
	}
	// No decisions from the detectors: the tests add the ones they want.
	cfg := svc.Config{Detectors: det, Block: svc.Escalation{Score: 100}, Challenge: svc.Escalation{Score: 100}}
	if o.geo {
		cfg.GeoIP = &geo.Files{Country: geotest.WriteCountryDB(t, countries)}
	}
	if o.goodBots {
		cfg.GoodBots = &goodbot.Config{}
	}
	s, err := svc.New(cfg, svc.Options{State: mem, Decisions: store, Resolver: o.resolver})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &env{svc: s, store: store, mem: mem}
}

// detectorsOnly turns every detector off but probing and login; login
// keeps only its stuffing rule (MinFailures out of reach) so scores are
// round numbers.
func detectorsOnly() detect.Config {
	off := func() *bool { b := false; return &b }
	c := detect.Config{}
	c.Rate.Enabled, c.Timing.Enabled, c.Scrape.Enabled, c.Enum.Enabled, c.Flow.Enabled = off(), off(), off(), off(), off()
	c.Login.MinFailures = 1 << 20
	return c
}

func (e *env) check(t *testing.T, cfg Config) *Check {
	t.Helper()
	return e.checkWith(t, cfg, e.mem)
}

func (e *env) checkWith(t *testing.T, cfg Config, st state.Backend) *Check {
	t.Helper()
	c, err := New(cfg, e.svc, st)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) decide(t *testing.T, key string, a decision.Action, source string) decision.Decision {
	t.Helper()
	d, err := e.store.Add(t.Context(), decision.Decision{Key: key, Action: a, Source: source, Reason: "test " + a.String(),
		Evidence: map[string]string{"failures": "31"}, Thresholds: map[string]string{"min_failures": "10"},
		Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// future is when the synthetic traffic happens: ahead of the wall clock,
// so the risk the engine reports (decayed by the wall clock) is exactly
// the findings' scores however slow the test runs.
var future = time.Now().Add(time.Hour)

// probe makes ip a prober: 20 not-found answers out of 20 requests, one
// probing finding of 50 on its ip: key.
func (e *env) probe(t *testing.T, ip string) { e.probeN(t, ip, 20) }

// probeN is probe with n requests: 100 or more score 90.
func (e *env) probeN(t *testing.T, ip string, n int) {
	t.Helper()
	for i := range n {
		e.svc.Observe(t.Context(), &events.Event{Time: future.Add(time.Duration(i) * time.Millisecond), Kind: events.KindRequest,
			ClientIP: ip, Route: "api", Method: "GET", Path: "/missing/" + strconv.Itoa(i), Status: 404})
	}
}

// stuff makes ip a credential stuffer: 12 usernames, all failing, one
// stuffing finding of 90 on its ip: and net: keys.
func (e *env) stuff(t *testing.T, ip string) {
	t.Helper()
	for i := range 12 {
		e.svc.Observe(t.Context(), &events.Event{Time: future.Add(time.Second + time.Duration(i)*time.Millisecond), Kind: events.KindRequest,
			ClientIP: ip, Route: "login", Method: "POST", Path: "/login", Status: 401,
			Login: &events.Login{Username: "user" + strconv.Itoa(i)}})
	}
}

// reqOpt changes a test request.
type reqOpt func(*pipeline.Request)

func withJA4(ja4 string) reqOpt { return func(r *pipeline.Request) { r.Identity.JA4 = ja4 } }
func withApp(app string) reqOpt { return func(r *pipeline.Request) { r.Identity.App = app } }
func withKey(key string) reqOpt { return func(r *pipeline.Request) { r.Identity.APIKey = key } }
func withSub(sub string) reqOpt { return func(r *pipeline.Request) { r.Identity.Subject = sub } }
func withDev(dev string) reqOpt { return func(r *pipeline.Request) { r.Identity.Device = dev } }
func withUA(ua string) reqOpt {
	return func(r *pipeline.Request) { r.HTTP.Header.Set("User-Agent", ua) }
}
func withHeader(k, v string) reqOpt {
	return func(r *pipeline.Request) { r.HTTP.Header.Set(k, v) }
}

// withHello puts a ConnInfo with the TLS fingerprint of a recorded
// ClientHello (internal/fingerprint's testdata) in the request's context,
// as the gateway's server does, and sets Identity.JA4 from it.
func withHello(t *testing.T, name string) reqOpt {
	fp := helloFingerprint(t, name)
	return func(r *pipeline.Request) {
		ctx := fingerprint.ConnContext(r.HTTP.Context(), nil)
		fingerprint.FromContext(ctx).SetTLS(fp)
		r.HTTP = r.HTTP.WithContext(ctx)
		r.Identity.JA4 = fp.JA4
	}
}

func request(ip string, opts ...reqOpt) *pipeline.Request {
	r := httptest.NewRequest(http.MethodGet, "/items/1", nil)
	r.Header.Set("Accept", "application/json")
	req := &pipeline.Request{HTTP: r, ClientIP: netip.MustParseAddr(ip), Route: "api", Start: time.Now()}
	for _, o := range opts {
		o(req)
	}
	return req
}

// replayConn feeds recorded client bytes to a tls.Server and discards what
// it writes back.
type replayConn struct{ r *bytes.Reader }

func (c *replayConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *replayConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *replayConn) Close() error                { return nil }
func (c *replayConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443} }
func (c *replayConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
}
func (c *replayConn) SetDeadline(time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }

var (
	hellosMu sync.Mutex
	hellos   = map[string]*fingerprint.TLSFingerprint{}
)

// helloFingerprint runs a recorded ClientHello through crypto/tls's server
// handshake and returns the fingerprint of the ClientHelloInfo it built.
func helloFingerprint(t *testing.T, name string) *fingerprint.TLSFingerprint {
	t.Helper()
	hellosMu.Lock()
	defer hellosMu.Unlock()
	if fp := hellos[name]; fp != nil {
		return fp
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "fingerprint", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop after the ClientHello")
	var fp *fingerprint.TLSFingerprint
	srv := tls.Server(&replayConn{r: bytes.NewReader(raw)}, &tls.Config{
		GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			fp = fingerprint.NewTLSFingerprint(chi)
			return nil, stop
		},
	})
	_ = srv.HandshakeContext(context.Background())
	if fp == nil || fp.JA4 == "" {
		t.Fatalf("crypto/tls did not accept %s", name)
	}
	hellos[name] = fp
	return fp
}

// fakeDNS is a table resolver: unlisted names are NXDOMAIN, listed errors
// are returned as they are.
type fakeDNS struct {
	ptr    map[string][]string
	fwd    map[string][]string
	ptrErr map[string]error
}

func nxdomain(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (f *fakeDNS) LookupAddr(_ context.Context, addr string) ([]string, error) {
	if err := f.ptrErr[addr]; err != nil {
		return nil, err
	}
	if names, ok := f.ptr[addr]; ok {
		return names, nil
	}
	return nil, nxdomain(addr)
}

func (f *fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	addrs, ok := f.fwd[strings.TrimSuffix(host, ".")]
	if !ok {
		return nil, nxdomain(host)
	}
	var out []netip.Addr
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

// verdictWant is what a test expects of a verdict; zero fields are not
// checked except Action.
type verdictWant struct {
	action   pipeline.Action
	status   int
	reason   string
	evidence map[string]string // entries that must be present
	headers  map[string]string // entries of Verdict.Headers
}

func checkVerdict(t *testing.T, v pipeline.Verdict, err error, w verdictWant) {
	t.Helper()
	if err != nil {
		t.Fatalf("error %v", err)
	}
	if v.Action != w.action || v.Status != w.status || v.Reason != w.reason {
		t.Fatalf("verdict %s %d %q %v, want %s %d %q", v.Action, v.Status, v.Reason, v.Evidence, w.action, w.status, w.reason)
	}
	for k, val := range w.evidence {
		if v.Evidence[k] != val {
			t.Errorf("evidence %s = %q, want %q (all: %v)", k, v.Evidence[k], val, v.Evidence)
		}
	}
	for k, val := range w.headers {
		if got := v.Headers.Get(k); got != val {
			t.Errorf("header %s = %q, want %q", k, got, val)
		}
	}
}

var (
	allowed = verdictWant{action: pipeline.Allow}
	denied  = func(reason string, ev map[string]string) verdictWant {
		return verdictWant{pipeline.Deny, 403, reason, ev, nil}
	}
	challenged = func(ev map[string]string) verdictWant {
		return verdictWant{pipeline.Challenge, 401, "challenge-required", ev, map[string]string{"Www-Authenticate": `Apiguard-Attest realm="apiguard"`}}
	}
)
