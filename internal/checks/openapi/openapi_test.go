package openapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
)

func newCheck(t testing.TB, cfg Config) *Check {
	t.Helper()
	if cfg.Spec == "" {
		cfg.Spec = "testdata/shop31.yaml"
	}
	var errs field.Errors
	cfg.Validate("checks.openapi", &errs)
	if err := errs.Err(); err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type reqSpec struct {
	method, target, body, ctype string
	header                      map[string]string
}

func (rs reqSpec) build() *pipeline.Request {
	var rd io.Reader
	if rs.body != "" {
		rd = strings.NewReader(rs.body)
	}
	r := httptest.NewRequest(rs.method, rs.target, rd)
	if rs.body != "" {
		ct := rs.ctype
		if ct == "" {
			ct = "application/json"
		}
		r.Header.Set("Content-Type", ct)
	}
	for k, v := range rs.header {
		r.Header.Set(k, v)
	}
	req := &pipeline.Request{HTTP: r}
	if rs.body != "" {
		req.Body = []byte(rs.body)
	}
	return req
}

func run(t testing.TB, c *Check, rs reqSpec) (pipeline.Verdict, *pipeline.Request) {
	t.Helper()
	req := rs.build()
	v, err := c.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return v, req
}

const validOrder = `{"customer":{"email":"a@example.com","name":"A"},"items":[{"sku":"ABC-1234","quantity":2,"note":null}],"shipping":{"street":"s","city":"c","postal_code":"1","country":"DE"},"payment":"card","coupon":null,"channel":"web","placed_at":"2026-01-02T15:04:05Z"}`

func TestValidRequests(t *testing.T) {
	for _, specFile := range []string{"testdata/shop30.yaml", "testdata/shop31.yaml"} {
		c := newCheck(t, Config{Spec: specFile})
		for _, rs := range []reqSpec{
			{method: "POST", target: "/orders", body: validOrder},
			{method: "POST", target: "/orders", body: string(orderBody(""))},
			{method: "POST", target: "/orders?dry_run=true", body: validOrder, ctype: "application/json; charset=utf-8"},
			{method: "GET", target: "/orders?limit=10&status=paid&q=hello&tags=a&tags=b", header: map[string]string{"X-Request-Id": "6f1c2b9e-2a4e-4d6b-9a53-0c4f8f9b1e21", "Cookie": "session=deadbeef"}},
			{method: "GET", target: "/orders?limit=10&limit=10"}, // same value twice is not pollution
			{method: "GET", target: "/orders/42"},
			{method: "HEAD", target: "/orders/42"},
			{method: "GET", target: "/users/alice"},
			{method: "PATCH", target: "/users/alice", body: `{"full_name":"Alice","settings":{"theme":"dark"},"extra":1}`},
		} {
			if v, _ := run(t, c, rs); v.Action != pipeline.Allow {
				t.Errorf("%s %s %s: got %+v, want allow", specFile, rs.method, rs.target, v)
			}
		}
	}
}

func TestViolations(t *testing.T) {
	for _, specFile := range []string{"testdata/shop30.yaml", "testdata/shop31.yaml"} {
		t.Run(specFile, func(t *testing.T) { testViolations(t, newCheck(t, Config{Spec: specFile})) })
	}
}

func testViolations(t *testing.T, c *Check) {
	replace := func(old, new string) string {
		if !strings.Contains(validOrder, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(validOrder, old, new, 1)
	}
	tests := []struct {
		name   string
		rs     reqSpec
		status int
		slug   string
		detail string
	}{
		{"quantity max", reqSpec{method: "POST", target: "/orders", body: replace(`"quantity":2`, `"quantity":101`)}, 400, "request-invalid", "body /items/0/quantity: must be <= 100"},
		{"quantity not integer", reqSpec{method: "POST", target: "/orders", body: replace(`"quantity":2`, `"quantity":2.5`)}, 400, "request-invalid", "body /items/0/quantity: must be an integer"},
		{"quantity as string", reqSpec{method: "POST", target: "/orders", body: replace(`"quantity":2`, `"quantity":"2"`)}, 400, "request-invalid", "body /items/0/quantity: must be integer"},
		{"enum", reqSpec{method: "POST", target: "/orders", body: replace(`"payment":"card"`, `"payment":"cash"`)}, 400, "request-invalid", `body /payment: must be one of: "card", "paypal", "invoice"`},
		{"const 3.1", reqSpec{method: "POST", target: "/orders", body: replace(`"channel":"web"`, `"channel":"app"`)}, 400, "request-invalid", `body /channel: must be one of: "web"`},
		{"type array 3.1", reqSpec{method: "POST", target: "/orders", body: replace(`"note":null`, `"note":5`)}, 400, "request-invalid", "body /items/0/note: must be null or string"},
		{"format email", reqSpec{method: "POST", target: "/orders", body: replace(`a@example.com`, `nope`)}, 400, "request-invalid", "body /customer/email: not a valid email"},
		{"format date-time", reqSpec{method: "POST", target: "/orders", body: replace(`2026-01-02T15:04:05Z`, `yesterday`)}, 400, "request-invalid", "body /placed_at: not a valid date-time"},
		{"pattern", reqSpec{method: "POST", target: "/orders", body: replace(`"country":"DE"`, `"country":"Germany"`)}, 400, "request-invalid", "body /shipping/country: does not match the required pattern"},
		{"required", reqSpec{method: "POST", target: "/orders", body: `{"customer":{"email":"a@example.com"},"items":[]}`}, 400, "request-invalid", `body: missing required property "shipping"`},
		{"min items", reqSpec{method: "POST", target: "/orders", body: replace(`[{"sku":"ABC-1234","quantity":2,"note":null}]`, `[]`)}, 400, "request-invalid", "body /items: must have at least 1 items"},
		{"additionalProperties false", reqSpec{method: "POST", target: "/orders", body: replace(`"payment"`, `"admin":true,"payment"`)}, 400, "request-invalid", "body /admin: property not allowed"},
		{"hostile key not echoed", reqSpec{method: "POST", target: "/orders", body: replace(`"payment"`, `"<script>alert(1)</script>aaaaaaaaaaaaaaaaaaaaaaaaaaa":1,"payment"`)}, 400, "request-invalid", `body "/<script>alert(1)<~1script>aaaaa\u2026": property not allowed`},
		{"body missing", reqSpec{method: "POST", target: "/orders"}, 400, "request-invalid", "body: required"},
		{"not json", reqSpec{method: "POST", target: "/orders", body: `{"customer":`}, 400, "request-invalid", "body: not valid JSON: unexpected end of JSON at offset 12"},
		{"duplicate key", reqSpec{method: "POST", target: "/orders", body: `{"payment":"card","payment":"x"}`}, 400, "request-invalid", "body: not valid JSON: duplicate property name at offset 18"},
		{"invalid utf8", reqSpec{method: "POST", target: "/orders", body: "{\"payment\":\"\xff\xfe\"}"}, 400, "request-invalid", "body: not valid JSON: invalid UTF-8 in a string"},
		{"lone surrogate", reqSpec{method: "POST", target: "/orders", body: `{"payment":"\ud800"}`}, 400, "request-invalid", "body: not valid JSON: unpaired surrogate in a string at offset 18"},
		{"deep nesting", reqSpec{method: "POST", target: "/orders", body: strings.Repeat("[", 10000) + strings.Repeat("]", 10000)}, 400, "request-invalid", "body: not valid JSON: nested too deeply"},
		{"trailing data", reqSpec{method: "POST", target: "/orders", body: validOrder + `{}`}, 400, "request-invalid", "body: not valid JSON: unexpected data after the document at offset " + strconv.Itoa(len(validOrder))},
		{"content type", reqSpec{method: "POST", target: "/orders", body: validOrder, ctype: "text/plain"}, 415, "unsupported-media-type", "the operation does not accept this content type"},
		{"query not integer", reqSpec{method: "GET", target: "/orders?limit=abc"}, 400, "request-invalid", "query limit: not an integer"},
		{"query max", reqSpec{method: "GET", target: "/orders?limit=1000"}, 400, "request-invalid", "query limit: must be <= 100"},
		{"query enum", reqSpec{method: "GET", target: "/orders?status=gone"}, 400, "request-invalid", `query status: must be one of: "placed", "paid"`},
		{"query pollution", reqSpec{method: "GET", target: "/orders?limit=1&limit=100"}, 400, "request-invalid", "query limit: given more than once with different values"},
		{"query boolean", reqSpec{method: "POST", target: "/orders?dry_run=yes", body: validOrder}, 400, "request-invalid", "query dry_run: not a boolean"},
		{"path param", reqSpec{method: "GET", target: "/orders/0"}, 400, "request-invalid", "path id: must be >= 1"},
		{"path param int64", reqSpec{method: "GET", target: "/orders/1e30"}, 400, "request-invalid", "path id: out of range for int64"},
		{"path param type", reqSpec{method: "GET", target: "/orders/x1"}, 400, "request-invalid", "path id: not an integer"},
		{"path pattern", reqSpec{method: "GET", target: "/users/Robert');DROP"}, 400, "request-invalid", "path username: does not match the required pattern"},
		{"header format", reqSpec{method: "GET", target: "/orders", header: map[string]string{"X-Request-Id": "nope"}}, 400, "request-invalid", "header X-Request-Id: not a valid uuid"},
		{"cookie pollution", reqSpec{method: "GET", target: "/orders", header: map[string]string{"Cookie": "session=deadbeef; session=beefdead"}}, 400, "request-invalid", "cookie session: given more than once with different values"},
		{"cookie pattern", reqSpec{method: "GET", target: "/orders", header: map[string]string{"Cookie": "session=zz"}}, 400, "request-invalid", "cookie session: does not match the required pattern"},
		{"readOnly in request", reqSpec{method: "PATCH", target: "/users/alice", body: `{"id":7,"full_name":"A"}`}, 400, "request-invalid", "body /id: read-only property"},
		{"undeclared path", reqSpec{method: "GET", target: "/internal/debug"}, 404, "undeclared-operation", "the operation is not in the API specification"},
		{"undeclared method", reqSpec{method: "PUT", target: "/orders/1"}, 405, "method-not-allowed", "the method is not declared for this path"},
		{"trailing slash is another path", reqSpec{method: "GET", target: "/orders/"}, 404, "undeclared-operation", "the operation is not in the API specification"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := run(t, c, tt.rs)
			if v.Action != pipeline.Deny || v.Status != tt.status || v.Reason != tt.slug || v.Detail != tt.detail {
				t.Errorf("got %v %d %q %q\nwant deny %d %q %q", v.Action, v.Status, v.Reason, v.Detail, tt.status, tt.slug, tt.detail)
			}
		})
	}
	v, _ := run(t, c, reqSpec{method: "PUT", target: "/orders/1"})
	if got := v.Headers.Get("Allow"); got != "DELETE, GET" {
		t.Errorf("Allow = %q", got)
	}
}

func TestShadowAndZombie(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		rs     reqSpec
		action pipeline.Action
		status int
		reason string
	}{
		{"shadow block", Config{}, reqSpec{method: "GET", target: "/admin/export"}, pipeline.Deny, 404, "undeclared-operation"},
		{"shadow log", Config{Undeclared: "log"}, reqSpec{method: "GET", target: "/admin/export"}, pipeline.Flag, 0, "undeclared-operation"},
		{"shadow method log", Config{Undeclared: "log"}, reqSpec{method: "PUT", target: "/orders/1"}, pipeline.Flag, 0, "undeclared-operation"},
		{"zombie log default", Config{}, reqSpec{method: "DELETE", target: "/orders/1"}, pipeline.Flag, 0, "deprecated-operation"},
		{"zombie block", Config{Deprecated: "block"}, reqSpec{method: "DELETE", target: "/orders/1"}, pipeline.Deny, 403, "deprecated-operation"},
		{"zombie log still validates", Config{}, reqSpec{method: "DELETE", target: "/orders/0"}, pipeline.Deny, 400, "request-invalid"},
		{"base path", Config{BasePath: "/api"}, reqSpec{method: "GET", target: "/api/orders/1"}, pipeline.Allow, 0, ""},
		{"base path required", Config{BasePath: "/api"}, reqSpec{method: "GET", target: "/orders/1"}, pipeline.Deny, 404, "undeclared-operation"},
		{"base path prefix only", Config{BasePath: "/api"}, reqSpec{method: "GET", target: "/apix/orders/1"}, pipeline.Deny, 404, "undeclared-operation"},
		{"cors preflight", Config{}, reqSpec{method: "OPTIONS", target: "/orders", header: map[string]string{"Origin": "https://x", "Access-Control-Request-Method": "POST"}}, pipeline.Allow, 0, ""},
		{"demo zombie", Config{Spec: "testdata/demo.yaml", Deprecated: "block"}, reqSpec{method: "GET", target: "/api/v1/users/alice"}, pipeline.Deny, 403, "deprecated-operation"},
		{"demo declared", Config{Spec: "testdata/demo.yaml"}, reqSpec{method: "GET", target: "/api/products/3"}, pipeline.Allow, 0, ""},
		{"demo shadow", Config{Spec: "testdata/demo.yaml"}, reqSpec{method: "GET", target: "/api/debug/vars"}, pipeline.Deny, 404, "undeclared-operation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := run(t, newCheck(t, tt.cfg), tt.rs)
			if v.Action != tt.action || v.Status != tt.status || v.Reason != tt.reason {
				t.Errorf("got %v %d %q (%s), want %v %d %q", v.Action, v.Status, v.Reason, v.Detail, tt.action, tt.status, tt.reason)
			}
		})
	}
}

