package detect

import (
	"hash/maphash"
	"strings"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
)

// FlowConfig configures business-flow rules: steps that must come before
// a guarded step, in order, and recently.
//
// Steps are "METHOD /template" (matched against the observation's
// template, else its path) or "login" (a successful login observation);
// an After entry may list alternatives, "login|POST /api/auth/step-up".
// A step counts when its response was not an error (status < 400, or
// unknown). Steps are recorded under the request's session, subject (for
// a login also the username, so the session the login creates finds it
// through its subject) and IP. A guarded step looks each required step up
// under its session, falling back to its subject, then its IP: the most
// specific record wins, and a cart filled before logging in (under the
// anonymous session and the IP) still counts for the checkout after it.
// The IP fallback means that behind a NAT another user's step can satisfy
// a rule: flows err towards missing an attack rather than flagging a
// customer.
type FlowConfig struct {
	Enabled *bool      `yaml:"enabled,omitempty"`
	MaxKeys int        `yaml:"max_keys,omitempty"`
	Rules   []FlowRule `yaml:"rules,omitempty"`
}

// FlowRule requires After, in that order, within Within before Step.
type FlowRule struct {
	Name  string   `yaml:"name"`
	Step  string   `yaml:"step"`  // e.g. "POST /api/checkout"
	After []string `yaml:"after"` // e.g. ["POST /api/cart"], ["login|POST /api/auth/step-up"]
	// Within bounds the age of every required step (default 30m).
	Within string `yaml:"within,omitempty"`
	Score  int    `yaml:"score,omitempty"` // default 60
}

// LoginStep is the After entry that means a successful login.
const LoginStep = "login"

const (
	defaultFlowScore  = 60
	defaultFlowWithin = 30 * time.Minute
	maxFlowSteps      = 64
	maxAfter          = 16
)

// Validate reports invalid fields under path.
func (c *FlowConfig) Validate(path string, errs *field.Errors) {
	checkInt(field.Join(path, "max_keys"), c.MaxKeys, 1, maxMaxKeys, errs)
	steps := map[string]bool{}
	names := map[string]bool{}
	rp := field.Join(path, "rules")
	for i, r := range c.Rules {
		at := field.Index(rp, i)
		switch {
		case !field.ValidName(r.Name):
			errs.Add(field.Join(at, "name"), "must be 1-64 letters, digits, '-' or '_'")
		case names[r.Name]:
			errs.Add(field.Join(at, "name"), "duplicate rule %q", r.Name)
		}
		names[r.Name] = true
		if _, ok := parseOp(r.Step); !ok {
			errs.Add(field.Join(at, "step"), "want \"METHOD /path/template\", got %q", r.Step)
		}
		steps[normOp(r.Step)] = true
		if len(r.After) == 0 || len(r.After) > maxAfter {
			errs.Add(field.Join(at, "after"), "between 1 and %d earlier steps are required", maxAfter)
		}
		for j, alts := range r.After {
			for _, a := range strings.Split(alts, "|") {
				if _, ok := parseOp(a); !ok && strings.TrimSpace(a) != LoginStep {
					errs.Add(field.Index(field.Join(at, "after"), j), "want \"METHOD /path/template\" or %q (alternatives separated by |), got %q", LoginStep, a)
				}
				steps[normOp(a)] = true
			}
		}
		checkDuration(field.Join(at, "within"), r.Within, time.Second, 7*24*time.Hour, errs)
		checkInt(field.Join(at, "score"), r.Score, 1, 100, errs)
	}
	if len(steps) > maxFlowSteps {
		errs.Add(rp, "at most %d distinct steps", maxFlowSteps)
	}
}

func (c *FlowConfig) on() bool { return c.Enabled == nil || *c.Enabled }

func normOp(s string) string {
	if p, ok := parseOp(s); ok {
		return p.method + " " + p.path
	}
	return strings.TrimSpace(s)
}

type flowRule struct {
	name   string
	step   int
	after  [][]int // per required step, its alternatives
	within int64
	score  int
}

// flowKey is a session, subject or IP (kind 0, 1, 2).
type flowKey struct {
	kind uint8
	v    string
}

type flowState struct {
	t    []int64 // per step: unix ns of its last success; 0 never
	emit []emitState
}

type flowDetector struct {
	t       *table[flowKey, flowState]
	steps   map[op]int
	names   []string // step index -> name
	login   int      // step index of "login", -1
	rules   []flowRule
	guarded map[int][]int // step -> rules it guards
}

func newFlow(c FlowConfig, maxKeys int, seed maphash.Seed) *flowDetector {
	d := &flowDetector{steps: map[op]int{}, login: -1, guarded: map[int][]int{}}
	idx := func(s string) int {
		if s = strings.TrimSpace(s); s == LoginStep {
			if d.login < 0 {
				d.login = len(d.names)
				d.names = append(d.names, LoginStep)
			}
			return d.login
		}
		p, _ := parseOp(s)
		if i, ok := d.steps[p]; ok {
			return i
		}
		d.steps[p] = len(d.names)
		d.names = append(d.names, p.method+" "+p.path)
		return d.steps[p]
	}
	var maxWithin int64
	for _, r := range c.Rules {
		fr := flowRule{name: r.Name, step: idx(r.Step), within: durOr(r.Within, defaultFlowWithin), score: intOr(r.Score, defaultFlowScore)}
		for _, alts := range r.After[:min(len(r.After), maxAfter)] {
			var ids []int
			for _, a := range strings.Split(alts, "|") {
				ids = append(ids, idx(a))
			}
			fr.after = append(fr.after, ids)
		}
		d.guarded[fr.step] = append(d.guarded[fr.step], len(d.rules))
		d.rules = append(d.rules, fr)
		maxWithin = max(maxWithin, fr.within)
	}
	// Twice the longest Within, so a step that is too old is reported as
	// stale rather than missing.
	d.t = newTable[flowKey, flowState](intOr(c.MaxKeys, maxKeys), 2*maxWithin,
		func(k flowKey) uint64 { return maphash.String(seed, k.v) },
		func(k flowKey) flowKey { k.v = cloneString(k.v); return k })
	return d
}

