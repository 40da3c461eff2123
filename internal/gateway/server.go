package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/apiguard/apiguard/internal/admin"
	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/decision"
	"github.com/apiguard/apiguard/internal/events"
	"github.com/apiguard/apiguard/internal/fingerprint"
	"github.com/apiguard/apiguard/internal/state"
)

// Options configure a Server.
type Options struct {
	Logger  *slog.Logger
	Version string
	// ConfigPath enables reload (SIGHUP, file changes) from this file.
	ConfigPath string
	// LoadOptions are used when reloading.
	LoadOptions config.Options
	// ExtraSinks receive every event (the demo's statistics, tests).
	ExtraSinks []events.Sink
	// Override is applied to every config loaded on reload, so command-line
	// overrides (--listen, ...) survive reloads.
	Override func(*config.Config)
}

// Server is the apiguard process: public listener, admin listener, optional
// forward-auth listener, event pipeline and config reload.
type Server struct {
	opts     Options
	log      *slog.Logger
	cfg      *config.Config
	engine   *Engine
	bus      *events.Bus
	store    events.Store
	rollups  *events.RollupSink // nil unless request events are kept as rollups
	state    state.Backend
	health   *stateHealth
	token    []byte // SHA-256 of the admin token
	servers  []*http.Server
	adminSrv *http.Server
	lns      []net.Listener
	addrs    map[string]string

	draining atomic.Bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	reloadMu sync.Mutex
}

// New builds a server from a validated config. It opens the event store and
// resolves the admin token, so an unwritable data dir fails here, clearly.
func New(cfg *config.Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	s := &Server{opts: opts, log: opts.Logger, cfg: cfg, addrs: map[string]string{}}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: cannot create %s: %w", cfg.DataDir, err)
	}
	token, err := adminToken(cfg, opts.Logger)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(token))
	s.token = sum[:]

	metricsOwner := newMetrics(opts.Version)
	s.bus = events.NewBus(events.BusOptions{QueueSize: cfg.Events.QueueSize, Logger: opts.Logger, Registerer: metricsOwner.reg})
	logRequests := cfg.Events.Log.Requests
	s.bus.AddSink(events.NewLogSink(opts.Logger), func(e *events.Event) bool {
		return e.Kind != events.KindRequest || logRequests
	})
	if err := s.openStore(cfg); err != nil {
		return nil, err
	}
	for _, sink := range opts.ExtraSinks {
		s.bus.AddSink(sink, nil)
	}
	if s.state, err = newStateBackend(cfg.State); err != nil {
		s.closeStore()
		return nil, fmt.Errorf("state: %w", err)
	}
	s.health = newStateHealth(s.state, metricsOwner.reg)
	s.engine = &Engine{log: opts.Logger, events: s.bus, tls: cfg.TLS != nil, metrics: metricsOwner, state: s.state, client: outboundClient(),
		keys: newLazyKeys(cfg, s.state, opts.Logger), registry: newLazyRegistry(cfg)}
	if s.engine.decisions, err = decision.NewStore(s.state, decision.Options{Logger: opts.Logger}); err != nil {
		s.closeStore()
		_ = s.state.Close()
		return nil, err
	}
	// The observe path: every request event goes to the bot service's
	// detectors, off the request path.
	s.bus.AddSink(observeSink{s.engine}, func(e *events.Event) bool { return e.Kind == events.KindRequest })
	rt, err := s.engine.buildRuntime(cfg)
	if err != nil {
		s.closeStore()
		_ = s.state.Close()
		return nil, err
	}
	s.engine.rt.Store(rt)
	return s, nil
}

func (s *Server) openStore(cfg *config.Config) error {
	st := cfg.Events.Store
	var err error
	switch st.Driver {
	case "none":
		return nil
	case "postgres":
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.store, err = events.OpenPostgres(ctx, st.DSN)
	default:
		path := st.DSN
		if path == "" {
			path = filepath.Join(cfg.DataDir, "events.db")
		}
		s.store, err = events.OpenSQLite(path)
	}
	if err != nil {
		return fmt.Errorf("events.store: %w", err)
	}
	switch st.Requests {
	case "all":
		s.bus.AddSink(s.store, nil)
	case "none":
		s.bus.AddSink(s.store, func(e *events.Event) bool { return e.Kind != events.KindRequest })
	default:
		s.rollups = events.NewRollupSink(s.store, events.DefaultRollupBucket)
		s.bus.AddSink(s.rollups, nil)
	}
	return nil
}

