package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiguard/apiguard/internal/attest"
	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/decision"
	"github.com/apiguard/apiguard/internal/events"
	"github.com/apiguard/apiguard/internal/fingerprint"
	"github.com/apiguard/apiguard/internal/jsonlimit"
	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/apiguard/apiguard/internal/problem"
	"github.com/apiguard/apiguard/internal/state"
)

// Publisher receives events; it must never block (events.Bus drops instead).
type Publisher interface {
	Publish(events.Event)
}

type discard struct{}

func (discard) Publish(events.Event) {}

// Engine runs the request path: request id, client address, limits, route
// match, body limits, the check pipeline, then the route's handler (the
// reverse proxy, or the wrapped handler in middleware mode). It is safe for
// concurrent use; Swap replaces its config atomically.
type Engine struct {
	rt       atomic.Pointer[runtime]
	log      *slog.Logger
	metrics  *metrics
	events   Publisher
	tls      bool         // the public listener terminates TLS
	terminal http.Handler // middleware mode: every route ends here
	state    state.Backend
	client   *http.Client // for checks' own fetches (JWKS)
	keys     *lazyKeys
	registry *lazyRegistry // attestation app registry
	// decisions are the block/challenge/throttle decisions every instance
	// enforces (checks.bot); the admin API manages them.
	decisions *decision.Store
}

// EngineOptions configure an Engine.
type EngineOptions struct {
	Logger  *slog.Logger
	Events  Publisher
	Version string
	TLS     bool
	// Terminal, when set, replaces the reverse proxy: middleware mode.
	Terminal http.Handler
	// State is the shared state backend; nil opens the one cfg.State names.
	State state.Backend
}

// NewEngine builds an engine from a validated config.
func NewEngine(cfg *config.Config, opts EngineOptions) (*Engine, error) {
	e := &Engine{log: opts.Logger, events: opts.Events, tls: opts.TLS, terminal: opts.Terminal, metrics: newMetrics(opts.Version), state: opts.State, client: outboundClient()}
	if e.state == nil {
		var err error
		if e.state, err = newStateBackend(cfg.State); err != nil {
			return nil, fmt.Errorf("state: %w", err)
		}
	}
	e.keys = newLazyKeys(cfg, e.state, e.log)
	e.registry = newLazyRegistry(cfg)
	if e.log == nil {
		e.log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	var err error
	if e.decisions, err = decision.NewStore(e.state, decision.Options{Logger: e.log}); err != nil {
		return nil, err
	}
	if e.events == nil {
		e.events = discard{}
	}
	rt, err := e.buildRuntime(cfg)
	if err != nil {
		return nil, err
	}
	e.rt.Store(rt)
	return e, nil
}

// Swap builds a runtime from cfg and makes it current. The old runtime's
// idle upstream connections are closed once in-flight requests had time to
// finish.
func (e *Engine) Swap(cfg *config.Config, grace time.Duration) error {
	rt, err := e.buildRuntime(cfg)
	if err != nil {
		return err
	}
	old := e.rt.Swap(rt)
	if old != nil {
		time.AfterFunc(grace, old.close)
	}
	return nil
}

// Config returns the config in force.
func (e *Engine) Config() *config.Config { return e.rt.Load().cfg }

// exchange is the per-request state, pooled.
type exchange struct {
	req         pipeline.Request
	route       *route
	peerTrusted bool
	start       time.Time
	upStart     time.Time
	upDur       time.Duration
	decision    string
	clientIP    string // ClientIP formatted once, for headers and events
	rw          recorder
	verdictBuf  [4]pipeline.Recorded
}

type exchangeKey struct{}

var exchanges = sync.Pool{New: func() any { return new(exchange) }}

func getExchange(w http.ResponseWriter) *exchange {
	ex := exchanges.Get().(*exchange)
	ex.start = time.Now()
	ex.rw.ResponseWriter = w
	ex.req.Start = ex.start
	ex.req.Verdicts = ex.verdictBuf[:0]
	return ex
}

func putExchange(ex *exchange) {
	ex.req.Done() // in case a path returned early
	clear(ex.verdictBuf[:])
	*ex = exchange{}
	exchanges.Put(ex)
}

func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

// ServeHTTP is the reverse-proxy (and middleware) entry point.
func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.metrics.inflight.Add(1)
	defer e.metrics.inflight.Add(-1)
	rt := e.rt.Load()
	ex := getExchange(w)
	defer putExchange(ex)
	if e.admit(rt, &ex.rw, r, ex, rt.fallback) {
		if e.terminal == nil {
			// The proxy's hooks find the exchange through the context; the
			// wrapped handler of middleware mode does not need it.
			r = r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex))
		}
		ex.upStart = time.Now()
		if e.terminal != nil {
			// The proxy sets these in ModifyResponse; a wrapped handler
			// gets them up front and may override them.
			for k, vs := range ex.req.ResponseHeader {
				w.Header()[k] = vs
			}
			if ex.route.cors != nil {
				ex.route.cors.apply(r.Header.Get("Origin"), w.Header())
			}
		}
		ex.route.handler.ServeHTTP(&ex.rw, r)
	} else {
		e.judgeOwnRefusal(r.Context(), ex)
	}
	ex.req.Done()
	e.finish(ex, r)
}

