// Package graphql bounds what one GraphQL request may ask of a server:
// nesting depth, aliases, batch size, an estimated cost, query size and
// introspection. It parses the query text without a schema, so the limits
// are structural: cost counts fields and trusts first/last/limit arguments
// as list sizes, the one signal available without types.
package graphql

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/lenient"
	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

const (
	defaultMaxDepth      = 10
	defaultMaxAliases    = 15
	defaultMaxBatch      = 5
	defaultMaxCost       = 1000
	defaultMaxQueryBytes = 16 << 10
	// maxCostLimit keeps saturating cost arithmetic far from overflow.
	maxCostLimit = 1_000_000_000
	maxDetail    = 100
)

// Problem slugs.
const (
	ReasonTooDeep       = "graphql-too-deep"
	ReasonTooManyAlias  = "graphql-too-many-aliases"
	ReasonBatchTooLarge = "graphql-batch-too-large"
	ReasonTooCostly     = "graphql-too-costly"
	ReasonIntrospection = "graphql-introspection"
	ReasonInvalid       = "graphql-invalid"
	ReasonTooLarge      = "graphql-too-large"
)

// Config is the graphql check's configuration. Zero values take the
// defaults.
type Config struct {
	pipeline.Options `yaml:",inline"`
	// MaxDepth bounds field nesting; { a { b } } is 2 deep (default 10).
	MaxDepth int `yaml:"max_depth,omitempty"`
	// MaxAliases bounds aliased fields per operation, fragments expanded
	// (default 15): aliases turn one request into many resolver calls.
	MaxAliases int `yaml:"max_aliases,omitempty"`
	// MaxBatch bounds the operations in a JSON array body (default 5;
	// 1 refuses batching).
	MaxBatch int `yaml:"max_batch,omitempty"`
	// MaxCost bounds the estimated cost (default 1000): each field costs
	// 1, times the first/last/limit argument of every enclosing field.
	MaxCost int `yaml:"max_cost,omitempty"`
	// MaxQueryBytes bounds the query text (default 16 KiB).
	MaxQueryBytes int `yaml:"max_query_bytes,omitempty"`
	// Introspection admits __schema and __type (default false).
	Introspection bool `yaml:"introspection,omitempty"`
}

// Validate reports invalid fields under path.
func (c *Config) Validate(path string, errs *field.Errors) {
	c.Options.Validate(path, errs)
	for _, f := range []struct {
		name string
		v    int
	}{{"max_depth", c.MaxDepth}, {"max_aliases", c.MaxAliases}, {"max_batch", c.MaxBatch},
		{"max_cost", c.MaxCost}, {"max_query_bytes", c.MaxQueryBytes}} {
		if f.v < 0 || f.v > maxCostLimit {
			errs.Add(field.Join(path, f.name), "must be between 1 and %d (0 means the default)", maxCostLimit)
		}
	}
}

// Check is the built graphql check.
type Check struct {
	maxDepth, maxAliases, maxBatch, maxCost, maxBytes int
	introspection                                     bool
}

var _ pipeline.Check = (*Check)(nil)

func or(v, def int) int {
	if v <= 0 {
		return def
	}
	return min(v, maxCostLimit)
}

// New builds the check from a validated config.
func New(cfg Config) *Check {
	return &Check{
		maxDepth:      or(cfg.MaxDepth, defaultMaxDepth),
		maxAliases:    or(cfg.MaxAliases, defaultMaxAliases),
		maxBatch:      or(cfg.MaxBatch, defaultMaxBatch),
		maxCost:       or(cfg.MaxCost, defaultMaxCost),
		maxBytes:      or(cfg.MaxQueryBytes, defaultMaxQueryBytes),
		introspection: cfg.Introspection,
	}
}

// Name implements pipeline.Check.
func (*Check) Name() string { return "graphql" }

func refuse(slug, detail string) pipeline.Verdict {
	return pipeline.Verdict{Action: pipeline.Deny, Status: http.StatusBadRequest, Reason: slug, Detail: detail}
}

