package detect

import (
	"hash/maphash"
	"math"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
)

// RateConfig configures the request-rate anomaly detector.
//
// Each endpoint (method and template, or method and route when there is
// no template) learns the distribution of per-client request counts per
// Window: whenever a client's window closes, its count becomes one sample,
// taken in log space (log(1+count)) because per-client rates are heavily
// skewed. Mean and variance are exponentially weighted (Alpha), so the
// baseline follows traffic over hours. A client is flagged on an endpoint
// when its sliding count over the last Window is more than K standard
// deviations above the mean in log space, at least Floor, and the
// endpoint has MinSamples samples (warm-up). Samples above the threshold
// are clipped to it before they are learned, so an attacker cannot drag
// the baseline up.
type RateConfig struct {
	Common     `yaml:",inline"`
	Window     string  `yaml:"window,omitempty"`      // default 1m
	K          float64 `yaml:"k,omitempty"`           // default 3
	Floor      int     `yaml:"floor,omitempty"`       // requests per window; default 30
	MinSamples int     `yaml:"min_samples,omitempty"` // default 100
	Alpha      float64 `yaml:"alpha,omitempty"`       // EWMA weight; default 0.02
	// MinSigma floors the standard deviation in log space (default 0.35),
	// so an endpoint where every client sends exactly one request per
	// window does not flag the first client that sends three.
	MinSigma     float64 `yaml:"min_sigma,omitempty"`
	MaxEndpoints int     `yaml:"max_endpoints,omitempty"` // default 10000
}

// Validate reports invalid fields under path.
func (c *RateConfig) Validate(path string, errs *field.Errors) {
	c.Common.validate(path, errs)
	checkDuration(field.Join(path, "window"), c.Window, time.Second, time.Hour, errs)
	checkFloat(field.Join(path, "k"), c.K, 0, 20, false, errs)
	checkInt(field.Join(path, "floor"), c.Floor, 1, 1<<30, errs)
	checkInt(field.Join(path, "min_samples"), c.MinSamples, 1, 1<<30, errs)
	checkFloat(field.Join(path, "alpha"), c.Alpha, 0, 1, false, errs)
	checkFloat(field.Join(path, "min_sigma"), c.MinSigma, 0, 10, false, errs)
	checkInt(field.Join(path, "max_endpoints"), c.MaxEndpoints, 1, maxMaxKeys, errs)
}

const (
	rateBase  = 40 // score at the threshold
	rateStep  = 10 // per standard deviation beyond it
	rateScore = 70 // cap: a rate alone is a reason to throttle, not to block
)

type endpoint struct{ method, route, tmpl string }

type rateKey struct {
	client string
	ep     uint64
}

type endpointState struct {
	id      uint64
	mean, v float64 // EWMA of log(1+count) and its variance
	samples uint64
}

type rateState struct {
	n         int64 // bucket number of cur
	cur, prev uint32
	emit      emitState
}

type rateDetector struct {
	t        *table[rateKey, rateState]
	eps      *table[endpoint, endpointState]
	keys     kindSet
	width    int64
	k, floor float64
	minN     uint64
	alpha    float64
	minSigma float64
	w        float64
	// idBase[i] numbers the endpoints of shard i, under its lock.
	idBase [tableShards]uint64
}

func newRate(c RateConfig, maxKeys int, seed maphash.Seed) *rateDetector {
	width := durOr(c.Window, time.Minute)
	return &rateDetector{
		t: newTable[rateKey, rateState](c.maxKeys(maxKeys), 3*width,
			func(k rateKey) uint64 { return maphash.String(seed, k.client) },
			func(k rateKey) rateKey { k.client = cloneString(k.client); return k }),
		eps: newTable[endpoint, endpointState](intOr(c.MaxEndpoints, 10000), int64(7*24*time.Hour),
			func(k endpoint) uint64 { return maphash.String(seed, k.tmpl) ^ maphash.String(seed, k.route) },
			func(k endpoint) endpoint {
				return endpoint{cloneString(k.method), cloneString(k.route), cloneString(k.tmpl)}
			}),
		keys:     kindsOf(c.Keys, setOf(KindIP, KindAPIKey, KindSubject, KindDevice)),
		width:    width,
		k:        floatOr(c.K, 3),
		floor:    float64(intOr(c.Floor, 30)),
		minN:     uint64(intOr(c.MinSamples, 100)),
		alpha:    floatOr(c.Alpha, 0.02),
		minSigma: floatOr(c.MinSigma, 0.35),
		w:        c.weight(),
	}
}

