package detect

import (
	"math"
	"testing"
	"time"
)

func TestTiming(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc    string
		gap     func(w *world, i int) time.Duration
		n       int
		apiKey  string
		flagged bool
		within  int // first finding by this request
	}{
		{"sleep(2s) with 1% jitter", func(w *world, _ int) time.Duration {
			return time.Duration(float64(2*time.Second) * (1 + 0.01*w.rng.NormFloat64()))
		}, 100, "", true, 21},
		{"sleep(500ms) with 10% jitter", func(w *world, _ int) time.Duration {
			return time.Duration(float64(500*time.Millisecond) * (1 + 0.1*w.rng.NormFloat64()))
		}, 100, "", true, 21},
		// A script that randomises its sleep widely evades this detector
		// (the others still see its volume and its targets).
		{"uniform 0.5-3.5s (CV 0.43)", func(w *world, _ int) time.Duration {
			return w.uniform(500*time.Millisecond, 3500*time.Millisecond)
		}, 300, "", false, 0},
		{"human log-normal think times", func(w *world, _ int) time.Duration { return w.lognormal(8*time.Second, 1) }, 500, "", false, 0},
		{"human, calmer (sigma 0.6)", func(w *world, _ int) time.Duration { return w.lognormal(8*time.Second, 0.6) }, 500, "", false, 0},
		{"browser bursts then think", func(w *world, i int) time.Duration {
			if i%3 != 0 {
				return w.uniform(5*time.Millisecond, 80*time.Millisecond)
			}
			return w.lognormal(6*time.Second, 0.8)
		}, 500, "", false, 0},
		{"script with long pauses restarts its sequence", func(w *world, i int) time.Duration {
			if i%10 == 9 {
				return time.Hour
			}
			return 2 * time.Second
		}, 100, "", false, 0},
		{"API-key poller is a machine by contract", func(*world, int) time.Duration { return 30 * time.Second }, 100, "acme", false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			w := newWorld(21)
			u := newUnit(t, only(DetectorTiming))
			first := 0
			var f Finding
			for i := range tc.n {
				o := product(time.Time{}, ip("198.18.1.1"), pyreq, 1, 200)
				o.APIKey = tc.apiKey
				if got, ok := find(u.do(tc.gap(w, i), o), DetectorTiming, "periodic"); ok && first == 0 {
					first, f = i+1, got
				}
			}
			if (first > 0) != tc.flagged {
				t.Fatalf("flagged = %v (at request %d: %v), want %v", first > 0, first, f.Evidence, tc.flagged)
			}
			if tc.flagged {
				t.Logf("flagged at request %d: score %d %v %v", first, f.Score, f.Evidence, f.Thresholds)
				if first > tc.within || f.Score < timingBase || f.Score > timingScore || f.Thresholds["max_cv"] != "0.20" {
					t.Errorf("finding %+v at %d", f, first)
				}
			}
		})
	}
}

// TestTimingHumanFalsePositiveRate: over many independent human
// sessions, the share of 20-gap windows that look periodic.
func TestTimingHumanFalsePositiveRate(t *testing.T) {
	t.Parallel()
	w := newWorld(22)
	u := newUnit(t, only(DetectorTiming))
	flagged := 0
	const people = 200
	for p := range people {
		a := addr(p)
		for range 60 {
			if len(u.do(w.lognormal(10*time.Second, 0.8), product(time.Time{}, a, chrome, 1, 200))) > 0 {
				flagged++
				break
			}
		}
	}
	t.Logf("%d of %d people (sigma 0.8, CV %.2f) flagged", flagged, people, math.Sqrt(math.Exp(0.64)-1))
	if flagged > 0 {
		t.Errorf("%d people flagged as periodic", flagged)
	}
}
