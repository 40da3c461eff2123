package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/apiguard/apiguard/internal/config/field"
)

// MaxFileSize bounds the config file; a larger one is refused, not parsed.
const MaxFileSize = 8 << 20

// Options tune loading.
type Options struct {
	// Lookup resolves ${NAME}; nil means os.LookupEnv.
	Lookup func(name string) (string, bool)
	// Middleware relaxes checks that only the proxy needs (upstreams).
	Middleware bool
}

// Load reads, expands, strictly decodes, defaults and validates a config file.
// The error lists every problem, each with file:line and field path.
func Load(path string, opts Options) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data, opts)
}

// Parse is Load for bytes; name is used in error positions.
func Parse(name string, data []byte, opts Options) (*Config, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: config file larger than %d bytes", name, MaxFileSize)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		return nil, &field.ListError{Errs: yamlErrors(name, err, nil)}
	}
	// yaml.Unmarshal would silently ignore everything after a "---": refuse
	// a second document unless it is empty (a trailing "---").
	for {
		var extra yaml.Node
		err := dec.Decode(&extra)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &field.ListError{Errs: yamlErrors(name, err, nil)}
		}
		if len(extra.Content) == 1 && extra.Content[0].ShortTag() != "!!null" {
			return nil, &field.ListError{Errs: []*field.Error{{
				Pos: name + ":" + strconv.Itoa(extra.Content[0].Line),
				Msg: "a second YAML document is not allowed: the whole config is one document",
			}}}
		}
	}
	cfg := &Config{Source: name}
	if doc.Kind == 0 { // empty file: all defaults
		cfg.ApplyDefaults()
		return cfg, cfg.validate(nil, opts)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	pos := positions{file: name, lines: map[string]int{}}
	pos.record(root, "")

	errs := &field.Errors{}
	lookup := opts.Lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	unset := map[*yaml.Node]bool{}
	expandNode(root, "", lookup, errs, unset)
	sc := &schemaCheck{errs: errs, skip: unset, seen: map[schemaVisit]bool{}, bad: map[*yaml.Node]bool{}, meant: map[string]bool{}}
	sc.check(root, reflect.TypeOf(cfg).Elem(), "")
	if errs.Len() > 0 {
		// Report every error at once: decode what is sound (a value that had
		// an error decodes as unset) and validate it too, leaving out what
		// follows from an error already reported: errors at or under a path
		// that had one, or that a "did you mean" names.
		for n := range unset {
			*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
		}
		for n := range sc.bad {
			*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
		}
		for _, e := range errs.List {
			sc.meant[e.Path] = true
		}
		var te *yaml.TypeError
		if err := root.Decode(cfg); err == nil || errors.As(err, &te) {
			cfg.Source = name
			cfg.ApplyDefaults()
			verrs := &field.Errors{}
			cfg.Validate(verrs, opts)
			for _, e := range verrs.List {
				if !sc.follows(e.Path) {
					errs.List = append(errs.List, e)
				}
			}
		}
		return nil, pos.annotate(errs)
	}
	if err := root.Decode(cfg); err != nil {
		return nil, &field.ListError{Errs: yamlErrors(name, err, &pos)}
	}
	cfg.ApplyDefaults()
	return cfg, cfg.validate(&pos, opts)
}

// ValidateConfig validates a config built in code; call ApplyDefaults first.
func ValidateConfig(c *Config, opts Options) error { return c.validate(nil, opts) }

func (c *Config) validate(pos *positions, opts Options) error {
	errs := &field.Errors{}
	c.Validate(errs, opts)
	if errs.Len() == 0 {
		return nil
	}
	if pos == nil {
		pos = &positions{file: c.Source, lines: map[string]int{}}
	}
	return pos.annotate(errs)
}

// positions maps YAML paths to the line they were written on.
type positions struct {
	file  string
	lines map[string]int
}

func (p *positions) record(n *yaml.Node, path string) {
	p.lines[path] = n.Line
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			child := field.Join(path, k.Value)
			p.record(v, child)
			p.lines[child] = k.Line
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			p.record(v, field.Index(path, i))
		}
	}
}