// judgeOwnRefusal lets response checks see the gateway's own 401 and 403
// answers (a bad token, key, certificate or signature), as they see the
// upstream's: a rate-limit policy with count_status [401] then counts
// failed authentications at the gateway too, which turns it into a lockout
// for token and key guessing.
func (e *Engine) judgeOwnRefusal(ctx context.Context, ex *exchange) {
	st := ex.rw.status
	if (st != http.StatusUnauthorized && st != http.StatusForbidden) || ex.route == nil || !ex.route.pipeline.HasResponseChecks() {
		return
	}
	ex.route.pipeline.RunResponse(ctx, &ex.req, &http.Response{StatusCode: st, Header: http.Header{}, Body: http.NoBody})
}

// admit runs everything before the upstream. It returns true when the request
// may proceed; otherwise it has written the response.
func (e *Engine) admit(rt *runtime, w http.ResponseWriter, r *http.Request, ex *exchange, fallback *route) bool {
	id := r.Header.Get("X-Request-Id")
	if !validRequestID(id) {
		id = newRequestID()
		r.Header.Set("X-Request-Id", id)
	}
	ex.req.ID = id
	ex.req.HTTP = r
	w.Header().Set("X-Request-Id", id)
	ex.req.ClientIP, ex.peerTrusted = rt.trusted.clientIP(r)
	ex.clientIP = ex.req.ClientIP.String()
	if fp := fingerprint.FromContext(r.Context()).TLS(); fp != nil {
		ex.req.Identity.JA4 = fp.JA4
	}

	// RFC 9112 §6.3: a request framed by Transfer-Encoding may have come with
	// a Content-Length too (net/http drops it and re-frames the body); the
	// connection must not be reused after such a request.
	if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
		w.Header().Set("Connection", "close")
	}
	if rt.maxHeaderBytes > 0 && headerBytes(r) > rt.maxHeaderBytes {
		return e.refuse(w, ex, "limits", http.StatusRequestHeaderFieldsTooLarge, "headers-too-large", "the request headers exceed the allowed size")
	}
	if p := cleanPath(r.URL.Path); p != r.URL.Path {
		// Route on, and forward, the normalised path: /public/../admin must
		// not match the /public route and then reach /admin upstream.
		r.URL.Path, r.URL.RawPath = p, ""
	}

	if rt.attest != nil && attest.Handles(r.URL.Path) {
		ex.req.Route = "attest"
		if c := rt.attestCORS; c != nil {
			if isPreflight(r) {
				if c.preflight(r, w.Header()) {
					w.Header().Set("Content-Length", "0")
					w.WriteHeader(http.StatusNoContent)
					return false
				}
				return e.refuse(w, ex, "cors", http.StatusForbidden, "cors-rejected", "this origin, method or header is not allowed")
			}
			c.apply(r.Header.Get("Origin"), w.Header())
		}
		e.serveAttest(rt.attest, w, r, ex)
		return false
	}

	rte, methodOK := rt.match(r.Host, r.URL.Path, r.Method)
	if rte == nil {
		if fallback == nil {
			return e.refuse(w, ex, "router", http.StatusNotFound, "not-found", "no API is served at this path")
		}
		rte, methodOK = fallback, true
	}
	ex.route = rte
	ex.req.Route = rte.name

	if rte.cors != nil && isPreflight(r) {
		if rte.cors.preflight(r, w.Header()) {
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusNoContent)
			return false
		}
		return e.refuse(w, ex, "cors", http.StatusForbidden, "cors-rejected", "this origin, method or header is not allowed")
	}
	if !methodOK {
		w.Header().Set("Allow", rte.allow)
		return e.refuse(w, ex, "router", http.StatusMethodNotAllowed, "method-not-allowed", "method "+sanitizeMethod(r.Method)+" is not allowed here")
	}
	if !e.limitBody(w, r, ex, rte.limits) {
		return false
	}
	if v, denied := rte.pipeline.Run(r.Context(), &ex.req); denied {
		e.writeVerdict(w, ex, v)
		return false
	}
	return true
}