func TestMassAssignment(t *testing.T) {
	body := `{"full_name":"A","role":"admin"}`
	nested := `{"settings":{"theme":"dark","is_admin":true}}`
	for _, tt := range []struct {
		cfg    Config
		body   string
		detail string
	}{
		{Config{}, body, ""},
		{Config{AdditionalProperties: "spec"}, nested, ""},
		{Config{AdditionalProperties: "reject"}, body, "body /role: property not declared by the schema"},
		{Config{AdditionalProperties: "reject"}, nested, "body /settings/is_admin: property not declared by the schema"},
		{Config{AdditionalProperties: "reject"}, `{"full_name":"A","settings":{"theme":"light"}}`, ""},
	} {
		v, _ := run(t, newCheck(t, tt.cfg), reqSpec{method: "PATCH", target: "/users/alice", body: tt.body})
		if v.Detail != tt.detail || (tt.detail == "") != (v.Action == pipeline.Allow) {
			t.Errorf("%s %s: got %v %q, want %q", tt.cfg.AdditionalProperties, tt.body, v.Action, v.Detail, tt.detail)
		}
	}
}

func TestTyped(t *testing.T) {
	c := newCheck(t, Config{})
	_, req := run(t, c, reqSpec{method: "POST", target: "/orders?dry_run=true", body: validOrder})
	want := []string{"query:dry_run", "json:/customer/email", "json:/items/0/sku", "json:/items/0/quantity", "json:/items/0/note",
		"json:/shipping/country", "json:/payment", "json:/coupon", "json:/channel", "json:/placed_at"}
	notWant := []string{"json:/customer/name", "json:/shipping/street", "json:/shipping/city", "json:", "json:/items", "json:/items/0"}
	for _, k := range want {
		if _, ok := req.Typed[k]; !ok {
			t.Errorf("Typed lacks %s (have %v)", k, keys(req.Typed))
		}
	}
	for _, k := range notWant {
		if _, ok := req.Typed[k]; ok {
			t.Errorf("Typed has free text %s", k)
		}
	}
	_, req = run(t, c, reqSpec{method: "GET", target: "/orders?limit=5&status=paid&q=free&tags=x", header: map[string]string{"X-Request-Id": "6f1c2b9e-2a4e-4d6b-9a53-0c4f8f9b1e21", "Cookie": "session=deadbeef"}})
	got := keys(req.Typed)
	if want := []string{"cookie:session", "header:X-Request-Id", "query:limit", "query:status"}; !slices.Equal(got, want) {
		t.Errorf("Typed = %v, want %v", got, want)
	}
	_, req = run(t, c, reqSpec{method: "GET", target: "/users/bob"})
	if _, ok := req.Typed["path:username"]; !ok || req.PathParams["username"] != "bob" {
		t.Errorf("path: Typed %v PathParams %v", req.Typed, req.PathParams)
	}
	// A rejected request leaves nothing typed from the failed part.
	_, req = run(t, c, reqSpec{method: "POST", target: "/orders", body: strings.Replace(validOrder, `"channel":"web"`, `"channel":"app"`, 1)})
	if len(req.Typed) != 0 {
		t.Errorf("Typed after refusal: %v", keys(req.Typed))
	}
}

