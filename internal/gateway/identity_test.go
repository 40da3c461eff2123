package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// TestJWTAndAuthz: tokens verified against a live JWKS, claims forwarded,
// CEL rules at function level (admin role) and object level (own profile).
func TestJWTAndAuthz(t *testing.T) {
	t.Parallel()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key, _ := jwk.Import(priv)
	_ = key.Set(jwk.KeyIDKey, "k1")
	_ = key.Set(jwk.AlgorithmKey, jwa.ES256())
	pub, _ := key.PublicKey()
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(jwks.Close)
	sign := func(k jwk.Key, sub string, roles ...string) string {
		tok, _ := jwt.NewBuilder().Issuer("https://idp.test").Audience([]string{"shop"}).Subject(sub).
			Expiration(time.Now().Add(time.Minute)).IssuedAt(time.Now()).Claim("roles", roles).Build()
		b, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), k))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	otherPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := jwk.Import(otherPriv)
	_ = other.Set(jwk.KeyIDKey, "k1")

	app := newEchoUpstream(t, "app")
	g := startGateway(t, `
upstreams: {app: {targets: [$UPSTREAM_0]}}
checks:
  jwt:
    required: false
    issuers: [{issuer: "https://idp.test", audiences: [shop], algorithms: [ES256], jwks_url: "`+jwks.URL+`"}]
    forward_claims: {sub: X-User-Id}
routes:
  - name: users
    path_prefix: /api/users/
    upstream: app
    checks:
      authz:
        require_auth: true
        rules:
          - {name: own-profile, path: "/api/users/{username}", allow: 'path.username == identity.sub || "admin" in identity.claims.roles'}
  - name: admin
    path_prefix: /api/admin/
    upstream: app
    checks:
      authz:
        require_auth: true
        rules: [{name: admins, allow: '"admin" in identity.claims.roles'}]
  - {name: public, path_prefix: /, upstream: app}
`, app.URL)

	alice, carol := sign(key, "alice", "customer"), sign(key, "carol", "admin")
	auth := func(tok string) []string { return []string{"Authorization", "Bearer " + tok, "X-User-Id", "spoofed"} }

	wantProblem(t, get(t, g.url+"/api/users/alice"), 401, "unauthorized")
	wantProblem(t, get(t, g.url+"/api/users/alice", auth(sign(other, "alice"))...), 401, "token-signature")
	wantProblem(t, get(t, g.url+"/api/users/alice", "Authorization", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9."), 401, "token-algorithm")
	r := get(t, g.url+"/api/users/alice", auth(alice)...)
	if r.status != 200 || r.echo.Header.Get("X-User-Id") != "alice" {
		t.Fatalf("own profile: %d, upstream X-User-Id %q", r.status, r.echo.Header.Get("X-User-Id"))
	}
	wantProblem(t, get(t, g.url+"/api/users/bob", auth(alice)...), 403, "forbidden") // BOLA
	if r := get(t, g.url+"/api/users/bob", auth(carol)...); r.status != 200 {        // admins may
		t.Fatalf("admin reading a profile: %d", r.status)
	}
	wantProblem(t, get(t, g.url+"/api/admin/users", auth(alice)...), 403, "forbidden") // function level
	if r := get(t, g.url+"/api/admin/users", auth(carol)...); r.status != 200 {
		t.Fatalf("admin route for an admin: %d", r.status)
	}
	// Anonymous access where no rule requires a user; the spoofed header is removed.
	r = get(t, g.url+"/api/products", "X-User-Id", "spoofed")
	if r.status != 200 || r.echo.Header.Get("X-User-Id") != "" {
		t.Fatalf("public route: %d, X-User-Id %q", r.status, r.echo.Header.Get("X-User-Id"))
	}
}

// TestAuthFailureLockout: failed authentications at the gateway count
// towards a count_status policy, so guessing tokens locks the address out
// (even its valid tokens) for the policy's window.
func TestAuthFailureLockout(t *testing.T) {
	t.Parallel()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key, _ := jwk.Import(priv)
	_ = key.Set(jwk.KeyIDKey, "k1")
	pub, _ := key.PublicKey()
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(set) }))
	t.Cleanup(jwks.Close)
	tok, _ := jwt.NewBuilder().Issuer("https://idp.test").Audience([]string{"shop"}).Subject("alice").Expiration(time.Now().Add(time.Minute)).Build()
	good, _ := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), key))

	app := newEchoUpstream(t, "app")
	g := startGateway(t, `
trusted_proxies: [127.0.0.1/32]
upstreams: {app: {targets: [$UPSTREAM_0]}}
checks:
  jwt:
    issuers: [{issuer: "https://idp.test", audiences: [shop], algorithms: [ES256], jwks_url: "`+jwks.URL+`"}]
  ratelimit:
    policies:
      - {name: auth-failures, key: [ip], count_status: [401], limits: [{rate: 3/m}], headers: false}
routes: [{name: api, upstream: app}]
`, app.URL)
	call := func(ip, token string) result {
		return get(t, g.url+"/x", "X-Forwarded-For", ip, "Authorization", "Bearer "+token)
	}
	if r := call("192.0.2.50", string(good)); r.status != 200 {
		t.Fatalf("valid token: %d", r.status)
	}
	for range 3 {
		if r := call("192.0.2.50", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"); r.status != 401 {
			t.Fatalf("forged token: %d", r.status)
		}
	}
	// Three failures in a minute: the address is locked out, valid token or not.
	wantProblem(t, call("192.0.2.50", string(good)), 429, "rate-limited")
	// Others are not.
	if r := call("192.0.2.51", string(good)); r.status != 200 {
		t.Fatalf("another address: %d", r.status)
	}
}
