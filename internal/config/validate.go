package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
)

// Validate checks the defaulted config and records every error. It is pure:
// no network, no globals; it only stats files the config names.
func (c *Config) Validate(errs *field.Errors, opts Options) {
	validateAddr("listen", c.Listen, errs)
	validateAddr("admin.listen", c.Admin.Listen, errs)
	if c.ForwardAuth.Listen != "" {
		validateAddr("forward_auth.listen", c.ForwardAuth.Listen, errs)
	}
	switch c.ForwardAuth.Style {
	case "", "auto", "nginx", "traefik", "envoy":
	default:
		errs.Add("forward_auth.style", "must be auto, nginx, traefik or envoy, not %q", c.ForwardAuth.Style)
	}
	if c.Admin.TokenFile != "" {
		validateFile("admin.token_file", c.Admin.TokenFile, errs)
	}
	if c.Admin.Token != "" && len(c.Admin.Token) < 16 {
		errs.Add("admin.token", "must be at least 16 characters")
	}
	switch c.Mode {
	case pipeline.ModeEnforce, pipeline.ModeMonitor:
	default:
		errs.Add("mode", "must be enforce or monitor, not %q", c.Mode)
	}
	c.Trusted = c.Trusted[:0]
	for i, s := range c.TrustedProxies {
		p, err := parseCIDR(s)
		if err != nil {
			errs.Add(field.Index("trusted_proxies", i), "not an IP address or CIDR: %q", s)
			continue
		}
		c.Trusted = append(c.Trusted, p)
	}
	c.TLS.validate(errs)
	c.Limits.validate(errs)
	c.validateUpstreams(errs, opts)
	c.validateRoutes(errs, opts)
	c.Checks.validate("checks", errs)
	c.validateMTLS(errs)
	c.validateAPIKeys(errs)
	c.validateAttestation(errs)
	c.validateBot(errs)
	c.State.validate(errs)
	c.Events.validate(errs)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs.Add("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		errs.Add("log.format", "must be json or text, not %q", c.Log.Format)
	}
}

func parseCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func validateAddr(path, addr string, errs *field.Errors) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		errs.Add(path, "not a host:port address: %q", addr)
		return
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			errs.Add(path, "host must be an IP address or localhost, not %q", host)
		}
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		errs.Add(path, "invalid port %q", port)
	}
}

func validateFile(path, name string, errs *field.Errors) {
	if _, err := os.Stat(name); err != nil {
		errs.Add(path, "cannot read file %q", name)
	}
}

func (t *TLS) validate(errs *field.Errors) {
	if t == nil {
		return
	}
	if t.CertFile == "" {
		errs.Add("tls.cert_file", "required when tls is set")
	} else {
		validateFile("tls.cert_file", t.CertFile, errs)
	}
	if t.KeyFile == "" {
		errs.Add("tls.key_file", "required when tls is set")
	} else {
		validateFile("tls.key_file", t.KeyFile, errs)
	}
	switch t.MinVersion {
	case "", "1.2", "1.3":
	default:
		errs.Add("tls.min_version", "must be 1.2 or 1.3, not %q", t.MinVersion)
	}
	for i, f := range t.ClientCAFiles {
		validateFile(field.Index("tls.client_ca_files", i), f, errs)
	}
	switch t.ClientAuth {
	case "", "none", "request", "verify_if_given", "require":
	default:
		errs.Add("tls.client_auth", "must be none, request, verify_if_given or require, not %q", t.ClientAuth)
	}
	if (t.ClientAuth == "verify_if_given" || t.ClientAuth == "require") && len(t.ClientCAFiles) == 0 {
		errs.Add("tls.client_ca_files", "required when client_auth is %s", t.ClientAuth)
	}
}

