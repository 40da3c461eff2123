package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"

	"cel.dev/cel-go/common/types"

	"github.com/apiguard/apiguard/internal/pipeline"
)

var _ pipeline.ResponseCheck = (*Authz)(nil)

// maxResponseJSON bounds what a response_allow rule buffers and parses.
const maxResponseJSON = 1 << 20

// CheckResponse evaluates the response_allow expression of the rule that
// allowed the request. Only successful (2xx) answers are judged: an error
// reveals no object. A 2xx body that is not JSON, or larger than 1 MiB,
// cannot be judged and is refused (fail closed).
func (a *Authz) CheckResponse(_ context.Context, req *pipeline.Request, resp *http.Response) (pipeline.Verdict, error) {
	if !a.hasResponse || req.HTTP == nil || resp.StatusCode < 200 || resp.StatusCode > 299 {
		return pipeline.Allowed, nil
	}
	r := a.decidingRule(req)
	if r == nil || r.respProg == nil {
		return pipeline.Allowed, nil
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" && !hasJSONSuffix(mt) {
		return r.verdict, fmt.Errorf("authz: rule %s: response is %q, not JSON", r.name, mt)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseJSON+1))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil || len(body) > maxResponseJSON {
		return r.verdict, fmt.Errorf("authz: rule %s: response body unreadable or over %d bytes", r.name, maxResponseJSON)
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return r.verdict, fmt.Errorf("authz: rule %s: response is not valid JSON", r.name)
	}
	act := a.pool.Get().(*activation)
	act.reset(req)
	defer func() {
		act.reset(nil)
		a.pool.Put(act)
	}()
	if r.tmpl != nil {
		act.params, _ = r.tmpl.match(req.HTTP.URL.EscapedPath(), act.params[:0])
	}
	act.respStatus, act.respJSON = resp.StatusCode, doc
	out, _, err := r.respProg.Eval(act)
	if err != nil {
		return r.verdict, fmt.Errorf("authz: rule %s: response_allow: %w", r.name, err)
	}
	if b, ok := out.(types.Bool); ok && bool(b) {
		return pipeline.Allowed, nil
	}
	return r.verdict, nil
}

// decidingRule finds the first rule that matches the request by method and
// path, the one Check let decide (deny rules that did not deny are skipped,
// as Check skips them).
func (a *Authz) decidingRule(req *pipeline.Request) *rule {
	escaped := req.HTTP.URL.EscapedPath()
	var params []param
	for _, r := range a.rules {
		if len(r.methods) > 0 && !slices.Contains(r.methods, req.HTTP.Method) {
			continue
		}
		if r.tmpl != nil {
			var ok bool
			if params, ok = r.tmpl.match(escaped, params[:0]); !ok {
				continue
			}
		}
		if r.deny {
			continue
		}
		return r
	}
	return nil
}

func hasJSONSuffix(mt string) bool {
	return len(mt) > 5 && mt[len(mt)-5:] == "+json"
}
