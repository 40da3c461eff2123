package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/gateway"
)

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{
		{50, 50 * time.Millisecond},
		{90, 90 * time.Millisecond},
		{99, 99 * time.Millisecond},
		{99.9, 100 * time.Millisecond},
		{100, 100 * time.Millisecond},
		{0.5, 1 * time.Millisecond},
	} {
		if got := percentile(d, tc.p); got != tc.want {
			t.Errorf("percentile(1..100ms, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}

	// 1000 samples: p99.9 is the 999th, not the max (float rounding).
	d = d[:0]
	for i := 1; i <= 1000; i++ {
		d = append(d, time.Duration(i))
	}
	if got := percentile(d, 99.9); got != 999 {
		t.Errorf("p99.9 of 1..1000 = %v, want 999", got)
	}
	if got := percentile(d, 99); got != 990 {
		t.Errorf("p99 of 1..1000 = %v, want 990", got)
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
	if got := percentile([]time.Duration{7}, 50); got != 7 {
		t.Errorf("percentile([7], 50) = %v, want 7", got)
	}
}

func TestMergeAndSummary(t *testing.T) {
	now := time.Now()
	a, b := newRecorder(0, 1), newRecorder(0, 1)
	for i := 1; i <= 50; i++ {
		a.add(0, time.Duration(2*i)*time.Millisecond, nil, now)
		b.add(0, time.Duration(2*i-1)*time.Millisecond, nil, now)
	}
	b.add(0, 0, statusError(503), now)
	b.add(0, 0, statusError(503), now)
	a.add(0, 0, context.DeadlineExceeded, now.Add(time.Second))
	res := merge([]*recorder{a, b})
	res.elapsed = 2 * time.Second
	if !slices.IsSorted(res.lat) || len(res.lat) != 100 {
		t.Fatalf("merged latencies: len %d sorted %v", len(res.lat), slices.IsSorted(res.lat))
	}
	if !res.last.Equal(now.Add(time.Second)) {
		t.Errorf("last = %v, want the latest completion", res.last)
	}
	s := res.summary()
	if s.Requests != 100 || s.Errors != 3 || s.RPS != 50 {
		t.Errorf("requests %d errors %d rps %v, want 100 3 50", s.Requests, s.Errors, s.RPS)
	}
	if s.ErrorKinds["status 503"] != 2 || s.ErrorKinds["timeout"] != 1 {
		t.Errorf("error kinds %v", s.ErrorKinds)
	}
	if s.P50Ms != 50 || s.P99Ms != 99 || s.MaxMs != 100 || s.MeanMs != 50.5 {
		t.Errorf("p50 %v p99 %v max %v mean %v", s.P50Ms, s.P99Ms, s.MaxMs, s.MeanMs)
	}
	if s.RateAchieved != nil {
		t.Errorf("closed-loop summary has rate fields")
	}
	if res.kindSummaries([]string{"x"}) != nil {
		t.Errorf("one kind of request has a per-kind breakdown")
	}
}

func TestRecorderByKind(t *testing.T) {
	now := time.Now()
	a, b := newRecorder(0, 2), newRecorder(0, 2)
	for i := 1; i <= 10; i++ {
		a.add(0, time.Duration(i)*time.Millisecond, nil, now)
		b.add(1, time.Duration(100+i)*time.Millisecond, nil, now)
	}
	b.add(1, 0, statusError(403), now)
	res := merge([]*recorder{a, b})
	ks := res.kindSummaries([]string{"get", "post"})
	if len(ks) != 2 || ks[0].Kind != "get" || ks[0].Requests != 10 || ks[0].Errors != 0 || ks[0].P99Ms != 10 ||
		ks[1].Requests != 10 || ks[1].Errors != 1 || ks[1].P50Ms != 105 || ks[1].MaxMs != 110 {
		t.Fatalf("by kind: %+v", ks)
	}
	if s := res.summary(); s.Requests != 20 || s.Errors != 1 {
		t.Errorf("totals: %+v", s)
	}
}

func TestMedianRoundAndCompare(t *testing.T) {
	rounds := []Summary{{RPS: 300, P99Ms: 9}, {RPS: 100, P99Ms: 1}, {RPS: 200, P99Ms: 5}}
	if got := medianRound(rounds, modeClosed); got != 2 {
		t.Errorf("closed median round = %d, want 2", got)
	}
	if got := medianRound(rounds, modeRate); got != 2 {
		t.Errorf("rate median round = %d, want 2", got)
	}
	// Even counts pick the less flattering middle round.
	two := []Summary{{RPS: 100, P99Ms: 1}, {RPS: 200, P99Ms: 2}}
	if got := medianRound(two, modeClosed); got != 0 {
		t.Errorf("closed median of 2 = %d, want 0 (lower throughput)", got)
	}
	if got := medianRound(two, modeRate); got != 1 {
		t.Errorf("rate median of 2 = %d, want 1 (higher p99)", got)
	}

	bare := []Summary{{RPS: 1000, P99Ms: 2}, {RPS: 500, P99Ms: 4}, {RPS: 800, P99Ms: 3}}
	tgt := []Summary{{RPS: 900, P99Ms: 2.5}, {RPS: 500, P99Ms: 4.1}, {RPS: 600, P99Ms: 4}}
	c := compare(tgt, bare)
	// per-round ratios 0.9, 1.0, 0.75 -> 0.9; p99 added 0.5, 0.1, 1 -> 0.5
	if c.ThroughputRatio != 0.9 || !near(c.P99AddedMs, 0.5) {
		t.Errorf("compare = %+v, want ratio 0.9, p99 +0.5", c)
	}
	if got := medianFloat([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("medianFloat even = %v, want 2.5", got)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// slowServer answers one request at a time, each after delay: requests
// queue inside it.
func slowServer(t *testing.T, delay time.Duration) *httptest.Server {
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		time.Sleep(delay)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestRateLatencyCountsQueueing checks the fixed-rate accounting: 10
// requests due every 5 ms against a server that serves one request per
// 20 ms. Request i completes around 20(i+1) ms but is due at 5i ms, so its
// latency is about 20+15i ms: the last ones ~155 ms, although each spends
// only 20 ms being served. That must hold both when every request gets its
// own sender (queueing in the server) and with a single sender (queueing in
// the load generator, which a send-time clock would hide).
func TestRateLatencyCountsQueueing(t *testing.T) {
	t.Parallel()
	const delay = 20 * time.Millisecond
	for _, senders := range []int{100, 1} {
		srv := slowServer(t, delay)
		client := newClient(100, 5*time.Second)
		q := newRequester(client, srv.URL, singleWorkload("/api/items/42", 0))
		res := runRate(context.Background(), q.do, 1, 200, 50*time.Millisecond, senders)
		s := res.summary()
		if s.Requests != 10 || s.Errors != 0 || s.Scheduled != 10 {
			t.Fatalf("senders=%d: requests %d errors %d scheduled %d, want 10 0 10", senders, s.Requests, s.Errors, s.Scheduled)
		}
		if s.MaxMs < 120 {
			t.Errorf("senders=%d: max latency %.1f ms, want >= 120 ms (queueing must count)", senders, s.MaxMs)
		}
		if s.P50Ms < 50 {
			t.Errorf("senders=%d: p50 %.1f ms, want >= 50 ms (queueing must count)", senders, s.P50Ms)
		}
		if s.PeakSenders > senders {
			t.Errorf("senders=%d: peak senders %d above the cap", senders, s.PeakSenders)
		}
		if senders == 1 && s.SenderPoolFull == 0 {
			t.Errorf("senders=1: no request waited for the single busy sender")
		}
		// 10 requests finishing ~200 ms after t0: far below the target rate.
		if s.RateAchieved == nil || *s.RateAchieved {
			t.Errorf("senders=%d: rate reported achieved at %.0f req/s of 200", senders, s.RPS)
		}
		client.CloseIdleConnections()
	}
}

func TestRateFastTarget(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(upstreamHandler(200))
	defer srv.Close()
	client := newClient(50, 5*time.Second)
	defer client.CloseIdleConnections()
	q := newRequester(client, srv.URL, singleWorkload("/x", 1024))
	res := runRate(context.Background(), q.do, 1, 500, 200*time.Millisecond, 50)
	s := res.summary()
	if s.Requests != 100 || s.Errors != 0 {
		t.Fatalf("requests %d errors %d (%v), want 100 0", s.Requests, s.Errors, s.ErrorKinds)
	}
	if s.ElapsedS < 0.2 {
		t.Errorf("elapsed %v s, want at least the duration", s.ElapsedS)
	}
}

func TestClosedAndErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/fail") {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		upstreamHandler(200).ServeHTTP(w, r)
	}))
	defer srv.Close()
	client := newClient(4, 5*time.Second)
	defer client.CloseIdleConnections()

	ok := newRequester(client, srv.URL, singleWorkload("/api/items/42", 0))
	s := runClosed(context.Background(), ok.do, 1, 4, 100*time.Millisecond).summary()
	if s.Requests == 0 || s.Errors != 0 || s.RPS <= 0 || s.P50Ms <= 0 {
		t.Fatalf("closed loop: %+v", s)
	}
	bad := newRequester(client, srv.URL, singleWorkload("/fail", 0))
	s = runClosed(context.Background(), bad.do, 1, 2, 50*time.Millisecond).summary()
	if s.Requests != 0 || s.Errors == 0 || s.ErrorKinds["status 503"] != s.Errors {
		t.Fatalf("failing target: requests %d errors %d kinds %v", s.Requests, s.Errors, s.ErrorKinds)
	}
	conn := newRequester(client, "http://127.0.0.1:1", singleWorkload("/", 0))
	if _, err := conn.do(context.Background()); classify(err) != "connection refused" {
		kind := classify(err)
		t.Errorf("refused connection classified as %q", kind)
	}
}

func TestMakeJSON(t *testing.T) {
	for _, n := range []int{0, 200, 1024, 4096} {
		b := makeJSON(n)
		if !json.Valid(b) {
			t.Fatalf("makeJSON(%d) is not valid JSON: %s", n, b)
		}
		if n >= 200 && len(b) != n {
			t.Errorf("len(makeJSON(%d)) = %d", n, len(b))
		}
	}
}

func TestUpstreamAndBareProxy(t *testing.T) {
	up := httptest.NewServer(upstreamHandler(200))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	for _, pool := range []bool{true, false} {
		proxy := httptest.NewServer(bareProxy(u, 64, pool))
		for range 3 { // the pooled buffer is reused
			resp, err := http.Post(proxy.URL+"/api/items/42", "application/json", strings.NewReader(string(makeJSON(1024))))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || len(body) != 200 || !json.Valid(body) {
				t.Fatalf("via bare proxy (pool %v): %s %q %d bytes", pool, resp.Status, resp.Header.Get("Content-Type"), len(body))
			}
		}
		proxy.Close()
	}
}

// TestProfilesRender renders every profile with awkward values and parses
// the result with the real config loader (strict: unknown keys fail; the
// openapi check loads the spec the profile ships).
func TestProfilesRender(t *testing.T) {
	vars := profileVars{
		Listen: "127.0.0.1:18080", Admin: "127.0.0.1:19090", AdminToken: benchAdminToken,
		DataDir: filepath.Join(t.TempDir(), `bench dir: "quoted" #1`, "data"), UpstreamURL: "http://127.0.0.1:18081",
	}
	for _, p := range profiles {
		t.Run(p.name, func(t *testing.T) {
			if err := p.writeFiles(vars.DataDir); err != nil {
				t.Fatal(err)
			}
			data, err := p.render(vars)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse(p.name+".yaml", data, config.Options{Lookup: func(string) (string, bool) { return "", false }})
			if err != nil {
				t.Fatalf("config.Parse:\n%s\n%v", data, err)
			}
			if cfg.Listen != vars.Listen || cfg.Admin.Listen != vars.Admin || cfg.DataDir != vars.DataDir || cfg.Admin.Token != benchAdminToken {
				t.Errorf("listen %q admin %q data_dir %q token %q", cfg.Listen, cfg.Admin.Listen, cfg.DataDir, cfg.Admin.Token)
			}
			if len(cfg.Routes) != 1 || cfg.Routes[0].Upstream != "app" || cfg.Routes[0].PathPrefix != "/" {
				t.Fatalf("routes: %+v", cfg.Routes)
			}
			if up := cfg.Upstreams["app"]; up == nil || !slices.Equal(up.Targets, []string{vars.UpstreamURL}) {
				t.Errorf("upstreams: %+v", cfg.Upstreams)
			}
			if cfg.Log.Level != "warn" {
				t.Errorf("log level %q", cfg.Log.Level)
			}
			switch p.name {
			case "none":
				if cfg.Events.Store.Driver != "none" || cfg.Routes[0].Checks.IPList != nil {
					t.Errorf("none: driver %q iplist %+v", cfg.Events.Store.Driver, cfg.Routes[0].Checks.IPList)
				}
			case "limits-events":
				ipl := cfg.Routes[0].Checks.IPList
				if cfg.Events.Store.Driver != "sqlite" || ipl == nil || !slices.Equal(ipl.Deny, []string{"203.0.113.0/24"}) {
					t.Errorf("limits-events: driver %q iplist %+v", cfg.Events.Store.Driver, ipl)
				}
				if cfg.Events.Store.Requests != "rollup" {
					t.Errorf("limits-events: the store must keep request events as rollups (the default), not %q", cfg.Events.Store.Requests)
				}
			case "openapi-waf":
				c := cfg.Routes[0].Checks
				if c.OpenAPI == nil || c.WAF == nil || cfg.Events.Store.Driver != "sqlite" || cfg.Events.Store.Requests != "rollup" {
					t.Fatalf("openapi-waf: openapi %+v waf %+v store %+v", c.OpenAPI, c.WAF, cfg.Events.Store)
				}
				if c.OpenAPI.Spec != filepath.Join(vars.DataDir, "shop-openapi.yaml") || c.OpenAPI.Undeclared != "block" ||
					c.OpenAPI.AdditionalProperties != "reject" || c.OpenAPI.Response == nil ||
					c.OpenAPI.Response.UndeclaredProperties != "off" || c.OpenAPI.Response.UndeclaredStatus != "off" {
					t.Errorf("openapi-waf: openapi %+v response %+v", c.OpenAPI, c.OpenAPI.Response)
				}
				if c.WAF.ParanoiaLevel != 1 || c.WAF.Mode == "monitor" || c.WAF.Mode == "off" {
					t.Errorf("openapi-waf: waf %+v", c.WAF)
				}
			}
		})
	}
	bad := profile{name: "bad", yaml: `x: {{file "nope.yaml"}}`}
	if _, err := bad.render(vars); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("a file the profile does not ship: err = %v", err)
	}
}

func TestSelectProfiles(t *testing.T) {
	ps, err := selectProfiles("limits-events, none,none")
	if err != nil || len(ps) != 2 || ps[0].name != "limits-events" || ps[1].name != "none" {
		t.Fatalf("selectProfiles = %v, %v", ps, err)
	}
	if _, err := selectProfiles("none,nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown profile: err = %v", err)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-mode=rate", "-rate=250", "-rounds=3"}, io.Discard)
	if err != nil || o.mode != modeRate || o.rate != 250 || o.rounds != 3 || o.concurrency != 64 || o.path != "/api/items/42" {
		t.Fatalf("parseFlags = %+v, %v", o, err)
	}
	if o.workload != workloadSingle || o.coraza || slices.Contains(strings.Split(o.profiles, ","), "openapi-waf") {
		t.Errorf("defaults changed: workload %q coraza %v profiles %q", o.workload, o.coraza, o.profiles)
	}
	o, err = parseFlags([]string{"-workload=shop", "-coraza", "-profiles=openapi-waf"}, io.Discard)
	if err != nil || o.workload != workloadShop || !o.coraza {
		t.Fatalf("parseFlags(shop) = %+v, %v", o, err)
	}
	for _, bad := range [][]string{{"-mode=open"}, {"-rounds=0"}, {"-path=x"}, {"-profiles=none,bogus"}, {"extra"},
		{"-workload=bogus"}, {"-workload=shop", "-post-bytes=1024"}, {"-workload=shop", "-path=/x"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

func TestPrintReport(t *testing.T) {
	yes := true
	rep := &Report{Mode: modeRate, Rate: 1000, MaxSenders: 250, Duration: "10s", Warmup: "2s", Rounds: 3, Method: "GET", Path: "/x",
		Targets: []TargetReport{
			{Name: "bare", Kind: "bare", Result: Summary{RPS: 1000, P99Ms: 1, RateAchieved: &yes}, VsBare: &Comparison{ThroughputRatio: 1}},
			{Name: "apiguard-none", Kind: "apiguard", Result: Summary{RPS: 1000, P99Ms: 1.21, RateAchieved: &yes}, VsBare: &Comparison{ThroughputRatio: 1, P99AddedMs: 0.21}},
		}}
	var b strings.Builder
	printReport(&b, rep)
	if !strings.Contains(b.String(), "apiguard-none: p99 added vs bare: +0.21 ms") {
		t.Errorf("report lacks the p99 line:\n%s", b.String())
	}
	rep.Mode, rep.Concurrency = modeClosed, 64
	rep.Targets[1].VsBare.ThroughputRatio = 1.013
	b.Reset()
	printReport(&b, rep)
	if !strings.Contains(b.String(), "apiguard-none / bare = 101.3%") {
		t.Errorf("report lacks the ratio line:\n%s", b.String())
	}

	// With a coraza target: a column, a summary line, per-kind latencies
	// and the attack probes.
	kinds := []KindSummary{{Kind: "GET a", P50Ms: 0.5, P99Ms: 1}, {Kind: "POST b", P50Ms: 4, P99Ms: 9, Errors: 2}}
	rep.Kinds = []string{"GET a", "POST b"}
	rep.Targets = []TargetReport{
		{Name: "bare", Kind: "bare", Result: Summary{RPS: 1000, P99Ms: 1, ByKind: kinds}, VsBare: &Comparison{ThroughputRatio: 1}},
		{Name: "coraza", Kind: "coraza", Result: Summary{RPS: 200, P50Ms: 3, P99Ms: 20, SUTCPUUsPerReq: 4000, ByKind: kinds},
			VsBare: &Comparison{ThroughputRatio: 0.2}, VsCoraza: &Comparison{ThroughputRatio: 1}, Probes: &ProbeResult{Sent: 3, Refused: 3}},
		{Name: "apiguard-openapi-waf", Kind: "apiguard", Result: Summary{RPS: 430, P50Ms: 2, P99Ms: 9, SUTCPUUsPerReq: 1800, ByKind: kinds},
			VsBare: &Comparison{ThroughputRatio: 0.43}, VsCoraza: &Comparison{ThroughputRatio: 2.15, P99AddedMs: -11, P50AddedMs: -1, SUTCPURatio: 0.45},
			Probes: &ProbeResult{Sent: 3, Refused: 2, Missed: []string{"XSS: status 200"}}, Refused: []string{"request 4: status 403"}},
	}
	b.Reset()
	printReport(&b, rep)
	out := b.String()
	for _, want := range []string{
		"apiguard-openapi-waf / coraza = 2.15x req/s; p99 -11.00 ms (p50 -1.00 ms); CPU/req 45% of coraza (1800µs vs 4000µs)",
		"vs coraza", "2.15x", "p50 / p99 by request", "4.00ms / 9.00ms (2 err)",
		"coraza: 3 of 3 attack probes refused", "apiguard-openapi-waf: 2 of 3 attack probes refused (403)  WARNING, let through: XSS: status 200",
		"apiguard-openapi-waf refused a benign request of the workload: request 4: status 403",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	rep.Mode = modeRate
	b.Reset()
	printReport(&b, rep)
	if want := "apiguard-openapi-waf vs coraza: p99 9.00ms vs 20.0ms (-11.00 ms), p50 2.00ms vs 3.00ms (-1.00 ms)"; !strings.Contains(b.String(), want) {
		t.Errorf("rate report lacks %q:\n%s", want, b.String())
	}
}

// TestShopWorkload checks the mix: 20 requests, 40/20/20/20, valid JSON
// bodies of the intended sizes, and the same cycle every time.
func TestShopWorkload(t *testing.T) {
	w := shopWorkload()
	if len(w.reqs) != 20 || len(w.kinds) != 4 {
		t.Fatalf("%d requests, %d kinds", len(w.reqs), len(w.kinds))
	}
	count := map[int]int{}
	for i, r := range w.reqs {
		count[r.kind]++
		switch r.kind {
		case kindProduct, kindSearch:
			if r.method != http.MethodGet || r.body != nil {
				t.Errorf("request %d: %s with body %v", i, r.method, r.body != nil)
			}
		case kindOrder:
			if r.method != http.MethodPost || !json.Valid(r.body) || len(r.body) < 900 || len(r.body) > 1300 {
				t.Errorf("order %d: %s, %d bytes, valid %v", i, r.method, len(r.body), json.Valid(r.body))
			}
		case kindReview:
			var rv Review
			if r.method != http.MethodPost || json.Unmarshal(r.body, &rv) != nil || len(rv.Body) < 200 || len(rv.Body) > 600 {
				t.Errorf("review %d: %s, body text %d bytes", i, r.method, len(rv.Body))
			}
		}
	}
	if count[kindProduct] != 8 || count[kindSearch] != 4 || count[kindOrder] != 4 || count[kindReview] != 4 {
		t.Errorf("mix %v, want 8/4/4/4", count)
	}
	if w2 := shopWorkload(); !reflect.DeepEqual(w, w2) {
		t.Errorf("the workload is not deterministic")
	}
	if w.readyPath() != "/api/products/1001" {
		t.Errorf("ready path %q", w.readyPath())
	}
	if s := singleWorkload("/api/items/42", 0); s.readyPath() != "/api/items/42" || len(s.kinds) != 1 {
		t.Errorf("single: %+v", s)
	}

	// Round-robin: two cycles hit each request twice, in order.
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.RequestURI())
		mu.Unlock()
		if r.Header.Get("User-Agent") != shopHeader.Get("User-Agent") {
			http.Error(w, "no user agent", http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	client := newClient(2, 5*time.Second)
	defer client.CloseIdleConnections()
	q := newRequester(client, srv.URL, w)
	for i := range 40 {
		kind, err := q.do(context.Background())
		if err != nil || kind != w.reqs[i%20].kind {
			t.Fatalf("request %d: kind %d, %v", i, kind, err)
		}
	}
	for i, g := range got {
		if want := w.reqs[i%20].method + " " + w.reqs[i%20].path; g != want {
			t.Fatalf("request %d: %s, want %s", i, g, want)
		}
	}
}

// TestShopWorkloadPasses sends the shop cycle and the single workloads
// through the openapi-waf profile (a real gateway, in process) and the
// coraza proxy: every benign request must pass both, every attack probe
// must be refused by both.
func TestShopWorkloadPasses(t *testing.T) {
	if testing.Short() || raceEnabled {
		// Building a CRS WAF takes seconds under the race detector; this
		// test is about the workload's content, not about concurrency.
		t.Skip("builds two CRS WAFs (skipped with -short and -race)")
	}
	up := httptest.NewServer(upstreamHandler(200))
	defer up.Close()
	upURL, _ := url.Parse(up.URL)

	var p profile
	for _, p = range profiles {
		if p.name == "openapi-waf" {
			break
		}
	}
	vars := profileVars{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", AdminToken: benchAdminToken,
		DataDir: filepath.Join(t.TempDir(), "data"), UpstreamURL: up.URL}
	if err := p.writeFiles(vars.DataDir); err != nil {
		t.Fatal(err)
	}
	data, err := p.render(vars)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("openapi-waf.yaml", data, config.Options{Lookup: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = gw.Shutdown(ctx)
	}()
	cz, err := corazaProxy(upURL, 16)
	if err != nil {
		t.Fatal(err)
	}
	czSrv := httptest.NewServer(cz)
	defer czSrv.Close()

	workloads := []*workload{shopWorkload(), singleWorkload("/api/items/42", 0), singleWorkload("/api/items/42", 1024)}
	client := newClient(4, 30*time.Second)
	defer client.CloseIdleConnections()
	for _, tgt := range []struct{ name, url string }{{"apiguard-openapi-waf", "http://" + gw.Addr("public")}, {"coraza", czSrv.URL}} {
		for _, w := range workloads {
			q := newRequester(client, tgt.url, w)
			if bad := verifyWorkload(context.Background(), q); len(bad) > 0 {
				t.Errorf("%s refused benign %s requests:\n  %s", tgt.name, w.name, strings.Join(bad, "\n  "))
			}
		}
		q := newRequester(client, tgt.url, shopWorkload())
		if n, missed := probeAttacks(context.Background(), q); n != len(attackProbes) {
			t.Errorf("%s let attack probes through: %v", tgt.name, missed)
		}
	}
}
