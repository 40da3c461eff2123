package openapi

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/pb33f/libopenapi/orderedmap"
)

// Operation is one declared operation, for inventory diffing.
type Operation struct {
	Method     string // upper case
	Path       string // template as in the spec, e.g. /orders/{id}
	ID         string // operationId
	Deprecated bool
}

type route struct {
	tmpl    string
	segs    []segment
	literal int // literal segments: more literal templates win
	ops     map[string]*operation
	allow   string
}

// segment is a literal or one parameter with optional fixed prefix and
// suffix ({name}.json).
type segment struct {
	lit, param, pre, suf string
}

type operation struct {
	Operation
	params []*param
	body   *body
	resps  map[string][]media // status ("200", "2XX", "default") → content
	// declared says whether a status has an entry, even without content.
	declared map[string]bool
}

type param struct {
	name, in string
	key      string // Typed key, e.g. query:limit
	required bool
	explode  bool
	s        *schema
}

type body struct {
	required bool
	media    []media
}

type media struct {
	typ  string // lower case, may be a range: application/*, */*
	json bool
	s    *schema
}

func compileDoc(file string, doc *v3.Document) (*spec, error) {
	c := newCompiler()
	sp := &spec{}
	if doc.Paths == nil || doc.Paths.PathItems == nil {
		return sp, nil
	}
	for tmpl, item := range doc.Paths.PathItems.FromOldest() {
		rt := &route{tmpl: tmpl, ops: map[string]*operation{}}
		if !strings.HasPrefix(tmpl, "/") {
			c.errf("paths."+tmpl, "a path must start with /")
			continue
		}
		for _, part := range strings.Split(tmpl[1:], "/") {
			seg, err := parseSegment(part)
			if err != nil {
				c.errf("paths."+tmpl, "%v", err)
			}
			if seg.param == "" {
				rt.literal++
			}
			rt.segs = append(rt.segs, seg)
		}
		for method, o := range item.GetOperations().FromOldest() {
			m := strings.ToUpper(method)
			at := "paths." + tmpl + "." + method
			op := &operation{Operation: Operation{Method: m, Path: tmpl, ID: o.OperationId, Deprecated: o.Deprecated != nil && *o.Deprecated}}
			op.params = c.params(at, item.Parameters, o.Parameters)
			for _, seg := range rt.segs {
				if seg.param != "" && !slices.ContainsFunc(op.params, func(p *param) bool { return p.in == "path" && p.name == seg.param }) {
					// undeclared template parameters are plain strings
					op.params = append(op.params, &param{name: seg.param, in: "path", key: "path:" + seg.param, required: true})
				}
			}
			if rb := o.RequestBody; rb != nil {
				op.body = &body{required: rb.Required != nil && *rb.Required, media: c.content(at+".requestBody", rb.Content)}
			}
			op.resps, op.declared = map[string][]media{}, map[string]bool{}
			if o.Responses != nil {
				if o.Responses.Codes != nil {
					for code, r := range o.Responses.Codes.FromOldest() {
						code = strings.ToUpper(code)
						op.declared[code] = true
						op.resps[code] = c.content(at+".responses."+code, r.Content)
					}
				}
				if d := o.Responses.Default; d != nil {
					op.declared["default"] = true
					op.resps["default"] = c.content(at+".responses.default", d.Content)
				}
			}
			rt.ops[m] = op
		}
		methods := make([]string, 0, len(rt.ops))
		for m := range rt.ops {
			methods = append(methods, m)
		}
		slices.Sort(methods)
		rt.allow = strings.Join(methods, ", ")
		sp.routes = append(sp.routes, rt)
	}
	// Concrete templates before templated ones (OpenAPI path matching).
	slices.SortStableFunc(sp.routes, func(a, b *route) int { return b.literal - a.literal })
	c.finish()
	if len(c.errs) > 0 {
		return nil, fmt.Errorf("%s: %s", file, strings.Join(c.errs, "; "))
	}
	return sp, nil
}

func parseSegment(part string) (segment, error) {
	open := strings.IndexByte(part, '{')
	if open < 0 {
		if strings.IndexByte(part, '}') >= 0 {
			return segment{lit: part}, errors.New("unbalanced } in path template")
		}
		return segment{lit: part}, nil
	}
	end := strings.IndexByte(part, '}')
	if end < open || strings.Count(part, "{") != 1 || strings.Count(part, "}") != 1 {
		return segment{lit: part}, errors.New("one {parameter} per path segment is supported")
	}
	return segment{param: part[open+1 : end], pre: part[:open], suf: part[end+1:]}, nil
}

// params merges path-item and operation parameters; the operation's win.
func (c *compiler) params(at string, pathLevel, opLevel []*v3.Parameter) []*param {
	var out []*param
	add := func(p *v3.Parameter) {
		if p == nil {
			return
		}
		in := strings.ToLower(p.In)
		if in == "header" {
			switch strings.ToLower(p.Name) { // ignored by OpenAPI: described elsewhere
			case "accept", "content-type", "authorization":
				return
			}
		}
		np := &param{name: p.Name, in: in, key: in + ":" + p.Name, required: p.Required != nil && *p.Required || in == "path"}
		if in == "header" {
			np.name = http.CanonicalHeaderKey(p.Name)
		}
		style := p.Style
		np.explode = p.Explode == nil && (style == "" || style == "form") && in != "header" && in != "path" || p.Explode != nil && *p.Explode
		np.s = c.proxy(p.Schema, at+".parameters."+p.Name)
		if np.s == nil && p.Content != nil {
			for _, m := range p.Content.FromOldest() {
				np.s = c.proxy(m.Schema, at+".parameters."+p.Name)
				break
			}
		}
		for i, q := range out {
			if q.name == np.name && q.in == np.in {
				out[i] = np
				return
			}
		}
		out = append(out, np)
	}
	for _, p := range pathLevel {
		add(p)
	}
	for _, p := range opLevel {
		add(p)
	}
	return out
}

func (c *compiler) content(at string, m *orderedmap.Map[string, *v3.MediaType]) []media {
	if m == nil {
		return nil
	}
	var out []media
	for typ, mt := range m.FromOldest() {
		t := strings.ToLower(strings.TrimSpace(typ))
		if i := strings.IndexByte(t, ';'); i >= 0 {
			t = strings.TrimSpace(t[:i])
		}
		var sp *base.SchemaProxy
		if mt != nil {
			sp = mt.Schema
		}
		out = append(out, media{typ: t, json: isJSON(t), s: c.proxy(sp, at+".content."+typ)})
	}
	return out
}

func isJSON(t string) bool { return t == "application/json" || strings.HasSuffix(t, "+json") }

// matchMedia finds the declared media type for a Content-Type header:
// exact first, then type/*, then */*.
func matchMedia(list []media, ct string) *media {
	t := ct
	if i := strings.IndexByte(t, ';'); i >= 0 {
		t = t[:i]
	}
	t = strings.ToLower(strings.TrimSpace(t))
	if t == "" {
		return nil
	}
	var rangeHit, anyHit *media
	for i := range list {
		m := &list[i]
		switch {
		case m.typ == t:
			return m
		case m.typ == "*/*":
			anyHit = m
		case strings.HasSuffix(m.typ, "/*") && strings.HasPrefix(t, m.typ[:len(m.typ)-1]):
			rangeHit = m
		}
	}
	if rangeHit != nil {
		return rangeHit
	}
	return anyHit
}