func (s *Server) closeStore() {
	if s.store != nil {
		_ = s.store.Close()
	}
}

// adminToken returns the configured token, or reads or creates
// <data_dir>/admin.token (mode 0600). The token itself is never logged.
func adminToken(cfg *config.Config, log *slog.Logger) (string, error) {
	if cfg.Admin.Token != "" {
		return cfg.Admin.Token, nil
	}
	path := cfg.Admin.TokenFile
	if path == "" {
		path = filepath.Join(cfg.DataDir, "admin.token")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			b := make([]byte, 32)
			_, _ = rand.Read(b)
			if err := os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
				return "", fmt.Errorf("admin: cannot write token file %s: %w", path, err)
			}
			log.Info("generated admin token", "file", path)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin: token file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if len(t) < 16 {
		return "", fmt.Errorf("admin: token in %s is shorter than 16 characters", path)
	}
	return t, nil
}

// Engine returns the request engine (for tests and embedding).
func (s *Server) Engine() *Engine { return s.engine }

// Publish emits an event (config, system) through the bus.
func (s *Server) Publish(e events.Event) { s.bus.Publish(e) }

// Start binds every listener and serves in the background.
func (s *Server) Start(ctx context.Context) error {
	ctx, s.cancel = context.WithCancel(ctx)
	cfg := s.cfg
	if err := s.engine.decisions.Start(ctx); err != nil {
		return fmt.Errorf("decisions: %w", err)
	}
	l := cfg.Limits

	public := &http.Server{
		Handler:           s.engine,
		ReadHeaderTimeout: l.ReadHeaderTimeout.Std(),
		ReadTimeout:       l.ReadTimeout.Std(),
		WriteTimeout:      l.WriteTimeout.Std(),
		IdleTimeout:       l.IdleTimeout.Std(),
		// The handler refuses heads over the limit with a problem; the server's
		// own hard stop sits at twice that, so only grossly oversized heads
		// get net/http's plain 431.
		MaxHeaderBytes: 2 * int(l.MaxHeaderBytes),
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	if l.MaxConnsPerIP > 0 {
		ln = newConnLimiter(ln, l.MaxConnsPerIP, func() trustedProxies { return s.engine.rt.Load().trusted }, s.engine.metrics.connRejects)
	}
	if cfg.TLS != nil {
		tc, err := serverTLS(cfg.TLS)
		if err != nil {
			_ = ln.Close()
			return err
		}
		public.TLSConfig = tc
		// JA4 of every connection's ClientHello and the HTTP/2 fingerprint
		// of its first frames, for the request's identity (bot detection).
		if err := fingerprint.Install(public); err != nil {
			_ = ln.Close()
			return err
		}
		ln = tls.NewListener(ln, public.TLSConfig)
	}
	s.serve("public", public, ln)

	admin := &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	aln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		s.closeListeners()
		return fmt.Errorf("admin listen %s: %w", cfg.Admin.Listen, err)
	}
	s.adminSrv = admin
	s.serve("admin", admin, aln)

	if cfg.ForwardAuth.Listen != "" {
		fa := &http.Server{Handler: http.HandlerFunc(s.engine.ServeForwardAuth), ReadHeaderTimeout: l.ReadHeaderTimeout.Std(), ReadTimeout: l.ReadTimeout.Std(), IdleTimeout: l.IdleTimeout.Std(), MaxHeaderBytes: 2 * int(l.MaxHeaderBytes)}
		fln, err := net.Listen("tcp", cfg.ForwardAuth.Listen)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("forward_auth listen %s: %w", cfg.ForwardAuth.Listen, err)
		}
		s.serve("forward_auth", fa, fln)
	}
	go s.health.watch(ctx, time.Second, s.log, s.bus)
	if s.rollups != nil {
		go func() { // write finished buckets even when traffic stops
			t := time.NewTicker(events.DefaultRollupBucket)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if err := s.rollups.FlushComplete(ctx); err != nil && ctx.Err() == nil {
						s.log.Warn("events: writing request rollups failed", "error", err.Error())
					}
				}
			}
		}()
	}
	if s.store != nil {
		go events.StartRetention(ctx, s.store, cfg.Events.Store.Retention.Std(), time.Hour, s.log)
	}
	s.bus.Publish(events.Event{Time: time.Now(), Kind: events.KindSystem, Reason: "started", Detail: "apiguard " + s.opts.Version})
	s.log.Info("apiguard started", "listen", s.addrs["public"], "admin", s.addrs["admin"], "routes", len(cfg.Routes), "tls", cfg.TLS != nil)
	return nil
}

