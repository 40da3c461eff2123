package detect

import (
	"hash/maphash"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
)

// ProbeConfig configures the probing detector.
//
// Clients of an API mostly get 2xx: they call operations the front end
// knows, with credentials they have. A prober gets 401 and 403 (trying
// endpoints and tokens), 404 (guessing paths: /.env, /admin, /api/v0) and
// hits operations the spec does not declare. Per key and sliding Window
// the detector counts requests and each of these outcomes, and flags an
// outcome that reaches its minimum count (scaled by NAT actors on ip and
// net keys) and is at least MinRatio of the key's requests. Ratios keep
// one busy but well-behaved client, or a NAT, from tripping it on counts
// alone; minimum counts keep one stale bookmark from tripping it on a
// ratio alone. Failed logins are the login detector's and are not
// counted here.
type ProbeConfig struct {
	Common        `yaml:",inline"`
	Window        string  `yaml:"window,omitempty"`          // default 10m
	MinAuthErrors int     `yaml:"min_auth_errors,omitempty"` // 401+403; default 10
	MinNotFound   int     `yaml:"min_not_found,omitempty"`   // 404; default 20
	MinUndeclared int     `yaml:"min_undeclared,omitempty"`  // default 10
	MinRatio      float64 `yaml:"min_ratio,omitempty"`       // default 0.5
}

// Validate reports invalid fields under path.
func (c *ProbeConfig) Validate(path string, errs *field.Errors) {
	c.Common.validate(path, errs)
	checkDuration(field.Join(path, "window"), c.Window, 10*time.Second, 24*time.Hour, errs)
	checkInt(field.Join(path, "min_auth_errors"), c.MinAuthErrors, 1, 1<<30, errs)
	checkInt(field.Join(path, "min_not_found"), c.MinNotFound, 1, 1<<30, errs)
	checkInt(field.Join(path, "min_undeclared"), c.MinUndeclared, 1, 1<<30, errs)
	checkFloat(field.Join(path, "min_ratio"), c.MinRatio, 0, 1, false, errs)
}

const (
	probeBase  = 50
	probeStep  = 10
	probeScore = 90
	nbProbe    = 4
)

// The probing outcomes, indexes of probeBucket.c.
const (
	pAuth = iota
	pNotFound
	pUndeclared
	nProbe
)

var probeRules = [nProbe]struct{ rule, count, min string }{
	{"auth_errors", "auth_errors", "min_auth_errors"},
	{"not_found", "not_found", "min_not_found"},
	{"undeclared", "undeclared", "min_undeclared"},
}

type probeBucket struct {
	n     int64
	total uint32
	c     [nProbe]uint32
}

type probeState struct {
	b    [nbProbe]probeBucket
	emit [nProbe]emitState
}

type probeDetector struct {
	t        *table[string, probeState]
	keys     kindSet
	width    int64
	min      [nProbe]float64
	minRatio float64
	w        float64
}

func newProbe(c ProbeConfig, maxKeys int, seed maphash.Seed) *probeDetector {
	win := durOr(c.Window, 10*time.Minute)
	return &probeDetector{
		t:     newTable[string, probeState](c.maxKeys(maxKeys), win, func(k string) uint64 { return maphash.String(seed, k) }, cloneString),
		keys:  kindsOf(c.Keys, setOf(KindIP, KindAPIKey, KindSubject, KindDevice)),
		width: max(win/nbProbe, 1),
		min: [nProbe]float64{
			float64(intOr(c.MinAuthErrors, 10)),
			float64(intOr(c.MinNotFound, 20)),
			float64(intOr(c.MinUndeclared, 10)),
		},
		minRatio: floatOr(c.MinRatio, 0.5),
		w:        c.weight(),
	}
}

func (d *probeDetector) observe(c *obsCtx, o *Observation, out []Finding) []Finding {
	var hit [nProbe]bool
	hit[pAuth] = (o.Status == 401 || o.Status == 403) && o.Login == nil
	hit[pNotFound] = o.Status == 404
	hit[pUndeclared] = o.Undeclared
	cur := bucketOf(c.now, d.width)
	for k := range numKinds {
		key := c.id.keys[k]
		if key == "" || !d.keys.has(k) {
			continue
		}
		s := d.t.lock(key)
		st, fresh := d.t.upsert(s, key, c.now)
		if fresh {
			*st = probeState{}
		}
		b := &st.b[slotOf(cur, nbProbe)]
		if b.n != cur {
			*b = probeBucket{n: cur}
		}
		b.total = min(b.total+1, 1<<31)
		for r, h := range hit {
			if h {
				b.c[r] = min(b.c[r]+1, 1<<31)
			}
		}
		// Only an outcome this request had can newly cross a threshold.
		var total float64
		var cnt [nProbe]float64
		for i := range st.b {
			if live(st.b[i].n, cur, nbProbe) {
				total += float64(st.b[i].total)
				for r := range cnt {
					cnt[r] += float64(st.b[i].c[r])
				}
			}
		}
		var fire [nProbe]int
		for r := range nProbe {
			thr := d.min[r] * c.scale[k]
			if hit[r] && cnt[r] >= thr && cnt[r]/total >= d.minRatio {
				score := weigh(ramp(probeBase, probeStep, probeScore, cnt[r]/thr), d.w)
				if st.emit[r].due(c.now, score, c.cooldown) {
					fire[r] = score
				}
			}
		}
		s.mu.Unlock()
		for r, score := range fire {
			if score == 0 {
				continue
			}
			pr := probeRules[r]
			out = append(out, newFinding(DetectorProbe, pr.rule, key, score, c.now,
				map[string]string{
					pr.count: ftoa(cnt[r]), "requests": ftoa(total), "ratio": ftoa(cnt[r] / total),
					"window": dtoa(time.Duration(d.width * nbProbe)), "actors": ftoa(c.scale[k]),
				},
				map[string]string{pr.min: ftoa(d.min[r] * c.scale[k]), "min_ratio": ftoa(d.minRatio)}))
		}
	}
	return out
}
