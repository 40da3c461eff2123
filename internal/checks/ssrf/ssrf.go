// Package ssrf refuses requests whose URL-valued parameters point at the
// gateway's own network (OWASP API7:2023, server-side request forgery):
// loopback, private, link-local (cloud metadata), CGNAT and other
// non-public addresses, in every spelling URL parsers accept, and host
// names that are internal by name or resolve to such addresses.
//
// Resolution happens here, once; the upstream resolves again when it
// fetches. A name whose answers change between the two (DNS rebinding) is
// out of scope: the upstream's fetcher must pin the address it checked or
// use an egress proxy for that.
package ssrf

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/lenient"
	"github.com/apiguard/apiguard/internal/pipeline"
)

const (
	reason                = "ssrf-blocked"
	defaultResolveTimeout = 200 * time.Millisecond
	maxResolveTimeout     = 10 * time.Second
	maxDepth              = 128
	maxNodes              = 100_000
	maxLookups            = 16 // distinct names resolved per request
	maxDetailName         = 96
)

// Config is the ssrf check's configuration.
type Config struct {
	pipeline.Options `yaml:",inline"`
	// Parameters are the URL-valued parameters: JSON pointers into the
	// body ("/image_url", "/items/*/url"; "*" matches one array index or
	// key) and query parameters ("query:callback"). Empty: every string
	// value that is an absolute http, https, ftp, gopher, file or dict URL.
	Parameters []string `yaml:"parameters,omitempty"`
	// AllowHosts are trusted destinations exempt from every address check
	// (an internal image service): exact names or "*.suffix".
	AllowHosts []string `yaml:"allow_hosts,omitempty"`
	// DenyCIDRs are refused in addition to the built-in internal ranges.
	DenyCIDRs []string `yaml:"deny_cidrs,omitempty"`
	// Schemes are the allowed URL schemes (default http, https).
	Schemes []string `yaml:"schemes,omitempty"`
	// Resolve looks host names up and refuses them when any address is
	// internal (default true). Lookup failures are errors: on_error decides.
	Resolve *bool `yaml:"resolve,omitempty"`
	// ResolveTimeout bounds each lookup (default 200ms).
	ResolveTimeout string `yaml:"resolve_timeout,omitempty"`
}

// Validate reports invalid fields under path.
func (c *Config) Validate(path string, errs *field.Errors) {
	c.Options.Validate(path, errs)
	for i, p := range c.Parameters {
		at := field.Index(field.Join(path, "parameters"), i)
		if name, ok := strings.CutPrefix(p, "query:"); ok {
			if name == "" {
				errs.Add(at, "query: needs a parameter name")
			}
			continue
		}
		if _, ok := splitPointer(p); !ok {
			errs.Add(at, `must be a JSON pointer such as /image_url or query:NAME, not %q`, p)
		}
	}
	for i, h := range c.AllowHosts {
		name := strings.TrimPrefix(h, "*.")
		if k, _ := parseHost(normaliseHost(name)); k == hostInvalid || strings.ContainsAny(name, "/@*") {
			errs.Add(field.Index(field.Join(path, "allow_hosts"), i), "must be a host name or *.suffix: %q", h)
		}
	}
	for i, s := range c.DenyCIDRs {
		if _, err := parsePrefix(s); err != nil {
			errs.Add(field.Index(field.Join(path, "deny_cidrs"), i), "not an IP address or CIDR: %q", s)
		}
	}
	for i, s := range c.Schemes {
		if schemeEnd(s+":") != len(s) {
			errs.Add(field.Index(field.Join(path, "schemes"), i), "not a URL scheme: %q", s)
		}
	}
	if d, err := durationOr(c.ResolveTimeout, defaultResolveTimeout); err != nil || d <= 0 || d > maxResolveTimeout {
		errs.Add(field.Join(path, "resolve_timeout"), "must be a duration between 1ms and %v, not %q", maxResolveTimeout, c.ResolveTimeout)
	}
}

// Resolver looks host names up; *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Option customises a check.
type Option func(*Check)

// WithResolver replaces net.DefaultResolver (tests, a dedicated DNS server).
func WithResolver(r Resolver) Option { return func(c *Check) { c.resolver = r } }

// Check is the built ssrf check.
type Check struct {
	pointers   [][]string
	queryNames map[string]bool
	auto       bool
	allowExact map[string]bool
	allowSufs  []string
	deny       []netip.Prefix
	schemes    map[string]bool
	resolve    bool
	timeout    time.Duration
	resolver   Resolver
}