// line finds the line of path, or of its nearest written ancestor (a missing
// required key is reported where its parent is).
func (p *positions) line(path string) int {
	for {
		if l, ok := p.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return p.lines[""]
		}
		path = path[:i]
	}
}

// pathAt returns the deepest path written on line l.
func (p *positions) pathAt(l int) string {
	best := ""
	for path, pl := range p.lines {
		if pl == l && (len(path) > len(best) || (len(path) == len(best) && path < best)) {
			best = path
		}
	}
	return best
}

func (p *positions) annotate(errs *field.Errors) error {
	for _, e := range errs.List {
		if e.Pos == "" {
			e.Pos = p.file
			if l := p.line(e.Path); l > 0 {
				e.Pos += ":" + strconv.Itoa(l)
			}
		}
	}
	// Ties (several errors on one line, or no lines at all) are ordered by
	// path so the output does not depend on map iteration order.
	sort.SliceStable(errs.List, func(i, j int) bool {
		li, lj := p.line(errs.List[i].Path), p.line(errs.List[j].Path)
		if li != lj {
			return li < lj
		}
		return errs.List[i].Path < errs.List[j].Path
	})
	for _, e := range errs.List {
		e.Path, e.Msg = oneLine(e.Path), oneLine(e.Msg)
	}
	return errs.Err()
}

var yamlLineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlErrors turns yaml.v3 errors into field errors with file:line.
func yamlErrors(file string, err error, pos *positions) []*field.Error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make([]*field.Error, 0, len(msgs))
	for _, m := range msgs {
		m = oneLine(m)
		fe := &field.Error{Pos: file, Msg: strings.TrimPrefix(m, "yaml: ")}
		if sm := yamlLineRe.FindStringSubmatch(m); sm != nil {
			fe.Pos = file + ":" + sm[1]
			fe.Msg = sm[2]
			if pos != nil {
				l, _ := strconv.Atoi(sm[1])
				fe.Path = pos.pathAt(l)
			}
		}
		out = append(out, fe)
	}
	return out
}

// lineBreaks escapes line breaks: each error is one line of the error text,
// even when a key or a value quoted in a message spans lines.
var lineBreaks = strings.NewReplacer("\r", `\r`, "\n", `\n`)

func oneLine(s string) string { return lineBreaks.Replace(s) }

