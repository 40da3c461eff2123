package detect

import (
	"hash/maphash"
	"slices"
	"strings"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
)

// EnumConfig configures the enumeration (BOLA probing) detector.
//
// Per key, template and id parameter, the detector keeps the last 32 ids
// requested (with time and outcome) and looks at those within Window:
//
//   - numeric ids: at least MinDistinct distinct values, and either a
//     dense walk or failures (at least MinFailureRatio of the requests got
//     401/403/404/410). A walk is dense when at least MinAdjacent of the
//     gaps between the sorted distinct ids are at most MaxStep (a
//     sequential walk, in any order), or when the distinct ids fill at
//     least MinDensity of the range they span (a shuffled walk over a
//     range, whose early samples are not yet adjacent). Density adds 40,
//     failures 60, capped at 95: a dense walk over objects the client may
//     read is a crawl (a sync job, a person stepping through a
//     catalogue), which the scraping detector also sees, so it stays
//     below the challenge level alone; a dense walk that is refused is the
//     BOLA probe.
//   - opaque ids (UUIDs, slugs: anything not all digits): at least
//     MinDistinctOpaque distinct values score 40, plus 60 with failures,
//     times OpaqueWeight (default 0.5): opaque ids cannot be guessed, so
//     walking them means a list, a weaker sign.
//
// A person opens a handful of their own objects, scattered and allowed.
type EnumConfig struct {
	Common `yaml:",inline"`
	Window string `yaml:"window,omitempty"` // default 10m
	// Templates limits the detector to these templates (default: every
	// template with parameters).
	Templates []string `yaml:"templates,omitempty"`
	// Params limits the path parameters that hold ids (default: all).
	Params []string `yaml:"params,omitempty"`
	// QueryParams are query parameters that hold ids (default none).
	QueryParams       []string `yaml:"query_params,omitempty"`
	MinDistinct       int      `yaml:"min_distinct,omitempty"`        // default 12, at most 32
	MaxStep           int      `yaml:"max_step,omitempty"`            // default 2
	MinAdjacent       float64  `yaml:"min_adjacent,omitempty"`        // default 0.7
	MinDensity        float64  `yaml:"min_density,omitempty"`         // default 0.15
	MinFailureRatio   float64  `yaml:"min_failure_ratio,omitempty"`   // default 0.5
	MinDistinctOpaque int      `yaml:"min_distinct_opaque,omitempty"` // default 20, at most 32
	OpaqueWeight      float64  `yaml:"opaque_weight,omitempty"`       // default 0.5
}

// Validate reports invalid fields under path.
func (c *EnumConfig) Validate(path string, errs *field.Errors) {
	c.Common.validate(path, errs)
	checkDuration(field.Join(path, "window"), c.Window, 10*time.Second, 24*time.Hour, errs)
	for i, t := range c.Templates {
		if !strings.HasPrefix(t, "/") {
			errs.Add(field.Index(field.Join(path, "templates"), i), "must start with /: %q", t)
		}
	}
	for _, l := range []struct {
		name string
		v    []string
	}{{"params", c.Params}, {"query_params", c.QueryParams}} {
		for i, p := range l.v {
			if p == "" {
				errs.Add(field.Index(field.Join(path, l.name), i), "must not be empty")
			}
		}
	}
	checkInt(field.Join(path, "min_distinct"), c.MinDistinct, 2, enumRing, errs)
	checkInt(field.Join(path, "max_step"), c.MaxStep, 1, 1<<20, errs)
	checkFloat(field.Join(path, "min_adjacent"), c.MinAdjacent, 0, 1, false, errs)
	checkFloat(field.Join(path, "min_density"), c.MinDensity, 0, 1, false, errs)
	checkFloat(field.Join(path, "min_failure_ratio"), c.MinFailureRatio, 0, 1, false, errs)
	checkInt(field.Join(path, "min_distinct_opaque"), c.MinDistinctOpaque, 2, enumRing, errs)
	checkFloat(field.Join(path, "opaque_weight"), c.OpaqueWeight, 0, 1, false, errs)
}

const (
	enumRing    = 32
	enumDense   = 40
	enumFailing = 60
	enumScore   = 95
	maxIDParams = 4 // ids looked at per observation
)

