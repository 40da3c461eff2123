// Package nosql refuses requests that smuggle MongoDB-style query operators
// ($ne, $where, $regex ...) where an API expects plain values: object keys
// starting with "$" in JSON bodies, in JSON embedded in string values, and in
// query parameters written in bracket or dot syntax (user[$ne]=x), which
// qs (Express) and PHP turn into objects before the application sees them.
package nosql

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/lenient"
	"github.com/apiguard/apiguard/internal/pipeline"
)

const (
	defaultMaxDepth = 64
	defaultMaxNodes = 100_000
	reasonInjection = "nosql-injection"
	reasonComplex   = "nosql-too-complex"
	maxDetailName   = 96
)

// Config is the nosql check's configuration.
type Config struct {
	pipeline.Options `yaml:",inline"`
	// AllowKeys may hold operators, for APIs that really take Mongo
	// queries. An entry starting with "/" is a JSON pointer (a "*" segment
	// matches any one key or index; query parameters are matched as
	// pointers too: filter[$gt] is /filter/$gt); any other entry is a key
	// name allowed wherever it appears. The whole value under an allowed
	// key is exempt.
	AllowKeys []string `yaml:"allow_keys,omitempty"`
	// Operators replaces the refused keys with this exact list (e.g.
	// [$where, $function]); default: every key starting with "$".
	Operators []string `yaml:"operators,omitempty"`
	// MaxDepth bounds JSON nesting, counting embedded JSON (default 64).
	// Deeper documents are refused: they cannot be inspected cheaply.
	MaxDepth int `yaml:"max_depth,omitempty"`
	// MaxNodes bounds the JSON tokens inspected per request (default 100000).
	MaxNodes int `yaml:"max_nodes,omitempty"`
}

// Validate reports invalid fields under path.
func (c *Config) Validate(path string, errs *field.Errors) {
	c.Options.Validate(path, errs)
	for i, k := range c.AllowKeys {
		at := field.Index(field.Join(path, "allow_keys"), i)
		switch {
		case k == "" || k == "/":
			errs.Add(at, "must be a key name or a JSON pointer such as /filter")
		case k[0] == '/':
			if _, ok := lenient.SplitPointer(k); !ok {
				errs.Add(at, "not a valid JSON pointer (RFC 6901): %q", k)
			}
		}
	}
	for i, op := range c.Operators {
		if op == "" || strings.ContainsAny(op, " \t\r\n") {
			errs.Add(field.Index(field.Join(path, "operators"), i), "must be a key such as $where: %q", op)
		}
	}
	if c.MaxDepth < 0 {
		errs.Add(field.Join(path, "max_depth"), "must be positive (0 means the default %d)", defaultMaxDepth)
	}
	if c.MaxNodes < 0 {
		errs.Add(field.Join(path, "max_nodes"), "must be positive (0 means the default %d)", defaultMaxNodes)
	}
}

// Check is the built nosql check.
type Check struct {
	ops        map[string]bool // nil: every key starting with "$"
	allowNames map[string]bool
	allowPtrs  [][]string
	maxDepth   int
	maxNodes   int
}

var _ pipeline.Check = (*Check)(nil)

// New builds the check from a validated config.
func New(cfg Config) *Check {
	c := &Check{maxDepth: cfg.MaxDepth, maxNodes: cfg.MaxNodes}
	if c.maxDepth <= 0 {
		c.maxDepth = defaultMaxDepth
	}
	if c.maxNodes <= 0 {
		c.maxNodes = defaultMaxNodes
	}
	if len(cfg.Operators) > 0 {
		c.ops = make(map[string]bool, len(cfg.Operators))
		for _, op := range cfg.Operators {
			c.ops[op] = true
		}
	}
	for _, k := range cfg.AllowKeys {
		if strings.HasPrefix(k, "/") {
			if segs, ok := lenient.SplitPointer(k); ok {
				c.allowPtrs = append(c.allowPtrs, segs)
			}
			continue
		}
		if c.allowNames == nil {
			c.allowNames = map[string]bool{}
		}
		c.allowNames[k] = true
	}
	return c
}

