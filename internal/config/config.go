// Package config composes the capabilities' Config types into one YAML file,
// decodes it strictly, applies defaults and validates it, reporting every
// error with file:line and field path.
package config

import (
	"github.com/apiguard/apiguard/internal/bot"
	botcheck "github.com/apiguard/apiguard/internal/checks/bot"
	"net/netip"

	"github.com/apiguard/apiguard/internal/attest"
	"github.com/apiguard/apiguard/internal/checks/apikey"
	"github.com/apiguard/apiguard/internal/checks/attestation"
	"github.com/apiguard/apiguard/internal/checks/authz"
	"github.com/apiguard/apiguard/internal/checks/graphql"
	"github.com/apiguard/apiguard/internal/checks/httpsig"
	"github.com/apiguard/apiguard/internal/checks/iplist"
	"github.com/apiguard/apiguard/internal/checks/jwt"
	"github.com/apiguard/apiguard/internal/checks/mtls"
	"github.com/apiguard/apiguard/internal/checks/nosql"
	"github.com/apiguard/apiguard/internal/checks/openapi"
	"github.com/apiguard/apiguard/internal/checks/ratelimit"
	"github.com/apiguard/apiguard/internal/checks/ssrf"
	"github.com/apiguard/apiguard/internal/checks/waf"
	"github.com/apiguard/apiguard/internal/pipeline"
)

// Config is the whole apiguard configuration. docs/config.md documents every key.
type Config struct {
	// Listen is the public listener address.
	Listen string `yaml:"listen"`
	TLS    *TLS   `yaml:"tls,omitempty"`
	Admin  Admin  `yaml:"admin"`
	// ForwardAuth configures the optional dedicated forward-auth listener.
	ForwardAuth ForwardAuth `yaml:"forward_auth"`
	DataDir     string      `yaml:"data_dir"`
	// Mode is the global check mode: enforce (default) or monitor.
	Mode pipeline.Mode `yaml:"mode"`
	// TrustedProxies are CIDRs whose forwarded headers are believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	Limits         Limits   `yaml:"limits"`
	// MaskUpstreamErrors replaces upstream 5xx bodies with a generic problem.
	MaskUpstreamErrors *bool                `yaml:"mask_upstream_errors"`
	Upstreams          map[string]*Upstream `yaml:"upstreams"`
	Routes             []*Route             `yaml:"routes"`
	// Checks are the global check settings; a route's checks override them.
	Checks Checks `yaml:"checks"`
	// State is the shared state backend (rate limits, decisions, nonces).
	State State `yaml:"state"`
	// Attestation is the attestation service (docs/attestation.md); it runs
	// when signing keys are configured.
	Attestation *attest.Config `yaml:"attestation,omitempty"`
	// Bot is the behavioural layer (docs/bot.md): detectors on the observe
	// path, shared decisions, geo and good-bot data for checks.bot.
	Bot    *bot.Config `yaml:"bot,omitempty"`
	Events Events      `yaml:"events"`
	Log    Logging     `yaml:"log"`

	// Source is the file the config was loaded from ("" when built in code).
	Source string `yaml:"-"`
	// Trusted is TrustedProxies parsed.
	Trusted []netip.Prefix `yaml:"-"`
}

// TLS configures the public listener's TLS. TLS 1.2 is the minimum.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string `yaml:"min_version"`
	// ClientCAFiles are PEM files of CAs that sign client certificates.
	ClientCAFiles []string `yaml:"client_ca_files"`
	// ClientAuth is none (default), request, verify_if_given or require.
	ClientAuth string `yaml:"client_auth"`
}

// Admin configures the admin listener (health, metrics, admin API).
type Admin struct {
	Listen string `yaml:"listen"`
	// Token is the bearer token for everything but /healthz and /readyz.
	// Use ${ENV} to keep it out of the file. When neither token nor
	// token_file is set, a token is generated into <data_dir>/admin.token.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
}