var envRe = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{[^}]*\}?`)

// expandNode replaces ${NAME} in scalar values (never in keys, never in the
// raw text, so a value cannot inject YAML). $$ is a literal $. An unset or
// malformed reference is an error; its node is added to bad.
func expandNode(n *yaml.Node, path string, lookup func(string) (string, bool), errs *field.Errors, bad map[*yaml.Node]bool) {
	switch n.Kind {
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		before := errs.Len()
		n.Value = envRe.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$$" {
				return "$"
			}
			sub := envRe.FindStringSubmatch(m)
			if sub[1] == "" {
				errs.Add(path, "malformed variable reference %q (use ${NAME})", m)
				return m
			}
			v, ok := lookup(sub[1])
			if !ok {
				errs.Add(path, "environment variable %s is not set", sub[1])
				return m
			}
			return v
		})
		if errs.Len() > before {
			bad[n] = true
		}
		// The parser resolved a plain scalar's type from the unexpanded text
		// ("${PORT}" is a string); resolve it again from the value, as if it
		// had been written in the file, so `json_max_depth: ${DEPTH}` works.
		// Quoted and explicitly tagged scalars stay as written.
		if n.Style&(yaml.TaggedStyle|yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			n.Tag = ""
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expandNode(n.Content[i+1], field.Join(path, n.Content[i].Value), lookup, errs, bad)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			expandNode(v, field.Index(path, i), lookup, errs, bad)
		}
	}
}

// schemaCheck rejects keys the schema does not have, suggesting the
// closest known key, and duplicate keys, and type-checks every leaf value at
// its own path, so all type errors are reported at once and precisely.
// yaml.v3 cannot do strict decoding from a node, and our own walk gives
// better messages anyway. Aliases are followed (an anchored mapping is
// checked against the schema where it is used, too), each (node, type) once
// so that alias fan-out stays linear.
type schemaCheck struct {
	errs  *field.Errors
	skip  map[*yaml.Node]bool // values whose ${VAR} failed: already reported
	seen  map[schemaVisit]bool
	bad   map[*yaml.Node]bool // values that do not decode
	meant map[string]bool     // paths with an error, or suggested for one
}

// follows reports whether path is, or is under, a path in sc.meant.
func (sc *schemaCheck) follows(path string) bool {
	for {
		if sc.meant[path] {
			return true
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return false
		}
		path = path[:i]
	}
}

type schemaVisit struct {
	n *yaml.Node
	t reflect.Type
}

var (
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	yamlLinePrefix  = regexp.MustCompile(`^(?:yaml: )?line \d+: `)
)

func (sc *schemaCheck) check(n *yaml.Node, t reflect.Type, path string) {
	errs := sc.errs
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	v := schemaVisit{n, t}
	if sc.seen[v] {
		return
	}
	sc.seen[v] = true
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		sc.leaf(n, t, path)
		return
	}
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		fields := yamlFields(t)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			child := field.Join(path, k.Value)
			if seen[k.Value] {
				errs.Add(child, "duplicate key")
				continue
			}
			seen[k.Value] = true
			ft, ok := fields[k.Value]
			if !ok {
				msg := "unknown field"
				if s := suggest(k.Value, fields); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
					sc.meant[field.Join(path, s)] = true
				}
				errs.Add(child, "%s", msg)
				continue
			}
			sc.check(v, ft, child)
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			child := field.Join(path, n.Content[i].Value)
			if seen[n.Content[i].Value] {
				errs.Add(child, "duplicate key")
				continue
			}
			seen[n.Content[i].Value] = true
			sc.leaf(n.Content[i], t.Key(), child)
			sc.check(n.Content[i+1], t.Elem(), child)
		}
	case n.Kind == yaml.SequenceNode && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		for i, v := range n.Content {
			sc.check(v, t.Elem(), field.Index(path, i))
		}
	default:
		sc.leaf(n, t, path)
	}
}

// leaf decodes n into a fresh t and reports any error at path.
func (sc *schemaCheck) leaf(n *yaml.Node, t reflect.Type, path string) {
	if sc.skip[n] {
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && t.Kind() == reflect.String && !reflect.PointerTo(t).Implements(unmarshalerType) {
		return // fast path: a string into a plain string type always decodes
	}
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		// yaml.v3 truncates floats into integers (1.5 becomes 1, -.inf the
		// smallest int64); strict decoding refuses them.
		if k := t.Kind(); k >= reflect.Int && k <= reflect.Int64 && n.ShortTag() == "!!float" {
			var f float64
			if n.Decode(&f) == nil && (f != math.Trunc(f) || math.IsInf(f, 0)) {
				sc.errs.Add(path, "must be a whole number, not %s", n.Value)
				sc.bad[n] = true
			}
		}
		return
	}
	sc.bad[n] = true
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, m := range msgs {
		sc.errs.Add(path, "%s", yamlLinePrefix.ReplaceAllString(m, ""))
	}
}

// yamlFields maps YAML keys to field types, descending into inline structs.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// suggest returns the known key closest to s when it is a plausible typo:
// at most 2 edits, or a third of the longer key (trusted_proxy for
// trusted_proxies, json_depth for json_max_depth).
func suggest(s string, fields map[string]reflect.Type) string {
	best, bestD := "", -1
	for k := range fields {
		d := field.Distance(s, k)
		if d > max(2, max(len(s), len(k))/3) {
			continue
		}
		if bestD < 0 || d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	if bestD > len(s)/2 {
		return ""
	}
	return best
}
