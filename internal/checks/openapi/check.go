package openapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/apiguard/apiguard/internal/pipeline"
)

// Check is the built openapi check. It is safe for concurrent use: all
// state is compiled at New and read-only afterwards.
type Check struct {
	spec            *spec
	basePath        string
	blockUndeclared bool
	blockDeprecated bool
	reject          bool
	respProps       string // remove | flag | off
	respStatus      bool
	maxBytes        int64
}

var (
	_ pipeline.Check         = (*Check)(nil)
	_ pipeline.ResponseCheck = (*Check)(nil)
)

// New loads and compiles the spec. The config should have been validated.
func New(cfg Config) (*Check, error) {
	sp, err := loadSpec(cfg.Spec)
	if err != nil {
		return nil, err
	}
	c := &Check{spec: sp, basePath: cfg.BasePath, blockUndeclared: cfg.Undeclared != "log",
		blockDeprecated: cfg.Deprecated == "block", reject: cfg.AdditionalProperties == "reject",
		respProps: "flag", respStatus: true, maxBytes: defaultMaxBytes}
	if r := cfg.Response; r != nil {
		if r.UndeclaredProperties != "" {
			c.respProps = r.UndeclaredProperties
		}
		c.respStatus = r.UndeclaredStatus != "off"
		if r.MaxBytes > 0 {
			c.maxBytes = r.MaxBytes
		}
	}
	return c, nil
}

// Name implements pipeline.Check.
func (*Check) Name() string { return "openapi" }

// Operations lists the declared operations in spec order of paths.
func (c *Check) Operations() []Operation {
	var out []Operation
	for _, rt := range c.spec.routes {
		for _, m := range strings.Split(rt.allow, ", ") {
			if op := rt.ops[m]; op != nil {
				out = append(out, op.Operation)
			}
		}
	}
	return out
}

func refuse(status int, slug, detail string) pipeline.Verdict {
	return pipeline.Verdict{Action: pipeline.Deny, Status: status, Reason: slug, Detail: detail}
}

func invalid(detail string) pipeline.Verdict {
	return refuse(http.StatusBadRequest, "request-invalid", detail)
}

// match finds the operation for r. When the path exists but not the
// method, allow lists the methods it has.
func (c *Check) match(r *http.Request) (op *operation, rt *route, vals []string, allow string, ok bool) {
	p := r.URL.EscapedPath()
	if c.basePath != "" {
		rest, found := strings.CutPrefix(p, c.basePath)
		if !found || rest != "" && rest[0] != '/' {
			return nil, nil, nil, "", false
		}
		p = rest
	}
	if p == "" {
		p = "/"
	}
	segs := strings.Split(p[1:], "/")
	method := r.Method
	for _, cand := range c.spec.routes {
		if len(cand.segs) != len(segs) {
			continue
		}
		v, hit := cand.matchSegs(segs)
		if !hit {
			continue
		}
		o := cand.ops[method]
		if o == nil && method == http.MethodHead {
			o = cand.ops[http.MethodGet] // HEAD is GET without a body
		}
		if o != nil {
			return o, cand, v, "", true
		}
		if allow == "" {
			allow = cand.allow
		}
	}
	return nil, nil, nil, allow, false
}

func (rt *route) matchSegs(segs []string) ([]string, bool) {
	var vals []string
	for i, s := range rt.segs {
		raw := segs[i]
		dec, err := url.PathUnescape(raw)
		if err != nil {
			return nil, false
		}
		if s.param == "" {
			if dec != s.lit {
				return nil, false
			}
			continue
		}
		if len(raw) < len(s.pre)+len(s.suf)+1 || !strings.HasPrefix(raw, s.pre) || !strings.HasSuffix(raw, s.suf) {
			return nil, false
		}
		v, err := url.PathUnescape(raw[len(s.pre) : len(raw)-len(s.suf)])
		if err != nil {
			return nil, false
		}
		vals = append(vals, v)
	}
	return vals, true
}

