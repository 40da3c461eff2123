package pipeline

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"
)

// fake is a check that returns a fixed verdict and records that it ran.
type fake struct {
	name string
	v    Verdict
	err  error
	ran  *[]string
}

func (f fake) Name() string { return f.name }

func (f fake) Check(context.Context, *Request) (Verdict, error) {
	*f.ran = append(*f.ran, f.name)
	return f.v, f.err
}

type respFake struct{ fake }

func (f respFake) CheckResponse(context.Context, *Request, *http.Response) (Verdict, error) {
	return f.v, f.err
}

var (
	deny  = Verdict{Action: Deny, Status: 403, Reason: "no"}
	flag  = Verdict{Action: Flag, Score: 40, Reason: "odd"}
	chall = Verdict{Action: Challenge, Status: 401, Reason: "prove-it"}
)

func TestRun(t *testing.T) {
	t.Parallel()
	boom := errors.New("backend down")
	cases := []struct {
		desc        string
		global      Mode
		entries     func(ran *[]string) []Entry
		wantRan     []string
		wantDenied  bool
		wantReason  string
		wantStatus  int
		wantRecords []string // check:action:enforced
	}{
		{
			desc:   "phase order, not config order",
			global: ModeEnforce,
			entries: func(ran *[]string) []Entry {
				return []Entry{
					{Check: fake{name: "inspect", ran: ran}, Phase: PhaseInspect},
					{Check: fake{name: "authn", ran: ran}, Phase: PhaseAuthenticate},
					{Check: fake{name: "decisions", ran: ran}, Phase: PhaseDecisions},
				}
			},
			wantRan: []string{"decisions", "authn", "inspect"},
		},
		{
			desc:   "first enforced deny short-circuits",
			global: ModeEnforce,
			entries: func(ran *[]string) []Entry {
				return []Entry{
					{Check: fake{name: "a", ran: ran, v: flag}, Phase: PhaseIdentify},
					{Check: fake{name: "b", ran: ran, v: deny}, Phase: PhaseDecisions},
					{Check: fake{name: "c", ran: ran}, Phase: PhaseInspect},
				}
			},
			wantRan: []string{"a", "b"}, wantDenied: true, wantReason: "no", wantStatus: 403,
			wantRecords: []string{"a:flag:false", "b:deny:true"},
		},
		{
			desc:   "global monitor turns deny into would-deny",
			global: ModeMonitor,
			entries: func(ran *[]string) []Entry {
				return []Entry{{Check: fake{name: "a", ran: ran, v: deny}}, {Check: fake{name: "b", ran: ran}}}
			},
			wantRan: []string{"a", "b"}, wantRecords: []string{"a:deny:false"},
		},
		{
			desc:   "per-check enforce overrides global monitor",
			global: ModeMonitor,
			entries: func(ran *[]string) []Entry {
				return []Entry{{Check: fake{name: "a", ran: ran, v: deny}, Mode: ModeEnforce}}
			},
			wantRan: []string{"a"}, wantDenied: true, wantReason: "no", wantStatus: 403, wantRecords: []string{"a:deny:true"},
		},
		{
			desc:   "off skips the check",
			global: ModeEnforce,
			entries: func(ran *[]string) []Entry {
				return []Entry{{Check: fake{name: "a", ran: ran, v: deny}, Mode: ModeOff}}
			},
		},
		{
			desc:   "error fails closed by default",
			global: ModeEnforce,
			entries: func(ran *[]string) []Entry {
				return []Entry{{Check: fake{name: "a", ran: ran, err: boom}}}
			},
			wantRan: []string{"a"}, wantDenied: true, wantReason: "check-error", wantStatus: 503, wantRecords: []string{"a:deny:true"},
		},
		{
			desc:   "error with on_error allow passes and is recorded",
			global: ModeEnforce,
			entries: func(ran *[]string) []Entry {
				return []Entry{{Check: fake{name: "a", ran: ran, err: boom}, OnError: OnErrorAllow}, {Check: fake{name: "b", ran: ran}}}
			},
			wantRan: []string{"a", "b"}, wantRecords: []string{"a:allow:false"},
		},
		{
			desc:   "an error with the check's own decision keeps the decision",
			global: ModeEnforce,
			entries: func(ran *[]string) []Entry {
				return []Entry{{Check: fake{name: "a", ran: ran, err: boom, v: Verdict{Action: Deny, Status: 503, Reason: "own-policy"}}, OnError: OnErrorAllow}}
			},
			wantRan: []string{"a"}, wantDenied: true, wantReason: "own-policy", wantStatus: 503, wantRecords: []string{"a:deny:true"},
		},
		{
			desc:   "challenge stops like deny, default status kept",
			global: ModeEnforce,
			entries: func(ran *[]string) []Entry {
				return []Entry{{Check: fake{name: "a", ran: ran, v: chall}}}
			},
			wantRan: []string{"a"}, wantDenied: true, wantReason: "prove-it", wantStatus: 401, wantRecords: []string{"a:challenge:true"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			var ran []string
			p := New(tc.entries(&ran), tc.global, nil)
			req := &Request{}
			v, denied := p.Run(t.Context(), req)
			if !slices.Equal(ran, tc.wantRan) {
				t.Errorf("ran %v, want %v", ran, tc.wantRan)
			}
			if denied != tc.wantDenied || v.Reason != tc.wantReason || v.Status != tc.wantStatus {
				t.Errorf("got denied=%v %+v, want denied=%v reason=%q status=%d", denied, v, tc.wantDenied, tc.wantReason, tc.wantStatus)
			}
			var recs []string
			for _, r := range req.Verdicts {
				enf := "false"
				if r.Enforced {
					enf = "true"
				}
				recs = append(recs, r.Check+":"+r.Verdict.Action.String()+":"+enf)
			}
			if !slices.Equal(recs, tc.wantRecords) {
				t.Errorf("records %v, want %v", recs, tc.wantRecords)
			}
		})
	}
}

func TestRunResponse(t *testing.T) {
	t.Parallel()
	var ran []string
	p := New([]Entry{
		{Check: fake{name: "req-only", ran: &ran}},
		{Check: respFake{fake{name: "leak", ran: &ran, v: Verdict{Action: Deny, Status: 502, Reason: "data-leak"}}}},
	}, ModeEnforce, nil)
	if !p.HasResponseChecks() {
		t.Fatal("response check not found by type assertion")
	}
	v, denied := p.RunResponse(t.Context(), &Request{}, &http.Response{})
	if !denied || v.Reason != "data-leak" {
		t.Fatalf("got %v %+v", denied, v)
	}
}

type countObs struct{ n int }

func (c *countObs) ObserveCheck(string, time.Duration, Action, error) { c.n++ }

func TestObserverSeesEveryCheck(t *testing.T) {
	t.Parallel()
	var ran []string
	obs := &countObs{}
	p := New([]Entry{{Check: fake{name: "a", ran: &ran}}, {Check: fake{name: "b", ran: &ran}}}, ModeEnforce, obs)
	p.Run(t.Context(), &Request{})
	if obs.n != 2 {
		t.Fatalf("observed %d checks", obs.n)
	}
}