type enumKey struct {
	client, tmpl, param string
}

type enumEntry struct {
	id    uint64 // the number, or a hash of an opaque id
	sec   uint32 // unix seconds, modulo 2^32
	num   bool
	fail  bool
	valid bool
}

type enumState struct {
	ring [enumRing]enumEntry
	i    uint8
	emit [2]emitState // numeric, opaque
}

type enumDetector struct {
	t           *table[enumKey, enumState]
	keys        kindSet
	window      uint32 // seconds
	templates   map[string]bool
	params      map[string]bool
	query       []string
	minNum      float64
	maxStep     uint64
	minAdj      float64
	minDensity  float64
	minFail     float64
	minOpq      float64
	opaqueW     float64
	seed        maphash.Seed
	w           float64
	windowLabel string
}

func newEnum(c EnumConfig, maxKeys int, seed maphash.Seed) *enumDetector {
	win := durOr(c.Window, 10*time.Minute)
	d := &enumDetector{
		t: newTable[enumKey, enumState](c.maxKeys(maxKeys), win, func(k enumKey) uint64 { return maphash.String(seed, k.client) },
			func(k enumKey) enumKey {
				return enumKey{cloneString(k.client), cloneString(k.tmpl), cloneString(k.param)}
			}),
		keys:        kindsOf(c.Keys, setOf(KindIP, KindAPIKey, KindSubject, KindDevice)),
		window:      uint32(min(max(win/int64(time.Second), 1), 1<<31)),
		query:       slices.Clone(c.QueryParams),
		minNum:      float64(min(intOr(c.MinDistinct, 12), enumRing)),
		maxStep:     uint64(intOr(c.MaxStep, 2)),
		minAdj:      floatOr(c.MinAdjacent, 0.7),
		minDensity:  floatOr(c.MinDensity, 0.15),
		minFail:     floatOr(c.MinFailureRatio, 0.5),
		minOpq:      float64(min(intOr(c.MinDistinctOpaque, 20), enumRing)),
		opaqueW:     floatOr(c.OpaqueWeight, 0.5),
		seed:        seed,
		w:           c.weight(),
		windowLabel: dtoa(time.Duration(win)),
	}
	if len(c.Templates) > 0 {
		d.templates = map[string]bool{}
		for _, t := range c.Templates {
			d.templates[t] = true
		}
	}
	if len(c.Params) > 0 {
		d.params = map[string]bool{}
		for _, p := range c.Params {
			d.params[p] = true
		}
	}
	return d
}