func (d *flowDetector) observe(c *obsCtx, o *Observation, out []Finding) []Finding {
	step, ok := d.steps[op{o.Method, o.Template}]
	if !ok && o.Path != o.Template {
		step, ok = d.steps[op{o.Method, o.Path}]
	}
	isLogin := d.login >= 0 && o.Login != nil && o.Login.Success
	if !ok && !isLogin {
		return out
	}
	// Session, subject, IP: most specific first.
	var keys [3]flowKey
	n := 0
	if o.Session != "" {
		keys[n] = flowKey{0, clip(o.Session)}
		n++
	}
	if o.Subject != "" {
		keys[n] = flowKey{1, clip(o.Subject)}
		n++
	}
	if ip := c.id.keys[KindIP]; ip != "" {
		keys[n] = flowKey{2, ip}
		n++
	}
	if n == 0 {
		return out
	}
	if ok {
		for _, ri := range d.guarded[step] {
			out = d.check(c, &d.rules[ri], ri, keys[:n], out)
		}
	}
	if o.Status >= 400 {
		return out
	}
	if ok {
		d.record(c, keys[:n], step)
	}
	if isLogin {
		d.record(c, keys[:n], d.login)
		if u := clip(strings.TrimSpace(o.Login.Username)); u != "" && u != o.Subject {
			d.record(c, []flowKey{{1, u}}, d.login)
		}
	}
	return out
}

func (d *flowDetector) state(fk flowKey, now int64) (*shard[flowKey, flowState], *flowState) {
	s := d.t.lock(fk)
	st, fresh := d.t.upsert(s, fk, now)
	if fresh {
		t, e := st.t, st.emit
		if cap(t) < len(d.names) {
			t = make([]int64, len(d.names))
		}
		if cap(e) < len(d.rules) {
			e = make([]emitState, len(d.rules))
		}
		t, e = t[:len(d.names)], e[:len(d.rules)]
		clear(t)
		clear(e)
		*st = flowState{t: t, emit: e}
	}
	return s, st
}

func (d *flowDetector) record(c *obsCtx, keys []flowKey, step int) {
	for _, fk := range keys {
		s, st := d.state(fk, c.now)
		st.t[step] = max(st.t[step], c.now)
		s.mu.Unlock()
	}
}

func (d *flowDetector) check(c *obsCtx, r *flowRule, ri int, look []flowKey, out []Finding) []Finding {
	if len(look) == 0 {
		return out
	}
	// Per required step, the first key (most specific) that has it, and
	// the latest of its alternatives there.
	var times [maxAfter]int64
	for _, fk := range look {
		s := d.t.lock(fk)
		if st := d.t.get(s, fk, c.now); st != nil {
			for j, alts := range r.after {
				if times[j] != 0 {
					continue
				}
				for _, a := range alts {
					times[j] = max(times[j], st.t[a])
				}
			}
		}
		s.mu.Unlock()
	}
	violation, which := "", -1
	for j := range r.after {
		t := times[j]
		switch {
		case t == 0 || t > c.now:
			violation, which = "missing_step", j
		case c.now-t > r.within:
			violation, which = "stale_step", j
		case j > 0 && t < times[j-1]:
			violation, which = "out_of_order", j
		}
		if which >= 0 {
			break
		}
	}
	if which < 0 {
		return out
	}
	// Cooldown per rule, on the most specific key.
	s, st := d.state(look[0], c.now)
	due := st.emit[ri].due(c.now, r.score, c.cooldown)
	s.mu.Unlock()
	if !due {
		return out
	}
	key := c.id.keys[KindSubject]
	for _, k := range [...]Kind{KindDevice, KindAPIKey, KindIP} {
		if key != "" {
			break
		}
		key = c.id.keys[k]
	}
	if key == "" {
		return out
	}
	ev := map[string]string{
		"step": d.names[r.step], "violation": violation, "required": stepNames(d, r.after[which], "|"),
		"flow_key": [...]string{"session", "subject", "ip"}[look[0].kind],
	}
	if t := times[which]; t > 0 && t <= c.now {
		ev["required_age"] = dtoa(time.Duration(c.now - t).Round(time.Second))
	}
	if violation == "out_of_order" {
		ev["previous"] = stepNames(d, r.after[which-1], "|")
	}
	after := make([]string, len(r.after))
	for j, alts := range r.after {
		after[j] = stepNames(d, alts, "|")
	}
	return append(out, newFinding(DetectorFlow, r.name, key, r.score, c.now, ev,
		map[string]string{"within": dtoa(time.Duration(r.within)), "after": strings.Join(after, ", ")}))
}

func stepNames(d *flowDetector, idx []int, sep string) string {
	var b strings.Builder
	for i, j := range idx {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(d.names[j])
	}
	return b.String()
}