func (l *Limits) validate(errs *field.Errors) {
	nonNeg := map[string]int64{
		"limits.max_header_bytes":    int64(l.MaxHeaderBytes),
		"limits.max_body_bytes":      int64(l.MaxBodyBytes),
		"limits.json_max_depth":      int64(l.JSONMaxDepth),
		"limits.json_max_elements":   int64(l.JSONMaxElements),
		"limits.read_header_timeout": int64(l.ReadHeaderTimeout),
		"limits.read_timeout":        int64(l.ReadTimeout),
		"limits.write_timeout":       int64(l.WriteTimeout),
		"limits.idle_timeout":        int64(l.IdleTimeout),
		"limits.upstream_timeout":    int64(l.UpstreamTimeout),
		"limits.shutdown_timeout":    int64(l.ShutdownTimeout),
	}
	for _, k := range sortedKeys(nonNeg) {
		if nonNeg[k] < 0 {
			errs.Add(k, "must not be negative")
		}
	}
	if l.MaxHeaderBytes > 0 && l.MaxHeaderBytes < 1024 {
		errs.Add("limits.max_header_bytes", "must be at least 1KiB")
	}
	if l.MaxConnsPerIP < -1 {
		errs.Add("limits.max_conns_per_ip", "must be a positive number, or -1 to disable")
	}
}

func (c *Config) validateUpstreams(errs *field.Errors, opts Options) {
	for _, name := range sortedKeys(c.Upstreams) {
		u := c.Upstreams[name]
		path := field.Join("upstreams", name)
		if u == nil {
			errs.Add(path, "must not be empty")
			continue
		}
		if len(u.Targets) == 0 {
			errs.Add(field.Join(path, "targets"), "at least one target is required")
		}
		for i, t := range u.Targets {
			p := field.Index(field.Join(path, "targets"), i)
			tu, err := url.Parse(t)
			if err != nil || (tu.Scheme != "http" && tu.Scheme != "https") || tu.Host == "" {
				errs.Add(p, "must be an http:// or https:// URL with a host, not %q", t)
				continue
			}
			if tu.RawQuery != "" || tu.Fragment != "" || tu.User != nil {
				errs.Add(p, "must not carry a query, fragment or credentials")
			}
		}
		if u.CAFile != "" {
			validateFile(field.Join(path, "ca_file"), u.CAFile, errs)
		}
		for k, v := range map[string]Duration{"timeout": u.Timeout, "dial_timeout": u.DialTimeout, "fail_timeout": u.FailTimeout} {
			if v < 0 {
				errs.Add(field.Join(path, k), "must not be negative")
			}
		}
		if u.MaxIdleConns < 0 {
			errs.Add(field.Join(path, "max_idle_conns"), "must not be negative")
		}
	}
	if len(c.Upstreams) > 0 && len(c.Routes) == 0 && !opts.Middleware {
		errs.Add("routes", "no routes: add at least one route that sends to an upstream")
	}
}

var validMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true, "TRACE": false, "CONNECT": false}

func (c *Config) validateRoutes(errs *field.Errors, opts Options) {
	names := map[string]int{}
	for i, r := range c.Routes {
		path := field.Index("routes", i)
		if r == nil {
			errs.Add(path, "must not be empty")
			continue
		}
		if r.Name == "" {
			r.Name = fmt.Sprintf("route-%d", i)
		}
		if j, dup := names[r.Name]; dup {
			errs.Add(field.Join(path, "name"), "duplicate route name %q (also routes[%d])", r.Name, j)
		}
		names[r.Name] = i
		if !strings.HasPrefix(r.PathPrefix, "/") {
			errs.Add(field.Join(path, "path_prefix"), "must start with /")
		}
		if strings.HasPrefix(r.Host, "[") && strings.HasSuffix(r.Host, "]") {
			if _, err := netip.ParseAddr(r.Host[1 : len(r.Host)-1]); err != nil {
				errs.Add(field.Join(path, "host"), "not an IPv6 address: %q", r.Host)
			}
		} else if strings.Contains(r.Host, ":") {
			errs.Add(field.Join(path, "host"), "must not include a port: routes match the host name only")
		} else if strings.ContainsAny(r.Host, "/ ") || strings.Count(r.Host, "*") > 1 || (strings.Contains(r.Host, "*") && !strings.HasPrefix(r.Host, "*.")) {
			errs.Add(field.Join(path, "host"), "must be a host name or *.domain, not %q", r.Host)
		}
		for j, m := range r.Methods {
			up := strings.ToUpper(m)
			if ok, known := validMethods[up]; !known || !ok {
				errs.Add(field.Index(field.Join(path, "methods"), j), "unsupported method %q", m)
			}
			r.Methods[j] = up
		}
		switch {
		case r.Upstream == "" && !opts.Middleware:
			errs.Add(field.Join(path, "upstream"), "required")
		case r.Upstream != "" && !hasKey(c.Upstreams, r.Upstream) && !opts.Middleware:
			msg := fmt.Sprintf("no upstream named %q", r.Upstream)
			if s := closest(r.Upstream, sortedKeys(c.Upstreams)); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			errs.Add(field.Join(path, "upstream"), "%s", msg)
		}
		lp := field.Join(path, "limits")
		if r.Limits.MaxBodyBytes < 0 {
			errs.Add(field.Join(lp, "max_body_bytes"), "must not be negative")
		}
		if r.Limits.JSONMaxDepth < 0 {
			errs.Add(field.Join(lp, "json_max_depth"), "must not be negative")
		}
		if r.Limits.JSONMaxElements < 0 {
			errs.Add(field.Join(lp, "json_max_elements"), "must not be negative")
		}
		r.CORS.validate(field.Join(path, "cors"), errs)
		r.Checks.validate(field.Join(path, "checks"), errs)
	}
}

