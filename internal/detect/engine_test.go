package detect

import (
	"net/netip"
	"net/url"
	"sync"
	"testing"
	"time"
)

// TestEngineConcurrent runs the scenario's events through one engine
// from four observer goroutines (run with -race).
func TestEngineConcurrent(t *testing.T) {
	t.Parallel()
	events := scenario(5)
	e, err := New(Config{Flow: FlowConfig{Rules: flowRules}}, Options{MaxKeys: 500})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for g := range 4 {
		wg.Go(func() {
			n := 0
			for i := g; i < len(events); i += 4 {
				n += len(e.Observe(events[i].o))
				if i%97 == 0 {
					e.Risk(events[i].o)
				}
			}
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	st := e.Stats()
	if st.Observations != uint64(len(events)) || st.Findings != uint64(total) || total == 0 {
		t.Errorf("stats %+v, %d findings returned", st, total)
	}
	// MaxKeys 500 per table: the population does not fit, so keys were
	// evicted and every table stayed bounded.
	if st.Evictions == 0 {
		t.Error("no evictions with MaxKeys 500")
	}
	for name, n := range map[string]int{
		"rate": e.rate.t.len(), "timing": e.timing.t.len(), "scrape": e.scrape.t.len(), "enum": e.enum.t.len(),
		"probe": e.probe.t.len(), "login": e.login.t.len(), "flow": e.flow.t.len(), "risk": e.risk.t.len(), "nat": e.nat.t.len(),
	} {
		if n > 500+tableShards {
			t.Errorf("%s holds %d keys", name, n)
		}
	}
}

// TestEngineOddInput: empty, partial and hostile observations never
// panic.
func TestEngineOddInput(t *testing.T) {
	t.Parallel()
	u := newUnit(t, Config{})
	odd := []Observation{
		{},
		{Time: time.Unix(0, 0)},
		{Time: time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), IP: netip.MustParseAddr("::1")},
		{Time: time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC), Login: &LoginAttempt{}},
		{Method: "POST", Template: "/api/checkout", Path: "/api/checkout"},
		{Method: "GET", Template: "/api/orders/{id}", PathParams: map[string]string{"id": "", "x": "99999999999999999999", "y": "-1", "z": "1", "w": "2"}},
		{Query: url.Values{"id": {"1"}}, Template: "/q"},
		{IP: netip.MustParseAddr("fe80::1%eth0"), JA4: string(make([]byte, 10000)), Login: &LoginAttempt{Username: string(make([]byte, 10000))}},
	}
	for _, o := range odd {
		u.e.Observe(o)
		u.e.Risk(o)
	}
	// Time going backwards between observations.
	for i := range 50 {
		u.e.Observe(product(t0.Add(-time.Duration(i)*time.Second), ip("198.18.9.9"), pyreq, i, 404))
	}
}

func TestEngineExemptAPIKeys(t *testing.T) {
	t.Parallel()
	u := newUnit(t, Config{ExemptAPIKeys: []string{"erp"}})
	for i := range 200 {
		o := order(time.Time{}, ip("192.0.2.60"), pyreq, 1000+i, 404)
		o.APIKey = "erp"
		if fs := u.do(time.Second, o); len(fs) > 0 {
			t.Fatalf("exempt key observed: %+v", fs)
		}
	}
	if s, _ := u.e.Risk(Observation{IP: ip("192.0.2.60"), APIKey: "erp"}); s != 0 {
		t.Errorf("risk %d", s)
	}
}

func TestEngineRiskOfObservation(t *testing.T) {
	t.Parallel()
	u := newUnit(t, only(DetectorProbe))
	for i := range 25 {
		o := get(time.Time{}, ip("198.18.9.1"), pyreq, "/x"+string(rune('a'+i)), "", nil, 404)
		o.Undeclared = true
		u.do(time.Second, o)
	}
	// The same client on another request: its ip key carries the risk.
	s, why := u.e.Risk(Observation{IP: ip("198.18.9.1"), Subject: "someone"})
	if s < 50 || len(why) < 2 || why[0].Key != "ip:198.18.9.1" || why[0].Detector != DetectorProbe {
		t.Errorf("risk %d %+v", s, why)
	}
	if s, _ := u.e.Risk(Observation{IP: ip("198.18.9.2")}); s != 0 {
		t.Errorf("unrelated client risk %d", s)
	}
	if got := u.e.Keys(Observation{IP: ip("198.18.9.1")}); len(got) != 2 {
		t.Errorf("keys %v", got)
	}
}
