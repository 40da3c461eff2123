package detect

import (
	"strconv"
	"testing"
	"time"
)

func TestRiskCombinesAndDecays(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: t0}
	r := NewRisk(RiskConfig{HalfLife: "5m"}, 100, clock.now)
	f := func(det, rule, key string, score int) Finding {
		return Finding{Detector: det, Rule: rule, Key: key, Score: score, Time: clock.t,
			Evidence: map[string]string{"n": "1"}, Thresholds: map[string]string{"min": "1"}}
	}
	r.Add(f("timing", "periodic", "ip:1", 50))
	if s, why := r.Score("ip:1"); s != 50 || len(why) != 1 || why[0].Contribution != 50 || why[0].Evidence["n"] != "1" {
		t.Fatalf("one finding: %d %+v", s, why)
	}
	r.Add(f("rate", "rate_anomaly", "ip:1", 60))
	// 100·(1 − 0.5·0.4) = 80
	if s, why := r.Score("ip:1"); s != 80 || len(why) != 2 || why[0].Detector != "rate" {
		t.Fatalf("two findings: %d %+v", s, why)
	}
	// The same rule again keeps the stronger.
	r.Add(f("rate", "rate_anomaly", "ip:1", 40))
	if s, _ := r.Score("ip:1"); s != 80 {
		t.Fatalf("weaker repeat changed the score to %d", s)
	}
	clock.add(5 * time.Minute) // one half-life: 25 and 30 -> 100·(1−0.75·0.7) = 47.5
	if s, why := r.Score("ip:1"); s < 47 || s > 48 || why[0].Contribution != 30 || why[0].Score != 60 {
		t.Fatalf("after a half-life: %d %+v", s, why)
	}
	// Max over keys, reasons of all keys.
	r.Add(f("login", "distributed", "fp:x", 90))
	if s, why := r.Score("ip:1", "fp:x", "", "ip:1", "sub:nobody"); s != 90 || len(why) != 3 || why[0].Key != "fp:x" {
		t.Fatalf("max over keys: %d %+v", s, why)
	}
	clock.add(time.Hour)
	if s, why := r.Score("ip:1", "fp:x"); s != 0 || len(why) != 0 {
		t.Fatalf("after 12 half-lives: %d %+v", s, why)
	}
}

func TestRiskKeepsStrongestReasons(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: t0}
	r := NewRisk(RiskConfig{}, 10, clock.now)
	for i := range 2 * maxReasons {
		r.Add(Finding{Detector: "d", Rule: strconv.Itoa(i), Key: "k", Score: 10 + i, Time: clock.t})
	}
	_, why := r.Score("k")
	if len(why) != maxReasons {
		t.Fatalf("%d reasons", len(why))
	}
	if why[0].Score != 10+2*maxReasons-1 || why[len(why)-1].Score != 10+maxReasons {
		t.Errorf("kept %d..%d, want the strongest", why[len(why)-1].Score, why[0].Score)
	}
	// Bounded keys.
	for i := range 100 {
		r.Add(Finding{Detector: "d", Key: "k" + strconv.Itoa(i), Score: 50, Time: clock.t})
	}
	if n := r.t.len(); n > 10 {
		t.Errorf("risk holds %d keys, max 10", n)
	}
	r.Add(Finding{Key: "", Score: 50})
	r.Add(Finding{Key: "z", Score: 0})
	if s, _ := r.Score("z"); s != 0 {
		t.Error("zero score recorded")
	}
}
