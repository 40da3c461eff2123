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

// The attacks of the ground-truth scenario, all mixed into one genuine
// population so the baselines, NAT and shared fingerprints are realistic.
// Each starts after the rate baselines have warmed up.

var attackStart = t0.Add(8 * time.Minute)

func (w *world) periodic(s *shop) {
	a, t := ip("198.18.10.7"), attackStart
	for range 60 {
		w.add("periodic", product(t, a, tool("periodic"), s.pick(w), 200))
		t = t.Add(time.Duration(float64(2*time.Second) * (1 + 0.01*w.rng.NormFloat64())))
	}
}

func (w *world) scraper() {
	a, t := ip("198.18.20.7"), attackStart.Add(time.Minute)
	for id := 1; id <= 600; id++ {
		w.add("scraper", product(t, a, tool("scraper"), id, 200))
		t = t.Add(w.uniform(300*time.Millisecond, 900*time.Millisecond))
	}
}

// enumerator walks order ids while logged in as itself; the orders belong
// to others (403) or do not exist (404).
func (w *world) enumerator(name, addr string, ids []int, start time.Time) {
	a, t, fp := ip(addr), start, tool(name)
	w.add(name, login(t, a, fp, name, true))
	for _, id := range ids {
		t = t.Add(w.lognormal(1500*time.Millisecond, 0.6))
		status := 403
		if w.rng.IntN(10) < 3 {
			status = 404
		}
		o := order(t, a, fp, id, status)
		o.Subject, o.Session = name, "jti-"+name
		w.add(name, o)
	}
}

func (w *world) prober() {
	a, t := ip("198.18.40.7"), attackStart.Add(3*time.Minute)
	words := []string{"admin", ".env", "wp-login.php", "api/v0/users", "api/internal/config", "actuator/health",
		"api/debug", ".git/config", "server-status", "api/v1/admin/users", "phpinfo.php", "api/graphql", "console"}
	for i := range 80 {
		path := "/" + words[i%len(words)]
		if i >= len(words) {
			path += "/" + strconv.Itoa(i)
		}
		o := get(t, a, tool("prober"), path, "", nil, 404)
		o.Undeclared = true
		if i%5 == 0 {
			o.Status = 401
		}
		w.add("prober", o)
		t = t.Add(w.uniform(200*time.Millisecond, 2*time.Second))
	}
}

// stuffing replays a leaked list from rotating residential IPs that share
// one tool fingerprint: each IP tries three pairs, 2% work.
func (w *world) stuffing() {
	t := attackStart.Add(4 * time.Minute)
	for i := range 100 {
		a := netip.AddrFrom4([4]byte{45, byte(10 + i), byte(w.rng.IntN(250)), byte(1 + w.rng.IntN(250))})
		for j := range 3 {
			w.add("stuffing", login(t, a, tool("stuffing"), fmt.Sprintf("leaked%04d@mail.example", i*3+j), w.rng.IntN(50) == 0))
			t = t.Add(w.uniform(300*time.Millisecond, 2*time.Second))
		}
	}
}

// lowAndSlow: 50 IPs, each one attempt per minute, for 15 minutes; every
// IP stays far below the per-IP thresholds.
func (w *world) lowAndSlow() {
	start := attackStart
	for i := range 50 {
		a := netip.AddrFrom4([4]byte{77, byte(20 + i), byte(w.rng.IntN(250)), byte(1 + w.rng.IntN(250))})
		t := start.Add(w.uniform(0, time.Minute))
		for m := range 15 {
			w.add("low-and-slow", login(t, a, tool("low-and-slow"), fmt.Sprintf("victim%05d@mail.example", i*15+m), w.rng.IntN(100) == 0))
			t = t.Add(w.uniform(55*time.Second, 65*time.Second))
		}
	}
}

func (w *world) transferWithoutLogin() {
	a, t := ip("198.18.50.7"), attackStart.Add(5*time.Minute)
	o := post(t, a, tool("transfer"), "/api/transfer", 200)
	o.Session, o.Subject = "stolen-jti", "user950"
	w.add("transfer-no-login", o)
}

func (w *world) checkoutWithoutCart() {
	a, t := ip("198.18.60.7"), attackStart.Add(6*time.Minute)
	w.add("checkout-no-cart", login(t, a, tool("scalper"), "scalper", true))
	for range 3 {
		t = t.Add(w.uniform(time.Second, 3*time.Second))
		o := post(t, a, tool("scalper"), "/api/checkout", 200)
		o.Session, o.Subject = "jti-scalper", "scalper"
		w.add("checkout-no-cart", o)
	}
}