// request is one GraphQL operation request: a query and its variables.
type request struct {
	query string
	vars  map[string]any
}

// Check implements pipeline.Check.
func (c *Check) Check(_ context.Context, req *pipeline.Request) (pipeline.Verdict, error) {
	var reqs []request
	if req.HTTP != nil && req.HTTP.URL != nil {
		// GET ?query= (and servers that also read it on POST).
		for _, q := range queryValues(req.HTTP.URL.RawQuery, "query") {
			reqs = append(reqs, request{query: q})
		}
	}
	switch {
	case len(bytes.TrimSpace(req.Body)) > 0:
		body, v := c.parseBody(req.Body)
		if v.Action != pipeline.Allow {
			return v, nil
		}
		reqs = append(reqs, body...)
	case req.HTTP != nil && req.HTTP.Method == http.MethodPost && req.HTTP.ContentLength != 0 && req.Body == nil:
		// application/graphql, multipart uploads or a body over the
		// buffering limit: nothing to inspect, so on_error decides.
		return pipeline.Allowed, errors.New("graphql: the request body was not buffered as JSON and cannot be inspected")
	}
	for i := range reqs {
		if v := c.judge(&reqs[i]); v.Action != pipeline.Allow {
			return v, nil
		}
	}
	return pipeline.Allowed, nil
}

// parseBody reads a single {"query","operationName","variables"} object
// or a batch array of them. Keys are read from a token stream so a
// duplicate "query" (parsers disagree on which wins) is refused.
func (c *Check) parseBody(body []byte) ([]request, pipeline.Verdict) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, refuse(ReasonInvalid, "the body is not a GraphQL JSON request")
	}
	if tok == json.Delim('{') {
		r, err := readEnvelope(dec)
		if err != nil {
			return nil, refuse(ReasonInvalid, err.Error())
		}
		if _, err := dec.Token(); err == nil {
			return nil, refuse(ReasonInvalid, "the body holds more than one JSON value")
		}
		return r, pipeline.Allowed
	}
	if tok != json.Delim('[') {
		return nil, refuse(ReasonInvalid, "the body is not a GraphQL JSON request")
	}
	var out []request
	n := 0
	for dec.More() {
		if n++; n > c.maxBatch {
			if c.maxBatch == 1 {
				return nil, refuse(ReasonBatchTooLarge, "batched requests are not accepted")
			}
			return nil, refuse(ReasonBatchTooLarge, fmt.Sprintf("a batch may hold at most %d operations", c.maxBatch))
		}
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			return nil, refuse(ReasonInvalid, "a batch element is not a GraphQL JSON request")
		}
		r, err := readEnvelope(dec)
		if err != nil {
			return nil, refuse(ReasonInvalid, err.Error())
		}
		out = append(out, r...)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, refuse(ReasonInvalid, "the body is not valid JSON")
	}
	return out, pipeline.Allowed
}

// readEnvelope reads the members of an object whose '{' was consumed. A
// request without a query (a persisted-query hash) yields nothing to judge.
func readEnvelope(dec *json.Decoder) ([]request, error) {
	var r request
	hasQuery := false
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New("the body is not valid JSON")
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, errors.New("the body is not valid JSON")
		}
		switch key {
		case "query", "variables", "operationName":
			if seen[key] {
				return nil, errors.New("the request repeats a member")
			}
			seen[key] = true
		default:
			continue
		}
		switch key {
		case "query":
			var q *string
			if json.Unmarshal(raw, &q) != nil {
				return nil, errors.New("query must be a string")
			}
			if q != nil {
				r.query, hasQuery = *q, true
			}
		case "variables":
			r.vars = decodeVars(raw)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, errors.New("the body is not valid JSON")
	}
	if !hasQuery {
		return nil, nil
	}
	return []request{r}, nil
}

// decodeVars reads variables as an object, or a string holding one (some
// clients send them encoded); anything else reads as none.
func decodeVars(raw json.RawMessage) map[string]any {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = json.RawMessage(s)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) != nil {
		return nil
	}
	return m
}

