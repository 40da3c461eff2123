package detect

import (
	"hash/maphash"
	"slices"
	"strings"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
)

// ScrapeConfig configures the scraping detector.
//
// A scraper fetches each resource once and fetches many; a person comes
// back to the same pages (the cart, the listing, the product they are
// deciding on) and fetches few. Per key and sliding Window the detector
// counts requests to the scoped operations (Methods, and Templates when
// set) and estimates the distinct paths among them (a 512-bit
// linear-counting map per bucket). It flags at least MinRequests requests
// (scaled by NAT actors on ip and net keys) with a unique ratio of at
// least MinUniqueRatio. The score starts at 50 and rises by 10 per
// further multiple of the volume threshold, up to 90.
type ScrapeConfig struct {
	Common    `yaml:",inline"`
	Window    string   `yaml:"window,omitempty"`    // default 10m
	Methods   []string `yaml:"methods,omitempty"`   // default [GET]
	Templates []string `yaml:"templates,omitempty"` // default: every template
	// MinRequests is the volume threshold per window (default 100).
	MinRequests    int     `yaml:"min_requests,omitempty"`
	MinUniqueRatio float64 `yaml:"min_unique_ratio,omitempty"` // default 0.8
}

// Validate reports invalid fields under path.
func (c *ScrapeConfig) Validate(path string, errs *field.Errors) {
	c.Common.validate(path, errs)
	checkDuration(field.Join(path, "window"), c.Window, 10*time.Second, 24*time.Hour, errs)
	for i, m := range c.Methods {
		if !field.ValidMethod(m) {
			errs.Add(field.Index(field.Join(path, "methods"), i), "invalid method %q", m)
		}
	}
	for i, t := range c.Templates {
		if !strings.HasPrefix(t, "/") {
			errs.Add(field.Index(field.Join(path, "templates"), i), "must start with /: %q", t)
		}
	}
	checkInt(field.Join(path, "min_requests"), c.MinRequests, 2, 1<<30, errs)
	checkFloat(field.Join(path, "min_unique_ratio"), c.MinUniqueRatio, 0, 1, false, errs)
}

const (
	scrapeBase  = 50
	scrapeStep  = 10
	scrapeScore = 90
	nbScrape    = 4
)

type scrapeBucket struct {
	n     int64
	reqs  uint32
	paths bits512
}

type scrapeState struct {
	b    [nbScrape]scrapeBucket
	emit emitState
}

type scrapeDetector struct {
	t         *table[string, scrapeState]
	keys      kindSet
	width     int64
	methods   []string
	templates map[string]bool
	minReqs   float64
	minRatio  float64
	seed      maphash.Seed
	w         float64
}

func newScrape(c ScrapeConfig, maxKeys int, seed maphash.Seed) *scrapeDetector {
	win := durOr(c.Window, 10*time.Minute)
	d := &scrapeDetector{
		t:        newTable[string, scrapeState](c.maxKeys(maxKeys), win, func(k string) uint64 { return maphash.String(seed, k) }, cloneString),
		keys:     kindsOf(c.Keys, setOf(KindIP, KindAPIKey, KindSubject, KindDevice)),
		width:    max(win/nbScrape, 1),
		methods:  slices.Clone(c.Methods),
		minReqs:  float64(intOr(c.MinRequests, 100)),
		minRatio: floatOr(c.MinUniqueRatio, 0.8),
		seed:     seed,
		w:        c.weight(),
	}
	if len(d.methods) == 0 {
		d.methods = []string{"GET"}
	}
	if len(c.Templates) > 0 {
		d.templates = make(map[string]bool, len(c.Templates))
		for _, t := range c.Templates {
			d.templates[t] = true
		}
	}
	return d
}

func (d *scrapeDetector) observe(c *obsCtx, o *Observation, out []Finding) []Finding {
	if !slices.Contains(d.methods, o.Method) || d.templates != nil && !d.templates[o.Template] {
		return out
	}
	h := maphash.String(d.seed, o.Path)
	cur := bucketOf(c.now, d.width)
	for k := range numKinds {
		key := c.id.keys[k]
		if key == "" || !d.keys.has(k) {
			continue
		}
		s := d.t.lock(key)
		st, fresh := d.t.upsert(s, key, c.now)
		if fresh {
			*st = scrapeState{}
		}
		b := &st.b[slotOf(cur, nbScrape)]
		if b.n != cur {
			*b = scrapeBucket{n: cur}
		}
		if b.reqs < 1<<31 {
			b.reqs++
		}
		b.paths.set(h)
		var reqs float64
		var all bits512
		for i := range st.b {
			if live(st.b[i].n, cur, nbScrape) {
				reqs += float64(st.b[i].reqs)
				all.or(&st.b[i].paths)
			}
		}
		thr := d.minReqs * c.scale[k]
		if reqs < thr {
			s.mu.Unlock()
			continue
		}
		distinct := min(linearCount(all.ones(), 512), reqs)
		ratio := distinct / reqs
		if ratio < d.minRatio {
			s.mu.Unlock()
			continue
		}
		score := weigh(ramp(scrapeBase, scrapeStep, scrapeScore, reqs/thr), d.w)
		due := st.emit.due(c.now, score, c.cooldown)
		s.mu.Unlock()
		if due {
			out = append(out, newFinding(DetectorScrape, "unique_resources", key, score, c.now,
				map[string]string{
					"requests": ftoa(reqs), "distinct_paths": ftoa(distinct), "unique_ratio": ftoa(ratio),
					"window": dtoa(time.Duration(d.width * nbScrape)), "actors": ftoa(c.scale[k]),
				},
				map[string]string{"min_requests": ftoa(thr), "min_unique_ratio": ftoa(d.minRatio)}))
		}
	}
	return out
}
