package authz

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
	"gopkg.in/yaml.v3"
)

func mustNew(t testing.TB, cfg Config) *Authz {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type reqOpt func(*pipeline.Request)

func sub(s string) reqOpt { return func(r *pipeline.Request) { r.Identity.Subject = s } }
func roles(rs ...any) reqOpt {
	return func(r *pipeline.Request) {
		if r.Identity.Claims == nil {
			r.Identity.Claims = map[string]any{}
		}
		r.Identity.Claims["roles"] = rs
	}
}
func scopes(s ...string) reqOpt { return func(r *pipeline.Request) { r.Identity.Scopes = s } }
func header(k, v string) reqOpt { return func(r *pipeline.Request) { r.HTTP.Header.Set(k, v) } }
func apiKey(k string) reqOpt    { return func(r *pipeline.Request) { r.Identity.APIKey = k } }
func cert(s string) reqOpt      { return func(r *pipeline.Request) { r.Identity.CertSubject = s } }

func newReq(method, target string, opts ...reqOpt) *pipeline.Request {
	r := &pipeline.Request{HTTP: httptest.NewRequest(method, target, nil)}
	for _, o := range opts {
		o(r)
	}
	return r
}

type want struct {
	action pipeline.Action
	status int
	reason string
	detail string // substring
	err    string // substring; "" = no error
}

var (
	allow      = want{action: pipeline.Allow}
	forbidden  = func(rule string) want { return want{pipeline.Deny, 403, "forbidden", `rule "` + rule + `"`, ""} }
	defaultNo  = want{pipeline.Deny, 403, "forbidden", "no authorization rule allows", ""}
	failClosed = func(rule, err string) want { return want{pipeline.Deny, 403, "forbidden", `rule "` + rule + `"`, err} }
)

func check(t *testing.T, a *Authz, req *pipeline.Request, w want) {
	t.Helper()
	v, err := a.Check(context.Background(), req)
	switch {
	case w.err == "" && err != nil:
		t.Errorf("%s %s: unexpected error %v", req.HTTP.Method, req.HTTP.URL, err)
	case w.err != "" && (err == nil || !strings.Contains(err.Error(), w.err)):
		t.Errorf("%s %s: error = %v, want %q", req.HTTP.Method, req.HTTP.URL, err, w.err)
	}
	if v.Action != w.action || v.Status != w.status || v.Reason != w.reason || !strings.Contains(v.Detail, w.detail) {
		t.Errorf("%s %s: verdict = %+v, want %+v", req.HTTP.Method, req.HTTP.URL, v, w)
	}
}

// demoRules are the documented examples.
var demoRules = []Rule{
	{Name: "admin-api", Path: "/api/admin/**", Allow: `"admin" in identity.claims.roles`},
	{Name: "own-profile", Path: "/api/users/{username}", Allow: `path.username == identity.sub`},
	{Name: "own-or-admin", Path: "/api/accounts/{username}/**", Allow: `path.username == identity.sub || "admin" in identity.claims.roles`},
	{Name: "read-orders", Methods: []string{"GET"}, Path: "/api/orders/**", Allow: `"orders:read" in identity.scopes`},
	{Name: "signed-in-get", Path: "/api/catalog/**", Allow: `identity.sub != "" && request.method == "GET"`},
	// BOLA with ids that embed their owner (alice:42).
	{Name: "owned-ids", Path: "/api/docs/{id}", Allow: `path.id.split(":")[0] == identity.sub`},
	// BOLA with an owner header set by a trusted upstream lookup.
	{Name: "invoice-owner", Path: "/api/invoices/{id}", Allow: `request.headers["x-resource-owner"] == identity.sub`},
}

func TestExamples(t *testing.T) {
	t.Parallel()
	a := mustNew(t, Config{Rules: demoRules})
	cases := []struct {
		req  *pipeline.Request
		want want
	}{
		// function level
		{newReq("GET", "/api/admin/users", sub("root"), roles("admin")), allow},
		{newReq("DELETE", "/api/admin/users/7", sub("bob"), roles("user", "admin")), allow},
		{newReq("GET", "/api/admin/users", sub("alice"), roles("user")), forbidden("admin-api")},
		{newReq("GET", "/api/admin", sub("alice"), roles("user")), forbidden("admin-api")},
		// no roles claim: runtime error, fail closed
		{newReq("GET", "/api/admin/users", sub("alice")), failClosed("admin-api", "no such key")},
		// object level
		{newReq("GET", "/api/users/alice", sub("alice")), allow},
		{newReq("PUT", "/api/users/alice", sub("alice")), allow},
		{newReq("GET", "/api/users/bob", sub("alice")), forbidden("own-profile")},
		{newReq("GET", "/api/users/bob", sub("alice"), roles("admin")), forbidden("own-profile")},
		{newReq("GET", "/api/users/alice%2Fx", sub("alice")), defaultNo}, // encoded slash: no match
		{newReq("GET", "/api/users/al%69ce", sub("alice")), allow},       // decoded before comparing
		// combination
		{newReq("GET", "/api/accounts/alice/orders", sub("alice"), roles()), allow},
		{newReq("GET", "/api/accounts/bob", sub("alice"), roles("admin")), allow},
		{newReq("GET", "/api/accounts/bob/orders", sub("alice"), roles("user")), forbidden("own-or-admin")},
		// scopes
		{newReq("GET", "/api/orders/42", sub("alice"), scopes("orders:read")), allow},
		{newReq("GET", "/api/orders/42", sub("alice"), scopes("orders:write")), forbidden("read-orders")},
		{newReq("GET", "/api/orders/42", sub("alice")), forbidden("read-orders")},
		{newReq("POST", "/api/orders/42", sub("alice"), scopes("orders:read")), defaultNo}, // method does not match
		// signed in and GET
		{newReq("GET", "/api/catalog/items", sub("alice")), allow},
		{newReq("POST", "/api/catalog/items", sub("alice")), forbidden("signed-in-get")},
		{newReq("GET", "/api/catalog/items"), forbidden("signed-in-get")},
		// ids that embed the owner
		{newReq("GET", "/api/docs/alice:42", sub("alice")), allow},
		{newReq("GET", "/api/docs/bob:42", sub("alice")), forbidden("owned-ids")},
		{newReq("GET", "/api/docs/42", sub("alice")), forbidden("owned-ids")},
		// owner header (BOLA)
		{newReq("GET", "/api/invoices/9", sub("alice"), header("X-Resource-Owner", "alice")), allow},
		{newReq("GET", "/api/invoices/9", sub("alice"), header("X-Resource-Owner", "bob")), forbidden("invoice-owner")},
		{newReq("GET", "/api/invoices/9", sub("alice")), failClosed("invoice-owner", "no such key")},
		// nothing matches
		{newReq("GET", "/other", sub("alice")), defaultNo},
	}
	for _, tc := range cases {
		check(t, a, tc.req, tc.want)
	}
}

func TestVariables(t *testing.T) {
	t.Parallel()
	exprs := []string{
		`request.method == "PATCH"`,
		`request.path == "/v1/t1/a b"`,
		`request.query.page == "2" && request.query["sort"] == "asc" && !("x" in request.query)`,
		`request.headers["x-tenant"] == "t1" && "x-tenant" in request.headers && request.headers.accept == "a"`,
		`request.headers.exists(k, k == "x-tenant") && size(request.headers) == 2`,
		`request.host == "api.example.com:8443"`,
		`path.tenant == "t1" && path.item == "a b" && size(path) == 2 && path == {"tenant": "t1", "item": "a b"}`,
		`identity.sub == "alice" && identity.claims.tenant == "t1" && identity.claims.level > 2`,
		`identity.api_key == "" && identity.cert_subject == "CN=alice" && identity.app == "com.ex" && identity.device == "d1"`,
		`identity.scopes == ["a", "b"] && identity.authenticated`,
		`identity.claims.exp > 1700000000 && identity.claims.exp == 1800000000 && identity.claims.org.id == "o1"`, // JSON numbers are float64
		`identity.claims.groups.exists(g, g.startsWith("team-")) && request.path.startsWith("/v1/")`,
		`request.headers["x-tenant"].upperAscii() == "T1" && path.item.split(" ")[0] == "a"`,
		`"%s-%s".format([path.tenant, identity.sub]) == "t1-alice" && ["a", "b"].join(",") == "a,b" && identity.sub.lastIndexOf("a") == 0`,
		`identity.sub.matches("^[a-z]+$") && !has(identity.claims.missing) && has(identity.claims.tenant)`,
		`identity.claims.exists(k, k == "org") && size(identity.claims) == 5 && "tenant" in identity.claims && identity.claims["tenant"] == "t1"`,
		`identity.claims.org == {"id": "o1"} && identity.claims.groups[1] == "team-a" && identity.claims != {}`,
	}
	for _, e := range exprs {
		a := mustNew(t, Config{Rules: []Rule{{Name: "r", Path: "/v1/{tenant}/{item}", Allow: e}}})
		req := newReq("PATCH", "https://api.example.com:8443/v1/t1/a%20b?page=2&sort=asc&page=3",
			sub("alice"), cert("CN=alice"), scopes("a", "b"), header("X-Tenant", "t1"), header("Accept", "a"))
		req.HTTP.Header.Del("User-Agent")
		req.Identity.Claims = map[string]any{"tenant": "t1", "level": 3, "exp": float64(1800000000),
			"org": map[string]any{"id": "o1"}, "groups": []any{"staff", "team-a"}}
		req.Identity.App, req.Identity.Device = "com.ex", "d1"
		v, err := a.Check(context.Background(), req)
		if err != nil || v.Action != pipeline.Allow {
			t.Errorf("%s: %+v, %v", e, v, err)
		}
	}
}

func TestOrderingAndDefault(t *testing.T) {
	t.Parallel()
	rules := []Rule{
		{Name: "block-banned", Deny: `"banned" in identity.claims.roles`},
		{Name: "no-deletes", Methods: []string{"DELETE"}, Deny: `true`},
		{Name: "public", Methods: []string{"GET", "HEAD"}, Path: "/public/**", Allow: `true`},
		{Name: "admins", Allow: `"admin" in identity.claims.roles`},
		{Name: "never-reached", Allow: `true`},
	}
	for _, def := range []string{"", "deny", "allow"} {
		a := mustNew(t, Config{Default: def, Rules: rules})
		check(t, a, newReq("GET", "/public/x", roles("banned")), forbidden("block-banned"))
		check(t, a, newReq("GET", "/public/x", roles()), allow)
		check(t, a, newReq("DELETE", "/public/x", roles("admin")), forbidden("no-deletes"))
		check(t, a, newReq("POST", "/x", roles("admin")), allow)
		// first matching allow rule decides: false denies, later rules are not tried
		check(t, a, newReq("POST", "/x", roles("user")), forbidden("admins"))
	}
	// deny rules that do not deny fall through to the default
	onlyDeny := []Rule{{Name: "d", Path: "/x", Deny: `identity.sub == "mallory"`}}
	check(t, mustNew(t, Config{Rules: onlyDeny}), newReq("GET", "/x", sub("alice")), defaultNo)
	check(t, mustNew(t, Config{Default: "allow", Rules: onlyDeny}), newReq("GET", "/x", sub("alice")), allow)
	check(t, mustNew(t, Config{Default: "allow", Rules: onlyDeny}), newReq("GET", "/x", sub("mallory")), forbidden("d"))
	check(t, mustNew(t, Config{Default: "allow", Rules: onlyDeny}), newReq("GET", "/y", sub("mallory")), allow)
	// no rules at all
	check(t, mustNew(t, Config{}), newReq("GET", "/"), defaultNo)
	check(t, mustNew(t, Config{Default: "allow"}), newReq("GET", "/"), allow)
}

func TestRequireAuth(t *testing.T) {
	t.Parallel()
	a := mustNew(t, Config{RequireAuth: true, Default: "allow"})
	for _, req := range []*pipeline.Request{
		newReq("GET", "/x", sub("alice")), newReq("GET", "/x", apiKey("partner")), newReq("GET", "/x", cert("CN=svc")),
	} {
		check(t, a, req, allow)
	}
	for _, req := range []*pipeline.Request{
		newReq("GET", "/x"), newReq("GET", "/x", scopes("a")), newReq("GET", "/x", roles("admin")),
	} {
		v, err := a.Check(context.Background(), req)
		if err != nil || v.Action != pipeline.Deny || v.Status != 401 || v.Reason != "unauthorized" ||
			v.Headers.Get("WWW-Authenticate") != "Bearer" {
			t.Errorf("unauthenticated: %+v, %v", v, err)
		}
	}
	// no claims at all: an empty map
	c := mustNew(t, Config{Rules: []Rule{{Name: "c", Allow: `size(identity.claims) == 0 && !("roles" in identity.claims) && identity.claims == {}`}}})
	check(t, c, newReq("GET", "/x"), allow)
	// identity.authenticated in an expression
	b := mustNew(t, Config{Rules: []Rule{{Name: "authn", Allow: `identity.authenticated`}}})
	check(t, b, newReq("GET", "/x", apiKey("k")), allow)
	check(t, b, newReq("GET", "/x"), forbidden("authn"))
}

func TestRuntimeErrorsFailClosed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		expr string
		err  string
	}{
		{`path[request.query.n] == "1"`, "no such key"},     // dynamic key; a literal path.id is caught by Validate
		{`identity.claims.roles.size() > 0`, "no such key"}, // no roles claim
		{`identity.claims.level > 2`, "no such overload"},   // string claim
		{`identity.claims.admin`, "not bool"},               // dyn result that is a string
		{`request.query.missing == "x"`, "no such key"},
		{`int(request.query.n) > 1`, "type conversion error"}, // unparsable number
	}
	for _, kind := range []string{"allow", "deny"} {
		for _, tc := range cases {
			r := Rule{Name: "r", Path: "/x/{other}"}
			if kind == "allow" {
				r.Allow = tc.expr
			} else {
				r.Deny = tc.expr
			}
			a := mustNew(t, Config{Default: "allow", Rules: []Rule{r}})
			req := newReq("GET", "/x/1?n=abc", sub("alice"))
			req.Identity.Claims = map[string]any{"level": "high", "admin": "yes"}
			v, err := a.Check(context.Background(), req)
			if err == nil || !strings.Contains(err.Error(), tc.err) || v.Action != pipeline.Deny || v.Status != 403 ||
				v.Reason != "forbidden" || v.Detail != `denied by authorization rule "r"` {
				t.Errorf("%s %s: %+v, %v (want error %q)", kind, tc.expr, v, err, tc.err)
			}
		}
	}
}