var _ pipeline.Check = (*Check)(nil)

// New builds the check from a validated config.
func New(cfg Config, opts ...Option) (*Check, error) {
	c := &Check{auto: len(cfg.Parameters) == 0, allowExact: map[string]bool{}, schemes: map[string]bool{},
		resolve: cfg.Resolve == nil || *cfg.Resolve, resolver: net.DefaultResolver}
	for _, p := range cfg.Parameters {
		if name, ok := strings.CutPrefix(p, "query:"); ok {
			if c.queryNames == nil {
				c.queryNames = map[string]bool{}
			}
			c.queryNames[name] = true
			continue
		}
		segs, ok := splitPointer(p)
		if !ok {
			return nil, fmt.Errorf("ssrf: parameter %q is not a JSON pointer", p)
		}
		c.pointers = append(c.pointers, segs)
	}
	for _, h := range cfg.AllowHosts {
		h = normaliseHost(h)
		if suf, ok := strings.CutPrefix(h, "*."); ok {
			c.allowSufs = append(c.allowSufs, "."+suf)
		} else {
			c.allowExact[h] = true
		}
	}
	for _, s := range cfg.DenyCIDRs {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("ssrf: deny_cidrs: %w", err)
		}
		c.deny = append(c.deny, p)
	}
	if len(cfg.Schemes) == 0 {
		cfg.Schemes = []string{"http", "https"}
	}
	for _, s := range cfg.Schemes {
		c.schemes[strings.ToLower(s)] = true
	}
	var err error
	if c.timeout, err = durationOr(cfg.ResolveTimeout, defaultResolveTimeout); err != nil || c.timeout <= 0 {
		return nil, fmt.Errorf("ssrf: invalid resolve_timeout %q", cfg.ResolveTimeout)
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Name implements pipeline.Check.
func (*Check) Name() string { return "ssrf" }

// Check implements pipeline.Check.
func (c *Check) Check(ctx context.Context, req *pipeline.Request) (pipeline.Verdict, error) {
	s := &scan{c: c, ctx: ctx, names: map[string]string{}}
	if req.HTTP != nil && req.HTTP.URL != nil && (c.auto || c.queryNames != nil) {
		if v, err := s.query(req.HTTP.URL.RawQuery); v.Action != pipeline.Allow || err != nil {
			return v, err
		}
	}
	if len(req.Body) > 0 && (c.auto || c.pointers != nil) {
		return s.json(req.Body)
	}
	return pipeline.Allowed, nil
}

// scan is one request's inspection; names caches each host name's verdict
// so a URL repeated in a body costs one lookup.
type scan struct {
	c       *Check
	ctx     context.Context
	names   map[string]string
	lookups int
	nodes   int
}

func refuse(param, why string) pipeline.Verdict {
	return pipeline.Verdict{Action: pipeline.Deny, Status: http.StatusBadRequest, Reason: reason,
		Detail: "the URL in " + param + " " + why}
}

var tooLarge = pipeline.Verdict{Action: pipeline.Deny, Status: http.StatusBadRequest, Reason: reason,
	Detail: "the request is too deeply nested or too large to inspect for URLs"}

// value judges one parameter value; param names it for the detail.
func (s *scan) value(param, v string) (pipeline.Verdict, error) {
	t, ok := parseTarget(v, s.c.auto)
	if !ok || !s.c.auto && clean(v) == "" {
		return pipeline.Allowed, nil
	}
	if t.scheme != "" && !s.c.schemes[t.scheme] {
		return refuse(param, "uses a scheme that is not allowed"), nil
	}
	for _, h := range t.hosts {
		why, err := s.host(h)
		if err != nil {
			return pipeline.Allowed, fmt.Errorf("ssrf: %s: %w", param, err)
		}
		if why != "" {
			return refuse(param, why), nil
		}
	}
	return pipeline.Allowed, nil
}

// host says why a normalised host is refused ("" when it is not).
func (s *scan) host(h string) (string, error) {
	if s.c.allowed(h) {
		return "", nil
	}
	kind, addr := parseHost(h)
	switch kind {
	case hostInvalid:
		return "has an invalid host", nil
	case hostAddr:
		if p := addrProblem(addr, s.c.deny); p != "" {
			return "points to " + p, nil
		}
		return "", nil
	}
	if internalName(h) {
		return "names an internal host", nil
	}
	if !s.c.resolve {
		return "", nil
	}
	if why, ok := s.names[h]; ok {
		return why, nil
	}
	if s.lookups++; s.lookups > maxLookups {
		return "", fmt.Errorf("more than %d host names to resolve", maxLookups)
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.c.timeout)
	defer cancel()
	addrs, err := s.c.resolver.LookupNetIP(ctx, "ip", h)
	if err != nil {
		return "", fmt.Errorf("resolving the host: %w", err)
	}
	if len(addrs) == 0 {
		return "", fmt.Errorf("resolving the host: no addresses")
	}
	why := ""
	for _, a := range addrs {
		if p := addrProblem(a, s.c.deny); p != "" {
			why = "resolves to " + p
			break
		}
	}
	s.names[h] = why
	return why, nil
}

func (c *Check) allowed(h string) bool {
	if c.allowExact[h] {
		return true
	}
	for _, s := range c.allowSufs {
		if strings.HasSuffix(h, s) {
			return true
		}
	}
	return false
}

// query judges query parameter values, splitting on '&' and ';' and
// decoding leniently so no framework's reading escapes inspection.
func (s *scan) query(raw string) (pipeline.Verdict, error) {
	for raw != "" {
		var pair string
		if i := strings.IndexAny(raw, "&;"); i >= 0 {
			pair, raw = raw[:i], raw[i+1:]
		} else {
			pair, raw = raw, ""
		}
		if s.nodes++; s.nodes > maxNodes {
			return tooLarge, nil
		}
		k, v, _ := strings.Cut(pair, "=")
		name, _ := lenient.QueryUnescape(k)
		if !s.c.auto && !s.c.queryNames[name] {
			continue
		}
		if vd, err := s.value("query parameter "+quote(name), queryValue(v)); vd.Action != pipeline.Allow || err != nil {
			return vd, err
		}
	}
	return pipeline.Allowed, nil
}

// json walks the body as a token stream, so every duplicate key is judged
// (parsers disagree on which one wins). Invalid JSON ends the walk: what
// was read was judged, and validity is schema validation's concern.
func (s *scan) json(body []byte) (pipeline.Verdict, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		obj, expectKey bool
		idx            int
	}
	var stack []frame
	var path []string
	for {
		tok, err := dec.Token()
		if err != nil {
			return pipeline.Allowed, nil
		}
		if s.nodes++; s.nodes > maxNodes {
			return tooLarge, nil
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack, path = stack[:len(stack)-1], path[:len(path)-1]
			if n := len(stack); n > 0 && stack[n-1].obj {
				stack[n-1].expectKey = true
			}
			continue
		}
		var top *frame
		if n := len(stack); n > 0 {
			top = &stack[n-1]
		}
		if top != nil && top.obj && top.expectKey {
			path[len(path)-1], _ = tok.(string)
			top.expectKey = false
			continue
		}
		if top != nil && !top.obj {
			top.idx++
			path[len(path)-1] = strconv.Itoa(top.idx)
		}
		if top != nil && top.obj {
			top.expectKey = true
		}
		switch t := tok.(type) {
		case json.Delim:
			if len(stack) >= maxDepth {
				return tooLarge, nil
			}
			stack = append(stack, frame{obj: t == '{', expectKey: true, idx: -1})
			path = append(path, "")
		case string:
			if s.c.auto || s.c.selected(path) {
				if v, err := s.value(pointer(path), t); v.Action != pipeline.Allow || err != nil {
					return v, err
				}
			}
		}
	}
}

func (c *Check) selected(path []string) bool {
	for _, p := range c.pointers {
		if len(p) != len(path) {
			continue
		}
		match := true
		for i := range p {
			if p[i] != "*" && p[i] != path[i] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// splitPointer parses an RFC 6901 pointer naming at least one token
// ("/" alone names the whole body, not a URL).
func splitPointer(p string) ([]string, bool) {
	if len(p) < 2 {
		return nil, false
	}
	return lenient.SplitPointer(p)
}

// pointer renders a body path as a JSON pointer, escaped for a detail.
func pointer(path []string) string {
	if len(path) == 0 {
		return "the body"
	}
	var b strings.Builder
	for _, seg := range path {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(seg, "~", "~0"), "/", "~1"))
	}
	return safe(b.String())
}

func quote(s string) string { return `"` + safe(s) + `"` }

func durationOr(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	return time.ParseDuration(s)
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// safe quotes an attacker-chosen name for a problem detail.
func safe(s string) string { return lenient.SafeName(s, maxDetailName, "/_-.~*[]:") }

func queryValue(v string) string {
	d, _ := lenient.QueryUnescape(v)
	return d
}
