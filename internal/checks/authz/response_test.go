package authz

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
)

func TestResponseAllow(t *testing.T) {
	t.Parallel()
	a, err := New(Config{Rules: []Rule{
		{Name: "own-order", Methods: []string{"GET"}, Path: "/api/orders/{id}",
			ResponseAllow: `response.json.owner == identity.sub || "admin" in identity.claims.roles`},
		{Name: "others", Allow: "true"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	call := func(path, sub string, roles []any, status int, ct, body string) (pipeline.Verdict, error, string) {
		req := &pipeline.Request{HTTP: httptest.NewRequest("GET", path, nil),
			Identity: pipeline.Identity{Subject: sub, Claims: map[string]any{"roles": roles}}}
		if v, err := a.Check(ctx, req); v.Action != pipeline.Allow || err != nil {
			t.Fatalf("request phase of a response rule: %+v %v", v, err)
		}
		resp := &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {ct}}, Body: io.NopCloser(strings.NewReader(body))}
		v, err := a.CheckResponse(ctx, req, resp)
		rest, _ := io.ReadAll(resp.Body)
		return v, err, string(rest)
	}
	order := `{"id":1001,"owner":"alice","total":19.9}`
	cases := []struct {
		desc, path, sub string
		roles           []any
		status          int
		ct, body        string
		reason          string
		wantErr         bool
	}{
		{"owner reads own order", "/api/orders/1001", "alice", nil, 200, "application/json", order, "", false},
		{"another customer is refused", "/api/orders/1001", "bob", nil, 200, "application/json; charset=utf-8", order, "forbidden", false},
		{"an admin may", "/api/orders/1001", "carol", []any{"admin"}, 200, "application/json", order, "", false},
		{"errors are not judged", "/api/orders/9999", "bob", nil, 404, "application/json", `{"error":"no such order"}`, "", false},
		{"non-JSON 2xx fails closed", "/api/orders/1001", "alice", nil, 200, "text/html", "<p>order</p>", "forbidden", true},
		{"invalid JSON fails closed", "/api/orders/1001", "alice", nil, 200, "application/json", `{"owner":`, "forbidden", true},
		{"missing owner field fails closed", "/api/orders/1001", "alice", nil, 200, "application/json", `{"id":1}`, "forbidden", true},
		{"other routes unaffected", "/api/products/1", "bob", nil, 200, "application/json", `{"id":1}`, "", false},
	}
	for _, tc := range cases {
		v, err, rest := call(tc.path, tc.sub, tc.roles, tc.status, tc.ct, tc.body)
		if v.Reason != tc.reason || (err != nil) != tc.wantErr {
			t.Errorf("%s: %+v %v", tc.desc, v, err)
		}
		if tc.reason == "" && rest != tc.body {
			t.Errorf("%s: the body was not passed on intact: %q", tc.desc, rest)
		}
	}
	big := bytes.Repeat([]byte(" "), maxResponseJSON+10)
	if v, err, _ := call("/api/orders/1", "alice", nil, 200, "application/json", string(big)+`{}`); v.Reason != "forbidden" || err == nil {
		t.Errorf("oversized body: %+v %v", v, err)
	}
}

func TestResponseAllowValidate(t *testing.T) {
	t.Parallel()
	errs := &field.Errors{}
	c := Config{Rules: []Rule{
		{Name: "a", ResponseAllow: "response.jsn.owner == identity.sub"},
		{Name: "b", Deny: "false", ResponseAllow: "true"},
		{Name: "c", Allow: "response.status == 200"},
	}}
	c.Validate("authz", errs)
	got := errs.Err().Error()
	for _, want := range []string{"authz.rules[0].response_allow: ", "authz.rules[1]: response_allow goes with allow rules", "authz.rules[2].allow: undeclared reference to 'response"} {
		if !strings.Contains(got, want) {
			t.Errorf("errors lack %q:\n%s", want, got)
		}
	}
}