func (s *Server) serve(name string, srv *http.Server, ln net.Listener) {
	s.servers = append(s.servers, srv)
	s.lns = append(s.lns, ln)
	s.addrs[name] = ln.Addr().String()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("listener failed", "listener", name, "error", err)
		}
	}()
}

func (s *Server) closeListeners() {
	for _, ln := range s.lns {
		_ = ln.Close()
	}
}

// Addr returns the bound address of a listener: public, admin, forward_auth.
func (s *Server) Addr(name string) string { return s.addrs[name] }

// Shutdown stops accepting, drains in-flight requests (bounded by ctx and
// limits.shutdown_timeout) and flushes events.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.ShutdownTimeout.Std())
	defer cancel()
	// Drain the public and forward-auth listeners first; the admin
	// listener stays up meanwhile so probes see /readyz "draining".
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	shutdown := func(srv *http.Server) {
		defer wg.Done()
		if err := srv.Shutdown(ctx); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}
	for _, srv := range s.servers {
		if srv != s.adminSrv {
			wg.Add(1)
			go shutdown(srv)
		}
	}
	wg.Wait()
	if s.adminSrv != nil {
		wg.Add(1)
		shutdown(s.adminSrv)
	}
	s.wg.Wait()
	if s.cancel != nil {
		s.cancel()
	}
	s.bus.Publish(events.Event{Time: time.Now(), Kind: events.KindSystem, Reason: "stopped"})
	if err := s.bus.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("events: flush: %w", err))
	}
	if s.rollups != nil {
		if err := s.rollups.Flush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("events: rollups: %w", err))
		}
	}
	s.closeStore()
	_ = s.engine.decisions.Close()
	s.engine.rt.Load().close()
	s.engine.keys.close()
	s.engine.registry.close()
	if err := s.state.Close(); err != nil {
		errs = append(errs, fmt.Errorf("state: %w", err))
	}
	return errors.Join(errs...)
}

// Reload loads the config file again and swaps it in when valid. An invalid
// file keeps the running config; the errors are logged and emitted.
func (s *Server) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.opts.ConfigPath == "" {
		return errors.New("reload: no config file")
	}
	var cfg *config.Config
	// A file caught mid-write (truncated, not yet rewritten) parses as an
	// empty, valid config with no routes; never swap that in.
	fi, err := os.Stat(s.opts.ConfigPath)
	if err == nil && fi.Size() == 0 {
		err = fmt.Errorf("%s: config file is empty", s.opts.ConfigPath)
	}
	if err == nil {
		cfg, err = config.Load(s.opts.ConfigPath, s.opts.LoadOptions)
	}
	if err == nil && s.opts.Override != nil {
		s.opts.Override(cfg)
		err = config.ValidateConfig(cfg, s.opts.LoadOptions)
	}
	if err == nil {
		err = s.engine.Swap(cfg, s.cfg.Limits.ShutdownTimeout.Std())
	}
	if err != nil {
		s.engine.metrics.reloads.WithLabelValues("error").Inc()
		s.log.Error("config reload failed; keeping the running config", "file", s.opts.ConfigPath, "error", err.Error())
		s.bus.Publish(events.Event{Time: time.Now(), Kind: events.KindConfig, Action: "reload", Reason: "reload-failed", Detail: truncate(err.Error(), 4096)})
		return err
	}
	if restart := restartOnly(s.cfg, cfg); len(restart) > 0 {
		s.log.Warn("config reloaded; these settings take effect only after a restart", "fields", restart)
	}
	s.engine.metrics.reloads.WithLabelValues("ok").Inc()
	s.log.Info("config reloaded", "file", s.opts.ConfigPath, "routes", len(cfg.Routes))
	s.bus.Publish(events.Event{Time: time.Now(), Kind: events.KindConfig, Action: "reload", Reason: "reloaded"})
	return nil
}

