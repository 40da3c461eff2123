package config

import (
	"errors"
	"fmt"
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
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &field.ListError{Errs: yamlErrors(name, err, nil)}
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
	expandNode(root, "", lookup, errs)
	checkKnownFields(root, reflect.TypeOf(cfg).Elem(), "", errs)
	if errs.Len() > 0 {
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
		if pl == l && len(path) > len(best) {
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
	sort.SliceStable(errs.List, func(i, j int) bool { return p.line(errs.List[i].Path) < p.line(errs.List[j].Path) })
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

var envRe = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{[^}]*\}?`)

// expandNode replaces ${NAME} in scalar values (never in keys, never in the
// raw text, so a value cannot inject YAML). $$ is a literal $. An unset or
// malformed reference is an error.
func expandNode(n *yaml.Node, path string, lookup func(string) (string, bool), errs *field.Errors) {
	switch n.Kind {
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
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
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expandNode(n.Content[i+1], field.Join(path, n.Content[i].Value), lookup, errs)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			expandNode(v, field.Index(path, i), lookup, errs)
		}
	}
}

// checkKnownFields rejects keys the schema does not have, suggesting the
// closest known key, and duplicate keys. yaml.v3 cannot do strict decoding
// from a node, and our own walk gives better messages anyway.
func checkKnownFields(n *yaml.Node, t reflect.Type, path string, errs *field.Errors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()) {
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
				}
				errs.Add(child, "%s", msg)
				continue
			}
			checkKnownFields(v, ft, child, errs)
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
			checkKnownFields(n.Content[i+1], t.Elem(), child, errs)
		}
	case n.Kind == yaml.SequenceNode && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		for i, v := range n.Content {
			checkKnownFields(v, t.Elem(), field.Index(path, i), errs)
		}
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

// suggest returns the known key closest to s when it is a plausible typo.
func suggest(s string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for k := range fields {
		if d := editDistance(s, k); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	if bestD > len(s)/2 {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