// parseID reads a decimal object id: 1 to 18 ASCII digits (leading zeros
// allowed). Anything else (UUIDs, slugs, signs, spaces) is opaque.
func parseID(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func isFailure(status int) bool {
	return status == 401 || status == 403 || status == 404 || status == 410
}

type idParam struct{ name, value string }

func (d *enumDetector) observe(c *obsCtx, o *Observation, out []Finding) []Finding {
	if o.Template == "" || d.templates != nil && !d.templates[o.Template] {
		return out
	}
	var ids [maxIDParams]idParam
	n := 0
	for name, v := range o.PathParams {
		if n == maxIDParams {
			break
		}
		if v != "" && (d.params == nil || d.params[name]) {
			ids[n] = idParam{name, v}
			n++
		}
	}
	for _, q := range d.query {
		if n == maxIDParams {
			break
		}
		if v := o.Query.Get(q); v != "" {
			ids[n] = idParam{"?" + q, v}
			n++
		}
	}
	if n == 0 {
		return out
	}
	sec := uint32(uint64(c.now/int64(time.Second)) & 0xffffffff)
	fail := isFailure(o.Status)
	for _, p := range ids[:n] {
		e := enumEntry{sec: sec, fail: fail, valid: true}
		if v, ok := parseID(p.value); ok {
			e.id, e.num = v, true
		} else {
			e.id = maphash.String(d.seed, p.value)
		}
		for k := range numKinds {
			key := c.id.keys[k]
			if key == "" || !d.keys.has(k) {
				continue
			}
			out = d.account(c, k, enumKey{key, o.Template, p.name}, e, out)
		}
	}
	return out
}

// walk summarises the live ring of one key.
type walk struct {
	total, fails        int
	numDistinct, adj    int
	opqDistinct         int
	minID, maxID        uint64
	adjRatio, failRatio float64
	density             float64
}

func (d *enumDetector) summarise(st *enumState, sec uint32) walk {
	var nums, opq [enumRing]uint64
	var w walk
	nn, no := 0, 0
	for i := range st.ring {
		e := &st.ring[i]
		if !e.valid || sec-e.sec > d.window {
			continue
		}
		w.total++
		if e.fail {
			w.fails++
		}
		if e.num {
			nums[nn] = e.id
			nn++
		} else {
			opq[no] = e.id
			no++
		}
	}
	if w.total > 0 {
		w.failRatio = float64(w.fails) / float64(w.total)
	}
	if nn > 0 {
		ns := nums[:nn]
		slices.Sort(ns)
		w.minID, w.maxID = ns[0], ns[nn-1]
		w.numDistinct = 1
		for i := 1; i < nn; i++ {
			if ns[i] == ns[i-1] {
				continue
			}
			w.numDistinct++
			if ns[i]-ns[i-1] <= d.maxStep {
				w.adj++
			}
		}
		if w.numDistinct > 1 {
			w.adjRatio = float64(w.adj) / float64(w.numDistinct-1)
		}
		w.density = float64(w.numDistinct) / (float64(w.maxID-w.minID) + 1)
	}
	if no > 0 {
		os := opq[:no]
		slices.Sort(os)
		w.opqDistinct = 1
		for i := 1; i < no; i++ {
			if os[i] != os[i-1] {
				w.opqDistinct++
			}
		}
	}
	return w
}

func (d *enumDetector) account(c *obsCtx, k Kind, ek enumKey, e enumEntry, out []Finding) []Finding {
	s := d.t.lock(ek)
	st, fresh := d.t.upsert(s, ek, c.now)
	if fresh {
		*st = enumState{}
	}
	st.ring[st.i%enumRing] = e
	st.i = (st.i + 1) % enumRing
	minNum := min(d.minNum*c.scale[k], enumRing)
	minOpq := min(d.minOpq*c.scale[k], enumRing)
	w := d.summarise(st, e.sec)
	score, rule, ri := 0, "", 0
	if e.num {
		if float64(w.numDistinct) >= minNum {
			pts := 0
			if w.adjRatio >= d.minAdj || w.density >= d.minDensity {
				pts += enumDense
			}
			if w.failRatio >= d.minFail {
				pts += enumFailing
			}
			score, rule, ri = weigh(float64(min(pts, enumScore)), d.w), "numeric_ids", 0
		}
	} else {
		if float64(w.opqDistinct) >= minOpq {
			pts := enumDense
			if w.failRatio >= d.minFail {
				pts += enumFailing
			}
			score, rule, ri = weigh(float64(min(pts, enumScore))*d.opaqueW, d.w), "opaque_ids", 1
		}
	}
	due := score > 0 && st.emit[ri].due(c.now, score, c.cooldown)
	s.mu.Unlock()
	if !due {
		return out
	}
	ev := map[string]string{
		"template": ek.tmpl, "param": ek.param, "requests": itoa(int64(w.total)),
		"failure_ratio": ftoa(w.failRatio), "window": d.windowLabel, "actors": ftoa(c.scale[k]),
	}
	th := map[string]string{"min_failure_ratio": ftoa(d.minFail)}
	if e.num {
		ev["distinct_ids"] = itoa(int64(w.numDistinct))
		ev["adjacent_ratio"] = ftoa(w.adjRatio)
		ev["density"] = ftoa(w.density)
		ev["id_range"] = itoa(int64(w.minID)) + "-" + itoa(int64(w.maxID))
		th["min_distinct"] = ftoa(minNum)
		th["max_step"] = itoa(int64(d.maxStep))
		th["min_adjacent"] = ftoa(d.minAdj)
		th["min_density"] = ftoa(d.minDensity)
	} else {
		ev["distinct_ids"] = itoa(int64(w.opqDistinct))
		th["min_distinct_opaque"] = ftoa(minOpq)
		th["opaque_weight"] = ftoa(d.opaqueW)
	}
	return append(out, newFinding(DetectorEnum, rule, ek.client, score, c.now, ev, th))
}
