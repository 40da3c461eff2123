package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/apiguard/apiguard/internal/checks/iplist"
	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
)

func ptr[T any](v T) *T { return &v }

func mapLookup(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

// noEnv is a lookup with an empty environment, so tests never see the real one.
var noEnv = config.Options{Lookup: mapLookup(nil)}

// defaults is the zero config after ApplyDefaults, written out from the
// product spec rather than from the Default* constants.
func defaults() *config.Config {
	return &config.Config{
		Listen:             "127.0.0.1:8080",
		Admin:              config.Admin{Listen: "127.0.0.1:9090"},
		DataDir:            "./apiguard-data",
		Mode:               pipeline.ModeEnforce,
		MaskUpstreamErrors: ptr(true),
		Limits: config.Limits{
			MaxHeaderBytes:    64 << 10,
			MaxBodyBytes:      10 << 20,
			JSONMaxDepth:      64,
			JSONMaxElements:   100_000,
			ReadHeaderTimeout: config.Duration(10 * time.Second),
			ReadTimeout:       config.Duration(60 * time.Second),
			WriteTimeout:      config.Duration(60 * time.Second),
			IdleTimeout:       config.Duration(120 * time.Second),
			MaxConnsPerIP:     256,
			UpstreamTimeout:   config.Duration(30 * time.Second),
			ShutdownTimeout:   config.Duration(30 * time.Second),
		},
		Events: config.Events{
			QueueSize: 8192,
			Store: config.EventStore{
				Driver:    "sqlite",
				Retention: config.Duration(168 * time.Hour),
				Requests:  "rollup",
			},
		},
		Log:   config.Logging{Level: "info", Format: "json"},
		State: config.State{Backend: "memory"},
	}
}

func TestApplyDefaultsZeroConfig(t *testing.T) {
	c := &config.Config{}
	c.ApplyDefaults()
	if diff := cmp.Diff(defaults(), c); diff != "" {
		t.Errorf("ApplyDefaults on the zero config (-want +got):\n%s", diff)
	}
	if err := config.ValidateConfig(c, config.Options{}); err != nil {
		t.Errorf("the default config does not validate: %v", err)
	}
}

func TestApplyDefaultsIsIdempotent(t *testing.T) {
	c := &config.Config{
		Upstreams: map[string]*config.Upstream{"api": {Targets: []string{"http://127.0.0.1:1"}}, "nil": nil},
		Routes:    []*config.Route{{Upstream: "api"}, nil},
	}
	c.ApplyDefaults()
	once := *c
	c.ApplyDefaults()
	if diff := cmp.Diff(&once, c); diff != "" {
		t.Errorf("second ApplyDefaults changed the config (-first +second):\n%s", diff)
	}
}

func TestApplyDefaultsKeepsSetValues(t *testing.T) {
	c := &config.Config{
		Listen: ":80",
		Mode:   pipeline.ModeMonitor,
		Limits: config.Limits{MaxBodyBytes: 1 << 20, JSONMaxDepth: 8, MaxConnsPerIP: -1, UpstreamTimeout: config.Duration(time.Second)},
		Events: config.Events{Store: config.EventStore{Driver: "none", Requests: "none"}},
		Log:    config.Logging{Level: "debug", Format: "text"},
		State:  config.State{Backend: "memory"},
	}
	c.ApplyDefaults()
	want := defaults()
	want.Listen = ":80"
	want.Mode = pipeline.ModeMonitor
	want.Limits.MaxBodyBytes = 1 << 20
	want.Limits.JSONMaxDepth = 8
	want.Limits.MaxConnsPerIP = -1
	want.Limits.UpstreamTimeout = config.Duration(time.Second)
	want.Events.Store.Driver = "none"
	want.Events.Store.Requests = "none"
	want.Log = config.Logging{Level: "debug", Format: "text"}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("ApplyDefaults (-want +got):\n%s", diff)
	}
}

