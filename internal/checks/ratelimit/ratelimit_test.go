package ratelimit

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/apiguard/apiguard/internal/state"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in     string
		count  int64
		period time.Duration
		err    string
	}{
		{"10/s", 10, time.Second, ""},
		{"1000/hour", 1000, time.Hour, ""},
		{"100/10s", 100, 10 * time.Second, ""},
		{"20000/day", 20000, 24 * time.Hour, ""},
		{" 5 / m ", 5, time.Minute, ""},
		{"7/30d", 7, 30 * 24 * time.Hour, ""},
		{"10/sex", 0, 0, `unknown unit "sex"`},
		{"0/s", 0, 0, "positive"},
		{"-1/s", 0, 0, "invalid rate"},
		{"10/0s", 0, 0, "period must be positive"},
		{"10", 0, 0, "invalid rate"},
		{"10/365d", 0, 0, "longer than 90 days"},
		{"ten/s", 0, 0, "invalid rate"},
	}
	for _, tc := range cases {
		c, p, err := ParseRate(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRate(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || c != tc.count || p != tc.period {
			t.Errorf("ParseRate(%q) = %d, %v, %v", tc.in, c, p, err)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cfg := Config{IPv6Prefix: 200, Policies: []Policy{
		{Name: "a", Key: []string{"ip", "cookie:x"}, Limits: []LimitSpec{{Rate: "10/sex"}, {Rate: "1/s", Burst: -1}}},
		{Name: "a", Key: nil, Cost: "lots", Methods: []string{"get"}, Paths: []string{"api"}, CountStatus: []int{42}},
		{Name: "bad name!", Key: []string{"ip"}, Limits: []LimitSpec{{Rate: "1/s"}}, Mode: "sometimes"},
	}}
	errs := &field.Errors{}
	cfg.Validate("checks.ratelimit", errs)
	var got []string
	for _, e := range errs.List {
		got = append(got, e.Path)
	}
	want := []string{
		"checks.ratelimit.ipv6_prefix",
		"checks.ratelimit.policies[0].key[1]",
		"checks.ratelimit.policies[0].limits[0].rate",
		"checks.ratelimit.policies[0].limits[1].burst",
		"checks.ratelimit.policies[1].name",
		"checks.ratelimit.policies[1].key",
		"checks.ratelimit.policies[1].limits",
		"checks.ratelimit.policies[1].cost",
		"checks.ratelimit.policies[1].methods[0]",
		"checks.ratelimit.policies[1].paths[0]",
		"checks.ratelimit.policies[1].count_status[0]",
		"checks.ratelimit.policies[2].name",
		"checks.ratelimit.policies[2].mode",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("error paths:\n%s\nwant:\n%s\n(%v)", strings.Join(got, "\n"), strings.Join(want, "\n"), errs.Err())
	}
}

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func build(t *testing.T, cfg Config, b state.Backend) (early, late *Limiter) {
	t.Helper()
	errs := &field.Errors{}
	cfg.Validate("", errs)
	if errs.Len() > 0 {
		t.Fatal(errs.Err())
	}
	e, l, err := Build(cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	return e, l
}

func newReq(method, path, ip string) *pipeline.Request {
	r := httptest.NewRequest(method, path, nil)
	return &pipeline.Request{HTTP: r, ClientIP: netip.MustParseAddr(ip)}
}

func TestLimitsAndHeaders(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	mem := state.NewMemory(state.MemoryOptions{Clock: clk.Now})
	early, late := build(t, Config{Policies: []Policy{
		{Name: "per-ip", Key: []string{"ip"}, Limits: []LimitSpec{{Rate: "3/s"}, {Rate: "5/m", Name: "minute"}}},
	}}, mem)
	if early == nil || late != nil {
		t.Fatalf("an ip-keyed policy must run early: early=%v late=%v", early, late)
	}
	ctx := context.Background()
	for i := range 3 {
		req := newReq("GET", "/api", "192.0.2.1")
		v, err := early.Check(ctx, req)
		if err != nil || v.Action != pipeline.Allow {
			t.Fatalf("request %d: %+v %v", i, v, err)
		}
		if got := first(req.ResponseHeader["RateLimit-Policy"]); got != `"per-ip";q=3;w=1, "minute";q=5;w=60` {
			t.Fatalf("RateLimit-Policy = %s", got)
		}
		if i == 2 && first(req.ResponseHeader["RateLimit"]) != `"per-ip";r=0;t=1, "minute";r=2;t=36` {
			t.Fatalf("RateLimit = %s", first(req.ResponseHeader["RateLimit"]))
		}
	}
	req := newReq("GET", "/api", "192.0.2.1")
	v, _ := early.Check(ctx, req)
	if v.Action != pipeline.Deny || v.Status != 429 || v.Reason != "rate-limited" || v.Headers.Get("Retry-After") != "1" {
		t.Fatalf("4th request: %+v", v)
	}
	if vp, _ := v.Extensions["violated_policies"].([]string); len(vp) != 1 || vp[0] != "per-ip" {
		t.Fatalf("violated policies: %v", v.Extensions)
	}
	// Another client is not affected.
	if v, _ := early.Check(ctx, newReq("GET", "/api", "192.0.2.2")); v.Action != pipeline.Allow {
		t.Fatalf("other client limited: %+v", v)
	}
	// After a second the per-second limit refills, the minute limit has 2 left.
	clk.Add(time.Second)
	for i := range 2 {
		if v, _ := early.Check(ctx, newReq("GET", "/api", "192.0.2.1")); v.Action != pipeline.Allow {
			t.Fatalf("after refill %d: %+v", i, v)
		}
	}
	v, _ = early.Check(ctx, newReq("GET", "/api", "192.0.2.1"))
	ra := v.Headers.Get("Retry-After")
	if v.Action != pipeline.Deny || ra != "11" {
		t.Fatalf("minute limit exhausted: %+v (Retry-After %s, want 11: one unit of 5/m, less the second already waited)", v, ra)
	}
	clk.Add(11 * time.Second)
	if v, _ := early.Check(ctx, newReq("GET", "/api", "192.0.2.1")); v.Action != pipeline.Allow {
		t.Fatalf("a client that waited Retry-After was refused: %+v", v)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	mem := state.NewMemory(state.MemoryOptions{})
	_, late := build(t, Config{Policies: []Policy{
		{Name: "per-key", Key: []string{"api_key"}, Limits: []LimitSpec{{Rate: "1/h"}}},
	}}, mem)
	early, _ := build(t, Config{Policies: []Policy{
		{Name: "v6", Key: []string{"ip"}, Limits: []LimitSpec{{Rate: "1/h"}}},
		{Name: "tenant", Key: []string{"header:X-Tenant"}, Limits: []LimitSpec{{Rate: "1/h"}}},
	}}, mem)
	ctx := context.Background()
	allowed := func(l *Limiter, req *pipeline.Request) bool {
		v, _ := l.Check(ctx, req)
		return v.Action == pipeline.Allow
	}

	// Per-key: two keys are separate; a request without a key falls back to the IP.
	a := newReq("GET", "/", "192.0.2.1")
	a.Identity.APIKey = "key-a"
	b := newReq("GET", "/", "192.0.2.1")
	b.Identity.APIKey = "key-b"
	if !allowed(late, a) || !allowed(late, b) || allowed(late, a) {
		t.Fatal("per-key limits not separate")
	}
	if !allowed(late, newReq("GET", "/", "192.0.2.50")) || allowed(late, newReq("GET", "/", "192.0.2.50")) {
		t.Fatal("keyless requests must be limited by IP")
	}
	// IPv6 clients share their /64.
	if !allowed(early, newReq("GET", "/", "2001:db8:1:2::1")) {
		t.Fatal("first v6 request refused")
	}
	if allowed(early, newReq("GET", "/", "2001:db8:1:2:ffff::9")) {
		t.Fatal("an address in the same /64 escaped the limit")
	}
	if !allowed(early, newReq("GET", "/", "2001:db8:1:3::1")) {
		t.Fatal("another /64 was limited")
	}
}

func TestCountStatusAndConditions(t *testing.T) {
	t.Parallel()
	mem := state.NewMemory(state.MemoryOptions{})
	early, _ := build(t, Config{Policies: []Policy{
		{Name: "login-failures", Key: []string{"ip"}, Methods: []string{"POST"}, Paths: []string{"/api/login"},
			CountStatus: []int{401}, Limits: []LimitSpec{{Rate: "2/m"}}, Headers: ptr(false)},
	}}, mem)
	ctx := context.Background()
	login := func() (pipeline.Verdict, *pipeline.Request) {
		req := newReq("POST", "/api/login", "198.51.100.9")
		v, _ := early.Check(ctx, req)
		return v, req
	}
	respond := func(req *pipeline.Request, status int) {
		_, _ = early.CheckResponse(ctx, req, &http.Response{StatusCode: status})
	}
	// Successful logins do not count.
	for range 5 {
		v, req := login()
		if v.Action != pipeline.Allow {
			t.Fatalf("login refused before any failure: %+v", v)
		}
		respond(req, 200)
	}
	for range 2 {
		v, req := login()
		if v.Action != pipeline.Allow {
			t.Fatalf("refused before the limit: %+v", v)
		}
		respond(req, 401)
	}
	v, req := login()
	if v.Action != pipeline.Deny || v.Status != 429 {
		t.Fatalf("third attempt after two failures: %+v", v)
	}
	if _, ok := v.Extensions["violated_policies"]; ok || strings.Contains(v.Detail, "login-failures") {
		t.Fatalf("a policy with headers: false was named to the client: %+v", v)
	}
	if req.ResponseHeader != nil {
		t.Fatalf("hidden policy sent headers: %v", req.ResponseHeader)
	}
	if ra := v.Headers.Get("Retry-After"); ra != "30" {
		t.Fatalf("Retry-After = %s, want 30 (one unit of 2/m)", ra)
	}
	// Other methods and paths are not affected.
	if v, _ := early.Check(ctx, newReq("GET", "/api/login", "198.51.100.9")); v.Action != pipeline.Allow {
		t.Fatalf("GET limited: %+v", v)
	}
	if v, _ := early.Check(ctx, newReq("POST", "/api/orders", "198.51.100.9")); v.Action != pipeline.Allow {
		t.Fatalf("other path limited: %+v", v)
	}
}

func TestConcurrencyAndCost(t *testing.T) {
	t.Parallel()
	mem := state.NewMemory(state.MemoryOptions{})
	early, _ := build(t, Config{Policies: []Policy{
		{Name: "inflight", Key: []string{"ip"}, Concurrency: 2},
		{Name: "bytes", Key: []string{"header:X-Client"}, Cost: "content-bytes", Limits: []LimitSpec{{Rate: "1000/h"}}},
	}}, mem)
	ctx := context.Background()
	var held []*pipeline.Request
	for range 2 {
		req := newReq("GET", "/", "192.0.2.7")
		if v, _ := early.Check(ctx, req); v.Action != pipeline.Allow {
			t.Fatalf("slot refused: %+v", v)
		}
		held = append(held, req)
	}
	if v, _ := early.Check(ctx, newReq("GET", "/", "192.0.2.7")); v.Action != pipeline.Deny || v.Status != 429 {
		t.Fatalf("third concurrent request: %+v", v)
	}
	held[0].Done() // the response finished: the slot is free again
	if v, _ := early.Check(ctx, newReq("GET", "/", "192.0.2.7")); v.Action != pipeline.Allow {
		t.Fatalf("slot not released: %+v", v)
	}

	post := func(n int) pipeline.Verdict {
		req := newReq("POST", "/", "192.0.2.99")
		req.HTTP.Header.Set("X-Client", "c1")
		req.Body = make([]byte, n)
		v, _ := early.Check(ctx, req)
		req.Done()
		return v
	}
	if v := post(600); v.Action != pipeline.Allow {
		t.Fatalf("600 bytes: %+v", v)
	}
	if v := post(600); v.Action != pipeline.Deny {
		t.Fatalf("1200 bytes of 1000/h allowed: %+v", v)
	}
	if v := post(400); v.Action != pipeline.Allow {
		t.Fatalf("400 more bytes: %+v", v)
	}
}

func TestMonitorPolicy(t *testing.T) {
	t.Parallel()
	mem := state.NewMemory(state.MemoryOptions{})
	early, _ := build(t, Config{Policies: []Policy{
		{Name: "watch", Key: []string{"ip"}, Limits: []LimitSpec{{Rate: "1/h"}}, Mode: pipeline.ModeMonitor},
	}}, mem)
	ctx := context.Background()
	_, _ = early.Check(ctx, newReq("GET", "/", "192.0.2.1"))
	v, _ := early.Check(ctx, newReq("GET", "/", "192.0.2.1"))
	if v.Action != pipeline.Deny || !v.MonitorOnly {
		t.Fatalf("monitored policy: %+v", v)
	}
	p := pipeline.New([]pipeline.Entry{{Check: early}}, pipeline.ModeEnforce, nil)
	req := newReq("GET", "/", "192.0.2.1")
	if _, denied := p.Run(ctx, req); denied || len(req.Verdicts) != 1 || req.Verdicts[0].Enforced {
		t.Fatalf("monitor-only deny was enforced: %+v", req.Verdicts)
	}
}

// failing wraps a backend and fails every decision: a fault injection for
// the on_error paths (the real Redis outage is tested in internal/state and
// in the gateway's Redis tests).
type failing struct{ state.Backend }

var errDown = errors.New("backend down")

func (failing) RateLimit(context.Context, string, []state.Limit, int64, []state.Result) (state.Decision, error) {
	return state.Decision{}, errDown
}

func TestOnError(t *testing.T) {
	t.Parallel()
	b := failing{state.NewMemory(state.MemoryOptions{})}
	open, _ := build(t, Config{Policies: []Policy{{Name: "open", Key: []string{"ip"}, Limits: []LimitSpec{{Rate: "1/s"}}}}}, b)
	closed, _ := build(t, Config{Policies: []Policy{{Name: "closed", Key: []string{"ip"}, Limits: []LimitSpec{{Rate: "1/s"}}, OnError: pipeline.OnErrorDeny}}}, b)
	ctx := context.Background()
	v, err := open.Check(ctx, newReq("GET", "/", "192.0.2.1"))
	if err != nil || v.Action != pipeline.Flag || v.Reason != "rate-limit-unavailable" {
		t.Fatalf("fail-open: %+v %v", v, err)
	}
	v, err = closed.Check(ctx, newReq("GET", "/", "192.0.2.1"))
	if !errors.Is(err, errDown) || v.Action != pipeline.Deny || v.Status != 503 {
		t.Fatalf("fail-closed: %+v %v", v, err)
	}
}

func ptr[T any](v T) *T { return &v }

func BenchmarkCheck(b *testing.B) {
	mem := state.NewMemory(state.MemoryOptions{})
	early, _, _ := Build(Config{Policies: []Policy{{Name: "per-ip", Key: []string{"ip"}, Limits: []LimitSpec{{Rate: "1000000/s"}}}}}, mem)
	req := newReq("GET", "/api/items", "192.0.2.1")
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		req.ResponseHeader = nil
		_, _ = early.Check(ctx, req)
	}
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

func TestPerCredential(t *testing.T) {
	t.Parallel()
	mem := state.NewMemory(state.MemoryOptions{})
	early, late := build(t, Config{Policies: []Policy{
		{Name: "per-user", Key: []string{"json:username"}, CountStatus: []int{401}, Limits: []LimitSpec{{Rate: "3/h"}}},
	}}, mem)
	if late != nil {
		t.Fatal("a json-keyed policy must run early: the body is buffered before any check")
	}
	ctx := context.Background()
	attempt := func(ip, body string) pipeline.Verdict {
		req := newReq("POST", "/api/login", ip)
		req.Body = []byte(body)
		v, _ := early.Check(ctx, req)
		if v.Action == pipeline.Allow {
			_, _ = early.CheckResponse(ctx, req, &http.Response{StatusCode: 401})
		}
		return v
	}
	// One account guessed from three addresses: the per-credential key
	// still locks it after three failures, whatever the address.
	for i, ip := range []string{"192.0.2.1", "198.51.100.2", "203.0.113.3"} {
		if v := attempt(ip, `{"username":"Alice","password":"x"}`); v.Action != pipeline.Allow {
			t.Fatalf("attempt %d refused early: %+v", i, v)
		}
	}
	if v := attempt("192.0.2.99", `{"username":"alice ","password":"y"}`); v.Action != pipeline.Deny {
		t.Fatalf("fourth failure for one account from a new address: %+v", v)
	}
	// Another account is unaffected; a body without the field falls back to the address.
	if v := attempt("192.0.2.99", `{"username":"bob"}`); v.Action != pipeline.Allow {
		t.Fatalf("other account: %+v", v)
	}
	if jsonField([]byte(`{"username":12345}`), "username") != "12345" || jsonField([]byte(`[1]`), "username") != "" {
		t.Fatal("jsonField")
	}
}
