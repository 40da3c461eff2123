package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiguard/apiguard/internal/attest"
	"github.com/apiguard/apiguard/internal/bot"
	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/jsonlimit"
	"github.com/apiguard/apiguard/internal/pipeline"
)

// runtime is everything built from one config: routes with their compiled
// pipelines and proxies. It is immutable; a reload builds a new one and
// swaps it in atomically.
type runtime struct {
	cfg    *config.Config
	routes []*route
	global *pipeline.Pipeline // global checks, for requests no route matches (forward-auth, middleware)
	// fallback serves requests no route matches: nil in proxy mode (404),
	// the global checks in middleware mode.
	fallback       *route
	upstreams      map[string]*upstream
	closers        []io.Closer // checks that own goroutines (JWKS refresh)
	trusted        trustedProxies
	maxHeaderBytes int
	globalLimits   bodyLimits
	// attest is the attestation service, nil when not configured;
	// attestCORS lets browser apps on other origins call it.
	attest     *attest.Service
	attestCORS *corsPolicy
	// bot is the behavioural layer's service, nil without bot:.
	bot *bot.Service
}

type bodyLimits struct {
	maxBody int64
	json    jsonlimit.Limits
	// bufferAll buffers bodies of every content type (up to maxBody) for
	// inspection, not only JSON and forms: the route runs the WAF.
	bufferAll bool
}

type route struct {
	name        string
	host        string // lower case; "" = any
	hostSuffix  string // for *.example.com: ".example.com"
	prefix      string
	methods     []string // nil = any
	allow       string   // Allow header for 405
	stripPrefix bool
	limits      bodyLimits
	cors        *corsPolicy
	mask        bool
	pipeline    *pipeline.Pipeline
	upstream    *upstream
	handler     http.Handler // reverse proxy, or the wrapped handler in middleware mode
	duration    prometheus.Observer
}

func (e *Engine) buildRuntime(cfg *config.Config) (*runtime, error) {
	rt := &runtime{
		cfg:            cfg,
		upstreams:      map[string]*upstream{},
		trusted:        trustedProxies(cfg.Trusted),
		maxHeaderBytes: int(cfg.Limits.MaxHeaderBytes),
		globalLimits: bodyLimits{
			maxBody: int64(cfg.Limits.MaxBodyBytes),
			json:    jsonlimit.Limits{MaxDepth: cfg.Limits.JSONMaxDepth, MaxElements: cfg.Limits.JSONMaxElements},
		},
	}
	if w := cfg.Checks.WAF; w != nil {
		rt.globalLimits.bufferAll = w.Mode != pipeline.ModeOff
	}
	var prev *attest.Service
	if old := e.rt.Load(); old != nil {
		prev = old.attest
	}
	var err error
	if rt.attest, err = buildAttest(cfg, e.registry, e.state, prev, e.log); err != nil {
		return nil, fmt.Errorf("attestation: %w", err)
	}
	if rt.attest != nil && len(cfg.Attestation.AllowedOrigins) > 0 {
		rt.attestCORS = newCORS(&config.CORS{
			AllowedOrigins: cfg.Attestation.AllowedOrigins,
			AllowedMethods: []string{http.MethodGet, http.MethodPost},
			AllowedHeaders: []string{"Content-Type", attest.TokenHeader},
			MaxAge:         config.Duration(10 * time.Minute),
		}, nil)
	}
	if cfg.Bot != nil {
		var prevBot *bot.Service
		if old := e.rt.Load(); old != nil {
			prevBot = old.bot
		}
		if rt.bot, err = bot.New(*cfg.Bot, bot.Options{State: e.state, Decisions: e.decisions, Logger: e.log, Previous: prevBot}); err != nil {
			return nil, fmt.Errorf("bot: %w", err)
		}
		rt.closers = append(rt.closers, rt.bot)
	}
	d := deps{state: e.state, keys: e.keys, client: e.client, log: e.log, attest: rt.attest, bot: rt.bot, global: map[string]builtCheck{}, closers: &rt.closers}
	if rt.global, err = buildPipeline(&cfg.Checks, nil, cfg.Mode, d, e.metrics); err != nil {
		return nil, fmt.Errorf("checks: %w", err)
	}
	if e.terminal != nil {
		rt.fallback = &route{name: "default", pipeline: rt.global, limits: rt.globalLimits, handler: e.terminal,
			duration: e.metrics.duration.WithLabelValues("default")}
	}
	if e.terminal == nil {
		for name, uc := range cfg.Upstreams {
			u, err := newUpstream(name, uc)
			if err != nil {
				rt.close()
				return nil, err
			}
			rt.upstreams[name] = u
		}
	}
	for i, rc := range cfg.Routes {
		r := &route{
			name:        rc.Name,
			prefix:      rc.PathPrefix,
			methods:     rc.Methods,
			stripPrefix: rc.StripPrefix,
			mask:        *rc.MaskUpstreamErrors,
			limits: bodyLimits{
				maxBody: int64(rc.Limits.MaxBodyBytes),
				json:    jsonlimit.Limits{MaxDepth: rc.Limits.JSONMaxDepth, MaxElements: rc.Limits.JSONMaxElements},
			},
			cors:     newCORS(rc.CORS, rc.Methods),
			duration: e.metrics.duration.WithLabelValues(rc.Name),
		}
		if w := rc.Checks.WAF; w != nil || cfg.Checks.WAF != nil {
			if w == nil {
				w = cfg.Checks.WAF
			}
			r.limits.bufferAll = w.Mode != pipeline.ModeOff
		}
		host := strings.ToLower(rc.Host)
		if strings.HasPrefix(host, "*.") {
			r.hostSuffix = host[1:]
		} else {
			r.host = host
		}
		if r.pipeline, err = buildPipeline(&cfg.Checks, &rc.Checks, cfg.Mode, d, e.metrics); err != nil {
			rt.close()
			return nil, fmt.Errorf("routes[%d] (%s): %w", i, rc.Name, err)
		}
		if e.terminal != nil {
			r.handler = e.terminal
		} else {
			r.upstream = rt.upstreams[rc.Upstream]
			r.handler = e.newProxy(r)
		}
		rt.routes = append(rt.routes, r)
	}
	// The Allow header of a 405 lists every method the routes sharing a
	// host and prefix accept (HEAD wherever GET is).
	for _, r := range rt.routes {
		if len(r.methods) == 0 {
			continue
		}
		var allow []string
		for _, o := range rt.routes {
			if o.host == r.host && o.hostSuffix == r.hostSuffix && o.prefix == r.prefix {
				for _, m := range o.methods {
					if !slices.Contains(allow, m) {
						allow = append(allow, m)
					}
				}
				if o.cors != nil && !slices.Contains(allow, http.MethodOptions) {
					allow = append(allow, http.MethodOptions)
				}
			}
		}
		if slices.Contains(allow, http.MethodGet) && !slices.Contains(allow, http.MethodHead) {
			allow = append(allow, http.MethodHead)
		}
		r.allow = strings.Join(allow, ", ")
	}
	// Most specific first: exact host, then wildcard host, then any host;
	// within those the longest prefix. Config order breaks ties.
	slices.SortStableFunc(rt.routes, func(a, b *route) int {
		if sa, sb := a.hostRank(), b.hostRank(); sa != sb {
			return sb - sa
		}
		return len(b.prefix) - len(a.prefix)
	})
	return rt, nil
}