// refuse records a gateway-level denial (not from a check) and writes it.
func (e *Engine) refuse(w http.ResponseWriter, ex *exchange, source string, status int, slug, detail string) bool {
	v := pipeline.Verdict{Action: pipeline.Deny, Status: status, Reason: slug, Detail: detail}
	ex.req.Verdicts = append(ex.req.Verdicts, pipeline.Recorded{Check: source, Verdict: v, Enforced: true})
	e.writeVerdict(w, ex, v)
	return false
}

// writeVerdict writes a deny or challenge as a problem.
func (e *Engine) writeVerdict(w http.ResponseWriter, ex *exchange, v pipeline.Verdict) {
	if v.Status == 0 {
		v.Status = http.StatusForbidden
	}
	ex.decision = v.Action.String()
	h := w.Header()
	if e.tls {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	if ex.route != nil && ex.route.cors != nil && ex.req.HTTP != nil {
		ex.route.cors.apply(ex.req.HTTP.Header.Get("Origin"), h)
	}
	for k, vs := range ex.req.ResponseHeader {
		h[k] = vs
	}
	d := problem.New(v.Status, v.Reason, v.Detail, ex.req.ID)
	d.Extra = v.Extensions
	problem.Write(w, d, v.Headers)
}

// limitBody enforces the body size and, for JSON, depth, element count and
// syntax, reading no more than the limit. JSON and URL-encoded form bodies
// are buffered (later checks need them) and re-framed with a
// Content-Length.
func (e *Engine) limitBody(w http.ResponseWriter, r *http.Request, ex *exchange, lim bodyLimits) bool {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return true
	}
	if lim.maxBody > 0 && r.ContentLength > lim.maxBody {
		w.Header().Set("Connection", "close") // the unread body makes the connection unusable
		return e.refuse(w, ex, "limits", http.StatusRequestEntityTooLarge, "body-too-large", fmt.Sprintf("the request body exceeds %d bytes", lim.maxBody))
	}
	if lim.maxBody > 0 {
		r.Body = http.MaxBytesReader(w, r.Body, lim.maxBody)
	}
	ct := r.Header.Get("Content-Type")
	jsonBody := isJSON(ct)
	if !jsonBody && !isForm(ct) && !lim.bufferAll {
		return true
	}
	size := 512
	if r.ContentLength > 0 {
		size = int(r.ContentLength) + 1
	}
	buf := make([]byte, 0, size)
	sc := scanners.Get().(*jsonlimit.Scanner)
	defer scanners.Put(sc)
	sc.Reset(lim.json)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		if n > 0 {
			chunk := buf[len(buf) : len(buf)+n]
			buf = buf[:len(buf)+n]
			if jsonBody { // form bodies are buffered for inspection, not scanned
				if _, serr := sc.Write(chunk); serr != nil {
					w.Header().Set("Connection", "close")
					return e.refuseJSON(w, ex, serr)
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return e.refuse(w, ex, "limits", http.StatusRequestEntityTooLarge, "body-too-large", fmt.Sprintf("the request body exceeds %d bytes", lim.maxBody))
			}
			w.Header().Set("Connection", "close")
			if isTimeout(err) {
				return e.refuse(w, ex, "limits", http.StatusRequestTimeout, "request-timeout", "the request body was not received in time")
			}
			return e.refuse(w, ex, "limits", http.StatusBadRequest, "bad-request", "the request body could not be read")
		}
	}
	if jsonBody {
		if err := sc.Close(); err != nil {
			return e.refuseJSON(w, ex, err)
		}
	}
	_ = r.Body.Close()
	ex.req.Body = buf
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.ContentLength = int64(len(buf))
	r.TransferEncoding = nil
	return true
}

var scanners = sync.Pool{New: func() any { return jsonlimit.NewScanner(jsonlimit.Limits{}) }}