// Check implements pipeline.Check.
func (c *Check) Check(_ context.Context, req *pipeline.Request) (pipeline.Verdict, error) {
	r := req.HTTP
	op, rt, vals, allow, ok := c.match(r)
	if !ok {
		if r.Method == http.MethodOptions && allow != "" && r.Header.Get("Access-Control-Request-Method") != "" {
			return pipeline.Allowed, nil // CORS preflight of a declared path
		}
		if !c.blockUndeclared {
			return pipeline.Verdict{Action: pipeline.Flag, Reason: "undeclared-operation", Score: 30,
				Detail: "the operation is not in the API specification"}, nil
		}
		if allow != "" {
			v := refuse(http.StatusMethodNotAllowed, "method-not-allowed", "the method is not declared for this path")
			v.Headers = http.Header{"Allow": {allow}}
			return v, nil
		}
		return refuse(http.StatusNotFound, "undeclared-operation", "the operation is not in the API specification"), nil
	}
	var flag pipeline.Verdict
	if op.Deprecated {
		if c.blockDeprecated {
			return refuse(http.StatusForbidden, "deprecated-operation", "the operation is deprecated and no longer served"), nil
		}
		flag = pipeline.Verdict{Action: pipeline.Flag, Reason: "deprecated-operation", Score: 20,
			Detail: "the operation is deprecated"}
	}
	req.Template = c.basePath + rt.tmpl
	if req.PathParams == nil {
		req.PathParams = make(map[string]string, len(vals))
	}
	vi := 0
	for _, s := range rt.segs {
		if s.param != "" {
			req.PathParams[s.param] = vals[vi]
			vi++
		}
	}
	if req.Typed == nil {
		req.Typed = make(map[string]struct{})
	}
	w := walker{request: true, reject: c.reject}
	if v, bad := c.params(op, req, r, &w); bad {
		return v, nil
	}
	if v, bad := c.body(op, req, r, &w); bad {
		return v, nil
	}
	return flag, nil
}

func (c *Check) params(op *operation, req *pipeline.Request, r *http.Request, w *walker) (pipeline.Verdict, bool) {
	var query url.Values
	for _, p := range op.params {
		if p.s != nil && p.s.types == tObj {
			continue // object parameters (deepObject, form objects) are not supported
		}
		var raw []string
		switch p.in {
		case "path":
			if v, ok := req.PathParams[p.name]; ok {
				raw = []string{v}
			}
		case "query":
			if query == nil {
				q, err := url.ParseQuery(r.URL.RawQuery)
				if err != nil {
					return invalid("query: malformed query string"), true
				}
				query = q
			}
			raw = query[p.name]
		case "header":
			raw = r.Header.Values(p.name)
		case "cookie":
			for _, ck := range r.CookiesNamed(p.name) {
				raw = append(raw, ck.Value)
			}
		default:
			continue
		}
		if len(raw) == 0 {
			if p.required {
				return invalid(p.in + " " + p.name + ": required"), true
			}
			continue
		}
		isArray := p.s != nil && p.s.types&tArr != 0
		if !isArray && len(raw) > 1 {
			// Parameter pollution: the gateway and the upstream may pick
			// different copies.
			for _, x := range raw[1:] {
				if x != raw[0] {
					return invalid(p.in + " " + p.name + ": given more than once with different values"), true
				}
			}
		}
		if p.s == nil {
			continue
		}
		var v value
		if isArray {
			items := raw
			if !p.explode || p.in == "header" {
				items = strings.Split(strings.Join(raw, ","), ",")
			}
			v = value{k: kArray, arr: make([]value, len(items))}
			for i, it := range items {
				iv, msg := coerce(p.s.items, it)
				if msg != "" {
					return invalid(p.in + " " + p.name + "/" + strconv.Itoa(i) + ": " + msg), true
				}
				v.arr[i] = iv
			}
		} else {
			var msg string
			if v, msg = coerce(p.s, raw[0]); msg != "" {
				return invalid(p.in + " " + p.name + ": " + msg), true
			}
		}
		w.reset(p.key)
		if !w.walk(p.s, &v, true) {
			return invalid(p.in + " " + p.name + safePointer(w.errPtr) + ": " + w.errMsg), true
		}
		if n := len(w.typed); isArray && n == len(v.arr) && n > 0 || !isArray && n > 0 && w.typed[n-1] == p.key {
			req.Typed[p.key] = struct{}{}
		}
	}
	return pipeline.Verdict{}, false
}