func (r *route) hostRank() int {
	switch {
	case r.host != "":
		return 2
	case r.hostSuffix != "":
		return 1
	}
	return 0
}

func (r *route) matchHost(host string) bool {
	switch {
	case r.host != "":
		return strings.EqualFold(host, r.host)
	case r.hostSuffix != "":
		return len(host) > len(r.hostSuffix) && strings.EqualFold(host[len(host)-len(r.hostSuffix):], r.hostSuffix)
	}
	return true
}

func (r *route) matchPath(path string) bool {
	if strings.HasSuffix(r.prefix, "/") {
		return strings.HasPrefix(path, r.prefix)
	}
	return path == r.prefix || strings.HasPrefix(path, r.prefix+"/")
}

func (r *route) allowsMethod(m string) bool {
	return r.methods == nil || slices.Contains(r.methods, m) || (m == http.MethodHead && slices.Contains(r.methods, http.MethodGet))
}

// match finds the route for a request. The most specific route matching
// host and path decides which API this is; only routes with that same host
// and prefix may serve other methods. When none allows the method, match
// returns the most specific route and false (405), rather than falling
// through to a broader route the operator did not mean for this path.
func (rt *runtime) match(host, path, method string) (*route, bool) {
	host = hostOnly(host)
	var best *route
	for _, r := range rt.routes {
		if best != nil && (r.host != best.host || r.hostSuffix != best.hostSuffix || r.prefix != best.prefix) {
			continue
		}
		if !r.matchHost(host) || !r.matchPath(path) {
			continue
		}
		if r.allowsMethod(method) {
			return r, true
		}
		if best == nil {
			best = r
		}
	}
	return best, false
}

func (rt *runtime) close() {
	for _, u := range rt.upstreams {
		u.close()
	}
	for _, c := range rt.closers {
		_ = c.Close()
	}
}

// newProxy builds the route's reverse proxy.
func (e *Engine) newProxy(r *route) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			ex := exchangeFrom(pr.In.Context())
			// The upstream's RoundTrip fills scheme, host and the target's
			// base path; here only the route-relative path is set.
			path := pr.In.URL.Path
			if r.stripPrefix {
				path = "/" + strings.TrimPrefix(strings.TrimPrefix(path, strings.TrimSuffix(r.prefix, "/")), "/")
			}
			pr.Out.URL.Path, pr.Out.URL.RawPath = path, ""
			pr.Out.Host = ""
			setForwarded(pr.In, pr.Out, ex != nil && ex.peerTrusted, e.tls)
			if ex != nil {
				pr.Out.Header["X-Request-Id"] = []string{ex.req.ID}
				// The upstream gets the address apiguard resolved, never one
				// the client claimed.
				pr.Out.Header["X-Real-Ip"] = []string{ex.clientIP}
			}
		},
		Transport:      r.upstream,
		BufferPool:     copyBuffers,
		ErrorHandler:   e.proxyError(r),
		ModifyResponse: e.modifyResponse(r),
		ErrorLog:       nil,
	}
}

// copyBuffers pools the 32 KiB buffers ReverseProxy copies bodies through.
var copyBuffers = &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(x []byte) { b.p.Put(&x) }