func (e *Engine) refuseJSON(w http.ResponseWriter, ex *exchange, err error) bool {
	switch {
	case errors.Is(err, jsonlimit.ErrTooDeep):
		return e.refuse(w, ex, "limits", http.StatusBadRequest, "json-too-deep", "the JSON body is nested too deeply")
	case errors.Is(err, jsonlimit.ErrTooManyElements):
		return e.refuse(w, ex, "limits", http.StatusRequestEntityTooLarge, "json-too-many-elements", "the JSON body has too many elements")
	}
	return e.refuse(w, ex, "limits", http.StatusBadRequest, "invalid-json", "the request body is not valid JSON")
}

func isJSON(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// isForm reports a URL-encoded form body, which is buffered like JSON so
// inspection checks can read it.
func isForm(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/x-www-form-urlencoded")
}

// headerBytes approximates the request head's size as sent on the wire.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + 12
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// cleanPath resolves . and .. segments and repeated slashes, keeping a
// trailing slash. It allocates only when the path is not already clean.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] == '/' && !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
		return p
	}
	c := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

func sanitizeMethod(m string) string {
	if len(m) > 16 {
		m = m[:16]
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; c < 'A' || c > 'Z' {
			return "(invalid)"
		}
	}
	return m
}

// finish records metrics and publishes the request's events.
func (e *Engine) finish(ex *exchange, r *http.Request) {
	lat := time.Since(ex.start)
	status := ex.rw.status
	if status == 0 {
		status = 499 // the client went away before any response
	}
	decision := ex.decision
	if decision == "" {
		decision = "allow"
		for _, v := range ex.req.Verdicts {
			if !v.Enforced && (v.Verdict.Action == pipeline.Deny || v.Verdict.Action == pipeline.Challenge) {
				decision = "would-deny"
				break
			}
		}
	}
	routeName := ex.req.Route
	if routeName == "" {
		routeName = "unmatched"
	}
	e.metrics.countRequest(routeName, status, decision)
	if ex.route != nil && ex.route.duration != nil {
		ex.route.duration.Observe(lat.Seconds())
	} else {
		e.metrics.duration.WithLabelValues(routeName).Observe(lat.Seconds())
	}

	base := events.Event{
		Time:      ex.start,
		RequestID: ex.req.ID,
		Route:     routeName,
		Method:    sanitizeMethod(r.Method),
		Host:      truncate(r.Host, 255),
		Path:      truncate(r.URL.Path, 512),
		Status:    status,
		ClientIP:  ex.clientIP,
		Subject:   ex.req.Identity.Subject,
		APIKey:    ex.req.Identity.APIKey,
		App:       ex.req.Identity.App,
		Device:    ex.req.Identity.Device,
		JA4:       ex.req.Identity.JA4,
	}
	for _, v := range ex.req.Verdicts {
		ev := base
		ev.Kind = events.KindVerdict
		ev.Check = v.Check
		ev.Action = v.Verdict.Action.String()
		if !v.Enforced && (v.Verdict.Action == pipeline.Deny || v.Verdict.Action == pipeline.Challenge) {
			ev.Action = "would-deny"
		}
		ev.Reason = v.Verdict.Reason
		ev.Score = v.Verdict.Score
		ev.Detail = v.Verdict.Detail
		ev.CheckLatency = v.Latency
		if v.Err != nil || len(v.Verdict.Evidence) > 0 {
			ev.Attrs = make(map[string]string, len(v.Verdict.Evidence)+1)
			for k, val := range v.Verdict.Evidence {
				ev.Attrs[k] = val
			}
			if v.Err != nil {
				ev.Attrs["error"] = v.Err.Error()
			}
		}
		e.events.Publish(ev)
	}
	ev := base
	ev.Kind = events.KindRequest
	ev.Action = decision
	ev.Latency = lat
	e.addBotFields(e.rt.Load(), ex, &ev)
	ev.Upstream = ex.upDur
	if n := len(ex.req.Verdicts); n > 0 {
		last := ex.req.Verdicts[n-1]
		ev.Check, ev.Reason = last.Check, last.Verdict.Reason
	}
	e.events.Publish(ev)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// recorder captures the response status for metrics and events.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Flush lets streaming responses through; Unwrap gives http.ResponseController
// (used by ReverseProxy for flushes and upgrades) the real writer.
func (r *recorder) Flush() { _ = http.NewResponseController(r.ResponseWriter).Flush() }

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// outboundClient is used by checks that fetch (JWKS): bounded, no proxy
// from the environment, TLS 1.2+.
func outboundClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second,
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12},
	}}
}
