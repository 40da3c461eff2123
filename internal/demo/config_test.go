package demo

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	demoassets "github.com/apiguard/apiguard/examples/demo"
	"github.com/apiguard/apiguard/internal/attest"
	"github.com/apiguard/apiguard/internal/checks/iplist"
	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/pipeline"
)

var testVars = ConfigVars{
	ShopURL:     "http://127.0.0.1:41234",
	Listen:      "127.0.0.1:0",
	AdminListen: "127.0.0.1:0",
	AdminToken:  "0123456789abcdef0123",
}

// testConfigVars are testVars with a data directory holding the
// attestation key the config names.
func testConfigVars(t *testing.T) ConfigVars {
	t.Helper()
	v := testVars
	v.DataDir = t.TempDir()
	key, _, err := attest.GenerateKey("EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.DataDir, AttestKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteSpec(v.DataDir); err != nil {
		t.Fatal(err)
	}
	return v
}

func loadTestConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := LoadConfig(testConfigVars(t))
	if err != nil {
		t.Fatalf("examples/demo/apiguard.yaml does not load:\n%v", err)
	}
	return cfg
}

func route(t *testing.T, cfg *config.Config, name string) *config.Route {
	t.Helper()
	for _, r := range cfg.Routes {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no route %q", name)
	return nil
}

func TestDemoConfig(t *testing.T) {
	t.Parallel()
	vars := testConfigVars(t)
	cfg, err := LoadConfig(vars)
	if err != nil {
		t.Fatalf("examples/demo/apiguard.yaml does not load:\n%v", err)
	}
	if cfg.Listen != vars.Listen || cfg.Admin.Listen != vars.AdminListen ||
		cfg.Admin.Token != vars.AdminToken || cfg.DataDir != vars.DataDir {
		t.Errorf("DEMO_ variables not applied: listen %q admin %q token %q data %q",
			cfg.Listen, cfg.Admin.Listen, cfg.Admin.Token, cfg.DataDir)
	}
	if up := cfg.Upstreams["shop"]; up == nil || !slices.Equal(up.Targets, []string{testVars.ShopURL}) {
		t.Errorf("upstream shop = %+v", up)
	}
	for _, want := range []string{"127.0.0.1/32", "::1/128"} {
		if !slices.Contains(cfg.TrustedProxies, want) {
			t.Errorf("trusted_proxies lacks %s", want)
		}
	}
	var names []string
	for _, r := range cfg.Routes {
		names = append(names, r.Name)
		if r.Upstream != "shop" {
			t.Errorf("route %s goes to %q", r.Name, r.Upstream)
		}
	}
	if want := []string{"login", "admin", "users", "orders", "transfer", "jwks", "api"}; !slices.Equal(names, want) {
		t.Errorf("routes %v, want %v", names, want)
	}
	if l := route(t, cfg, "login"); l.PathPrefix != "/api/login" || !slices.Equal(l.Methods, []string{"POST"}) {
		t.Errorf("login route %+v", l)
	}
	if j := route(t, cfg, "jwks"); j.PathPrefix != JWKSPath {
		t.Errorf("jwks route prefix %q", j.PathPrefix)
	}
	api := route(t, cfg, "api")
	if api.PathPrefix != "/api/" || api.Limits.MaxBodyBytes != 64<<10 || api.Limits.JSONMaxDepth != 16 {
		t.Errorf("api route %+v", api)
	}
	// The hefty-requests payloads sit between the api route's limits and the
	// global ones, so they show the route's limits at work.
	for name, b := range heftyBodies() {
		if len(b) >= int(cfg.Limits.MaxBodyBytes) {
			t.Errorf("hefty body %s (%d bytes) exceeds the global limit too", name, len(b))
		}
	}
	if len(heftyBodies()["large-order"]) <= int(api.Limits.MaxBodyBytes) {
		t.Error("large-order fits the api route's limit")
	}

	// App attestation: the service signs with the key the demo writes to
	// the data directory, and keeps its registry in the SQLite event store
	// prepareAttestation fills.
	if a := cfg.Attestation; !a.Enabled() || len(a.SigningKeys) != 1 ||
		a.SigningKeys[0].File != filepath.Join(vars.DataDir, AttestKeyFile) {
		t.Errorf("attestation %+v", a)
	}
	if d := cfg.Events.Store.Driver; d != "sqlite" || cfg.Events.Store.DSN != "" {
		t.Errorf("events.store %q %q: the app registry must be <data_dir>/%s", d, cfg.Events.Store.DSN, eventsDB)
	}
	tr := route(t, cfg, "transfer")
	if tr.PathPrefix != "/api/transfer" || tr.Checks.HTTPSig == nil || tr.Checks.Authz == nil || !tr.Checks.Authz.RequireAuth {
		t.Errorf("transfer route lost its signature or authentication checks: %+v", tr.Checks)
	}
	at := tr.Checks.Attestation
	if at == nil || !slices.Equal(at.Apps, []string{ShopAppID}) || at.MinLevel != "software" ||
		at.BindHeader != "Authorization" || !at.SingleUse || (at.Token != "" && at.Token != "required") {
		t.Errorf("transfer route attestation %+v", at)
	}
	for _, r := range cfg.Routes {
		if r.Name != "transfer" && r.Checks.Attestation != nil {
			t.Errorf("route %s requires attestation", r.Name)
		}
	}
	// Globally the token is only read (so challenged clients can pass with
	// it), never required.
	if g := cfg.Checks.Attestation; g == nil || g.Token != "optional" {
		t.Errorf("global attestation %+v, want token: optional", g)
	}
	if cfg.Bot == nil || cfg.Checks.Bot == nil || len(cfg.Bot.Logins) != 1 || cfg.Bot.Logins[0].Route != "login" {
		t.Errorf("bot layer not configured: %+v %+v", cfg.Bot, cfg.Checks.Bot)
	}
}

// TestScenarioAddresses checks the simulated addresses against the config's
// address lists, so each scenario meets the policy it is meant to meet.
func TestScenarioAddresses(t *testing.T) {
	t.Parallel()
	cfg := loadTestConfig(t)
	if cfg.Checks.IPList == nil {
		t.Fatal("no global iplist")
	}
	global, err := iplist.New(*cfg.Checks.IPList)
	if err != nil {
		t.Fatal(err)
	}
	adminCfg := route(t, cfg, "admin").Checks.IPList
	if adminCfg == nil {
		t.Fatal("no iplist on the admin route")
	}
	admin, err := iplist.New(*adminCfg)
	if err != nil {
		t.Fatal(err)
	}
	reason := func(l *iplist.List, ip string) string {
		v, err := l.Check(context.Background(), &pipeline.Request{ClientIP: netip.MustParseAddr(ip)})
		if err != nil {
			t.Fatal(err)
		}
		return v.Reason
	}

	genuine := []string{officeIP}
	for _, p := range shopperProfiles {
		genuine = append(genuine, p.ip)
	}
	for _, ip := range genuine {
		if r := reason(global, ip); r != "" {
			t.Errorf("genuine %s: %s", ip, r)
		}
	}
	if r := reason(admin, officeIP); r != "" {
		t.Errorf("office %s on the admin route: %s", officeIP, r)
	}
	for _, a := range denylistedAttackers {
		if r := reason(global, a.ip); r != "ip-denied" {
			t.Errorf("denylisted %s: %q, want ip-denied", a.ip, r)
		}
		if r := reason(admin, a.ip); r != "ip-denied" {
			t.Errorf("denylisted %s on the admin route: %q, want ip-denied", a.ip, r)
		}
	}
	if r := reason(global, adminProbeIP); r != "" {
		t.Errorf("admin-probe %s denied globally: %s", adminProbeIP, r)
	}
	if r := reason(admin, adminProbeIP); r != "ip-not-allowed" {
		t.Errorf("admin-probe %s on the admin route: %q, want ip-not-allowed", adminProbeIP, r)
	}
	if r := reason(global, heftyIP); r != "" {
		t.Errorf("hefty %s denied globally: %s", heftyIP, r)
	}
	// The attestation and inspection attackers are on no list: only
	// attestation, the spec and the WAF stop them.
	for _, ip := range []string{scriptIP, tamperedIP, attestReplayIP, expiredAttestIP,
		sqlInjectionIP, xssIP, massAssignIP, shadowIP, zombieIP, ssrfIP} {
		if r := reason(global, ip); r != "" {
			t.Errorf("attestation attacker %s denied globally: %s", ip, r)
		}
	}
	// Three genuine shoppers share one NAT address.
	n := 0
	for _, p := range shopperProfiles {
		if p.ip == sharedNATIP {
			n++
		}
	}
	if n < 2 {
		t.Errorf("%d shoppers behind %s, want several", n, sharedNATIP)
	}
}

// TestOpenAPI is a light structural check of examples/demo/openapi.yaml
// against the shop's route table; full validation comes with the OpenAPI
// check.
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	var doc map[string]any
	if err := yaml.Unmarshal(demoassets.OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.yaml is not YAML: %v", err)
	}
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v, want 3.1.0", doc["openapi"])
	}
	paths, _ := doc["paths"].(map[string]any)
	s, err := NewShop()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, r := range s.routes {
		served[r.path] = true
		item, _ := paths[r.path].(map[string]any)
		op, declared := item[strings.ToLower(r.method)].(map[string]any)
		if declared != r.declared {
			t.Errorf("%s %s: declared in openapi.yaml = %v, want %v", r.method, r.path, declared, r.declared)
			continue
		}
		if !declared {
			continue
		}
		if dep, _ := op["deprecated"].(bool); dep != strings.HasPrefix(r.path, "/api/v1/") {
			t.Errorf("%s %s: deprecated = %v", r.method, r.path, dep)
		}
		if op["operationId"] == nil {
			t.Errorf("%s %s: no operationId", r.method, r.path)
		}
	}
	for p := range paths {
		if !served[p] {
			t.Errorf("openapi.yaml declares %s, which the shop does not serve", p)
		}
	}
	if _, ok := paths["/api/debug/vars"]; ok {
		t.Error("the shadow endpoint /api/debug/vars must stay undeclared")
	}

	// Every $ref resolves, and every object schema is closed but
	// ProfileUpdate, left open on purpose: the gateway's
	// additional_properties: reject closes it (mass assignment of role).
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if resolve(doc, ref) == nil {
					t.Errorf("%s: $ref %s does not resolve", path, ref)
				}
			}
			if v["type"] == "object" && v["additionalProperties"] != false && path != "#/components/schemas/ProfileUpdate" {
				t.Errorf("%s: object schema without additionalProperties: false", path)
			}
			for k, c := range v {
				walk(path+"/"+k, c)
			}
		case []any:
			for _, c := range v {
				walk(path, c)
			}
		}
	}
	walk("#", doc)

	schemes, _ := resolve(doc, "#/components/securitySchemes/bearerAuth").(map[string]any)
	if schemes["scheme"] != "bearer" || schemes["bearerFormat"] != "JWT" {
		t.Errorf("bearerAuth = %v", schemes)
	}
}

