// Package authz authorizes requests with ordered rules whose conditions are
// CEL expressions over the request and the caller's identity: function-level
// authorization (OWASP API5) and object-level authorization (OWASP API1,
// BOLA). See Config for the rule semantics and the CEL variables.
package authz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
)

// Authz is the built check. It is safe for concurrent use.
type Authz struct {
	hasResponse  bool // some rule has response_allow
	rules        []*rule
	requireAuth  bool
	defaultAllow bool
	pool         sync.Pool // *activation
}

var _ pipeline.Check = (*Authz)(nil)

type rule struct {
	name     string
	methods  []string
	tmpl     *template        // nil: any path
	deny     bool             // a deny rule (else an allow rule)
	prog     cel.Program      // nil: the rule allows at request time (response_allow only)
	respProg cel.Program      // nil: no response_allow
	verdict  pipeline.Verdict // this rule's 403, built once
}

// Verdict reasons.
const (
	ReasonForbidden    = "forbidden"
	ReasonUnauthorized = "unauthorized"
)

var defaultDenyVerdict = pipeline.Verdict{
	Action: pipeline.Deny, Status: http.StatusForbidden, Reason: ReasonForbidden,
	Detail: "no authorization rule allows this request",
}

// New validates cfg and builds the check; every expression is compiled once.
func New(cfg Config) (*Authz, error) {
	errs := &field.Errors{}
	cfg.Validate("", errs)
	if err := errs.Err(); err != nil {
		return nil, fmt.Errorf("authz: %w", err)
	}
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("authz: %w", err)
	}
	a := &Authz{requireAuth: cfg.RequireAuth, defaultAllow: cfg.Default == DefaultAllow}
	for i := range cfg.Rules {
		rc := &cfg.Rules[i]
		r := &rule{name: rc.Name, methods: slices.Clone(rc.Methods), deny: rc.Deny != ""}
		if rc.Path != "" {
			if r.tmpl, err = parseTemplate(rc.Path); err != nil {
				return nil, fmt.Errorf("authz: rule %s: %w", rc.Name, err)
			}
		}
		expr := rc.Allow
		if r.deny {
			expr = rc.Deny
		}
		if expr != "" {
			ast, err := compile(expr)
			if err != nil {
				return nil, fmt.Errorf("authz: rule %s: %w", rc.Name, err)
			}
			if r.prog, err = env.Program(ast, cel.EvalOptions(cel.OptOptimize)); err != nil {
				return nil, fmt.Errorf("authz: rule %s: %w", rc.Name, err)
			}
		}
		if rc.ResponseAllow != "" {
			renv, err := celResponseEnv()
			if err != nil {
				return nil, fmt.Errorf("authz: %w", err)
			}
			ast, err := compileResponse(rc.ResponseAllow)
			if err != nil {
				return nil, fmt.Errorf("authz: rule %s: response_allow: %w", rc.Name, err)
			}
			if r.respProg, err = renv.Program(ast, cel.EvalOptions(cel.OptOptimize)); err != nil {
				return nil, fmt.Errorf("authz: rule %s: %w", rc.Name, err)
			}
			a.hasResponse = true
		}
		r.verdict = pipeline.Verdict{
			Action: pipeline.Deny, Status: http.StatusForbidden, Reason: ReasonForbidden,
			Detail: fmt.Sprintf("denied by authorization rule %q", rc.Name),
		}
		a.rules = append(a.rules, r)
	}
	a.pool.New = func() any { return &activation{} }
	return a, nil
}

// Name implements pipeline.Check.
func (*Authz) Name() string { return "authz" }

// authenticated reports whether an earlier check established who calls.
func authenticated(id *pipeline.Identity) bool {
	return id.Subject != "" || id.APIKey != "" || id.CertSubject != ""
}

// Check implements pipeline.Check.
func (a *Authz) Check(_ context.Context, req *pipeline.Request) (pipeline.Verdict, error) {
	if a.requireAuth && !authenticated(&req.Identity) {
		return pipeline.Verdict{
			Action: pipeline.Deny, Status: http.StatusUnauthorized, Reason: ReasonUnauthorized,
			Detail:  "authentication is required",
			Headers: http.Header{"Www-Authenticate": {"Bearer"}},
		}, nil
	}
	if len(a.rules) == 0 {
		return a.fallback(), nil
	}
	if req.HTTP == nil || req.HTTP.URL == nil {
		return defaultDenyVerdict, errNoRequest
	}
	act := a.pool.Get().(*activation)
	act.reset(req)
	defer func() {
		act.reset(nil)
		a.pool.Put(act)
	}()
	escaped := req.HTTP.URL.EscapedPath()
	for _, r := range a.rules {
		if len(r.methods) > 0 && !slices.Contains(r.methods, req.HTTP.Method) {
			continue
		}
		act.params = act.params[:0]
		if r.tmpl != nil {
			var ok bool
			if act.params, ok = r.tmpl.match(escaped, act.params); !ok {
				continue
			}
		}
		if r.prog == nil { // response_allow only: decided on the response
			return pipeline.Allowed, nil
		}
		out, _, err := r.prog.Eval(act)
		if err != nil {
			return r.verdict, fmt.Errorf("authz: rule %s: %w", r.name, err)
		}
		b, ok := out.(types.Bool)
		if !ok {
			return r.verdict, fmt.Errorf("authz: rule %s: result is %s, not bool", r.name, out.Type().TypeName())
		}
		switch {
		case r.deny && bool(b), !r.deny && !bool(b):
			return r.verdict, nil
		case !r.deny:
			return pipeline.Allowed, nil
		}
		// A deny rule that does not deny: try the next rule.
	}
	return a.fallback(), nil
}

func (a *Authz) fallback() pipeline.Verdict {
	if a.defaultAllow {
		return pipeline.Allowed
	}
	return defaultDenyVerdict
}

// errNoRequest guards against a nil HTTP request.
var errNoRequest = errors.New("authz: request without HTTP request")
