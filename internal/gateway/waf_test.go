package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/events"
)

// TestWAF: injection in JSON, form and query values is refused with the
// matched rules named; benign API traffic passes.
func TestWAF(t *testing.T) {
	t.Parallel()
	app := newEchoUpstream(t, "app")
	g := startGateway(t, `
upstreams: {app: {targets: [$UPSTREAM_0]}}
checks:
  waf: {}
routes: [{name: api, path_prefix: /, upstream: app}]
`, app.URL)
	for _, tc := range []struct {
		name, ct, body, query string
		blocked               bool
	}{
		{"sqli in json", "application/json", `{"comment":"1' UNION SELECT password FROM users--"}`, "", true},
		{"xss in nested json string", "application/json", `{"meta":"{\"note\":\"<script>alert(1)</script>\"}"}`, "", true},
		{"xss in form", "application/x-www-form-urlencoded", "name=%3Cimg+src%3Dx+onerror%3Dalert(1)%3E", "", true},
		{"sqli in query", "", "", "q=1%27%20OR%201%3D1--", true},
		{"review", "application/json", `{"rating":5,"text":"It's great -- O'Brien's shop shipped it the same day"}`, "", false},
		{"order", "application/json", `{"items":[{"sku":"KET-001","quantity":2}],"notes":"ring twice"}`, "", false},
	} {
		url := g.url + "/api/x"
		if tc.query != "" {
			url += "?" + tc.query
		}
		method := http.MethodPost
		if tc.body == "" {
			method = http.MethodGet
		}
		r := send(t, method, url, tc.ct, tc.body)
		if !tc.blocked {
			if r.status != http.StatusOK {
				t.Errorf("%s: %d %s", tc.name, r.status, r.body)
			}
			continue
		}
		if r.status != http.StatusForbidden || r.problem == nil || r.problem.Type != "urn:apiguard:problem:injection-detected" {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
			continue
		}
		ev := g.events.waitFor(t, func(e events.Event) bool {
			return e.Kind == events.KindVerdict && e.Check == "waf" && e.RequestID == r.header.Get("X-Request-Id")
		})
		if ev.Attrs["rules"] == "" || !strings.Contains(ev.Attrs["matches"], `"param"`) {
			t.Errorf("%s: event without matched rules: %+v", tc.name, ev.Attrs)
		}
		if strings.Contains(string(r.body), "rules") {
			t.Errorf("%s: rule evidence sent to the client: %s", tc.name, r.body)
		}
		if strings.Contains(string(r.body), "password FROM") {
			t.Errorf("%s: problem echoes the payload: %s", tc.name, r.body)
		}
	}
}