func (c *CORS) validate(path string, errs *field.Errors) {
	if c == nil {
		return
	}
	if len(c.AllowedOrigins) == 0 {
		errs.Add(field.Join(path, "allowed_origins"), "at least one origin is required")
	}
	for i, o := range c.AllowedOrigins {
		p := field.Index(field.Join(path, "allowed_origins"), i)
		if o == "*" {
			if c.AllowCredentials {
				errs.Add(p, `"*" cannot be combined with allow_credentials (browsers refuse it and it would expose credentials to every site)`)
			}
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			errs.Add(p, "must be \"*\" or an origin such as https://app.example.com, not %q", o)
		}
	}
	for i, m := range c.AllowedMethods {
		if ok, known := validMethods[strings.ToUpper(m)]; !known || !ok {
			errs.Add(field.Index(field.Join(path, "allowed_methods"), i), "unsupported method %q", m)
		}
	}
	if c.MaxAge < 0 {
		errs.Add(field.Join(path, "max_age"), "must not be negative")
	}
}

func (ch *Checks) validate(path string, errs *field.Errors) {
	if ch.IPList != nil {
		ch.IPList.Validate(field.Join(path, "iplist"), errs)
	}
	if ch.RateLimit != nil {
		ch.RateLimit.Validate(field.Join(path, "ratelimit"), errs)
	}
	if ch.MTLS != nil {
		ch.MTLS.Validate(field.Join(path, "mtls"), errs)
	}
	if ch.JWT != nil {
		ch.JWT.Validate(field.Join(path, "jwt"), errs)
	}
	if ch.Authz != nil {
		ch.Authz.Validate(field.Join(path, "authz"), errs)
	}
	if ch.APIKey != nil {
		ch.APIKey.Validate(field.Join(path, "apikey"), errs)
	}
	if ch.HTTPSig != nil {
		ch.HTTPSig.Validate(field.Join(path, "httpsig"), errs)
	}
	if ch.Attestation != nil {
		ch.Attestation.Validate(field.Join(path, "attestation"), errs)
	}
	if ch.OpenAPI != nil {
		ch.OpenAPI.Validate(field.Join(path, "openapi"), errs)
	}
	if ch.NoSQL != nil {
		ch.NoSQL.Validate(field.Join(path, "nosql"), errs)
	}
	if ch.SSRF != nil {
		ch.SSRF.Validate(field.Join(path, "ssrf"), errs)
	}
	if ch.GraphQL != nil {
		ch.GraphQL.Validate(field.Join(path, "graphql"), errs)
	}
	if ch.WAF != nil {
		ch.WAF.Validate(field.Join(path, "waf"), errs)
	}
	if ch.Bot != nil {
		ch.Bot.Validate(field.Join(path, "bot"), errs)
	}
}

func (e *Events) validate(errs *field.Errors) {
	if e.QueueSize < 0 {
		errs.Add("events.queue_size", "must not be negative")
	}
	switch e.Store.Driver {
	case "sqlite", "none":
	case "postgres":
		if e.Store.DSN == "" {
			errs.Add("events.store.dsn", "required for the postgres driver (postgres://user@host:5432/db)")
		}
	default:
		errs.Add("events.store.driver", "must be sqlite, postgres or none, not %q", e.Store.Driver)
	}
	switch e.Store.Requests {
	case "rollup", "all", "none":
	default:
		errs.Add("events.store.requests", "must be rollup, all or none, not %q", e.Store.Requests)
	}
	if e.Store.Retention < 0 {
		errs.Add("events.store.retention", "must not be negative")
	}
}

