package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/config"
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
	a, b := newRecorder(0), newRecorder(0)
	for i := 1; i <= 50; i++ {
		a.add(time.Duration(2*i)*time.Millisecond, nil, now)
		b.add(time.Duration(2*i-1)*time.Millisecond, nil, now)
	}
	b.add(0, statusError(503), now)
	b.add(0, statusError(503), now)
	a.add(0, context.DeadlineExceeded, now.Add(time.Second))
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
		q := &requester{client: client, method: http.MethodGet, url: srv.URL + "/api/items/42"}
		res := runRate(context.Background(), q.do, 200, 50*time.Millisecond, senders)
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
	q := &requester{client: client, method: http.MethodPost, url: srv.URL + "/x", body: makeJSON(1024)}
	res := runRate(context.Background(), q.do, 500, 200*time.Millisecond, 50)
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

	ok := &requester{client: client, method: http.MethodGet, url: srv.URL + "/api/items/42"}
	s := runClosed(context.Background(), ok.do, 4, 100*time.Millisecond).summary()
	if s.Requests == 0 || s.Errors != 0 || s.RPS <= 0 || s.P50Ms <= 0 {
		t.Fatalf("closed loop: %+v", s)
	}
	bad := &requester{client: client, method: http.MethodGet, url: srv.URL + "/fail"}
	s = runClosed(context.Background(), bad.do, 2, 50*time.Millisecond).summary()
	if s.Requests != 0 || s.Errors == 0 || s.ErrorKinds["status 503"] != s.Errors {
		t.Fatalf("failing target: requests %d errors %d kinds %v", s.Requests, s.Errors, s.ErrorKinds)
	}
	conn := &requester{client: client, method: http.MethodGet, url: "http://127.0.0.1:1/"}
	if kind := classify(conn.do(context.Background())); kind != "connection refused" {
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
// the result with the real config loader (strict: unknown keys fail).
func TestProfilesRender(t *testing.T) {
	vars := profileVars{
		Listen: "127.0.0.1:18080", Admin: "127.0.0.1:19090", AdminToken: benchAdminToken,
		DataDir: `/tmp/bench dir: "quoted" #1/data`, UpstreamURL: "http://127.0.0.1:18081",
	}
	for _, p := range profiles {
		t.Run(p.name, func(t *testing.T) {
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
			}
		})
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
	for _, bad := range [][]string{{"-mode=open"}, {"-rounds=0"}, {"-path=x"}, {"-profiles=none,bogus"}, {"extra"}} {
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
}
