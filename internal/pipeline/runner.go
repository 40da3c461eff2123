package pipeline

import (
	"context"
	"net/http"
	"slices"
	"time"
)

// Entry is a built check with its phase and shared options.
type Entry struct {
	Check   Check
	Phase   Phase
	Mode    Mode // ModeInherit takes the pipeline's global mode
	OnError OnError
}

// Observer receives each check's latency and outcome (metrics). It must be
// cheap and safe for concurrent use.
type Observer interface {
	ObserveCheck(check string, d time.Duration, action Action, err error)
}

type entry struct {
	check    Check
	response ResponseCheck // nil when the check does not judge responses
	monitor  bool
	failOpen bool
}

// Pipeline runs checks in phase order. It is immutable and safe for
// concurrent use; a config reload builds a new one.
type Pipeline struct {
	entries  []entry
	response []entry
	obs      Observer
}

// New orders entries by phase (stable: same-phase checks keep their order)
// and drops checks whose mode is off.
func New(entries []Entry, global Mode, obs Observer) *Pipeline {
	sorted := slices.Clone(entries)
	slices.SortStableFunc(sorted, func(a, b Entry) int { return int(a.Phase) - int(b.Phase) })
	p := &Pipeline{obs: obs}
	for _, e := range sorted {
		mode := e.Mode
		if mode == ModeInherit {
			mode = global
		}
		if mode == ModeOff {
			continue
		}
		en := entry{check: e.Check, monitor: mode == ModeMonitor, failOpen: e.OnError == OnErrorAllow}
		p.entries = append(p.entries, en)
		if rc, ok := e.Check.(ResponseCheck); ok {
			en.response = rc
			p.response = append(p.response, en)
		}
	}
	return p
}

// Len is the number of active request checks.
func (p *Pipeline) Len() int { return len(p.entries) }

// HasResponseChecks reports whether any check judges responses.
func (p *Pipeline) HasResponseChecks() bool { return len(p.response) > 0 }

// Names lists the active checks in run order.
func (p *Pipeline) Names() []string {
	names := make([]string, len(p.entries))
	for i, e := range p.entries {
		names[i] = e.check.Name()
	}
	return names
}

// ErrorVerdict is what a failed-closed check that could not decide returns.
var ErrorVerdict = Verdict{Action: Deny, Status: http.StatusServiceUnavailable, Reason: "check-error", Detail: "the request could not be checked; try again later"}

// Run runs the request checks. It returns the first enforced deny or
// challenge and true, or the zero verdict and false when the request may
// pass. Every non-allow verdict is appended to req.Verdicts.
func (p *Pipeline) Run(ctx context.Context, req *Request) (Verdict, bool) {
	for i := range p.entries {
		e := &p.entries[i]
		start := time.Now()
		v, err := e.check.Check(ctx, req)
		if v, stop := p.judge(e, req, v, err, time.Since(start)); stop {
			return v, true
		}
	}
	return Verdict{}, false
}

// RunResponse runs the response checks against the upstream response.
func (p *Pipeline) RunResponse(ctx context.Context, req *Request, resp *http.Response) (Verdict, bool) {
	for i := range p.response {
		e := &p.response[i]
		start := time.Now()
		v, err := e.response.CheckResponse(ctx, req, resp)
		if v, stop := p.judge(e, req, v, err, time.Since(start)); stop {
			return v, true
		}
	}
	return Verdict{}, false
}

func (p *Pipeline) judge(e *entry, req *Request, v Verdict, err error, d time.Duration) (Verdict, bool) {
	name := e.check.Name()
	// A check that returns an error with a decision of its own (a
	// rate-limit policy that fails closed) has already applied its
	// policy; on_error decides only for checks that could not decide.
	if err != nil && v.Action == Allow {
		if !e.failOpen {
			v = ErrorVerdict
		}
	}
	if p.obs != nil {
		p.obs.ObserveCheck(name, d, v.Action, err)
	}
	if v.Action == Allow && err == nil {
		return v, false
	}
	enforced := (v.Action == Deny || v.Action == Challenge) && !e.monitor && !v.MonitorOnly
	req.Verdicts = append(req.Verdicts, Recorded{Check: name, Verdict: v, Enforced: enforced, Err: err, Latency: d})
	if enforced {
		if v.Status == 0 {
			v.Status = http.StatusForbidden
		}
		return v, true
	}
	return v, false
}
