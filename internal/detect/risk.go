package detect

import (
	"hash/maphash"
	"math"
	"slices"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
)

// RiskConfig configures the risk aggregator.
type RiskConfig struct {
	// HalfLife is how fast a finding's contribution decays (default 5m):
	// after one half-life it counts half, after seven it is gone.
	HalfLife string `yaml:"half_life,omitempty"`
	MaxKeys  int    `yaml:"max_keys,omitempty"` // default Options.MaxKeys
}

// Validate reports invalid fields under path.
func (c *RiskConfig) Validate(path string, errs *field.Errors) {
	checkDuration(field.Join(path, "half_life"), c.HalfLife, time.Second, 24*time.Hour, errs)
	checkInt(field.Join(path, "max_keys"), c.MaxKeys, 1, maxMaxKeys, errs)
}

// Risk aggregates findings into a 0-100 score per key. A key keeps its
// strongest finding per (detector, rule), at most maxReasons of them, each
// decaying exponentially with the half-life. The findings of one key
// combine as independent evidence (noisy-OR):
//
//	score = 100·(1 − ∏(1 − sᵢ/100))
//
// so one finding of 60 scores 60, two score 84, and no number of findings
// exceeds 100; unlike a capped sum, many weak findings approach 100 only
// slowly (five of 20 make 67). A client's score is the maximum over its
// keys: its address, network, fingerprint, API key, subject and device
// are different views of one client, and the worst view decides.
//
// Risk is safe for concurrent use and bounded: at most MaxKeys keys, the
// least recently updated evicted first, and keys whose findings have all
// decayed are forgotten.
type Risk struct {
	t        *table[string, riskEntry]
	halfLife float64 // ns
	clock    func() time.Time
}

const maxReasons = 8

type riskItem struct {
	detector, rule string
	score          uint8
	at             int64
	ev, th         map[string]string
}

type riskEntry struct {
	items [maxReasons]riskItem
	n     uint8
}

// NewRisk returns an aggregator; clock nil means time.Now, maxKeys <= 0
// the default.
func NewRisk(c RiskConfig, maxKeys int, clock func() time.Time) *Risk {
	if clock == nil {
		clock = time.Now
	}
	hl := durOr(c.HalfLife, 5*time.Minute)
	seed := maphash.MakeSeed()
	return &Risk{
		// 7 half-lives take 100 below 1.
		t:        newTable[string, riskEntry](intOr(c.MaxKeys, intOr(maxKeys, defaultMaxKeys)), 7*hl, func(k string) uint64 { return maphash.String(seed, k) }, cloneString),
		halfLife: float64(hl),
		clock:    clock,
	}
}

func (r *Risk) decayed(score uint8, at, now int64) float64 {
	if now <= at {
		return float64(score)
	}
	return float64(score) * math.Exp2(-float64(now-at)/r.halfLife)
}

// Add records a finding under its key.
func (r *Risk) Add(f Finding) {
	if f.Key == "" || f.Score <= 0 {
		return
	}
	at := f.Time.UnixNano()
	if f.Time.IsZero() {
		at = r.clock().UnixNano()
	}
	it := riskItem{detector: f.Detector, rule: f.Rule, score: uint8(clampScore(f.Score)), at: at, ev: f.Evidence, th: f.Thresholds}
	s := r.t.lock(f.Key)
	defer s.mu.Unlock()
	e, fresh := r.t.upsert(s, f.Key, at)
	if fresh {
		*e = riskEntry{}
	}
	weakest, weakestVal := -1, math.Inf(1)
	for i := range int(e.n) {
		old := &e.items[i]
		v := r.decayed(old.score, old.at, at)
		if old.detector == it.detector && old.rule == it.rule {
			if float64(it.score) >= v {
				*old = it
			}
			return
		}
		if v < weakestVal {
			weakest, weakestVal = i, v
		}
	}
	switch {
	case int(e.n) < maxReasons:
		e.items[e.n] = it
		e.n++
	case float64(it.score) > weakestVal:
		e.items[weakest] = it
	}
}

// Score returns the risk of a client known by keys (its ip:, net:, fp:,
// sub: ... keys): the maximum over the keys of each key's combined score,
// and every live finding about any of the keys, strongest first.
func (r *Risk) Score(keys ...string) (int, []Reason) {
	now := r.clock().UnixNano()
	best := 0
	var reasons []Reason
	for ki, k := range keys {
		if k == "" || slices.Contains(keys[:ki], k) {
			continue
		}
		s := r.t.lock(k)
		e := r.t.get(s, k, now)
		if e == nil {
			s.mu.Unlock()
			continue
		}
		keep := 1.0
		for i := range int(e.n) {
			it := &e.items[i]
			v := r.decayed(it.score, it.at, now)
			c := int(math.Round(v))
			if c < 1 {
				continue
			}
			keep *= 1 - v/100
			reasons = append(reasons, Reason{
				Detector: it.detector, Rule: it.rule, Key: k,
				Contribution: c, Score: int(it.score),
				Evidence: it.ev, Thresholds: it.th, At: time.Unix(0, it.at),
			})
		}
		s.mu.Unlock()
		best = max(best, clampScore(int(math.Round(100*(1-keep)))))
	}
	slices.SortStableFunc(reasons, func(a, b Reason) int { return b.Contribution - a.Contribution })
	return best, reasons
}