func (d *rateDetector) sigma(e *endpointState) float64 {
	return max(math.Sqrt(max(e.v, 0)), d.minSigma)
}

func (d *rateDetector) observe(c *obsCtx, o *Observation, out []Finding) []Finding {
	ep := endpoint{method: o.Method, tmpl: o.Template}
	if o.Template == "" {
		ep.route = o.Route
	}
	// Baseline snapshot (and the endpoint's id).
	s := d.eps.lock(ep)
	e, fresh := d.eps.upsert(s, ep, c.now)
	if fresh {
		// Ids are never reused, so client state of an evicted endpoint
		// cannot leak into a new one. Each shard numbers its own ids in
		// its residue class.
		si := uint64(0)
		if len(d.eps.shards) > 1 {
			si = d.eps.hash(ep) & uint64(len(d.eps.shards)-1)
		}
		d.idBase[si]++
		*e = endpointState{id: d.idBase[si]*tableShards + si}
	}
	base := *e
	s.mu.Unlock()
	warm := base.samples >= d.minN
	sigma := d.sigma(&base)
	thr := base.mean + d.k*sigma

	var samples [numKinds]float64
	ns := 0
	b := bucketOf(c.now, d.width)
	for k := range numKinds {
		key := c.id.keys[k]
		if key == "" || !d.keys.has(k) {
			continue
		}
		scale := c.scale[k]
		rk := rateKey{client: key, ep: base.id}
		cs := d.t.lock(rk)
		st, fresh := d.t.upsert(cs, rk, c.now)
		if fresh {
			*st = rateState{n: b}
		}
		if b > st.n {
			// The client's previous window closed: its count is one
			// sample of the endpoint's per-client rate.
			if st.cur > 0 {
				samples[ns] = float64(st.cur) / scale
				ns++
			}
			if b == st.n+1 {
				st.prev = st.cur
			} else {
				st.prev = 0
			}
			st.cur, st.n = 0, b
		}
		if st.cur < math.MaxUint32 {
			st.cur++
		}
		frac := min(max(float64(c.now-st.n*d.width)/float64(d.width), 0), 1)
		r := float64(st.prev)*(1-frac) + float64(st.cur)
		eff := r / scale
		if warm && eff >= d.floor && math.Log1p(eff) > thr {
			z := (math.Log1p(eff) - base.mean) / sigma
			score := weigh(ramp(rateBase, rateStep, rateScore, 1+z-d.k), d.w)
			if st.emit.due(c.now, score, c.cooldown) {
				cs.mu.Unlock()
				out = append(out, newFinding(DetectorRate, "rate_anomaly", key, score, c.now,
					map[string]string{
						"endpoint": epName(ep), "requests": ftoa(r), "window": dtoa(time.Duration(d.width)),
						"actors": ftoa(scale), "baseline": ftoa(math.Expm1(base.mean)), "z": ftoa(z),
						"samples": itoa(int64(base.samples)),
					},
					map[string]string{
						"k": ftoa(d.k), "floor": ftoa(d.floor * scale), "rate_threshold": ftoa(math.Expm1(thr) * scale),
						"min_samples": itoa(int64(d.minN)),
					}))
				continue
			}
		}
		cs.mu.Unlock()
	}
	if ns == 0 {
		return out
	}
	s = d.eps.lock(ep)
	if e := d.eps.get(s, ep, c.now); e != nil && e.id == base.id {
		for _, x := range samples[:ns] {
			d.learn(e, math.Log1p(x))
		}
	}
	s.mu.Unlock()
	return out
}

// learn adds one log-space sample to the baseline (EWMA mean and
// variance; the first 1/Alpha samples weigh equally, like a plain mean).
func (d *rateDetector) learn(e *endpointState, x float64) {
	if e.samples >= d.minN {
		x = min(x, e.mean+d.k*d.sigma(e))
	}
	e.samples++
	a := max(d.alpha, 1/float64(e.samples))
	diff := x - e.mean
	e.mean += a * diff
	e.v = (1 - a) * (e.v + a*diff*diff)
}

func epName(ep endpoint) string {
	if ep.tmpl != "" {
		return ep.method + " " + ep.tmpl
	}
	return ep.method + " route:" + ep.route
}