// judge applies every limit to one request.
func (c *Check) judge(r *request) pipeline.Verdict {
	if len(r.query) > c.maxBytes {
		return refuse(ReasonTooLarge, fmt.Sprintf("the query is larger than %d bytes", c.maxBytes))
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: r.query})
	if err != nil {
		return refuse(ReasonInvalid, parseDetail(err))
	}
	if len(doc.Operations) == 0 {
		return refuse(ReasonInvalid, "the document has no operation")
	}
	frags, msg := fragments(doc)
	if msg != "" {
		return refuse(ReasonInvalid, msg)
	}
	for _, op := range doc.Operations {
		a := analysis{c: c, frags: frags, vars: r.vars, defs: op.VariableDefinitions}
		a.selections(op.SelectionSet, 0, 1)
		switch {
		case a.introspection && !c.introspection:
			return refuse(ReasonIntrospection, "introspection is disabled")
		case a.tooDeep:
			return refuse(ReasonTooDeep, fmt.Sprintf("the query nests fields deeper than %d", c.maxDepth))
		case a.aliases > c.maxAliases:
			return refuse(ReasonTooManyAlias, fmt.Sprintf("the query uses more than %d aliases", c.maxAliases))
		case a.cost > c.maxCost || a.steps > maxSteps(c):
			return refuse(ReasonTooCostly, fmt.Sprintf("the query's estimated cost exceeds %d", c.maxCost))
		}
	}
	return pipeline.Allowed
}

// fragments indexes fragment definitions and refuses unknown spreads,
// duplicate names and cycles, which would otherwise make expansion loop.
func fragments(doc *ast.QueryDocument) (map[string]*ast.FragmentDefinition, string) {
	m := make(map[string]*ast.FragmentDefinition, len(doc.Fragments))
	for _, f := range doc.Fragments {
		if m[f.Name] != nil {
			return nil, "a fragment name is defined twice"
		}
		m[f.Name] = f
	}
	const (
		unvisited = iota
		visiting
		done
	)
	state := make(map[string]int, len(m))
	var visit func(ast.SelectionSet) string
	visit = func(set ast.SelectionSet) string {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				if msg := visit(s.SelectionSet); msg != "" {
					return msg
				}
			case *ast.InlineFragment:
				if msg := visit(s.SelectionSet); msg != "" {
					return msg
				}
			case *ast.FragmentSpread:
				f := m[s.Name]
				switch {
				case f == nil:
					return "the query spreads an undefined fragment"
				case state[s.Name] == visiting:
					return "the query's fragments spread each other in a cycle"
				case state[s.Name] == done:
					continue
				}
				state[s.Name] = visiting
				if msg := visit(f.SelectionSet); msg != "" {
					return msg
				}
				state[s.Name] = done
			}
		}
		return ""
	}
	for _, op := range doc.Operations {
		if msg := visit(op.SelectionSet); msg != "" {
			return nil, msg
		}
	}
	for _, f := range doc.Fragments {
		if state[f.Name] == unvisited {
			state[f.Name] = visiting
			if msg := visit(f.SelectionSet); msg != "" {
				return nil, msg
			}
			state[f.Name] = done
		}
	}
	return m, ""
}

// maxSteps bounds the selections visited per operation; cost already
// bounds fields, this bounds the spreads and inline fragments between them.
func maxSteps(c *Check) int { return 4*c.maxCost + 10_000 }

// analysis measures one operation, fragments expanded. It stops early
// once the cost or alias limit is passed, so its work is bounded by the
// limits, not by how much a fragment fan-out would expand to.
type analysis struct {
	c             *Check
	frags         map[string]*ast.FragmentDefinition
	vars          map[string]any
	defs          ast.VariableDefinitionList
	cost, aliases int
	steps         int
	tooDeep       bool
	introspection bool
}

func (a *analysis) over() bool {
	return a.cost > a.c.maxCost || a.aliases > a.c.maxAliases || a.steps > maxSteps(a.c)
}