// hammer requests one endpoint at ~8/s with Poisson (not periodic)
// arrivals and repeated ids (not a scrape).
func (w *world) hammer(s *shop) {
	a, t := ip("198.18.70.7"), attackStart.Add(7*time.Minute)
	hot := []int{s.pick(w), s.pick(w), s.pick(w)}
	for range 600 {
		o := product(t, a, tool("hammer"), hot[w.rng.IntN(len(hot))], 200)
		o.Subject, o.Session = "hammer", "jti-hammer"
		w.add("hammer", o)
		t = t.Add(time.Duration(w.rng.ExpFloat64() * float64(125*time.Millisecond)))
	}
}

func (w *world) bruteForce() {
	a, t := ip("198.18.80.7"), attackStart.Add(2*time.Minute)
	for range 30 {
		w.add("brute-force", login(t, a, tool("brute"), "user002", false))
		t = t.Add(w.uniform(2*time.Second, 4*time.Second))
	}
}

// oneUserManyClients tries one account from 12 addresses with varied
// tools, twice each.
func (w *world) oneUserManyClients() {
	t := attackStart.Add(9 * time.Minute)
	tools := [][2]string{tool("a"), tool("b"), tool("c")}
	for i := range 12 {
		a := netip.AddrFrom4([4]byte{91, byte(100 + i), 7, byte(10 + i)})
		for range 2 {
			w.add("one-user-many-clients", login(t, a, tools[i%3], "User004", false))
			t = t.Add(w.uniform(5*time.Second, 20*time.Second))
		}
	}
}

func scenario(seed uint64) []event {
	w := newWorld(seed)
	s := newShop(w, 5000)
	w.population(s, 60, 10, 30*time.Minute)
	w.periodic(s)
	w.scraper()
	seq := make([]int, 60)
	for i := range seq {
		seq[i] = 310000 + i
	}
	w.enumerator("enum-seq", "198.18.30.7", seq, attackStart.Add(2*time.Minute))
	shuffled := make([]int, 80)
	for i := range shuffled {
		shuffled[i] = 420000 + i
	}
	w.rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	w.enumerator("enum-shuffled", "198.18.31.7", shuffled, attackStart.Add(2*time.Minute))
	w.prober()
	w.stuffing()
	w.lowAndSlow()
	w.transferWithoutLogin()
	w.checkoutWithoutCart()
	w.hammer(s)
	w.bruteForce()
	w.oneUserManyClients()
	return w.sorted()
}

