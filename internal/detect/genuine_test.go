package detect

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestGenuineCrowd is traffic that looks most like abuse while being
// genuine: a large office NAT (40 people, two browser builds, all logging
// in at nine with typos), a mobile carrier-grade NAT, power users who
// click every three seconds, and two machine clients with API keys (a
// poller and an order-sync job walking new order ids). None of it may
// reach the block level.
func TestGenuineCrowd(t *testing.T) {
	t.Parallel()
	w := newWorld(7)
	s := newShop(w, 5000)
	w.population(s, 40, 0, 30*time.Minute) // background, warms the baselines
	office, carrier := ip("198.51.100.7"), ip("100.64.12.34")
	for i := range 40 {
		p := persona{name: fmt.Sprintf("office%02d", i), ip: office, fp: [][2]string{chrome, firefox}[i%2]}
		if i%4 == 3 {
			p.name = ""
		}
		p.orders = []int{200000 + i*7919, 300000 + i*104729}
		w.browse(s, p, t0.Add(w.uniform(0, 5*time.Minute)), 40+w.rng.IntN(40))
	}
	for i := range 15 {
		p := persona{name: fmt.Sprintf("mobile%02d", i), ip: carrier, fp: safari}
		w.browse(s, p, t0.Add(w.uniform(0, 20*time.Minute)), 20+w.rng.IntN(30))
	}
	for i := range 10 {
		p := persona{name: fmt.Sprintf("power%02d", i), ip: netip.AddrFrom4([4]byte{62, 10, byte(i), 9}), fp: chrome, pace: 3 * time.Second}
		w.browse(s, p, t0.Add(w.uniform(0, 10*time.Minute)), 150)
	}
	// A v6 household: several devices in one /64.
	for i := range 4 {
		p := persona{name: fmt.Sprintf("home%d", i), ip: netip.MustParseAddr("2001:db8:1:2::" + strconv.Itoa(10+i)), fp: [][2]string{chrome, safari}[i%2]}
		w.browse(s, p, t0.Add(w.uniform(0, 10*time.Minute)), 40)
	}
	poller, syncer := ip("192.0.2.50"), ip("192.0.2.60")
	for i := range 60 {
		o := get(t0.Add(time.Duration(i)*30*time.Second), poller, pyreq, "/api/products", "/api/products", nil, 200)
		o.APIKey = "acme-poller"
		w.add("genuine", o)
	}
	for i := range 200 {
		o := order(t0.Add(10*time.Minute+time.Duration(i)*700*time.Millisecond), syncer, pyreq, 500000+i, 200)
		o.APIKey = "erp-sync"
		w.add("genuine", o)
	}

	clock := &fakeClock{t: t0}
	e := newTestEngine(t, Config{}, clock)
	r := runChecked(t, e, clock, w.sorted())
	perRule := map[string]int{}
	keys := map[string]map[string]bool{}
	for _, h := range r.hits {
		rule := h.f.Detector + "/" + h.f.Rule
		perRule[rule]++
		if keys[rule] == nil {
			keys[rule] = map[string]bool{}
		}
		keys[rule][h.f.Key] = true
		if h.f.Score >= BlockScore {
			t.Errorf("genuine: finding at block level: %+v", h.f)
		}
	}
	names := make([]string, 0, len(perRule))
	for k := range perRule {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		ks := make([]string, 0, len(keys[k]))
		for key := range keys[k] {
			ks = append(ks, key)
		}
		sort.Strings(ks)
		fmt.Fprintf(&b, "\n  %s: %d findings on %v", k, perRule[k], ks)
	}
	t.Logf("%d genuine requests; findings (all below block):%s\nmax risk %d %v", r.counts["genuine"], b.String(), r.maxGenuineRisk, r.maxGenuineReasons)
	if r.maxGenuineRisk >= BlockScore {
		t.Errorf("a genuine client reached risk %d", r.maxGenuineRisk)
	}
}
