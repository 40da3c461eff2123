package gateway

import (
	"net/http"
	"strings"
	"testing"
)

func TestRateLimitThroughProxy(t *testing.T) {
	t.Parallel()
	app := newEchoUpstream(t, "app")
	g := startGateway(t, `
trusted_proxies: [127.0.0.1/32]
upstreams: {app: {targets: [$UPSTREAM_0]}}
checks:
  ratelimit:
    policies:
      - {name: per-client, key: [ip], limits: [{rate: 3/m}]}
routes:
  - {name: api, upstream: app}
`, app.URL)

	for i := range 3 {
		r := get(t, g.url+"/x", "X-Forwarded-For", "192.0.2.10")
		if r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
		// The draft-10 fields reach the client on proxied responses.
		if pol := r.header.Get("RateLimit-Policy"); pol != `"per-client";q=3;w=60` {
			t.Fatalf("RateLimit-Policy = %q", pol)
		}
		if want := `"per-client";r=` + string(rune('2'-i)); !strings.HasPrefix(r.header.Get("RateLimit"), want) {
			t.Fatalf("RateLimit = %q, want prefix %q", r.header.Get("RateLimit"), want)
		}
	}
	r := get(t, g.url+"/x", "X-Forwarded-For", "192.0.2.10")
	wantProblem(t, r, http.StatusTooManyRequests, "rate-limited")
	if r.header.Get("Retry-After") != "20" || !strings.Contains(string(r.body), `"violated_policies":["per-client"]`) {
		t.Fatalf("429: Retry-After %q body %s", r.header.Get("Retry-After"), r.body)
	}
	if !strings.HasPrefix(r.header.Get("RateLimit"), `"per-client";r=0;t=`) {
		t.Fatalf("429 lacks RateLimit: %v", r.header)
	}
	// Another client is unaffected.
	if r := get(t, g.url+"/x", "X-Forwarded-For", "192.0.2.11"); r.status != 200 {
		t.Fatalf("other client: %d", r.status)
	}
	// Forward-auth applies the same limits and returns the same problem.
	req, _ := http.NewRequest(http.MethodGet, g.admin+ForwardAuthPath, nil)
	req.Header.Set("X-Forwarded-Method", "GET")
	req.Header.Set("X-Forwarded-Uri", "/x")
	req.Header.Set("X-Forwarded-For", "192.0.2.10")
	fa := do(t, req)
	wantProblem(t, fa, http.StatusTooManyRequests, "rate-limited")
}