func closest(s string, options []string) string {
	best, bestD := "", 3
	for _, o := range options {
		if d := field.Distance(s, o); d < bestD {
			best, bestD = o, d
		}
	}
	return best
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (s *State) validate(errs *field.Errors) {
	switch s.Backend {
	case "memory":
	case "redis":
		if len(s.Redis.Addrs) == 0 {
			errs.Add("state.redis.addrs", "at least one host:port is required for the redis backend")
		}
		for i, a := range s.Redis.Addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				errs.Add(field.Index("state.redis.addrs", i), "not a host:port address: %q", a)
			}
		}
	default:
		errs.Add("state.backend", "must be memory or redis, not %q", s.Backend)
	}
	if s.Memory.MaxKeys < 0 {
		errs.Add("state.memory.max_keys", "must not be negative")
	}
	for k, v := range map[string]Duration{"dial_timeout": s.Redis.DialTimeout, "read_timeout": s.Redis.ReadTimeout, "write_timeout": s.Redis.WriteTimeout} {
		if v < 0 {
			errs.Add(field.Join("state.redis", k), "must not be negative")
		}
	}
}

// validateMTLS: a route can only verify client certificates the listener
// asked for.
func (c *Config) validateMTLS(errs *field.Errors) {
	requested := c.TLS != nil && c.TLS.ClientAuth != "" && c.TLS.ClientAuth != "none"
	check := func(path string, ch *Checks) {
		if ch.MTLS != nil && ch.MTLS.Mode != "off" && !requested {
			errs.Add(path, "needs tls.client_auth: request, verify_if_given or require, so the listener asks clients for certificates")
		}
	}
	check("checks.mtls", &c.Checks)
	for i, r := range c.Routes {
		if r != nil {
			check(field.Join(field.Join(field.Index("routes", i), "checks"), "mtls"), &r.Checks)
		}
	}
}

// validateAPIKeys: keys live in the event-store database.
func (c *Config) validateAPIKeys(errs *field.Errors) {
	uses := c.Checks.APIKey != nil
	for _, r := range c.Routes {
		uses = uses || (r != nil && r.Checks.APIKey != nil)
	}
	if uses && c.Events.Store.Driver == "none" {
		errs.Add("events.store.driver", "the apikey check keeps its keys in the event store: use sqlite or postgres, not none")
	}
}

// validateAttestation: the service needs the event store for its app
// registry, and the check needs the service's keys.
func (c *Config) validateAttestation(errs *field.Errors) {
	if c.Attestation != nil {
		c.Attestation.Validate("attestation", errs)
		if c.Events.Store.Driver == "none" {
			errs.Add("events.store.driver", "the attestation service keeps its app registry in the event store: use sqlite or postgres, not none")
		}
	}
	if c.Attestation.Enabled() {
		return
	}
	if c.Checks.Attestation != nil {
		errs.Add("checks.attestation", "needs the attestation service: configure attestation.signing_keys")
	}
	for i, r := range c.Routes {
		if r != nil && r.Checks.Attestation != nil {
			errs.Add(field.Join(field.Join(field.Index("routes", i), "checks"), "attestation"), "needs the attestation service: configure attestation.signing_keys")
		}
	}
}

// validateBot: checks.bot reads what the bot service provides.
func (c *Config) validateBot(errs *field.Errors) {
	if c.Bot != nil {
		c.Bot.Validate("bot", errs)
		for i, l := range c.Bot.Logins {
			if l.Route != "" && !slices.ContainsFunc(c.Routes, func(r *Route) bool { return r != nil && r.Name == l.Route }) {
				errs.Add(field.Join(field.Index("bot.logins", i), "route"), "no route is named %q", l.Route)
			}
		}
		return
	}
	if c.Checks.Bot != nil {
		errs.Add("checks.bot", "needs the bot service: add a top-level bot: section (bot: {} takes the defaults)")
	}
	for i, r := range c.Routes {
		if r != nil && r.Checks.Bot != nil {
			errs.Add(field.Join(field.Join(field.Index("routes", i), "checks"), "bot"), "needs the bot service: add a top-level bot: section (bot: {} takes the defaults)")
		}
	}
}
