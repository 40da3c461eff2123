package detect

import (
	"hash/maphash"
	"math"
	"strings"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
)

// TimingConfig configures the timing-regularity detector.
//
// Scripts pace requests with a timer; people think, read and click, and
// their browsers fire several calls at once. Per key, the detector keeps
// the last Samples inter-arrival gaps and flags a coefficient of variation
// (standard deviation / mean) below MaxCV. Human think times are roughly
// log-normal with a CV near or above 1; a sleep(2s) loop with network
// jitter has a CV of a few percent. A script that randomises its sleep
// widely (uniform 1-3s: 0.29) evades this detector; the others still see
// its volume and its targets. Being periodic is not abuse by itself (SDKs
// and integrations poll), so the score is 30 at MaxCV rising to 50 at a CV
// of 0: at most the challenge level alone, and it mainly corroborates
// other detectors (a periodic client over the rate baseline is blocked).
// Requests with an API key are machine clients by contract and are
// skipped unless IncludeAPIKeys is set.
type TimingConfig struct {
	Common  `yaml:",inline"`
	Samples int     `yaml:"samples,omitempty"` // gaps per key; default 20 (at most 256)
	MaxCV   float64 `yaml:"max_cv,omitempty"`  // default 0.2
	// MaxGap restarts a key's sequence after an idle gap longer than it
	// (default 10m): a pause is a new session, not a sample.
	MaxGap string `yaml:"max_gap,omitempty"`
	// Exclude lists "METHOD /template" operations that are polled by
	// legitimate front ends (notifications, health); they are not
	// counted.
	Exclude []string `yaml:"exclude,omitempty"`
	// IncludeAPIKeys also times requests made with an API key.
	IncludeAPIKeys bool `yaml:"include_api_keys,omitempty"`
}

// Validate reports invalid fields under path.
func (c *TimingConfig) Validate(path string, errs *field.Errors) {
	c.Common.validate(path, errs)
	checkInt(field.Join(path, "samples"), c.Samples, 4, 256, errs)
	checkFloat(field.Join(path, "max_cv"), c.MaxCV, 0, 2, false, errs)
	checkDuration(field.Join(path, "max_gap"), c.MaxGap, time.Second, 24*time.Hour, errs)
	for i, s := range c.Exclude {
		if _, ok := parseOp(s); !ok {
			errs.Add(field.Index(field.Join(path, "exclude"), i), "want \"METHOD /path/template\", got %q", s)
		}
	}
}

const (
	timingBase  = 30
	timingScore = 50 // at CV 0
)

type timingState struct {
	last int64
	gaps []float32 // ring of seconds
	i, n int
	emit emitState
}

type timingDetector struct {
	t       *table[string, timingState]
	keys    kindSet
	size    int
	maxCV   float64
	maxGap  int64
	exclude map[op]bool
	apiKeys bool
	w       float64
}

// op is a "METHOD /template" operation.
type op struct{ method, path string }

// parseOp parses "METHOD /path".
func parseOp(s string) (op, bool) {
	m, p, ok := strings.Cut(strings.TrimSpace(s), " ")
	p = strings.TrimSpace(p)
	if !ok || !field.ValidMethod(m) || !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \t") {
		return op{}, false
	}
	return op{m, p}, true
}

func newTiming(c TimingConfig, maxKeys int, seed maphash.Seed) *timingDetector {
	maxGap := durOr(c.MaxGap, 10*time.Minute)
	d := &timingDetector{
		t:       newTable[string, timingState](c.maxKeys(maxKeys), maxGap, func(k string) uint64 { return maphash.String(seed, k) }, cloneString),
		keys:    kindsOf(c.Keys, setOf(KindIP, KindSubject, KindDevice)),
		size:    intOr(c.Samples, 20),
		maxCV:   floatOr(c.MaxCV, 0.2),
		maxGap:  maxGap,
		apiKeys: c.IncludeAPIKeys,
		w:       c.weight(),
	}
	d.size = min(max(d.size, 4), 256)
	for _, s := range c.Exclude {
		if p, ok := parseOp(s); ok {
			if d.exclude == nil {
				d.exclude = map[op]bool{}
			}
			d.exclude[p] = true
		}
	}
	return d
}

func (d *timingDetector) observe(c *obsCtx, o *Observation, out []Finding) []Finding {
	if o.APIKey != "" && !d.apiKeys {
		return out
	}
	if d.exclude != nil && (d.exclude[op{o.Method, o.Template}] || d.exclude[op{o.Method, o.Path}]) {
		return out
	}
	for k := range numKinds {
		key := c.id.keys[k]
		if key == "" || !d.keys.has(k) {
			continue
		}
		s := d.t.lock(key)
		st, fresh := d.t.upsert(s, key, c.now)
		if fresh {
			if cap(st.gaps) < d.size {
				st.gaps = make([]float32, d.size)
			}
			*st = timingState{gaps: st.gaps[:d.size], last: c.now}
			s.mu.Unlock()
			continue
		}
		gap := c.now - st.last
		if gap < 0 {
			// Observers race a little; a late observation is not a gap.
			s.mu.Unlock()
			continue
		}
		st.last = c.now
		if gap > d.maxGap {
			st.n, st.i = 0, 0
			s.mu.Unlock()
			continue
		}
		st.gaps[st.i] = float32(float64(gap) / 1e9)
		st.i = (st.i + 1) % len(st.gaps)
		st.n = min(st.n+1, len(st.gaps))
		if st.n < len(st.gaps) {
			s.mu.Unlock()
			continue
		}
		var sum, sq float64
		for _, g := range st.gaps {
			sum += float64(g)
		}
		mean := sum / float64(len(st.gaps))
		for _, g := range st.gaps {
			x := float64(g) - mean
			sq += x * x
		}
		if mean <= 0 {
			s.mu.Unlock()
			continue
		}
		cv := math.Sqrt(sq/float64(len(st.gaps))) / mean
		if cv >= d.maxCV {
			s.mu.Unlock()
			continue
		}
		score := weigh(timingBase+(timingScore-timingBase)*(1-cv/d.maxCV), d.w)
		due := st.emit.due(c.now, score, c.cooldown)
		s.mu.Unlock()
		if due {
			out = append(out, newFinding(DetectorTiming, "periodic", key, score, c.now,
				map[string]string{"cv": ftoa(cv), "mean_gap": dtoa(time.Duration(mean * 1e9).Round(time.Millisecond)), "samples": itoa(int64(d.size))},
				map[string]string{"max_cv": ftoa(d.maxCV), "samples": itoa(int64(d.size))}))
		}
	}
	return out
}