// ForwardAuth configures a dedicated listener for /.apiguard/authz. The
// endpoint is always served on the admin listener too.
type ForwardAuth struct {
	Listen string `yaml:"listen"`
	// Style names the proxy in front: nginx, traefik or envoy. Only that
	// proxy's headers are read, so a client cannot smuggle another proxy's
	// headers through it to change what is judged. auto (default) accepts
	// any one style and refuses requests that carry more than one.
	Style string `yaml:"style"`
}

// Limits are resource limits (OWASP API4). Zero values take the defaults.
type Limits struct {
	MaxHeaderBytes    ByteSize `yaml:"max_header_bytes"`
	MaxBodyBytes      ByteSize `yaml:"max_body_bytes"`
	JSONMaxDepth      int      `yaml:"json_max_depth"`
	JSONMaxElements   int      `yaml:"json_max_elements"`
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	ReadTimeout       Duration `yaml:"read_timeout"`
	WriteTimeout      Duration `yaml:"write_timeout"`
	IdleTimeout       Duration `yaml:"idle_timeout"`
	// MaxConnsPerIP bounds concurrent connections from one peer address
	// (trusted proxies are exempt). 0 takes the default; -1 disables.
	MaxConnsPerIP int `yaml:"max_conns_per_ip"`
	// UpstreamTimeout bounds the wait for upstream response headers (504).
	UpstreamTimeout Duration `yaml:"upstream_timeout"`
	// ShutdownTimeout bounds the drain of in-flight requests on shutdown.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
}

// RouteLimits override the global body limits on one route.
type RouteLimits struct {
	MaxBodyBytes    ByteSize `yaml:"max_body_bytes"`
	JSONMaxDepth    int      `yaml:"json_max_depth"`
	JSONMaxElements int      `yaml:"json_max_elements"`
}

// Upstream is a named group of targets, balanced round robin with passive
// health checks.
type Upstream struct {
	Targets []string `yaml:"targets"`
	// Timeout overrides limits.upstream_timeout for this upstream.
	Timeout     Duration `yaml:"timeout"`
	DialTimeout Duration `yaml:"dial_timeout"`
	// FailTimeout is how long a target that refused a connection is skipped.
	FailTimeout  Duration `yaml:"fail_timeout"`
	MaxIdleConns int      `yaml:"max_idle_conns"`
	// CAFile verifies https targets against this CA instead of the system pool.
	CAFile string `yaml:"ca_file"`
}

// Route matches requests and sends them to an upstream.
type Route struct {
	Name string `yaml:"name"`
	// Host matches the Host header exactly, or "*.example.com" for subdomains;
	// empty matches any host.
	Host       string   `yaml:"host"`
	PathPrefix string   `yaml:"path_prefix"`
	Methods    []string `yaml:"methods"`
	Upstream   string   `yaml:"upstream"`
	// StripPrefix removes path_prefix before forwarding.
	StripPrefix        bool        `yaml:"strip_prefix"`
	Limits             RouteLimits `yaml:"limits"`
	CORS               *CORS       `yaml:"cors,omitempty"`
	MaskUpstreamErrors *bool       `yaml:"mask_upstream_errors"`
	Checks             Checks      `yaml:"checks"`
}

// CORS is a route's cross-origin policy. The gateway answers preflights.
type CORS struct {
	AllowedOrigins   []string `yaml:"allowed_origins"`
	AllowedMethods   []string `yaml:"allowed_methods"`
	AllowedHeaders   []string `yaml:"allowed_headers"`
	ExposedHeaders   []string `yaml:"exposed_headers"`
	AllowCredentials bool     `yaml:"allow_credentials"`
	MaxAge           Duration `yaml:"max_age"`
}

