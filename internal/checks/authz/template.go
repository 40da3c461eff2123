package authz

import (
	"fmt"
	"net/url"
	"strings"
)

// A path template is a rule's path condition:
//
//	/api/orders/{id}        {name} matches exactly one non-empty segment
//	/api/users/{user}/**    a trailing /** matches the rest (zero or more segments)
//	/api/health             literal segments match exactly
//
// Matching is done on the escaped request path, split on literal slashes;
// each segment is percent-decoded before it is compared or captured. A
// segment holding an encoded slash (%2F) or a backslash, or a dot segment
// ("." or ".."), never matches a parameter, and literals never contain them,
// so such paths do not match the rule (the next rule or the default decides).
// A trailing slash is significant: /api/orders/ does not match /api/orders.
type template struct {
	raw    string
	segs   []tseg
	params []string // parameter names in order
	tail   bool     // ends with /**
}

type tsegKind uint8

const (
	segLiteral tsegKind = iota
	segParam
	segTail
)

type tseg struct {
	kind tsegKind
	lit  string // literal text or parameter name
}

// parseTemplate parses a rule's path template.
func parseTemplate(s string) (*template, error) {
	if !strings.HasPrefix(s, "/") {
		return nil, fmt.Errorf("must start with /")
	}
	t := &template{raw: s}
	parts := strings.Split(s[1:], "/")
	for i, p := range parts {
		last := i == len(parts)-1
		switch {
		case p == "**":
			if !last {
				return nil, fmt.Errorf("** is only allowed as the last segment")
			}
			t.segs = append(t.segs, tseg{kind: segTail})
			t.tail = true
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}"):
			name := p[1 : len(p)-1]
			if !validParam(name) {
				return nil, fmt.Errorf("invalid parameter name %q (use letters, digits and _, not starting with a digit)", name)
			}
			for _, n := range t.params {
				if n == name {
					return nil, fmt.Errorf("duplicate parameter {%s}", name)
				}
			}
			t.params = append(t.params, name)
			t.segs = append(t.segs, tseg{kind: segParam, lit: name})
		case strings.ContainsAny(p, "{}*"):
			return nil, fmt.Errorf("segment %q: a segment is a literal, a whole {name}, or a final **", p)
		case p == "" && !last:
			return nil, fmt.Errorf("empty segment (//)")
		case p == "." || p == "..":
			return nil, fmt.Errorf("dot segment %q", p)
		case strings.ContainsAny(p, "%?#\\"):
			return nil, fmt.Errorf("segment %q: write literals unescaped, without %%, ?, # or \\", p)
		default:
			t.segs = append(t.segs, tseg{kind: segLiteral, lit: p})
		}
	}
	return t, nil
}

func validParam(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// param is one captured template parameter.
type param struct{ name, value string }

// match reports whether the escaped path matches, appending captured
// parameters to params (which it may have extended even on failure; the
// caller truncates).
func (t *template) match(escaped string, params []param) ([]param, bool) {
	if !strings.HasPrefix(escaped, "/") {
		return params, false
	}
	rest, more := escaped[1:], true
	for _, s := range t.segs {
		if s.kind == segTail {
			return params, true
		}
		if !more {
			return params, false
		}
		var cur string
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			cur, rest = rest[:i], rest[i+1:]
		} else {
			cur, rest, more = rest, "", false
		}
		if strings.IndexByte(cur, '%') >= 0 {
			d, err := url.PathUnescape(cur)
			if err != nil {
				return params, false
			}
			cur = d
		}
		switch s.kind {
		case segLiteral:
			if cur != s.lit {
				return params, false
			}
		case segParam:
			if cur == "" || cur == "." || cur == ".." || strings.ContainsAny(cur, "/\\") {
				return params, false
			}
			params = append(params, param{s.lit, cur})
		}
	}
	return params, !more
}