func keys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func response(status int, ctype, body string) *http.Response {
	h := http.Header{}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}
}

func TestResponse(t *testing.T) {
	get := reqSpec{method: "GET", target: "/orders/1"}
	tests := []struct {
		name     string
		cfg      *ResponseConfig
		rs       reqSpec
		resp     *http.Response
		reason   string
		wantBody string // "" : unchanged
	}{
		{"clean", nil, get, response(200, "application/json", `{"id":1,"status":"paid"}`), "", ""},
		{"writeOnly removed always", &ResponseConfig{UndeclaredProperties: "off"}, get, response(200, "application/json", `{"id":1,"card_token":"tok_123","status":"paid"}`), "response-write-only", `{"id":1,"status":"paid"}`},
		{"undeclared flagged", nil, get, response(200, "application/json", `{"id":1,"status":"paid","internal_cost":3}`), "response-undeclared-properties", ""},
		{"undeclared removed", &ResponseConfig{UndeclaredProperties: "remove"}, get, response(200, "application/json", `{"internal_cost":3, "id":1,"shipping":{"street":"s","city":"c","postal_code":"1","country":"DE","geo":[1,2]},"status":"paid","card_token":"t"}`), "response-undeclared-properties",
			`{"id":1,"shipping":{"street":"s","city":"c","postal_code":"1","country":"DE"},"status":"paid"}`},
		{"nested in array", &ResponseConfig{UndeclaredProperties: "remove"}, reqSpec{method: "GET", target: "/orders"}, response(200, "application/json", `[{"id":1,"status":"paid","items":[{"sku":"ABC-1234","quantity":1,"cost":2}]},{"id":2,"status":"placed","secret":"x"}]`), "response-undeclared-properties",
			`[{"id":1,"status":"paid","items":[{"sku":"ABC-1234","quantity":1}]},{"id":2,"status":"placed"}]`},
		{"loose schema keeps extras", &ResponseConfig{UndeclaredProperties: "remove"}, reqSpec{method: "GET", target: "/users/alice"}, response(200, "application/json", `{"id":1,"password":"hunter2","theme":"x"}`), "response-undeclared-properties", `{"id":1}`},
		{"off", &ResponseConfig{UndeclaredProperties: "off"}, get, response(200, "application/json", `{"id":1,"status":"paid","x":1}`), "", ""},
		{"undeclared status", nil, get, response(500, "application/json", `{}`), "response-undeclared", ""},
		{"undeclared status off", &ResponseConfig{UndeclaredStatus: "off"}, get, response(500, "application/json", `{}`), "", ""},
		{"undeclared content type", nil, get, response(200, "text/html", `<html>`), "response-undeclared", ""},
		{"oversized passes", &ResponseConfig{UndeclaredProperties: "remove", MaxBytes: 10}, get, response(200, "application/json", `{"id":1,"status":"paid","x":1}`), "", ""},
		{"streaming passes", &ResponseConfig{UndeclaredProperties: "remove"}, get, func() *http.Response {
			r := response(200, "application/json", `{"id":1,"x":1}`)
			r.ContentLength = -1
			return r
		}(), "", ""},
		{"invalid json", nil, get, response(200, "application/json", `{"id":`), "response-invalid", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCheck(t, Config{Response: tt.cfg})
			orig, _ := io.ReadAll(tt.resp.Body)
			tt.resp.Body = io.NopCloser(bytes.NewReader(orig))
			v, err := c.CheckResponse(context.Background(), tt.rs.build(), tt.resp)
			if err != nil {
				t.Fatal(err)
			}
			if v.Reason != tt.reason || (tt.reason == "") != (v.Action == pipeline.Allow) || v.Action == pipeline.Deny {
				t.Errorf("verdict %v %q %q, want reason %q", v.Action, v.Reason, v.Detail, tt.reason)
			}
			got, _ := io.ReadAll(tt.resp.Body)
			want := tt.wantBody
			if want == "" {
				want = string(orig)
			}
			if string(got) != want {
				t.Errorf("body %s\nwant %s", got, want)
			}
			if tt.resp.ContentLength >= 0 && (tt.resp.ContentLength != int64(len(got)) || tt.resp.Header.Get("Content-Length") != strconv.Itoa(len(got))) {
				t.Errorf("Content-Length %d / %s, body %d", tt.resp.ContentLength, tt.resp.Header.Get("Content-Length"), len(got))
			}
			if tt.wantBody != "" && !json.Valid(got) {
				t.Errorf("rewritten body is not JSON: %s", got)
			}
		})
	}
}

func TestSpecErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	head := "openapi: 3.1.0\ninfo: {title: t, version: '1'}\n"
	tests := []struct {
		name, spec, want string
	}{
		{"missing file", filepath.Join(dir, "nope.yaml"), "cannot read the spec"},
		{"syntax", write("syntax.yaml", head+"paths:\n  /a:\n    get: {responses: {'200': {description: ok}}\n  bad: [\n"), "syntax.yaml:4: "},
		{"file ref", write("file.yaml", head+"paths:\n  /a:\n    get:\n      responses:\n        '200':\n          $ref: './other.yaml#/r'\n"), "file.yaml:8: external $ref \"./other.yaml#/r\" is not allowed"},
		{"url ref", write("url.yaml", head+"components:\n  schemas:\n    A:\n      $ref: 'https://evil.example/s.json'\n"), "url.yaml:6: external $ref"},
		{"swagger 2", write("v2.yaml", "swagger: '2.0'\ninfo: {title: t, version: '1'}\npaths: {}\n"), "is not supported"},
		{"bad pattern", write("re.yaml", head+"paths:\n  /a:\n    get:\n      parameters: [{name: x, in: query, schema: {type: string, pattern: '(?=x)'}}]\n      responses: {'200': {description: ok}}\n"), "is not supported (RE2 syntax)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errs field.Errors
			cfg := Config{Spec: tt.spec}
			cfg.Validate("checks.openapi", &errs)
			err := errs.Err()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "checks.openapi.spec: ") {
				t.Errorf("error not at the spec field: %v", err)
			}
			if _, err := New(cfg); err == nil {
				t.Error("New accepted the spec")
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := Config{Spec: "testdata/shop31.yaml", Undeclared: "allow", Deprecated: "x", AdditionalProperties: "strict", BasePath: "api/",
		Response: &ResponseConfig{UndeclaredProperties: "strip", UndeclaredStatus: "block", MaxBytes: -1}}
	var errs field.Errors
	cfg.Validate("c", &errs)
	var paths []string
	for _, e := range errs.List {
		paths = append(paths, e.Path)
	}
	want := []string{"c.undeclared", "c.deprecated", "c.additional_properties", "c.base_path", "c.response.undeclared_properties", "c.response.undeclared_status", "c.response.max_bytes"}
	if !slices.Equal(paths, want) {
		t.Errorf("errors at %v, want %v", paths, want)
	}
	errs = field.Errors{}
	(&Config{}).Validate("c", &errs)
	if errs.Len() != 1 || errs.List[0].Path != "c.spec" {
		t.Errorf("missing spec: %v", errs.Err())
	}
}

func TestOperations(t *testing.T) {
	ops := newCheck(t, Config{}).Operations()
	var got []string
	for _, o := range ops {
		got = append(got, o.Method+" "+o.Path+" "+o.ID+" "+strconv.FormatBool(o.Deprecated))
	}
	slices.Sort(got)
	want := []string{"DELETE /orders/{id} cancelOrder true", "GET /orders listOrders false", "GET /orders/{id} getOrder false", "GET /users/{username} getUser false",
		"PATCH /users/{username} updateUser false", "POST /orders createOrder false"}
	if !slices.Equal(got, want) {
		t.Errorf("Operations = %v", got)
	}
}

func TestRecursiveSchema(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tree.yaml")
	spec := `openapi: 3.1.0
info: {title: t, version: '1'}
paths:
  /tree:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Node'}
      responses: {'204': {description: ok}}
components:
  schemas:
    Node:
      type: object
      properties:
        name: {type: string}
        children: {type: array, items: {$ref: '#/components/schemas/Node'}}
`
	if err := os.WriteFile(p, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCheck(t, Config{Spec: p, AdditionalProperties: "reject"})
	for _, tt := range []struct{ body, detail string }{
		{`{"name":"a","children":[{"name":"b","children":[{"name":"c"}]}]}`, ""},
		{`{"name":"a","children":[{"name":"b","children":[{"name":"c","x":1}]}]}`, "body /children/0/children/0/x: property not declared by the schema"},
		{strings.Repeat(`{"children":[`, 40) + strings.Repeat(`]}`, 40), "body: not valid JSON: nested too deeply"},
	} {
		v, _ := run(t, c, reqSpec{method: "POST", target: "/tree", body: tt.body})
		if v.Detail != tt.detail {
			t.Errorf("got %q, want %q", v.Detail, tt.detail)
		}
	}
}

// TestConcurrent lets -race see one Check shared by many requests.
func TestConcurrent(t *testing.T) {
	c := newCheck(t, Config{AdditionalProperties: "reject", Response: &ResponseConfig{UndeclaredProperties: "remove"}})
	done := make(chan struct{})
	for i := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for j := range 50 {
				body := validOrder
				if (i+j)%2 == 1 {
					body = strings.Replace(validOrder, `"quantity":2`, `"quantity":200`, 1)
				}
				v, _ := run(t, c, reqSpec{method: "POST", target: "/orders", body: body})
				if (v.Action == pipeline.Allow) != ((i+j)%2 == 0) {
					t.Errorf("verdict %+v", v)
				}
				resp := response(200, "application/json", `{"id":1,"status":"paid","x":1,"card_token":"t"}`)
				if _, err := c.CheckResponse(context.Background(), (reqSpec{method: "GET", target: "/orders/1"}).build(), resp); err != nil {
					t.Error(err)
				}
				if got, _ := io.ReadAll(resp.Body); string(got) != `{"id":1,"status":"paid"}` {
					t.Errorf("body %s", got)
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}