// selections walks a selection set at field depth depth, where each field
// costs mult. Fragments were checked acyclic, so recursion ends.
func (a *analysis) selections(set ast.SelectionSet, depth, mult int) {
	for _, sel := range set {
		if a.over() {
			return
		}
		a.steps++
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == "__schema" || s.Name == "__type" {
				a.introspection = true
			}
			if s.Alias != s.Name {
				a.aliases++
			}
			if depth+1 > a.c.maxDepth {
				a.tooDeep = true
				continue
			}
			a.cost = min(a.cost+mult, maxCostLimit)
			if len(s.SelectionSet) > 0 {
				a.selections(s.SelectionSet, depth+1, min(mult*a.listSize(s), a.c.maxCost+1))
			}
		case *ast.InlineFragment:
			a.selections(s.SelectionSet, depth, mult)
		case *ast.FragmentSpread:
			if f := a.frags[s.Name]; f != nil {
				a.selections(f.SelectionSet, depth, mult)
			}
		}
	}
}

// listSize is the largest first/last/limit argument of a field, 1 when it
// has none or they are not positive integers.
func (a *analysis) listSize(f *ast.Field) int {
	size := 1
	for _, arg := range f.Arguments {
		switch arg.Name {
		case "first", "last", "limit":
		default:
			continue
		}
		if n := a.intValue(arg.Value); n > size {
			size = n
		}
	}
	return min(size, a.c.maxCost+1)
}

func (a *analysis) intValue(v *ast.Value) int {
	if v == nil {
		return 0
	}
	switch v.Kind {
	case ast.IntValue:
		return atoiSat(v.Raw)
	case ast.Variable:
		if x, ok := a.vars[v.Raw]; ok {
			switch n := x.(type) {
			case json.Number:
				return atoiSat(n.String())
			case float64:
				return int(min(max(n, 0), maxCostLimit))
			}
			return 0
		}
		if d := a.defs.ForName(v.Raw); d != nil && d.DefaultValue != nil && d.DefaultValue.Kind == ast.IntValue {
			return atoiSat(d.DefaultValue.Raw)
		}
	}
	return 0
}

// atoiSat parses a non-negative integer, saturating instead of failing on
// huge values (a huge page size is the point of the attack).
func atoiSat(s string) int {
	if strings.HasPrefix(s, "-") {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > maxCostLimit {
		if err != nil && !isDigits(s) {
			return 0
		}
		return maxCostLimit
	}
	return n
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// parseDetail turns a parser error into a short client-safe detail: the
// message, truncated, with quotes and markup characters replaced, since it
// may quote a token of the query.
func parseDetail(err error) string {
	msg := err.Error()
	var loc string
	var ge *gqlerror.Error
	if errors.As(err, &ge) {
		msg = ge.Message
		if len(ge.Locations) > 0 {
			loc = fmt.Sprintf(" (line %d, column %d)", ge.Locations[0].Line, ge.Locations[0].Column)
		}
	}
	var b strings.Builder
	b.WriteString("the query does not parse: ")
	n := 0
	for _, r := range msg {
		if n >= maxDetail {
			b.WriteString("...")
			break
		}
		n++
		switch {
		case r == '"' || r == '`':
			r = '\''
		case r == '<':
			r = '['
		case r == '>':
			r = ']'
		case r < ' ' || r == 0x7f || r == '\\' || r == '&':
			r = '?'
		case r > 0x7e:
			r = '?' // non-ASCII could hide bidi or look-alike text
		}
		b.WriteRune(r)
	}
	return b.String() + loc
}

// queryValues returns every value of name in a raw query string, decoded
// leniently ('+' is a space; invalid escapes are kept as written).
func queryValues(raw, name string) []string {
	var out []string
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(pair, "=")
		if k, _ := lenient.QueryUnescape(k); k == name {
			v, _ := lenient.QueryUnescape(v)
			out = append(out, v)
		}
	}
	return out
}
