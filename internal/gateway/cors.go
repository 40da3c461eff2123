package gateway

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/apiguard/apiguard/internal/config"
)

// corsPolicy is a route's compiled CORS config. The gateway answers
// preflights itself and owns the Access-Control-* response headers: any the
// upstream sets are replaced, so the policy in the config is the one in force.
type corsPolicy struct {
	anyOrigin   bool
	origins     map[string]bool
	methods     string
	methodSet   map[string]bool
	headers     string
	headerSet   map[string]bool
	anyHeader   bool
	exposed     string
	credentials bool
	maxAge      string
}

func newCORS(c *config.CORS, routeMethods []string) *corsPolicy {
	if c == nil {
		return nil
	}
	p := &corsPolicy{origins: map[string]bool{}, methodSet: map[string]bool{}, headerSet: map[string]bool{}, credentials: c.AllowCredentials}
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			p.anyOrigin = true
			continue
		}
		p.origins[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	methods := c.AllowedMethods
	if len(methods) == 0 {
		methods = routeMethods
	}
	if len(methods) == 0 {
		methods = []string{"GET", "HEAD", "POST"}
	}
	up := make([]string, len(methods))
	for i, m := range methods {
		up[i] = strings.ToUpper(m)
		p.methodSet[up[i]] = true
	}
	p.methods = strings.Join(up, ", ")
	for _, h := range c.AllowedHeaders {
		if h == "*" {
			p.anyHeader = true
			continue
		}
		p.headerSet[strings.ToLower(h)] = true
	}
	p.headers = strings.Join(c.AllowedHeaders, ", ")
	p.exposed = strings.Join(c.ExposedHeaders, ", ")
	if c.MaxAge > 0 {
		p.maxAge = strconv.Itoa(int(c.MaxAge.Std().Seconds()))
	}
	return p
}

func (p *corsPolicy) originAllowed(origin string) bool {
	return p.anyOrigin || p.origins[strings.ToLower(origin)]
}

// isPreflight reports an OPTIONS request asking for CORS permission.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// preflight answers a preflight request: true and headers set when allowed.
func (p *corsPolicy) preflight(r *http.Request, h http.Header) bool {
	origin := r.Header.Get("Origin")
	if !p.originAllowed(origin) || !p.methodSet[strings.ToUpper(r.Header.Get("Access-Control-Request-Method"))] {
		return false
	}
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" && !p.anyHeader {
		for _, name := range strings.Split(req, ",") {
			if n := strings.ToLower(strings.TrimSpace(name)); n != "" && !p.headerSet[n] {
				return false
			}
		}
	}
	p.setOrigin(origin, h)
	h.Set("Access-Control-Allow-Methods", p.methods)
	switch {
	case p.anyHeader:
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
		}
	case p.headers != "":
		h.Set("Access-Control-Allow-Headers", p.headers)
	}
	if p.maxAge != "" {
		h.Set("Access-Control-Max-Age", p.maxAge)
	}
	return true
}

// apply sets the headers of an actual (non-preflight) cross-origin response.
func (p *corsPolicy) apply(origin string, h http.Header) {
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			delete(h, k)
		}
	}
	if !p.anyOrigin || p.credentials {
		// The answer depends on Origin: caches must key on it, for allowed
		// and refused origins alike.
		if !slices.Contains(h.Values("Vary"), "Origin") {
			h.Add("Vary", "Origin")
		}
	}
	if origin == "" || !p.originAllowed(origin) {
		return
	}
	p.setOrigin(origin, h)
	if p.exposed != "" {
		h.Set("Access-Control-Expose-Headers", p.exposed)
	}
}

func (p *corsPolicy) setOrigin(origin string, h http.Header) {
	if p.anyOrigin && !p.credentials {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
		if !slices.Contains(h.Values("Vary"), "Origin") {
			h.Add("Vary", "Origin")
		}
	}
	if p.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}
