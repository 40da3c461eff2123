package detect

import (
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/state"
)

// TestLoginOfficeNAT: 60 people behind one address log in around nine,
// one in five mistyping once or twice: many attempts, many usernames,
// a fair number of failures, and no finding.
func TestLoginOfficeNAT(t *testing.T) {
	t.Parallel()
	w := newWorld(51)
	office := ip("198.51.100.7")
	for i := range 60 {
		tt := t0.Add(w.uniform(0, 10*time.Minute))
		user := fmt.Sprintf("staff%02d@corp.example", i)
		if i%5 == 0 {
			for range 1 + w.rng.IntN(2) {
				w.add("office", login(tt, office, chrome, user, false))
				tt = tt.Add(w.uniform(3*time.Second, 20*time.Second))
			}
		}
		w.add("office", login(tt, office, chrome, user, true))
	}
	clock := &fakeClock{t: t0}
	r := run(t, newTestEngine(t, only(DetectorLogin), clock), clock, w.sorted(), nil)
	for _, h := range r.hits {
		t.Errorf("office flagged: %+v", h.f)
	}
}

func TestLoginRules(t *testing.T) {
	t.Parallel()
	type attempt struct {
		ip   netip.Addr
		fp   [2]string
		user string
		ok   bool
		gap  time.Duration
	}
	tests := []struct {
		desc     string
		attempts func(w *world) []attempt
		want     map[string]int // rule -> attempt number of its first finding
	}{
		{"brute force on one account", func(w *world) []attempt {
			var a []attempt
			for range 30 {
				a = append(a, attempt{ip("198.18.5.5"), pyreq, "alice", false, 3 * time.Second})
			}
			return a
		}, map[string]int{"brute_force": 10, "user_failures": 20}},
		{"stuffing from one address", func(w *world) []attempt {
			var a []attempt
			for i := range 30 {
				a = append(a, attempt{ip("198.18.5.6"), pyreq, fmt.Sprintf("leak%d", i), i%25 == 7, 2 * time.Second})
			}
			return a
		}, map[string]int{"stuffing": 9, "brute_force": 11}}, // attempt 8 succeeds; rules fire on failures
		{"one account from many addresses, case varied", func(w *world) []attempt {
			var a []attempt
			for i := range 10 {
				u := "Bob@Example.com"
				if i%2 == 0 {
					u = "bob@example.COM"
				}
				a = append(a, attempt{addr(100 + i), tool(fmt.Sprint(i)), u, false, 30 * time.Second})
			}
			return a
		}, map[string]int{"user_many_clients": 8}},
		// 50 addresses, each one attempt every 10 minutes (0.1/min/IP),
		// one tool: 5 attempts a minute overall.
		{"low and slow at 1 per 10 min per IP", func(w *world) []attempt {
			var a []attempt
			for round := range 3 {
				for i := range 50 {
					a = append(a, attempt{addr(200 + i), pyreq, fmt.Sprintf("v%d-%d", round, i), false, 12 * time.Second})
				}
			}
			return a
		}, map[string]int{"distributed": 30}},
		{"typos spread over a popular browser", func(w *world) []attempt {
			var a []attempt
			for i := range 300 {
				a = append(a, attempt{addr(300 + i), chrome, fmt.Sprintf("p%d", i), i%8 != 0, 2 * time.Second})
			}
			return a
		}, map[string]int{}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			w := newWorld(52)
			u := newUnit(t, only(DetectorLogin))
			got := map[string]int{}
			for i, a := range tc.attempts(w) {
				for _, f := range u.do(a.gap, login(time.Time{}, a.ip, a.fp, a.user, a.ok)) {
					if _, seen := got[f.Rule]; !seen {
						got[f.Rule] = i + 1
						t.Logf("%s at attempt %d on %s: %d %v %v", f.Rule, i+1, f.Key, f.Score, f.Evidence, f.Thresholds)
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("rules %v, want %v", got, tc.want)
			}
		})
	}
}

// TestLoginBackendDown: counters that cannot be shared are skipped and
// counted; local rules still work and nothing panics.
func TestLoginBackendDown(t *testing.T) {
	t.Parallel()
	be := state.NewMemory(state.MemoryOptions{})
	_ = be.Close()
	clock := &fakeClock{t: t0}
	e, err := New(only(DetectorLogin), Options{Clock: clock.now, Backend: be, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var fs []Finding
	for range 12 {
		clock.add(time.Second)
		fs = append(fs, e.Observe(login(clock.t, ip("198.18.5.9"), pyreq, "carol", false))...)
	}
	if _, ok := find(fs, DetectorLogin, "brute_force"); !ok {
		t.Error("local rule lost when the backend is down")
	}
	if st := e.Stats(); st.BackendErrors == 0 || st.Observations != 12 {
		t.Errorf("stats %+v", st)
	}
	if err := e.Close(); err != nil {
		t.Error(err)
	}
}