// Checks holds one optional config per check. Add new checks here and in
// the table in internal/gateway/checks.go.
type Checks struct {
	IPList    *iplist.Config    `yaml:"iplist,omitempty"`
	RateLimit *ratelimit.Config `yaml:"ratelimit,omitempty"`
	MTLS      *mtls.Config      `yaml:"mtls,omitempty"`
	JWT       *jwt.Config       `yaml:"jwt,omitempty"`
	Authz     *authz.Config     `yaml:"authz,omitempty"`
	APIKey    *apikey.Config    `yaml:"apikey,omitempty"`
	HTTPSig   *httpsig.Config   `yaml:"httpsig,omitempty"`
	// Attestation demands an attestation token (Apiguard-Token).
	Attestation *attestation.Config `yaml:"attestation,omitempty"`
	// OpenAPI enforces an OpenAPI 3.0/3.1 contract on requests and
	// responses.
	OpenAPI *openapi.Config `yaml:"openapi,omitempty"`
	// NoSQL refuses MongoDB-style operators in JSON bodies and queries.
	NoSQL *nosql.Config `yaml:"nosql,omitempty"`
	// SSRF refuses URL-valued parameters that reach internal addresses.
	SSRF *ssrf.Config `yaml:"ssrf,omitempty"`
	// GraphQL limits depth, aliases, batches and cost of GraphQL queries.
	GraphQL *graphql.Config `yaml:"graphql,omitempty"`
	// WAF detects injection with the OWASP Core Rule Set (Coraza),
	// scanning only free-text values.
	WAF *waf.Config `yaml:"waf,omitempty"`
	// Bot enforces decisions, lists, geo-fences, good-bot verification and
	// actions by risk score (needs the top-level bot:).
	Bot *botcheck.Config `yaml:"bot,omitempty"`
}

// State selects the shared state backend.
type State struct {
	// Backend is memory (default: one instance, zero setup) or redis
	// (shared by every instance).
	Backend string      `yaml:"backend"`
	Memory  MemoryState `yaml:"memory"`
	Redis   RedisState  `yaml:"redis"`
}

// MemoryState bounds the in-memory backend.
type MemoryState struct {
	// MaxKeys bounds rate-limit keys; the least useful are evicted beyond it.
	MaxKeys int `yaml:"max_keys"`
}

// RedisState configures the Redis backend: one address for a standalone
// server, several (or cluster: true) for Redis Cluster.
type RedisState struct {
	Addrs        []string `yaml:"addrs"`
	Cluster      bool     `yaml:"cluster"`
	Username     string   `yaml:"username"`
	Password     string   `yaml:"password"`
	DB           int      `yaml:"db"`
	KeyPrefix    string   `yaml:"key_prefix"`
	TLS          bool     `yaml:"tls"`
	PoolSize     int      `yaml:"pool_size"`
	DialTimeout  Duration `yaml:"dial_timeout"`
	ReadTimeout  Duration `yaml:"read_timeout"`
	WriteTimeout Duration `yaml:"write_timeout"`
}

// Events configures the event pipeline.
type Events struct {
	// QueueSize bounds the asynchronous queue; events beyond it are dropped
	// and counted, never blocking a request.
	QueueSize int        `yaml:"queue_size"`
	Log       EventLog   `yaml:"log"`
	Store     EventStore `yaml:"store"`
}

// EventLog configures the JSON log sink.
type EventLog struct {
	// Requests logs every request event too (default: only non-allow verdicts).
	Requests bool `yaml:"requests"`
}

// EventStore configures the event database.
type EventStore struct {
	// Driver is sqlite (default, file in data_dir), postgres, or none.
	Driver string `yaml:"driver"`
	// DSN is the PostgreSQL URL, or the SQLite file path.
	DSN string `yaml:"dsn"`
	// Retention deletes events older than this (default 168h).
	Retention Duration `yaml:"retention"`
	// Requests says how request events are kept: rollup (default: counts
	// per 10 s, route, client, status and decision, so the store's cost
	// stays flat under floods), all (one row per request) or none.
	// Verdicts are always kept one by one.
	Requests string `yaml:"requests"`
}

// Logging configures the process log.
type Logging struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // json (default) or text
}