// Name implements pipeline.Check.
func (*Check) Name() string { return "nosql" }

// Check implements pipeline.Check.
func (c *Check) Check(_ context.Context, req *pipeline.Request) (pipeline.Verdict, error) {
	s := scan{c: c, typed: req.Typed}
	if req.HTTP != nil && req.HTTP.URL != nil && req.HTTP.URL.RawQuery != "" {
		if v, bad := s.query(req.HTTP.URL.RawQuery); bad {
			return v, nil
		}
	}
	if len(req.Body) > 0 {
		if v, bad := s.json(req.Body, nil, 0, ""); bad {
			return v, nil
		}
	}
	return pipeline.Allowed, nil
}

func (c *Check) isOperator(k string) bool {
	if c.ops != nil {
		return c.ops[k]
	}
	return strings.HasPrefix(k, "$")
}

// allowed reports whether the value at path (whose last segment is a key)
// may hold operators.
func (c *Check) allowed(path []string) bool {
	if c.allowNames[path[len(path)-1]] {
		return true
	}
	for _, p := range c.allowPtrs {
		if matchPointer(p, path) {
			return true
		}
	}
	return false
}

// scan is the state of one request's inspection; the node budget is shared
// by the body, the query and any embedded JSON.
type scan struct {
	c     *Check
	typed map[string]struct{}
	nodes int
}

func refuse(detail string) pipeline.Verdict {
	return pipeline.Verdict{Action: pipeline.Deny, Status: http.StatusBadRequest, Reason: reasonInjection, Detail: detail}
}

var tooComplex = pipeline.Verdict{Action: pipeline.Deny, Status: http.StatusBadRequest, Reason: reasonComplex,
	Detail: "the request is too deeply nested or too large to inspect for query operators"}

// query inspects a raw query string. Both '&' and ';' separate pairs so a
// framework that splits on either cannot hide a pair from us.
func (s *scan) query(raw string) (pipeline.Verdict, bool) {
	for raw != "" {
		var pair string
		if i := strings.IndexAny(raw, "&;"); i >= 0 {
			pair, raw = raw[:i], raw[i+1:]
		} else {
			pair, raw = raw, ""
		}
		if pair == "" {
			continue
		}
		if s.nodes++; s.nodes > s.c.maxNodes {
			return tooComplex, true
		}
		k, v, _ := strings.Cut(pair, "=")
		name, _ := lenient.QueryUnescape(k)
		segs := splitQueryKey(name)
		allowed := false
		for i, seg := range segs {
			if s.c.allowed(segs[:i+1]) {
				allowed = true
				break
			}
			if s.c.isOperator(seg) {
				return refuse("query parameter " + quoteName(name) + " holds a query operator"), true
			}
		}
		if allowed {
			continue
		}
		val, _ := lenient.QueryUnescape(v)
		if looksJSON(val) {
			if _, typed := s.typed["query:"+name]; !typed {
				if v, bad := s.json([]byte(val), segs, 0, "query parameter "+quoteName(name)); bad {
					return v, true
				}
			}
		}
	}
	return pipeline.Allowed, false
}

// splitQueryKey splits user[$ne][x] and user.$ne into their segments, the
// way qs (with allowDots) and PHP build nested objects.
func splitQueryKey(k string) []string {
	segs := make([]string, 0, 2)
	start := 0
	for i := 0; i < len(k); i++ {
		switch k[i] {
		case '[', ']', '.':
			if i > start || (k[i] == ']' && i > 0 && k[i-1] == '[') {
				segs = append(segs, k[start:i])
			}
			start = i + 1
		}
	}
	if start < len(k) || len(segs) == 0 {
		segs = append(segs, k[start:])
	}
	return segs
}

