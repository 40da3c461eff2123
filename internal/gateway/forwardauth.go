package gateway

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// ForwardAuthPath is where proxies send their authorization subrequests.
// Envoy's ext_authz (HTTP) appends the original path to it.
const ForwardAuthPath = "/.apiguard/authz"

// Headers that describe the original request to the forward-auth endpoint.
// They are removed from the reconstructed request so checks see what the
// client sent.
var forwardAuthMeta = []string{
	"X-Original-Uri", "X-Original-Url", "X-Original-Method", "X-Original-Host", "X-Original-Proto",
	"X-Forwarded-Method", "X-Forwarded-Uri", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
	"X-Real-Ip", "X-Envoy-Internal", "X-Envoy-Expected-Rq-Timeout-Ms",
}

// errBadForwardAuth is returned for subrequests that do not describe a request.
var errBadForwardAuth = errors.New("forward-auth: malformed original request headers")

// originalRequest rebuilds the client's request from a forward-auth
// subrequest: nginx auth_request (X-Original-URI, X-Original-Method), Traefik
// ForwardAuth (X-Forwarded-Method, -Uri, -Host, -Proto) or Envoy ext_authz
// HTTP (same method, path under ForwardAuthPath, original headers).
func originalRequest(r *http.Request, style string) (*http.Request, error) {
	h := r.Header
	nginx := h.Get("X-Original-Uri") != "" || h.Get("X-Original-Url") != "" || h.Get("X-Original-Method") != ""
	traefik := h.Get("X-Forwarded-Uri") != "" || h.Get("X-Forwarded-Method") != ""
	switch style {
	case "nginx":
		traefik = false
	case "traefik":
		nginx = false
	case "envoy":
		nginx, traefik = false, false
	default:
		if nginx && traefik {
			// Two proxies' descriptions at once: one of them came from the
			// client. Refuse rather than guess which to believe.
			return nil, errBadForwardAuth
		}
	}
	var method, uri string
	switch {
	case nginx:
		method, uri = h.Get("X-Original-Method"), firstNonEmpty(h.Get("X-Original-Uri"), h.Get("X-Original-Url"))
	case traefik:
		method, uri = h.Get("X-Forwarded-Method"), h.Get("X-Forwarded-Uri")
	}
	if method == "" {
		method = r.Method
	}
	if uri == "" {
		// Envoy: the subrequest path is the prefix plus the original path.
		uri = strings.TrimPrefix(r.URL.RequestURI(), ForwardAuthPath)
		if uri == "" || uri[0] == '?' {
			uri = "/" + uri
		}
	}
	if !validToken(method) || len(method) > 16 {
		return nil, errBadForwardAuth
	}
	if len(uri) > 8192 || uri[0] != '/' || strings.HasPrefix(uri, "//") || hasCTL(uri) {
		return nil, errBadForwardAuth
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, errBadForwardAuth
	}
	host := firstNonEmpty(r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Original-Host"), r.Host)
	if !validHost(host) {
		return nil, errBadForwardAuth
	}
	proto := firstNonEmpty(r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Original-Proto"), "http")
	if proto != "http" && proto != "https" {
		return nil, errBadForwardAuth
	}

	orig := r.Clone(r.Context())
	orig.Method = method
	orig.URL = u
	orig.RequestURI = uri
	orig.Host = host
	for _, k := range forwardAuthMeta {
		orig.Header.Del(k)
	}
	if method == http.MethodGet || method == http.MethodHead || r.ContentLength == 0 {
		orig.Body, orig.ContentLength = http.NoBody, 0
	}
	// The caller is the proxy; the client is what it says: the
	// X-Forwarded-For chain, or X-Real-IP (nginx) when there is none.
	if a, ok := parseForwardedAddr(r.Header.Get("X-Real-Ip")); ok && r.Header.Get("X-Forwarded-For") == "" {
		orig.Header.Set("X-Forwarded-For", a.String())
	}
	return orig, nil
}

// ServeForwardAuth answers a forward-auth subrequest: 200 with headers for
// the upstream when the original request may pass, else the problem the
// client should get.
func (e *Engine) ServeForwardAuth(w http.ResponseWriter, r *http.Request) {
	rt := e.rt.Load()
	ex := getExchange(w)
	defer putExchange(ex)
	orig, err := originalRequest(r, rt.cfg.ForwardAuth.Style)
	if err != nil {
		ex.req.HTTP = r
		ex.req.ClientIP = peerAddr(r)
		ex.clientIP = ex.req.ClientIP.String()
		ex.req.ID = newRequestID()
		w.Header().Set("X-Request-Id", ex.req.ID)
		e.refuse(&ex.rw, ex, "forward-auth", http.StatusBadRequest, "forward-auth-bad-header", "the forward-auth request does not describe an original request")
		e.finish(ex, r)
		return
	}
	// Resolve the client against a view of trust that includes the caller.
	trusted := rt.trusted
	if peer := peerAddr(r); peer.IsValid() && !trusted.contains(peer) {
		trusted = append(trustedProxies{netip.PrefixFrom(peer, peer.BitLen())}, trusted...)
	}
	view := *rt
	view.trusted = trusted
	if e.admit(&view, &ex.rw, orig, ex, rt.forwardAuthFallback()) {
		h := w.Header()
		for k, vs := range ex.req.ResponseHeader {
			h[k] = vs
		}
		h.Set("X-Request-Id", ex.req.ID)
		h.Set("Apiguard-Client-Ip", ex.clientIP)
		if s := ex.req.Identity.Subject; s != "" {
			h.Set("Apiguard-Subject", s)
		}
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		ex.rw.status = http.StatusOK
		ex.upDur = time.Duration(0)
	} else {
		e.judgeOwnRefusal(r.Context(), ex)
	}
	ex.req.Done()
	e.finish(ex, orig)
}

// forwardAuthFallback applies the global checks to requests no route matches:
// the proxy in front decides what exists, apiguard only judges.
func (rt *runtime) forwardAuthFallback() *route {
	if rt.fallback != nil {
		return rt.fallback
	}
	return &route{name: "default", pipeline: rt.global, limits: rt.globalLimits}
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// validToken reports an RFC 9110 token (methods are tokens).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}