// coerce turns a parameter string into the JSON value its schema expects.
func coerce(s *schema, raw string) (value, string) {
	if s == nil || s.types == 0 || s.types&tStr != 0 {
		return value{k: kString, s: raw}, ""
	}
	switch {
	case s.types&(tInt|tNum) != 0:
		v, err := parseJSON([]byte(raw))
		if err != nil || v.k != kNumber {
			if s.types&tNum == 0 {
				return value{}, "not an integer"
			}
			return value{}, "not a number"
		}
		return v, ""
	case s.types&tBool != 0:
		switch raw {
		case "true":
			return value{k: kBool, b: true}, ""
		case "false":
			return value{k: kBool}, ""
		}
		return value{}, "not a boolean"
	}
	// objects, null: not supported as parameter values; validated as text
	return value{k: kString, s: raw}, ""
}

func (c *Check) body(op *operation, req *pipeline.Request, r *http.Request, w *walker) (pipeline.Verdict, bool) {
	if op.body == nil {
		return pipeline.Verdict{}, false
	}
	has := len(req.Body) > 0 || r.ContentLength > 0 || r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody
	if !has {
		if op.body.required {
			return invalid("body: required"), true
		}
		return pipeline.Verdict{}, false
	}
	m := matchMedia(op.body.media, r.Header.Get("Content-Type"))
	if m == nil {
		return refuse(http.StatusUnsupportedMediaType, "unsupported-media-type", "the operation does not accept this content type"), true
	}
	if !m.json || req.Body == nil {
		return pipeline.Verdict{}, false // not buffered by the gateway: nothing to inspect
	}
	v, err := parseJSON(req.Body)
	if err != nil {
		return invalid("body: not valid JSON: " + err.Error()), true
	}
	w.reset("json:")
	if !w.walk(m.s, &v, true) {
		return invalid("body" + safePointer(w.errPtr) + ": " + w.errMsg), true
	}
	for _, k := range w.typed {
		req.Typed[k] = struct{}{}
	}
	return pipeline.Verdict{}, false
}