// restartOnly lists changed settings that a reload cannot apply.
func restartOnly(old, cur *config.Config) []string {
	var out []string
	if old.Listen != cur.Listen {
		out = append(out, "listen")
	}
	if old.Admin != cur.Admin {
		out = append(out, "admin")
	}
	if old.ForwardAuth.Listen != cur.ForwardAuth.Listen {
		out = append(out, "forward_auth.listen")
	}
	if old.DataDir != cur.DataDir {
		out = append(out, "data_dir")
	}
	if !reflect.DeepEqual(old.TLS, cur.TLS) {
		out = append(out, "tls")
	}
	// Body, JSON, header-size and upstream limits live in the runtime and
	// apply at once; the listener's own settings do not.
	ol, cl := old.Limits, cur.Limits
	if ol.ReadHeaderTimeout != cl.ReadHeaderTimeout || ol.ReadTimeout != cl.ReadTimeout || ol.WriteTimeout != cl.WriteTimeout ||
		ol.IdleTimeout != cl.IdleTimeout || ol.MaxConnsPerIP != cl.MaxConnsPerIP || ol.ShutdownTimeout != cl.ShutdownTimeout ||
		2*ol.MaxHeaderBytes < cl.MaxHeaderBytes {
		out = append(out, "limits (listener timeouts, connections per IP, shutdown timeout, header size above twice the old one)")
	}
	if old.Log != cur.Log {
		out = append(out, "log")
	}
	if !reflect.DeepEqual(old.State, cur.State) {
		out = append(out, "state")
	}
	if !reflect.DeepEqual(old.Events, cur.Events) {
		out = append(out, "events")
	}
	return out
}

// adminHandler serves health, readiness, metrics and forward-auth; all but
// health and forward-auth require the bearer token.
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.draining.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "draining"})
			return
		}
		// A down state backend degrades but does not unready the gateway:
		// policies apply their on_error, and pulling every instance out of
		// the load balancer would turn fail-open into an outage.
		status := "ready"
		if !s.health.up.Load() {
			status = "degraded"
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": status, "state": s.health.report(), "events": map[string]any{
			"queue_depth": s.bus.QueueDepth(), "dropped": s.bus.Dropped(),
		}})
	})
	mux.Handle(ForwardAuthPath, http.HandlerFunc(s.engine.ServeForwardAuth))
	mux.Handle(ForwardAuthPath+"/", http.HandlerFunc(s.engine.ServeForwardAuth))
	mux.Handle("GET /metrics", s.requireToken(promhttp.HandlerFor(s.engine.metrics.reg, promhttp.HandlerOpts{})))
	decisions := s.requireToken(admin.Decisions(s.engine.decisions, admin.Options{Logger: s.log}))
	mux.Handle(admin.DecisionsPath, decisions)
	mux.Handle(admin.DecisionsPath+"/", decisions)
	// Profiles for diagnosing a running gateway (token required, like all
	// but health).
	mux.Handle("GET /debug/pprof/", s.requireToken(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", s.requireToken(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", s.requireToken(http.HandlerFunc(pprof.Trace)))
	mux.Handle("/", s.requireToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusNotFound, "not-found", "no such admin endpoint")
	})))
	return withRequestID(mux)
}

// requireToken checks the bearer token in constant time.
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		sum := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(sum[:], s.token) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="apiguard-admin"`)
			writeProblem(w, http.StatusUnauthorized, "unauthorized", "a valid admin bearer token is required")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// withRequestID gives every admin response an X-Request-Id too.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r)
	})
}

// serverTLS builds the public listener's TLS config: TLS 1.2+ with AEAD
// suites only, h2 and http/1.1, optional client certificates.
func serverTLS(c *config.TLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	tc := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos: []string{"h2", "http/1.1"},
	}
	if c.MinVersion == "1.3" {
		tc.MinVersion = tls.VersionTLS13
	}
	if len(c.ClientCAFiles) > 0 {
		pool := x509.NewCertPool()
		for _, f := range c.ClientCAFiles {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("tls: client CA: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls: client CA %s: no PEM certificates", f)
			}
		}
		tc.ClientCAs = pool
	}
	switch c.ClientAuth {
	case "request":
		tc.ClientAuth = tls.RequestClientCert
	case "verify_if_given":
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	case "require":
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}