type frame struct {
	obj       bool
	expectKey bool
	idx       int
	allowed   bool // the container is under an allowed key
}

// json inspects one JSON document (or several concatenated) with a token
// stream rather than decoding into maps, so duplicate keys are all seen
// (parsers disagree on which one wins). prefix is the path of the string the
// document was embedded in; depth is the nesting already spent; embedded
// names the string's parameter for the detail. Invalid JSON ends the
// inspection quietly: what was read was inspected, and whether the body
// is valid is schema validation's concern.
func (s *scan) json(data []byte, prefix []string, depth int, embedded string) (pipeline.Verdict, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	path := append(make([]string, 0, len(prefix)+8), prefix...)
	var stack []frame
	pendingAllow := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return pipeline.Allowed, false
		}
		if s.nodes++; s.nodes > s.c.maxNodes {
			return tooComplex, true
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			path = path[:len(path)-1]
			if len(stack) > 0 && stack[len(stack)-1].obj {
				stack[len(stack)-1].expectKey = true
			}
			pendingAllow = false
			continue
		}
		if top != nil && top.obj && top.expectKey {
			key, _ := tok.(string)
			path[len(path)-1] = key
			top.expectKey = false
			if top.allowed {
				continue
			}
			if s.c.allowed(path) {
				pendingAllow = true
				continue
			}
			if s.c.isOperator(key) {
				return refuse(where(embedded, path) + " holds a query operator"), true
			}
			continue
		}
		// tok starts a value.
		if top != nil && !top.obj {
			top.idx++
			path[len(path)-1] = strconv.Itoa(top.idx)
		}
		allowed := pendingAllow || top != nil && top.allowed
		pendingAllow = false
		switch t := tok.(type) {
		case json.Delim: // '{' or '['
			if depth+len(stack)+1 > s.c.maxDepth {
				return tooComplex, true
			}
			stack = append(stack, frame{obj: t == '{', expectKey: true, idx: -1, allowed: allowed})
			path = append(path, "")
			continue
		case string:
			if !allowed && looksJSON(t) && !s.isTyped(path, embedded) {
				in := embedded
				if in == "" {
					in = "the string at " + pointer(path)
				}
				if v, bad := s.json([]byte(t), path, depth+len(stack), in); bad {
					return v, true
				}
			}
		}
		if top != nil && top.obj {
			top.expectKey = true
		}
	}
}

// isTyped reports whether schema validation proved the body value at path
// typed (an enum or uuid cannot carry embedded JSON).
func (s *scan) isTyped(path []string, embedded string) bool {
	if s.typed == nil || embedded != "" {
		return false
	}
	_, ok := s.typed["json:"+pointer(path)]
	return ok
}

func where(embedded string, path []string) string {
	if embedded != "" {
		return "JSON embedded in " + embedded
	}
	return "the key at " + pointer(path)
}

func looksJSON(s string) bool {
	s = strings.TrimLeft(s, " \t\r\n")
	return s != "" && (s[0] == '{' || s[0] == '[')
}

// pointer renders path as a JSON pointer, escaped for a problem detail.
func pointer(path []string) string {
	var b strings.Builder
	for _, seg := range path {
		b.WriteByte('/')
		seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~", "~0"), "/", "~1")
		b.WriteString(seg)
	}
	if b.Len() == 0 {
		return "/"
	}
	return safe(b.String())
}

func quoteName(s string) string { return `"` + safe(s) + `"` }

// matchPointer matches a pattern ("*" is any one segment) against a path.
func matchPointer(pat, path []string) bool {
	if len(pat) != len(path) {
		return false
	}
	for i := range pat {
		if pat[i] != "*" && pat[i] != path[i] {
			return false
		}
	}
	return true
}

// safe quotes an attacker-chosen name for a problem detail; '$' is kept so
// the operator shows.
func safe(s string) string { return lenient.SafeName(s, maxDetailName, "$/_-.~*[]:") }