// CheckResponse implements pipeline.ResponseCheck.
func (c *Check) CheckResponse(_ context.Context, req *pipeline.Request, resp *http.Response) (pipeline.Verdict, error) {
	op, _, _, _, ok := c.match(req.HTTP)
	if !ok || resp == nil {
		return pipeline.Allowed, nil
	}
	code := strconv.Itoa(resp.StatusCode)
	key := code
	if !op.declared[key] {
		key = code[:1] + "XX"
		if !op.declared[key] {
			key = "default"
		}
	}
	if !op.declared[key] {
		if c.respStatus {
			return flagResp("response-undeclared", "status "+code+" is not declared for the operation"), nil
		}
		return pipeline.Allowed, nil
	}
	list := op.resps[key]
	if len(list) == 0 || resp.Body == nil || resp.Body == http.NoBody || resp.ContentLength == 0 || req.HTTP.Method == http.MethodHead {
		return pipeline.Allowed, nil
	}
	m := matchMedia(list, resp.Header.Get("Content-Type"))
	if m == nil {
		if c.respStatus {
			return flagResp("response-undeclared", "the response content type is not declared for status "+code), nil
		}
		return pipeline.Allowed, nil
	}
	if !m.json || m.s == nil {
		return pipeline.Allowed, nil
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		return pipeline.Allowed, nil // compressed: not worth inflating here
	}
	if resp.ContentLength < 0 || resp.ContentLength > c.maxBytes {
		return pipeline.Allowed, nil // streaming or too large: passes unchecked
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	if err != nil || int64(len(b)) > c.maxBytes {
		resp.Body = rejoin(b, resp.Body)
		return pipeline.Allowed, err
	}
	_ = resp.Body.Close()
	v, err := parseJSON(b)
	if err != nil {
		resp.Body = io.NopCloser(bytes.NewReader(b))
		return flagResp("response-invalid", "the response body is not valid JSON"), nil
	}
	pr := pruner{removeUndeclared: c.respProps == "remove", scanUndeclared: c.respProps != "off"}
	pr.prune(m.s, &v)
	if pr.removed > 0 {
		b = appendPruned(make([]byte, 0, len(b)), b, &v)
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	switch {
	case pr.undeclared > 0 && pr.removeUndeclared:
		return flagResp("response-undeclared-properties", "removed "+strconv.Itoa(pr.undeclared)+" properties the specification does not declare, e.g."+safePointer(pr.first)), nil
	case pr.undeclared > 0:
		return flagResp("response-undeclared-properties", strconv.Itoa(pr.undeclared)+" properties the specification does not declare, e.g."+safePointer(pr.first)), nil
	case pr.writeOnly > 0:
		return flagResp("response-write-only", "removed "+strconv.Itoa(pr.writeOnly)+" write-only properties"), nil
	}
	return pipeline.Allowed, nil
}

func flagResp(reason, detail string) pipeline.Verdict {
	return pipeline.Verdict{Action: pipeline.Flag, Reason: reason, Detail: detail, Score: 20}
}

// rejoin puts back what was read ahead of the rest of the body.
func rejoin(read []byte, rest io.ReadCloser) io.ReadCloser {
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(read), rest), rest}
}

// pruner removes write-only and (optionally) undeclared properties from a
// response value.
type pruner struct {
	removeUndeclared, scanUndeclared bool
	removed, undeclared, writeOnly   int
	first                            string
	ptr                              []byte
}

func (p *pruner) prune(s *schema, v *value) bool {
	if s == nil {
		return false
	}
	changed := false
	switch v.k {
	case kArray:
		is := s.items
		if is == nil {
			is = s.itemsOf
		}
		for i := range v.arr {
			n := len(p.ptr)
			p.ptr = strconv.AppendInt(append(p.ptr, '/'), int64(i), 10)
			sub := is
			if i < len(s.prefix) {
				sub = s.prefix[i]
			}
			if p.prune(sub, &v.arr[i]) {
				changed = true
			}
			p.ptr = p.ptr[:n]
		}
	case kObject:
		// Only schemas that declare properties say what may be exposed; a
		// free-form object or a map has no list to hold the data to.
		strict := len(s.known) > 0 && !s.dict
		for i := range v.obj {
			m := &v.obj[i]
			w := walker{ptr: p.ptr}
			n := w.push(m.key)
			p.ptr = w.ptr
			ps, ok := s.known[m.key]
			switch {
			case ok && ps != nil && (ps.writeOnly || ps.wo):
				m.removeFlag, changed = true, true
				p.removed++
				p.writeOnly++
			case !ok && strict && p.scanUndeclared:
				p.undeclared++
				if p.first == "" {
					p.first = string(p.ptr)
				}
				if p.removeUndeclared {
					m.removeFlag, changed = true, true
					p.removed++
				}
			case ok:
				if p.prune(ps, &m.val) {
					changed = true
				}
			case s.addl != nil:
				if p.prune(s.addl, &m.val) {
					changed = true
				}
			}
			p.ptr = p.ptr[:n]
		}
	}
	if changed {
		v.dirty = true
	}
	return changed
}