func TestDetailNamesRuleOnly(t *testing.T) {
	t.Parallel()
	a := mustNew(t, Config{Rules: []Rule{{Name: "own", Path: "/u/{name}", Allow: `path.name == identity.sub`}}})
	v, _ := a.Check(context.Background(), newReq("GET", "/u/secret-bob", sub("secret-alice")))
	if strings.Contains(v.Detail, "secret") || v.Detail != `denied by authorization rule "own"` {
		t.Errorf("detail %q", v.Detail)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cfg := Config{Default: "maybe", Rules: []Rule{
		{Name: "ok", Path: "/a/{id}", Allow: `path.id == identity.sub`},
		{Name: "both", Allow: "true", Deny: "false"},
		{Name: "typo", Allow: `idenity.sub == "x"`},
		{Name: "not-bool", Deny: `identity.sub`},
		{Name: "tmpl", Path: "/a/{id}/{id}", Allow: "true"},
		{Name: "neither", Path: "api/**/x"},
		{Name: "ok", Methods: []string{"get"}, Allow: "1 +"},
		{Name: "field-typo", Allow: `"a" in identity.scope`},
		{Name: "param-typo", Path: "/u/{username}/**", Allow: `path.usrname == identity.sub || path["id"] == "1" || has(path.x) || path.username == ""`},
		{Name: "no-template", Deny: `path.id == "1"`},
	}}
	errs := &field.Errors{}
	cfg.Validate("routes[1].checks.authz", errs)
	var got []string
	for _, e := range errs.List {
		got = append(got, e.Path+": "+e.Msg)
	}
	p := "routes[1].checks.authz."
	want := []string{
		p + `default: must be allow or deny, not "maybe"`,
		p + `rules[1]: set either allow or deny, not both`,
		p + `rules[2].allow: undeclared reference to 'idenity' (did you mean identity?) at 1:1`,
		p + `rules[3].deny: must be a bool expression, not string`,
		p + `rules[4].path: invalid template "/a/{id}/{id}": duplicate parameter {id}`,
		p + `rules[5].path: invalid template "api/**/x": must start with /`,
		p + `rules[5]: one of allow, deny or response_allow is required`,
		p + `rules[6].name: duplicate rule name "ok"`,
		p + `rules[6].methods[0]: not an upper-case HTTP method: "get"`,
		p + `rules[6].allow: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER} at 1:4`,
		p + `rules[7].allow: undeclared reference to 'identity.scope' (did you mean identity.scopes?) at 1:8`,
		p + `rules[8].allow: path.usrname is never set: /u/{username}/** has no {usrname}`,
		p + `rules[8].allow: path.id is never set: /u/{username}/** has no {id}`,
		p + `rules[9].deny: path.id is never set: the rule has no path template`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := New(cfg); err == nil {
		t.Fatal("New accepted an invalid config")
	}
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	cases := []struct {
		tmpl, path string
		ok         bool
		params     string
	}{
		{"/api/orders/{id}", "/api/orders/42", true, "id=42"},
		{"/api/orders/{id}", "/api/orders/42/", false, ""},
		{"/api/orders/{id}", "/api/orders/", false, ""},
		{"/api/orders/{id}", "/api/orders", false, ""},
		{"/api/orders/{id}", "/api/orders/42/items", false, ""},
		{"/api/orders/{id}", "/api/order/42", false, ""},
		{"/api/orders/{id}", "/api/orders/a%2Fb", false, ""},  // encoded slash
		{"/api/orders/{id}", "/api/orders/a%2fb", false, ""},  // lower-case too
		{"/api/orders/{id}", "/api/orders/a%5Cb", false, ""},  // encoded backslash
		{"/api/orders/{id}", "/api/orders/..", false, ""},     // dot segment
		{"/api/orders/{id}", "/api/orders/%2E%2E", false, ""}, // encoded dot segment
		{"/api/orders/{id}", "/api/orders/a%20b", true, "id=a b"},
		{"/api/orders/{id}", "/api/orders/%zz", false, ""}, // bad escape
		{"/api/{a}/x/{b}", "/api/1/x/2", true, "a=1,b=2"},
		{"/api/**", "/api", true, ""},
		{"/api/**", "/api/", true, ""},
		{"/api/**", "/api/a/b%2Fc/d", true, ""},
		{"/api/**", "/apix", false, ""},
		{"/api/**", "/ap", false, ""},
		{"/api/{id}/**", "/api/7/a/b", true, "id=7"},
		{"/api/{id}/**", "/api", false, ""},
		{"/**", "/", true, ""},
		{"/**", "/anything/at/all", true, ""},
		{"/", "/", true, ""},
		{"/", "/x", false, ""},
		{"/a%2Fb", "", false, ""}, // invalid template, see below
		{"/api/a", "/api%2Fa", false, ""},
		{"/api/a b", "/api/a%20b", true, ""},
	}
	for _, tc := range cases {
		tm, err := parseTemplate(tc.tmpl)
		if err != nil {
			if tc.path != "" {
				t.Errorf("parseTemplate(%q): %v", tc.tmpl, err)
			}
			continue
		}
		ps, ok := tm.match(tc.path, nil)
		var kv []string
		for _, p := range ps {
			kv = append(kv, p.name+"="+p.value)
		}
		if ok != tc.ok || ok && strings.Join(kv, ",") != tc.params {
			t.Errorf("%q ~ %q = %v %v, want %v %q", tc.tmpl, tc.path, ok, kv, tc.ok, tc.params)
		}
	}
	for _, bad := range []string{"", "api", "/a/**/b", "/a/{}", "/a/{1x}", "/a/x{id}", "/a//b", "/a/*", "/a/../b", "/a/%2F", "/a/{id}/{id}"} {
		if _, err := parseTemplate(bad); err == nil {
			t.Errorf("parseTemplate(%q) accepted", bad)
		}
	}
}

func FuzzTemplate(f *testing.F) {
	for _, s := range [][2]string{
		{"/api/orders/{id}", "/api/orders/42"},
		{"/api/**", "/api/a/b"},
		{"/{a}/{b}/**", "/x/%2F/y"},
		{"/", "//"},
		{"/a/{id}", "/a/%zz"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, tmpl, path string) {
		tm, err := parseTemplate(tmpl)
		if err != nil {
			return
		}
		ps, ok := tm.match(path, nil)
		if !ok {
			return
		}
		if len(ps) != len(tm.params) {
			t.Fatalf("%q ~ %q: %d params, template has %d", tmpl, path, len(ps), len(tm.params))
		}
		for i, p := range ps {
			if p.name != tm.params[i] || p.value == "" || strings.ContainsAny(p.value, "/\\") || p.value == "." || p.value == ".." {
				t.Fatalf("%q ~ %q: bad param %+v", tmpl, path, p)
			}
		}
	})
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	a := mustNew(t, Config{Rules: demoRules})
	done := make(chan bool)
	for g := range 4 {
		go func() {
			defer func() { done <- true }()
			for i := range 200 {
				me := []string{"alice", "bob"}[(g+i)%2]
				v, err := a.Check(context.Background(), newReq("GET", "/api/users/alice", sub(me)))
				if err != nil || (v.Action == pipeline.Allow) != (me == "alice") {
					t.Errorf("%s: %+v %v", me, v, err)
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}

func BenchmarkDemoRules(b *testing.B) {
	a := mustNew(b, Config{Rules: demoRules})
	cases := []struct {
		name string
		req  *pipeline.Request
	}{
		{"function-level", newReq("GET", "/api/admin/users", sub("root"), roles("admin"))},
		{"object-level", newReq("GET", "/api/users/alice", sub("alice"))},
		{"combination", newReq("GET", "/api/accounts/bob/orders", sub("alice"), roles("user", "admin"))},
		{"scopes", newReq("GET", "/api/orders/42", sub("alice"), scopes("orders:read"))},
		{"owner-header", newReq("GET", "/api/invoices/9", sub("alice"), header("X-Resource-Owner", "alice"))},
		{"no-match-default", newReq("GET", "/other/path", sub("alice"))},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				v, err := a.Check(context.Background(), c.req)
				if err != nil || v.Action == pipeline.Deny && c.name != "no-match-default" {
					b.Fatal(v, err)
				}
			}
		})
	}
}

func TestYAML(t *testing.T) {
	t.Parallel()
	src := `
mode: monitor
require_auth: true
default: allow
rules:
  - name: admin-api
    methods: [GET, POST]
    path: /api/admin/**
    allow: '"admin" in identity.claims.roles'
  - name: no-banned
    deny: >
      has(identity.claims.banned) &&
      identity.claims.banned == true
`
	var cfg Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != pipeline.ModeMonitor || !cfg.RequireAuth || cfg.Default != "allow" || len(cfg.Rules) != 2 ||
		cfg.Rules[0].Path != "/api/admin/**" || len(cfg.Rules[0].Methods) != 2 || cfg.Rules[1].Deny == "" {
		t.Fatalf("%+v", cfg)
	}
	a := mustNew(t, cfg)
	req := newReq("GET", "/x", sub("alice"))
	req.Identity.Claims = map[string]any{"banned": true}
	check(t, a, req, forbidden("no-banned"))
	check(t, a, newReq("GET", "/x", sub("alice")), allow)
}