func TestApplyDefaultsInheritance(t *testing.T) {
	c := &config.Config{
		MaskUpstreamErrors: ptr(false),
		Limits:             config.Limits{MaxBodyBytes: 5 << 20, JSONMaxDepth: 20, JSONMaxElements: 1000, UpstreamTimeout: config.Duration(7 * time.Second)},
		Upstreams: map[string]*config.Upstream{
			"a": {},
			"b": {Timeout: config.Duration(time.Second), DialTimeout: config.Duration(time.Second), FailTimeout: config.Duration(time.Second), MaxIdleConns: 3},
		},
		Routes: []*config.Route{
			{},
			{PathPrefix: "/x", Limits: config.RouteLimits{MaxBodyBytes: 1, JSONMaxDepth: 2, JSONMaxElements: 3}, MaskUpstreamErrors: ptr(true)},
		},
	}
	c.ApplyDefaults()
	wantUp := map[string]*config.Upstream{
		"a": {Timeout: config.Duration(7 * time.Second), DialTimeout: config.Duration(5 * time.Second), FailTimeout: config.Duration(10 * time.Second), MaxIdleConns: 512},
		"b": {Timeout: config.Duration(time.Second), DialTimeout: config.Duration(time.Second), FailTimeout: config.Duration(time.Second), MaxIdleConns: 3},
	}
	if diff := cmp.Diff(wantUp, c.Upstreams); diff != "" {
		t.Errorf("upstream defaults (-want +got):\n%s", diff)
	}
	wantRoutes := []*config.Route{
		{PathPrefix: "/", Limits: config.RouteLimits{MaxBodyBytes: 5 << 20, JSONMaxDepth: 20, JSONMaxElements: 1000}, MaskUpstreamErrors: ptr(false)},
		{PathPrefix: "/x", Limits: config.RouteLimits{MaxBodyBytes: 1, JSONMaxDepth: 2, JSONMaxElements: 3}, MaskUpstreamErrors: ptr(true)},
	}
	if diff := cmp.Diff(wantRoutes, c.Routes); diff != "" {
		t.Errorf("route defaults (-want +got):\n%s", diff)
	}
}