func resolve(doc map[string]any, ref string) any {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	var cur any = doc
	for _, part := range strings.Split(rest, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[strings.NewReplacer("~1", "/", "~0", "~").Replace(part)]
	}
	return cur
}

// TestDenial checks how the demo tells apiguard's refusals from the shop's
// own errors.
func TestDenial(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ct, body string
		denied   bool
		reason   string
	}{
		{"application/problem+json", `{"type":"urn:apiguard:problem:ip-denied","status":403}`, true, "ip-denied"},
		{"application/problem+json; charset=utf-8", `{"type":"urn:apiguard:problem:body-too-large"}`, true, "body-too-large"},
		{"application/json", `{"type":"urn:apiguard:problem:ip-denied"}`, false, ""},
		{"application/problem+json", `{"type":"https://shop.demo.apiguard.local/problems/unauthorized"}`, false, ""},
		{"application/problem+json", `{"type":"urn:apiguard:problem:"}`, false, ""},
		{"application/problem+json", `not json`, false, ""},
		{"", ``, false, ""},
	}
	for _, tc := range tests {
		d, r := denial(tc.ct, []byte(tc.body))
		if d != tc.denied || r != tc.reason {
			t.Errorf("denial(%q, %s) = %v %q, want %v %q", tc.ct, tc.body, d, r, tc.denied, tc.reason)
		}
	}
}
