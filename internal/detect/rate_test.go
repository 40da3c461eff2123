package detect

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// steady adds n clients each making perMin requests a minute to one
// endpoint, with random phase, from start for d.
func (w *world) steady(actor string, n, perMin int, start time.Time, d time.Duration) {
	for i := range n {
		a := addr(1000 + i)
		t := start.Add(w.uniform(0, time.Minute))
		for t.Before(start.Add(d)) {
			w.add(actor, product(t, a, chrome, 1+w.rng.IntN(5000), 200))
			t = t.Add(time.Duration(w.rng.ExpFloat64() * float64(time.Minute) / float64(perMin)))
		}
	}
}

func (w *world) flood(actor string, a string, perSec float64, start time.Time, d time.Duration) {
	t := start
	for t.Before(start.Add(d)) {
		o := product(t, ip(a), pyreq, 1+w.rng.IntN(3), 200)
		w.add(actor, o)
		t = t.Add(time.Duration(w.rng.ExpFloat64() * float64(time.Second) / perSec))
	}
}

func TestRateNeedsWarmup(t *testing.T) {
	t.Parallel()
	w := newWorld(11)
	w.flood("flood", "198.18.0.1", 5, t0, 3*time.Minute)
	clock := &fakeClock{t: t0}
	r := run(t, newTestEngine(t, only(DetectorRate), clock), clock, w.sorted(), nil)
	if len(r.hits) != 0 {
		t.Errorf("flagged before the baseline warmed up: %+v", r.hits[0].f)
	}
}

func TestRateFlagsOutlierAfterWarmup(t *testing.T) {
	t.Parallel()
	w := newWorld(12)
	w.steady("genuine", 150, 3, t0, 10*time.Minute)
	floodStart := t0.Add(4 * time.Minute)
	w.flood("flood", "198.18.0.1", 2, floodStart, 3*time.Minute)
	clock := &fakeClock{t: t0}
	e := newTestEngine(t, only(DetectorRate), clock)
	r := run(t, e, clock, w.sorted(), nil)
	h, ok := r.first("flood", DetectorRate, "rate_anomaly")
	if !ok {
		t.Fatal("flood not flagged")
	}
	t.Logf("flagged after %d requests (%v): %v %v", h.n, h.at, h.f.Evidence, h.f.Thresholds)
	if h.n > 35 || h.f.Key != "ip:198.18.0.1" || h.f.Thresholds["k"] != "3.00" {
		t.Errorf("finding %+v after %d requests", h.f, h.n)
	}
	for _, x := range r.hits {
		if x.actor == "genuine" {
			t.Errorf("genuine client flagged: %+v", x.f)
		}
	}
	// The flood did not drag the baseline up: still ~3 requests/minute.
	s := e.rate.eps.lock(endpoint{method: "GET", tmpl: "/api/products/{id}"})
	ep := e.rate.eps.get(s, endpoint{method: "GET", tmpl: "/api/products/{id}"}, clock.t.UnixNano())
	mean := math.Expm1(ep.mean)
	s.mu.Unlock()
	if mean < 1.5 || mean > 5 {
		t.Errorf("baseline mean %.2f requests/min, want ~3", mean)
	}
}

// TestRateNATScale: eight people behind one address, each at a normal
// rate, add up to an address rate over the floor; the NAT actor count
// keeps the address from being flagged, unless the scale is turned off.
func TestRateNATScale(t *testing.T) {
	t.Parallel()
	for _, nat := range []bool{true, false} {
		t.Run(fmt.Sprint("nat=", nat), func(t *testing.T) {
			t.Parallel()
			w := newWorld(13)
			w.steady("background", 150, 3, t0, 10*time.Minute)
			office := ip("198.51.100.7")
			for i := range 8 {
				tt := t0.Add(4*time.Minute + w.uniform(0, time.Second))
				for range 30 {
					o := product(tt, office, chrome, 1+w.rng.IntN(5000), 200)
					o.Subject = fmt.Sprintf("staff%d", i)
					w.add("office", o)
					tt = tt.Add(time.Duration(w.rng.ExpFloat64() * float64(10*time.Second)))
				}
			}
			cfg := only(DetectorRate)
			cfg.NAT.Enabled = &nat
			clock := &fakeClock{t: t0}
			r := run(t, newTestEngine(t, cfg, clock), clock, w.sorted(), nil)
			_, flagged := r.first("office", DetectorRate, "")
			if flagged == nat {
				t.Errorf("office flagged = %v with NAT scaling %v", flagged, nat)
			}
		})
	}
}