func TestParseEmptyIsDefaults(t *testing.T) {
	for _, data := range []string{"", "\n", "# just a comment\n", "---\n", "~\n"} {
		c, err := config.Parse("apiguard.yaml", []byte(data), noEnv)
		if err != nil {
			t.Fatalf("Parse(%q): %v", data, err)
		}
		want := defaults()
		want.Source = "apiguard.yaml"
		if diff := cmp.Diff(want, c); diff != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", data, diff)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want config.ByteSize
		err  bool
	}{
		{in: "0", want: 0},
		{in: "512", want: 512},
		{in: "512B", want: 512},
		{in: "64KiB", want: 64 << 10},
		{in: "10MiB", want: 10 << 20},
		{in: "2GiB", want: 2 << 30},
		{in: "1KB", want: 1000},
		{in: "10MB", want: 10_000_000},
		{in: "1GB", want: 1_000_000_000},
		{in: " 10 MiB ", want: 10 << 20},
		{in: "+5", want: 5},
		{in: "4611686018427387904", want: 1 << 62},
		{in: "4611686018427387905", err: true},
		{in: "4294967296GiB", want: 1 << 62},
		{in: "4294967297GiB", err: true}, // beyond 2^62
		{in: "", err: true},
		{in: "MiB", err: true},
		{in: "-1", err: true},
		{in: "-1KiB", err: true},
		{in: "1.5MiB", err: true},
		{in: "10mib", err: true},
		{in: "10mb", err: true},
		{in: "10 M", err: true},
		{in: "10TiB", err: true},
		{in: "0x10", err: true},
		{in: "1e3", err: true},
		{in: "KiB10", err: true},
	}
	for _, tt := range tests {
		got, err := config.ParseByteSize(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("ParseByteSize(%q) error = %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), "invalid size") {
				t.Errorf("ParseByteSize(%q) error = %q, want it to say invalid size", tt.in, err)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

type unitsDoc struct {
	D config.Duration `yaml:"d"`
	S config.ByteSize `yaml:"s"`
}

func TestUnitsYAML(t *testing.T) {
	tests := []struct {
		in      string
		want    unitsDoc
		wantErr string
	}{
		{in: "d: 10s\ns: 10MiB", want: unitsDoc{D: config.Duration(10 * time.Second), S: 10 << 20}},
		{in: "d: 1h30m\ns: 512", want: unitsDoc{D: config.Duration(90 * time.Minute), S: 512}},
		{in: "d: 500ms\ns: 1GB", want: unitsDoc{D: config.Duration(500 * time.Millisecond), S: 1_000_000_000}},
		{in: "d: \"0\"\ns: \"64KiB\"", want: unitsDoc{S: 64 << 10}},
		{in: "d: -5s", want: unitsDoc{D: config.Duration(-5 * time.Second)}}, // validation refuses it
		{in: "d:\ns:", want: unitsDoc{}},
		{in: "d: 10", wantErr: `line 1: invalid duration "10"`},
		{in: "d: 7d", wantErr: `line 1: invalid duration "7d"`},
		{in: "d: [1s]", wantErr: `line 1: expected a duration such as "10s"`},
		{in: "s: 10XB", wantErr: `line 1: invalid size "10XB"`},
		{in: "s: -1", wantErr: `line 1: invalid size "-1"`},
		{in: "\ns: {a: 1}", wantErr: `line 2: expected a size such as "10MiB"`},
	}
	for _, tt := range tests {
		var got unitsDoc
		err := yaml.Unmarshal([]byte(tt.in), &got)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Unmarshal(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Unmarshal(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Unmarshal(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestUnitsMarshalRoundTrip(t *testing.T) {
	in := unitsDoc{D: config.Duration(90 * time.Second), S: 64 << 10}
	out, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := "d: 1m30s\ns: 65536\n"; string(out) != want {
		t.Errorf("Marshal = %q, want %q", out, want)
	}
	var back unitsDoc
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if back != in {
		t.Errorf("round trip = %+v, want %+v", back, in)
	}
	if got := in.D.Std(); got != 90*time.Second {
		t.Errorf("Std() = %v", got)
	}
}

func TestEnvExpansion(t *testing.T) {
	env := map[string]string{
		"TOKEN":   "0123456789abcdef",
		"A":       "a",
		"B":       "b",
		"EMPTY":   "",
		"INJECT":  "a\nb: c",
		"FLOW":    "{listen: ':1'}",
		"REF":     "${A}",
		"DOLLARS": "$$",
		"DEPTH":   "12",
		"DUR":     "3s",
		"SIZE":    "1MiB",
		"FALSE":   "false",
		"HOST":    "10.1.2.3",
	}
	parse := func(t *testing.T, src string) *config.Config {
		t.Helper()
		c, err := config.Parse("env.yaml", []byte(src), config.Options{Lookup: mapLookup(env), Middleware: true})
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		return c
	}
	strTests := []struct{ value, want string }{
		{`${TOKEN}`, "0123456789abcdef"},
		{`"${TOKEN}"`, "0123456789abcdef"},
		{`'${TOKEN}'`, "0123456789abcdef"},
		{`x-${A}-${B}-y`, "x-a-b-y"},
		{`${A}${B}`, "ab"},
		{`pre${EMPTY}post`, "prepost"},
		{`$$`, "$"},
		{`a$$b`, "a$b"},
		{`$${A}`, "${A}"},
		{`$$$${A}`, "$${A}"},
		{`$$${A}`, "$a"},
		{`$A and $`, "$A and $"}, // only ${NAME} is a reference
		{`${INJECT}`, "a\nb: c"}, // a value cannot inject YAML structure
		{`"${FLOW}"`, "{listen: ':1'}"},
		{`${FLOW}`, "{listen: ':1'}"},
		{`${REF}`, "${A}"},   // values are not expanded again
		{`${DOLLARS}`, "$$"}, // nor unescaped
		{`${DEPTH}`, "12"},   // a number into a string field stays its text
		{"|\n      ${A}\n      ${B}", "a\nb\n"},
	}
	for _, tt := range strTests {
		c := parse(t, "routes:\n  - name: "+tt.value+"\n")
		if got := c.Routes[0].Name; got != tt.want {
			t.Errorf("name: %s = %q, want %q", tt.value, got, tt.want)
		}
	}

	t.Run("keys are not expanded", func(t *testing.T) {
		_, err := config.Parse("env.yaml", []byte("routes:\n  - ${A}: x\n"), config.Options{Lookup: mapLookup(env)})
		if err == nil || !strings.Contains(err.Error(), "routes[0].${A}: unknown field") {
			t.Errorf("got %v", err)
		}
	})

	t.Run("plain references take the type of their value", func(t *testing.T) {
		c := parse(t, `
limits:
  json_max_depth: ${DEPTH}
  read_timeout: ${DUR}
  max_body_bytes: ${SIZE}
mask_upstream_errors: ${FALSE}
trusted_proxies:
  - ${HOST} # in a flow list [...] a reference must be quoted
  - "${HOST}/32"
admin:
  token: ${EMPTY}
`)
		if c.Limits.JSONMaxDepth != 12 || c.Limits.ReadTimeout.Std() != 3*time.Second || c.Limits.MaxBodyBytes != 1<<20 || *c.MaskUpstreamErrors {
			t.Errorf("limits = %+v, mask = %v", c.Limits, *c.MaskUpstreamErrors)
		}
		if diff := cmp.Diff([]string{"10.1.2.3", "10.1.2.3/32"}, c.TrustedProxies); diff != "" {
			t.Errorf("trusted_proxies (-want +got):\n%s", diff)
		}
		if c.Admin.Token != "" {
			t.Errorf("token = %q", c.Admin.Token)
		}
	})

	t.Run("quoted references stay strings", func(t *testing.T) {
		_, err := config.Parse("env.yaml", []byte("limits:\n  json_max_depth: \"${DEPTH}\"\n"), config.Options{Lookup: mapLookup(env)})
		if want := "env.yaml:2: limits.json_max_depth: cannot unmarshal !!str `12` into int"; err == nil || err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
	})

	errTests := []struct{ src, want string }{
		{"listen: ${NOPE}\n", "env.yaml:1: listen: environment variable NOPE is not set"},
		{"listen: ${NOPE}${NOPE2}\n", "env.yaml:1: listen: environment variable NOPE is not set\nenv.yaml:1: listen: environment variable NOPE2 is not set"},
		{"\nlisten: ${A\n", `env.yaml:2: listen: malformed variable reference "${A" (use ${NAME})`},
		{"listen: ${}\n", `env.yaml:1: listen: malformed variable reference "${}" (use ${NAME})`},
		{"listen: ${9A}\n", `env.yaml:1: listen: malformed variable reference "${9A}" (use ${NAME})`},
		{"listen: ${A-B}\n", `env.yaml:1: listen: malformed variable reference "${A-B}" (use ${NAME})`},
		{"listen: x${\n", `env.yaml:1: listen: malformed variable reference "${" (use ${NAME})`},
		{"limits:\n  read_timeout: ${NOPE}\n", "env.yaml:2: limits.read_timeout: environment variable NOPE is not set"},
		{"trusted_proxies:\n  - 10.0.0.1\n  - ${NOPE}\n", "env.yaml:3: trusted_proxies[1]: environment variable NOPE is not set"},
	}
	for _, tt := range errTests {
		_, err := config.Parse("env.yaml", []byte(tt.src), config.Options{Lookup: mapLookup(env)})
		if err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%q) error:\n got %v\nwant %s", tt.src, err, tt.want)
		}
	}
}

func TestEnvExpansionDefaultsToProcessEnv(t *testing.T) {
	t.Setenv("APIGUARD_TEST_LISTEN", "127.0.0.1:18080")
	c, err := config.Parse("env.yaml", []byte("listen: ${APIGUARD_TEST_LISTEN}\n"), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:18080" {
		t.Errorf("listen = %q", c.Listen)
	}
}

// validConfig is a config built in code that ValidateConfig accepts.
func validConfig() *config.Config {
	c := &config.Config{
		Upstreams: map[string]*config.Upstream{"api": {Targets: []string{"http://127.0.0.1:3000"}}},
		Routes:    []*config.Route{{Name: "api", PathPrefix: "/api", Methods: []string{"get"}, Upstream: "api"}},
	}
	c.ApplyDefaults()
	return c
}

func TestValidateConfigInCode(t *testing.T) {
	c := validConfig()
	if err := config.ValidateConfig(c, config.Options{}); err != nil {
		t.Fatalf("ValidateConfig: %v", err)
	}
	if got := c.Routes[0].Methods; !cmp.Equal(got, []string{"GET"}) {
		t.Errorf("methods = %q, want normalised to upper case", got)
	}

	c.TrustedProxies = []string{"10.0.0.0/8", "::ffff:1.2.3.4"}
	for range 2 { // validation is repeatable: Trusted is rebuilt, not appended to
		if err := config.ValidateConfig(c, config.Options{}); err != nil {
			t.Fatal(err)
		}
		if len(c.Trusted) != 2 || c.Trusted[0].String() != "10.0.0.0/8" || c.Trusted[1].Bits() != 128 {
			t.Errorf("Trusted = %v", c.Trusted)
		}
	}

	c = validConfig()
	c.Routes = append(c.Routes, &config.Route{PathPrefix: "x", Upstream: "apx"})
	c.Checks.IPList = &iplist.Config{Allow: []string{"bad-allow"}, Deny: []string{"bad-deny"}}
	c.Upstreams["api"].Timeout = config.Duration(-time.Second)
	c.Upstreams["api"].DialTimeout = config.Duration(-time.Second)
	c.Upstreams["api"].FailTimeout = config.Duration(-time.Second)
	// No file: errors carry the path only; with no lines to sort by they are
	// sorted by path, so the order does not depend on map iteration.
	want := strings.Join([]string{
		`checks.iplist.allow[0]: not an IP address or CIDR: "bad-allow"`,
		`checks.iplist.deny[0]: not an IP address or CIDR: "bad-deny"`,
		`routes[1].path_prefix: must start with /`,
		`routes[1].upstream: no upstream named "apx" (did you mean "api"?)`,
		`upstreams.api.dial_timeout: must not be negative`,
		`upstreams.api.fail_timeout: must not be negative`,
		`upstreams.api.timeout: must not be negative`,
	}, "\n")
	for range 5 {
		err := config.ValidateConfig(c, config.Options{})
		if err == nil {
			t.Fatal("ValidateConfig accepted an invalid config")
		}
		if diff := cmp.Diff(want, err.Error()); diff != "" {
			t.Fatalf("ValidateConfig (-want +got):\n%s", diff)
		}
	}

	// With a Source, each error names the file (no line: it was built in code).
	c.Source = "built.yaml"
	err := config.ValidateConfig(c, config.Options{})
	var le *field.ListError
	if !errors.As(err, &le) || len(le.Errs) != 7 {
		t.Fatalf("error = %#v, want a *field.ListError of 7", err)
	}
	for _, e := range le.Errs {
		if e.Pos != "built.yaml" || !strings.HasPrefix(e.Error(), "built.yaml: "+e.Path+": ") {
			t.Errorf("error %q: Pos = %q", e.Error(), e.Pos)
		}
	}
}

func TestValidateConfigTable(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*config.Config)
		opts   config.Options
		want   string // "" = valid
	}{
		{name: "valid", modify: func(*config.Config) {}},
		{name: "listen ipv6", modify: func(c *config.Config) { c.Listen = "[::]:8080" }},
		{name: "listen any host", modify: func(c *config.Config) { c.Listen = ":8080" }},
		{name: "listen no port", modify: func(c *config.Config) { c.Listen = "127.0.0.1" }, want: `listen: not a host:port address: "127.0.0.1"`},
		{name: "listen host name", modify: func(c *config.Config) { c.Listen = "example.com:80" }, want: `listen: host must be an IP address or localhost, not "example.com"`},
		{name: "admin port", modify: func(c *config.Config) { c.Admin.Listen = "127.0.0.1:70000" }, want: `admin.listen: invalid port "70000"`},
		{name: "admin token short", modify: func(c *config.Config) { c.Admin.Token = "short" }, want: `admin.token: must be at least 16 characters`},
		{name: "admin token file missing", modify: func(c *config.Config) { c.Admin.TokenFile = filepath.Join("testdata", "nope") }, want: `admin.token_file: cannot read file "testdata/nope"`},
		{name: "mode", modify: func(c *config.Config) { c.Mode = "off" }, want: `mode: must be enforce or monitor, not "off"`},
		{name: "trusted proxy", modify: func(c *config.Config) { c.TrustedProxies = []string{"1.2.3.4/40"} }, want: `trusted_proxies[0]: not an IP address or CIDR: "1.2.3.4/40"`},
		{name: "route without upstream", modify: func(c *config.Config) { c.Routes[0].Upstream = "" }, want: `routes[0].upstream: required`},
		{name: "nil route", modify: func(c *config.Config) { c.Routes = append(c.Routes, nil) }, want: `routes[1]: must not be empty`},
		{name: "upstream with query", modify: func(c *config.Config) { c.Upstreams["api"].Targets = []string{"http://h/?a=b"} }, want: `upstreams.api.targets[0]: must not carry a query, fragment or credentials`},
		{name: "upstream max idle", modify: func(c *config.Config) { c.Upstreams["api"].MaxIdleConns = -1 }, want: `upstreams.api.max_idle_conns: must not be negative`},
		{name: "no routes", modify: func(c *config.Config) { c.Routes = nil }, want: `routes: no routes: add at least one route that sends to an upstream`},
		{name: "no routes middleware", modify: func(c *config.Config) { c.Routes = nil }, opts: config.Options{Middleware: true}},
		{name: "host wildcard", modify: func(c *config.Config) { c.Routes[0].Host = "*.example.com" }},
		{name: "host bad wildcard", modify: func(c *config.Config) { c.Routes[0].Host = "a*.example.com" }, want: `routes[0].host: must be a host name or *.domain, not "a*.example.com"`},
		{name: "route limits", modify: func(c *config.Config) { c.Routes[0].Limits.MaxBodyBytes = -1 }, want: `routes[0].limits.max_body_bytes: must not be negative`},
		{name: "cors ok", modify: func(c *config.Config) {
			c.Routes[0].CORS = &config.CORS{AllowedOrigins: []string{"*"}, AllowedMethods: []string{"get"}}
		}},
		{name: "cors star credentials", modify: func(c *config.Config) {
			c.Routes[0].CORS = &config.CORS{AllowedOrigins: []string{"*"}, AllowCredentials: true}
		}, want: `routes[0].cors.allowed_origins[0]: "*" cannot be combined with allow_credentials (browsers refuse it and it would expose credentials to every site)`},
		{name: "iplist mode", modify: func(c *config.Config) {
			c.Routes[0].Checks.IPList = &iplist.Config{Options: pipeline.Options{Mode: "loud", OnError: "maybe"}}
		}, want: "routes[0].checks.iplist.mode: must be enforce, monitor or off, not \"loud\"\nroutes[0].checks.iplist.on_error: must be allow or deny, not \"maybe\""},
		{name: "events postgres", modify: func(c *config.Config) { c.Events.Store.Driver = "postgres" }, want: `events.store.dsn: required for the postgres driver (postgres://user@host:5432/db)`},
		{name: "events none", modify: func(c *config.Config) { c.Events.Store.Driver = "none" }},
		{name: "events driver", modify: func(c *config.Config) { c.Events.Store.Driver = "redis" }, want: `events.store.driver: must be sqlite, postgres or none, not "redis"`},
		{name: "tls empty", modify: func(c *config.Config) { c.TLS = &config.TLS{} }, want: "tls.cert_file: required when tls is set\ntls.key_file: required when tls is set"},
		{name: "log", modify: func(c *config.Config) { c.Log.Level = "trace" }, want: `log.level: must be debug, info, warn or error, not "trace"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.modify(c)
			err := config.ValidateConfig(c, tt.opts)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("ValidateConfig:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestMiddlewareOption(t *testing.T) {
	src := []byte(`
routes:
  - name: a
    path_prefix: /a
  - name: b
    upstream: elsewhere
`)
	if _, err := config.Parse("mw.yaml", src, config.Options{Lookup: mapLookup(nil), Middleware: true}); err != nil {
		t.Errorf("Middleware: %v", err)
	}
	_, err := config.Parse("mw.yaml", src, noEnv)
	want := "mw.yaml:3: routes[0].upstream: required\nmw.yaml:6: routes[1].upstream: no upstream named \"elsewhere\""
	if err == nil || err.Error() != want {
		t.Errorf("without Middleware:\n got %v\nwant %s", err, want)
	}
	// Middleware relaxes only upstream checks.
	_, err = config.Parse("mw.yaml", []byte("routes:\n  - path_prefix: a\n"), config.Options{Lookup: mapLookup(nil), Middleware: true})
	if want := "mw.yaml:2: routes[0].path_prefix: must start with /"; err == nil || err.Error() != want {
		t.Errorf("Middleware path_prefix: got %v, want %s", err, want)
	}
}

func TestParseFileSizeLimit(t *testing.T) {
	big := make([]byte, config.MaxFileSize+1)
	for i := range big {
		big[i] = '#'
	}
	big[len(big)-1] = '\n'
	c, err := config.Parse("big.yaml", big, noEnv)
	if c != nil || err == nil || !strings.HasPrefix(err.Error(), "big.yaml: ") || !strings.Contains(err.Error(), "larger than 8388608 bytes") {
		t.Errorf("Parse of %d bytes = %v, %v; want refused", len(big), c, err)
	}
	// Exactly MaxFileSize is parsed (here: one long comment).
	if _, err := config.Parse("big.yaml", big[1:], noEnv); err != nil {
		t.Errorf("Parse of %d bytes: %v", len(big)-1, err)
	}
}

func TestParseFullConfigValues(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse("full.yaml", data, goldenOptions("full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"source", c.Source, "full.yaml"},
		{"listen", c.Listen, "0.0.0.0:8443"},
		{"tls cert", c.TLS.CertFile, "testdata/etc/tls/server.crt"},
		{"tls min", c.TLS.MinVersion, "1.3"},
		{"admin token", c.Admin.Token, "0123456789abcdef-admin"},
		{"trusted", len(c.Trusted), 3},
		{"header bytes", c.Limits.MaxHeaderBytes, config.ByteSize(64 << 10)},
		{"json depth from env", c.Limits.JSONMaxDepth, 32},
		{"idle", c.Limits.IdleTimeout.Std(), 2 * time.Minute},
		{"upstream timeout", c.Upstreams["payments"].Timeout.Std(), 15 * time.Second},
		{"catalog inherits timeout", c.Upstreams["catalog"].Timeout.Std(), 30 * time.Second},
		{"route body", c.Routes[0].Limits.MaxBodyBytes, config.ByteSize(1_000_000)},
		{"route methods", c.Routes[0].Methods, []string{"GET", "POST"}},
		{"route mask", *c.Routes[0].MaskUpstreamErrors, false},
		{"route 1 mask inherits", *c.Routes[1].MaskUpstreamErrors, true},
		{"route 1 body inherits", c.Routes[1].Limits.MaxBodyBytes, config.ByteSize(10 << 20)},
		{"cors max age", c.Routes[0].CORS.MaxAge.Std(), 10 * time.Minute},
		{"iplist mode", c.Routes[0].Checks.IPList.Mode, pipeline.ModeMonitor},
		{"iplist on_error", c.Routes[0].Checks.IPList.OnError, pipeline.OnErrorAllow},
		{"global deny", c.Checks.IPList.Deny, []string{"198.51.100.0/24"}},
		{"dsn", c.Events.Store.DSN, "postgres://apiguard:s3cret@db.internal:5432/apiguard?sslmode=verify-full"},
		{"retention", c.Events.Store.Retention.Std(), 7 * 24 * time.Hour},
	}
	for _, ck := range checks {
		if diff := cmp.Diff(ck.want, ck.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", ck.name, diff)
		}
	}
}

func TestParseEnvExpansionGoldenValues(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "env_expansion.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse("env_expansion.yaml", data, goldenOptions("env_expansion.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "prefix-0123456789abcdef-admin-$literal"; c.Admin.Token != want {
		t.Errorf("token = %q, want %q", c.Admin.Token, want)
	}
	if c.Limits.JSONMaxDepth != 32 || c.Limits.ReadTimeout.Std() != 45*time.Second || c.Limits.MaxBodyBytes != 2<<20 || *c.MaskUpstreamErrors {
		t.Errorf("limits = %+v, mask = %v", c.Limits, *c.MaskUpstreamErrors)
	}
	if c.Routes[0].Name != "a\nb: c" {
		t.Errorf("route name = %q: the env value must stay one string", c.Routes[0].Name)
	}
	if got := c.Upstreams["api"].Targets; !cmp.Equal(got, []string{"http://10.0.0.5:3000"}) {
		t.Errorf("targets = %q", got)
	}
}

func TestLoad(t *testing.T) {
	c, err := config.Load(filepath.Join("testdata", "minimal_proxy.yaml"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != filepath.Join("testdata", "minimal_proxy.yaml") || c.Routes[0].Upstream != "api" {
		t.Errorf("Load = source %q, routes %+v", c.Source, c.Routes)
	}
	_, err = config.Load(filepath.Join("testdata", "unknown_upstream.yaml"), noEnv)
	if err == nil || !strings.HasPrefix(err.Error(), "testdata/unknown_upstream.yaml:11: routes[1].upstream: ") {
		t.Errorf("Load error = %v, want it to start with the path as given", err)
	}
	_, err = config.Load(filepath.Join(t.TempDir(), "missing.yaml"), noEnv)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file = %v", err)
	}
}

func TestErrorsSuggestions(t *testing.T) {
	tests := []struct{ src, want string }{
		{"lisen: x\n", `t.yaml:1: lisen: unknown field (did you mean "listen"?)`},
		{"admn: {}\n", `t.yaml:1: admn: unknown field (did you mean "admin"?)`},
		{"limits:\n  max_body_byte: 1\n", `t.yaml:2: limits.max_body_byte: unknown field (did you mean "max_body_bytes"?)`},
		{"events:\n  stroe: {}\n", `t.yaml:2: events.stroe: unknown field (did you mean "store"?)`},
		{"tls:\n  certfile: x\n", "t.yaml:1: tls.key_file: required when tls is set\n" + `t.yaml:2: tls.certfile: unknown field (did you mean "cert_file"?)`},
		{"routes:\n  - limits: {json_depth: 3}\n", `t.yaml:2: routes[0].limits.json_depth: unknown field (did you mean "json_max_depth"?)`},
		{"trusted_proxy: []\n", `t.yaml:1: trusted_proxy: unknown field (did you mean "trusted_proxies"?)`},
		{"mask_errors: true\n", `t.yaml:1: mask_errors: unknown field`},
		{"xyz: 1\n", `t.yaml:1: xyz: unknown field`},
		{"source: x\n", `t.yaml:1: source: unknown field`}, // yaml:"-" fields are not keys
		{"trusted: x\n", `t.yaml:1: trusted: unknown field`},
	}
	for _, tt := range tests {
		_, err := config.Parse("t.yaml", []byte(tt.src), config.Options{Lookup: mapLookup(nil), Middleware: true})
		if err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%q):\n got %v\nwant %s", tt.src, err, tt.want)
		}
	}
}

// Each error is one line of the error text, even when the YAML key or a
// value quoted in a yaml.v3 message contains line breaks.
func TestErrorsAreOneLineEach(t *testing.T) {
	tests := []struct{ src, want string }{
		{"0\r\r0", "t.yaml:1: cannot unmarshal !!str `0\\n0` into config.Config"}, // found by FuzzParse
		{"limits:\n  json_max_depth: \"1\\n2\"\n", "t.yaml:2: limits.json_max_depth: cannot unmarshal !!str `1\\n2` into int"},
		{"\"a\\nb\": 1\n", "t.yaml:1: a\\nb: unknown field"},
		{"upstreams:\n  \"x\\ry\": {targets: [http://h]}\nroutes: [{upstream: \"x\\ry\"}]\n", ""},
		{"upstreams:\n  \"x\\ry\":\nroutes: [{upstream: \"x\\ry\"}]\n", "t.yaml:2: upstreams.x\\ry: must not be empty"},
	}
	for _, tt := range tests {
		_, err := config.Parse("t.yaml", []byte(tt.src), noEnv)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("Parse(%q):\n got %q\nwant %q", tt.src, got, tt.want)
		}
	}
}