// TestScenario is the ground truth: every attack is found by the detector
// meant for it within a bounded number of its own requests, and no
// genuine client ever reaches the block level.
func TestScenario(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		t.Run("seed"+strconv.FormatUint(seed, 10), func(t *testing.T) {
			t.Parallel()
			clock := &fakeClock{t: t0}
			e := newTestEngine(t, Config{}, clock)
			events := scenario(seed)
			r := runChecked(t, e, clock, events)

			attacks := []struct {
				actor, detector, rule string
				maxRequests           int // detection within this many of the attack's requests
				minScore              int
				blockWithin           int // the client's risk reaches BlockScore within this many requests; 0: not expected
			}{
				{"periodic", DetectorTiming, "periodic", 21, 30, 40},
				{"scraper", DetectorScrape, "unique_resources", 110, 80, 410},
				{"enum-seq", DetectorEnum, "numeric_ids", 14, BlockScore, 14},
				{"enum-shuffled", DetectorEnum, "numeric_ids", 14, BlockScore, 14},
				{"prober", DetectorProbe, "undeclared", 12, 50, 30},
				{"prober", DetectorProbe, "not_found", 30, 50, 30},
				{"stuffing", DetectorLogin, "distributed", 40, BlockScore, 40},
				{"low-and-slow", DetectorLogin, "distributed", 40, BlockScore, 40},
				{"transfer-no-login", DetectorFlow, "transfer_after_login", 1, 70, 0},
				{"checkout-no-cart", DetectorFlow, "checkout_after_cart", 2, 60, 0},
				{"hammer", DetectorRate, "rate_anomaly", 60, 40, 0},
				{"brute-force", DetectorLogin, "brute_force", 10, 70, 20},
				{"brute-force", DetectorLogin, "user_failures", 20, 70, 20},
				{"one-user-many-clients", DetectorLogin, "user_many_clients", 16, 80, 0},
			}
			for _, a := range attacks {
				h, ok := r.first(a.actor, a.detector, a.rule)
				if !ok {
					t.Errorf("%s: not detected by %s/%s in %d requests", a.actor, a.detector, a.rule, r.counts[a.actor])
					continue
				}
				blocked, ok := r.blockedAt[a.actor]
				t.Logf("%-22s %-12s %-20s after %3d requests (%8v) score %3d; client risk max %3d, >= block after %3d requests; key %s evidence %v thresholds %v",
					a.actor, a.detector, a.rule, h.n, h.at.Round(time.Second), h.f.Score, r.maxRisk[a.actor], blocked, h.f.Key, h.f.Evidence, h.f.Thresholds)
				if a.blockWithin > 0 && (!ok || blocked > a.blockWithin) {
					t.Errorf("%s: risk reached %d after %d requests (0: never), want >= %d within %d", a.actor, r.maxRisk[a.actor], blocked, BlockScore, a.blockWithin)
				}
				if h.n > a.maxRequests {
					t.Errorf("%s: %s/%s after %d requests, want <= %d", a.actor, a.detector, a.rule, h.n, a.maxRequests)
				}
				// The highest score this rule reached for the actor.
				best := 0
				for _, x := range r.hits {
					if x.actor == a.actor && x.f.Detector == a.detector && x.f.Rule == a.rule {
						best = max(best, x.f.Score)
					}
				}
				if best < a.minScore {
					t.Errorf("%s: %s/%s score %d, want >= %d", a.actor, a.detector, a.rule, best, a.minScore)
				}
				if len(h.f.Thresholds) == 0 || len(h.f.Evidence) == 0 {
					t.Errorf("%s: finding without evidence or thresholds: %+v", a.actor, h.f)
				}
			}

			// Low-and-slow: no single address of it is ever flagged.
			for _, h := range r.hits {
				if h.actor == "low-and-slow" && (strings.HasPrefix(h.f.Key, "ip:") || strings.HasPrefix(h.f.Key, "net:")) {
					t.Errorf("low-and-slow: per-address finding %s/%s on %s (each IP must stay under per-IP thresholds)", h.f.Detector, h.f.Rule, h.f.Key)
				}
			}

			// Genuine traffic: findings below the block level at most.
			perRule := map[string]int{}
			for _, h := range r.hits {
				if h.actor != "genuine" {
					continue
				}
				perRule[h.f.Detector+"/"+h.f.Rule]++
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
				fmt.Fprintf(&b, " %s=%d", k, perRule[k])
			}
			t.Logf("genuine: %d requests, findings below block:%s; max genuine risk %d", r.counts["genuine"], b.String(), r.maxGenuineRisk)
			if r.maxGenuineRisk >= BlockScore {
				t.Errorf("genuine client reached risk %d (>= %d): %v", r.maxGenuineRisk, BlockScore, r.maxGenuineReasons)
			}
		})
	}
}

// runChecked is run that also tracks the highest risk any genuine client
// had at any of its requests (its score over its own keys).
type checkedResult struct {
	*result
	maxGenuineRisk    int
	maxGenuineReasons []Reason
	blockedAt         map[string]int // attack -> its request count when its risk first reached BlockScore
	maxRisk           map[string]int // attack -> highest risk
}

func runChecked(t testing.TB, e *Engine, clock *fakeClock, events []event) *checkedResult {
	t.Helper()
	attackKeys := map[string]bool{}
	for _, ev := range events {
		if ev.actor != "genuine" {
			for _, k := range e.Keys(ev.o) {
				attackKeys[k] = true
			}
		}
	}
	r := &checkedResult{blockedAt: map[string]int{}, maxRisk: map[string]int{}}
	n := map[string]int{}
	r.result = run(t, e, clock, events, func(ev event) {
		if ev.actor != "genuine" {
			n[ev.actor]++
			s, _ := e.Risk(ev.o)
			r.maxRisk[ev.actor] = max(r.maxRisk[ev.actor], s)
			if _, ok := r.blockedAt[ev.actor]; !ok && s >= BlockScore {
				r.blockedAt[ev.actor] = n[ev.actor]
			}
			return
		}
		// Score the genuine client by the keys that are its own: an
		// attacker may share a browser fingerprint with people.
		var own []string
		for _, k := range e.Keys(ev.o) {
			if !attackKeys[k] {
				own = append(own, k)
			}
		}
		if s, why := e.Score(own...); s > r.maxGenuineRisk {
			r.maxGenuineRisk, r.maxGenuineReasons = s, why
		}
	})
	return r
}
