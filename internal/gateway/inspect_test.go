package gateway

import (
	"net/http"
	"testing"
)

// TestAPIDetections: NoSQL operators, SSRF through a URL field and GraphQL
// limits are refused at a real gateway; benign requests pass.
func TestAPIDetections(t *testing.T) {
	t.Parallel()
	app := newEchoUpstream(t, "app")
	g := startGateway(t, `
upstreams: {app: {targets: [$UPSTREAM_0]}}
routes:
  - name: graphql
    path_prefix: /graphql
    upstream: app
    checks: {graphql: {max_depth: 3, max_aliases: 2}}
  - name: api
    path_prefix: /api/
    upstream: app
    checks:
      nosql: {}
      ssrf: {parameters: [/image_url]}
`, app.URL)
	post := func(path, body string) result {
		return send(t, http.MethodPost, g.url+path, "application/json", body)
	}
	for _, tc := range []struct {
		name, path, body string
		status           int
		slug             string
	}{
		{"login bypass", "/api/login", `{"username":"admin","password":{"$ne":null}}`, 400, "nosql-injection"},
		{"where in nested JSON string", "/api/search", `{"filter":"{\"$where\":\"sleep(5000)\"}"}`, 400, "nosql-injection"},
		{"price in dollars", "/api/products", `{"name":"mug","price":"$12"}`, 200, ""},
		{"metadata address", "/api/products", `{"name":"mug","image_url":"http://169.254.169.254/latest/meta-data/"}`, 400, "ssrf-blocked"},
		{"decimal loopback", "/api/products", `{"name":"mug","image_url":"http://2130706433/admin"}`, 400, "ssrf-blocked"},
		{"public image", "/api/products", `{"name":"mug","image_url":"https://93.184.216.34/mug.png"}`, 200, ""},
		{"deep query", "/graphql", `{"query":"{ a { b { c { d } } } }"}`, 400, "graphql-too-deep"},
		{"aliases", "/graphql", `{"query":"{ a1: me { id } a2: me { id } a3: me { id } }"}`, 400, "graphql-too-many-aliases"},
		{"introspection", "/graphql", `{"query":"{ __schema { types { name } } }"}`, 400, "graphql-introspection"},
		{"small query", "/graphql", `{"query":"{ me { id name } }"}`, 200, ""},
	} {
		r := post(tc.path, tc.body)
		if tc.slug == "" {
			if r.status != http.StatusOK {
				t.Errorf("%s: %d %s", tc.name, r.status, r.body)
			}
			continue
		}
		if r.status != tc.status || r.problem == nil || r.problem.Type != "urn:apiguard:problem:"+tc.slug {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.status, r.body, tc.status, tc.slug)
		}
	}
	// Bracket operators in a query string.
	if r := get(t, g.url+"/api/users?name[$regex]=^a"); r.status != http.StatusBadRequest {
		t.Errorf("query operator: %d %s", r.status, r.body)
	}
}
