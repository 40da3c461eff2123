package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/events"
)

// TestOpenAPIEnforcement: the demo shop's spec at a real gateway: shadow
// and zombie operations, mass assignment, readOnly, types, and excessive
// data exposure in responses.
func TestOpenAPIEnforcement(t *testing.T) {
	t.Parallel()
	// The upstream leaks: an internal field in every product.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasPrefix(r.URL.Path, "/api/products/"):
			_, _ = w.Write([]byte(`{"id":1,"name":"Kettle","description":"1.7 l","category":"kitchen","price":39.9,"currency":"EUR","stock":12,"supplier_cost":17.5}`))
		default:
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{}`))
		}
	}))
	t.Cleanup(up.Close)
	g := startGateway(t, `
upstreams: {shop: {targets: [$UPSTREAM_0]}}
routes:
  - name: shop
    path_prefix: /api/
    upstream: shop
    checks:
      openapi:
        spec: ../../examples/demo/openapi.yaml
        deprecated: block
        response: {undeclared_properties: remove}
`, up.URL)
	order := func(body string) result {
		return send(t, http.MethodPost, g.url+"/api/orders", "application/json", body)
	}
	valid := `{"product_id":1,"quantity":2,"payment":"card"}`
	if r := order(valid); r.status != http.StatusCreated {
		t.Fatalf("valid order: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		name   string
		r      result
		status int
		slug   string
		detail string
	}{
		{"mass assignment", order(strings.Replace(valid, `{"product_id"`, `{"role":"admin","product_id"`, 1)), 400, "request-invalid", "role"},
		{"readOnly id", order(strings.Replace(valid, `{"product_id"`, `{"id":7,"product_id"`, 1)), 400, "request-invalid", "id"},
		{"wrong type", order(strings.Replace(valid, `"quantity":2`, `"quantity":"lots"`, 1)), 400, "request-invalid", "quantity"},
		{"too many", order(strings.Replace(valid, `"quantity":2`, `"quantity":1000`, 1)), 400, "request-invalid", "quantity"},
		{"wrong content type", send(t, http.MethodPost, g.url+"/api/orders", "text/plain", valid), 415, "unsupported-media-type", ""},
		{"shadow endpoint", get(t, g.url+"/api/debug/config"), 404, "undeclared-operation", ""},
		{"zombie endpoint", get(t, g.url+"/api/v1/users/alice"), 403, "deprecated-operation", ""},
		{"bad path parameter", get(t, g.url+"/api/products/abc"), 400, "request-invalid", "id"},
	} {
		if tc.r.status != tc.status || tc.r.problem == nil || tc.r.problem.Type != "urn:apiguard:problem:"+tc.slug || !strings.Contains(tc.r.problem.Detail, tc.detail) {
			t.Errorf("%s: %d %s, want %d %s mentioning %q", tc.name, tc.r.status, tc.r.body, tc.status, tc.slug, tc.detail)
		}
	}
	// The shadow request is recorded although it was refused.
	g.events.waitFor(t, func(e events.Event) bool {
		return e.Kind == events.KindVerdict && e.Check == "openapi" && e.Path == "/api/debug/config"
	})

	// Excessive data exposure: the undeclared field is removed and the
	// body stays valid JSON with a correct length.
	r := get(t, g.url+"/api/products/1")
	var p map[string]any
	if r.status != http.StatusOK || json.Unmarshal(r.body, &p) != nil || p["supplier_cost"] != nil || p["name"] != "Kettle" {
		t.Fatalf("product: %d %s", r.status, r.body)
	}
	if cl := r.header.Get("Content-Length"); cl != "" && cl != itoa(len(r.body)) {
		t.Fatalf("Content-Length %s for %d bytes", cl, len(r.body))
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
