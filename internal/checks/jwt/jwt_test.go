package jwt

import (
	"crypto/elliptic"
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

type fixture struct {
	es, ed, rs, es384, forged signer
	check                     *Check
}

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{
		es:     newES("es", elliptic.P256(), jwa.ES256()),
		ed:     newEd("ed"),
		rs:     newRS("rs"),
		es384:  newES("es384", elliptic.P384(), jwa.ES384()),
		forged: newES("es", elliptic.P256(), jwa.ES256()), // same kid, other key
	}
	cfg := Config{
		Issuers: []Issuer{
			{
				Issuer:         testIss,
				Audiences:      []string{testAud, "other-api"},
				Algorithms:     []string{"ES256", "EdDSA", "RS256"},
				Keys:           []string{pemOf(t, f.es.pub), pemOf(t, f.ed.pub), pemOf(t, f.rs.pub)},
				RequiredClaims: []string{"sub"},
			},
			{
				// Another issuer allows ES384: a token of testIss with
				// ES384 must still be refused (allowlists are per issuer).
				Issuer:     "https://other.test",
				Audiences:  []string{testAud},
				Algorithms: []string{"ES384"},
				Keys:       []string{pemOf(t, f.es384.pub)},
			},
		},
		ForwardClaims: map[string]string{"sub": "X-User", "tenant": "X-Tenant"},
	}
	if mod != nil {
		mod(&cfg)
	}
	f.check = mustNew(t, cfg)
	return f
}

func unsigned(hdr, payload string) string {
	e := base64.RawURLEncoding.EncodeToString
	return e([]byte(hdr)) + "." + e([]byte(payload)) + "."
}

func TestCheck(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	now := time.Now()
	// HS256 signed with the RSA public key's PEM bytes: the classic
	// RS/HS confusion.
	rsPEM := pemOf(t, f.rs.pub)
	confused, err := jws.Sign([]byte(`{"iss":"`+testIss+`","aud":"api","sub":"x","exp":`+itoa(now.Add(time.Hour).Unix())+`}`),
		jws.WithKey(jwa.HS256(), []byte(rsPEM)))
	if err != nil {
		t.Fatal(err)
	}
	validES := f.es.mint(t, claims(nil))
	parts := strings.Split(validES, ".")

	cases := []struct {
		name   string
		token  string
		reason string // "" = allowed
	}{
		{"valid ES256", validES, ""},
		{"valid EdDSA", f.ed.mint(t, claims(nil)), ""},
		{"valid RS256", f.rs.mint(t, claims(nil)), ""},
		{"aud array", f.es.mint(t, claims(map[string]any{"aud": []string{"x", "other-api"}})), ""},
		{"expired within skew", f.es.mint(t, claims(map[string]any{"exp": now.Add(-10 * time.Second).Unix()})), ""},
		{"other issuer ES384", newFixtureToken(t, f.es384, map[string]any{"iss": "https://other.test", "sub": nil}), ""},
		{"forged", f.forged.mint(t, claims(nil)), ReasonSignature},
		{"expired", f.es.mint(t, claims(map[string]any{"exp": now.Add(-time.Hour).Unix()})), ReasonExpired},
		{"not yet valid", f.es.mint(t, claims(map[string]any{"nbf": now.Add(time.Hour).Unix()})), ReasonNotYetValid},
		{"issued in the future", f.es.mint(t, claims(map[string]any{"iat": now.Add(time.Hour).Unix()})), ReasonNotYetValid},
		{"wrong audience", f.es.mint(t, claims(map[string]any{"aud": "billing"})), ReasonAudience},
		{"no audience", f.es.mint(t, claims(map[string]any{"aud": nil})), ReasonAudience},
		{"wrong issuer", f.es.mint(t, claims(map[string]any{"iss": "https://evil.test"})), ReasonIssuer},
		{"no issuer", f.es.mint(t, claims(map[string]any{"iss": nil})), ReasonIssuer},
		{"missing required claim", f.es.mint(t, claims(map[string]any{"sub": nil})), ReasonClaims},
		{"missing exp", f.es.mint(t, claims(map[string]any{"exp": nil})), ReasonClaims},
		{"exp not a number", f.es.mint(t, claims(map[string]any{"exp": "tomorrow"})), ReasonClaims},
		{"alg not allowed for issuer", f.es384.mint(t, claims(nil)), ReasonAlgorithm},
		{"alg none", unsigned(`{"alg":"none","typ":"JWT"}`, `{"iss":"`+testIss+`","aud":"api","sub":"x","exp":9999999999}`), ReasonAlgorithm},
		{"alg None", unsigned(`{"alg":"None"}`, `{"iss":"`+testIss+`","aud":"api","sub":"x","exp":9999999999}`), ReasonAlgorithm},
		{"allowed alg, empty signature", unsigned(`{"alg":"ES256"}`, `{"iss":"`+testIss+`","aud":"api","sub":"x","exp":9999999999}`), ReasonSignature},
		{"HS256 with RSA public key bytes", string(confused), ReasonAlgorithm},
		{"alg swapped in header", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA"}`)) + "." + parts[1] + "." + parts[2], ReasonSignature},
		{"payload swapped", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+testIss+`","aud":"api","sub":"admin","exp":9999999999}`)) + "." + parts[2], ReasonSignature},
		{"crit header", unsigned(`{"alg":"ES256","crit":["x"],"x":1}`, `{}`) + "AAAA", ReasonMalformed},
		{"garbage", "garbage", ReasonMalformed},
		{"two segments", parts[0] + "." + parts[1], ReasonMalformed},
		{"four segments", validES + ".x", ReasonMalformed},
		{"bad base64 header", "!!!." + parts[1] + "." + parts[2], ReasonMalformed},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], ReasonMalformed},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("nope")) + "." + parts[1] + "." + parts[2], ReasonMalformed},
		{"payload not an object", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`[1]`)) + "." + parts[2], ReasonMalformed},
		{"huge", strings.Repeat("a", maxTokenLen+1), ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := request(tc.token)
			req.HTTP.Header.Set("X-User", "spoofed")
			v, err := run(f.check, req)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if got := req.HTTP.Header.Get("X-User"); got == "spoofed" {
				t.Error("client's X-User header was forwarded")
			}
			if tc.reason == "" {
				if v.Action != pipeline.Allow {
					t.Fatalf("verdict %s %s, want allow", v.Action, v.Reason)
				}
				return
			}
			if v.Action != pipeline.Deny || v.Status != http.StatusUnauthorized || v.Reason != tc.reason {
				t.Fatalf("verdict %s %d %q, want deny 401 %q", v.Action, v.Status, v.Reason, tc.reason)
			}
			if v.Detail == "" || strings.Contains(v.Detail, tc.token) || strings.Contains(v.Detail, "user-1") {
				t.Errorf("detail %q", v.Detail)
			}
			if req.Identity.Subject != "" {
				t.Error("identity set on a refused token")
			}
			if !strings.HasPrefix(v.Headers.Get("WWW-Authenticate"), `Bearer realm="apiguard"`) {
				t.Errorf("WWW-Authenticate = %q", v.Headers.Get("WWW-Authenticate"))
			}
		})
	}
}

func newFixtureToken(t *testing.T, s signer, over map[string]any) string {
	return s.mint(t, claims(over))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestIdentityAndForwarding(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	tok := f.ed.mint(t, claims(map[string]any{"tenant": "acme", "scope": nil, "scp": []string{"a", "b"}}))
	for i := range 2 { // verified, then cached
		req := request(tok)
		req.HTTP.Header.Set("X-User", "admin")
		req.HTTP.Header.Add("X-Tenant", "evil")
		v, err := run(f.check, req)
		if err != nil || v.Action != pipeline.Allow {
			t.Fatalf("run %d: %v %v", i, v, err)
		}
		id := req.Identity
		if id.Subject != "user-1" || id.Claims["tenant"] != "acme" || !slices.Equal(id.Scopes, []string{"a", "b"}) {
			t.Errorf("run %d: identity %+v", i, id)
		}
		if got := req.HTTP.Header.Values("X-User"); !slices.Equal(got, []string{"user-1"}) {
			t.Errorf("run %d: X-User = %q", i, got)
		}
		if got := req.HTTP.Header.Values("X-Tenant"); !slices.Equal(got, []string{"acme"}) {
			t.Errorf("run %d: X-Tenant = %q", i, got)
		}
	}
	if n := f.check.cache.len(); n != 1 {
		t.Errorf("cache holds %d entries, want 1", n)
	}

	// Space-separated scope; an absent forwarded claim still strips the
	// client's header.
	req := request(f.es.mint(t, claims(nil)))
	req.HTTP.Header.Set("X-Tenant", "evil")
	if v, _ := run(f.check, req); v.Action != pipeline.Allow {
		t.Fatal(v)
	}
	if !slices.Equal(req.Identity.Scopes, []string{"read", "write"}) {
		t.Errorf("scopes %q", req.Identity.Scopes)
	}
	if _, ok := req.HTTP.Header["X-Tenant"]; ok {
		t.Error("spoofed X-Tenant kept although the claim is absent")
	}
}

func TestNoToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	for _, auth := range []string{"", "Basic dXNlcjpwYXNz"} {
		req := request("")
		if auth != "" {
			req.HTTP.Header.Set("Authorization", auth)
		}
		req.HTTP.Header.Set("X-User", "admin")
		v, _ := run(f.check, req)
		if v.Reason != ReasonUnauthorized || v.Status != 401 || v.Headers.Get("WWW-Authenticate") != `Bearer realm="apiguard"` {
			t.Errorf("%q: verdict %+v", auth, v)
		}
		if req.HTTP.Header.Get("X-User") != "" {
			t.Error("spoofed header kept")
		}
	}
	for _, bad := range []string{"Bearer", "Bearer ", "Bearer a b", "Bearer abc\x01def", "Bearer " + strings.Repeat("a", maxTokenLen+10)} {
		req := request("")
		req.HTTP.Header["Authorization"] = []string{bad}
		if v, _ := run(f.check, req); v.Reason != ReasonMalformed {
			t.Errorf("%.20q: reason %q, want malformed", bad, v.Reason)
		}
	}
	// Two Authorization headers are ambiguous.
	req := request(f.es.mint(t, claims(nil)))
	req.HTTP.Header.Add("Authorization", "Bearer x")
	if v, _ := run(f.check, req); v.Reason != ReasonMalformed {
		t.Errorf("two headers: reason %q", v.Reason)
	}
}

func TestOptional(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) { c.Required = ptr(false) })
	req := request("")
	req.HTTP.Header.Set("X-User", "admin")
	if v, err := run(f.check, req); v.Action != pipeline.Allow || err != nil {
		t.Fatalf("anonymous: %+v %v", v, err)
	}
	if req.HTTP.Header.Get("X-User") != "" || req.Identity.Subject != "" {
		t.Error("anonymous request kept a spoofed identity header")
	}
	// A present token must still be valid.
	if v, _ := run(f.check, request(f.forged.mint(t, claims(nil)))); v.Reason != ReasonSignature {
		t.Errorf("forged token with required=false: %q", v.Reason)
	}
	if v, _ := run(f.check, request("garbage")); v.Reason != ReasonMalformed {
		t.Errorf("garbage with required=false: %q", v.Reason)
	}
	if v, _ := run(f.check, request(f.es.mint(t, claims(nil)))); v.Action != pipeline.Allow {
		t.Errorf("valid token with required=false: %+v", v)
	}
}

func TestTokenSources(t *testing.T) {
	t.Parallel()
	es := newES("k", elliptic.P256(), jwa.ES256())
	base := Issuer{Issuer: testIss, Audiences: []string{testAud}, Algorithms: []string{"ES256"}, Keys: []string{string(jwksOf(t, es))}}
	tok := es.mint(t, claims(nil))

	cookie := mustNew(t, Config{Issuers: []Issuer{base}, Token: TokenSource{Cookie: "session"}})
	req := request("")
	req.HTTP.AddCookie(&http.Cookie{Name: "other", Value: "x"})
	req.HTTP.AddCookie(&http.Cookie{Name: "session", Value: tok})
	if v, _ := run(cookie, req); v.Action != pipeline.Allow || req.Identity.Subject != "user-1" {
		t.Errorf("cookie: %+v", v)
	}
	// The Authorization header is not a source for a cookie-only check.
	if v, _ := run(cookie, request(tok)); v.Reason != ReasonUnauthorized {
		t.Errorf("cookie check with bearer header: %q", v.Reason)
	}

	custom := mustNew(t, Config{Issuers: []Issuer{base}, Token: TokenSource{Header: "x-api-token"}})
	req = request("")
	req.HTTP.Header.Set("X-Api-Token", tok)
	if v, _ := run(custom, req); v.Action != pipeline.Allow {
		t.Errorf("custom header: %+v", v)
	}
	req = request("")
	req.HTTP.Header.Set("X-Api-Token", "Bearer "+tok) // raw token expected
	if v, _ := run(custom, req); v.Reason != ReasonMalformed {
		t.Errorf("custom header with scheme: %q", v.Reason)
	}

	both := mustNew(t, Config{Issuers: []Issuer{base}, Token: TokenSource{Header: "Authorization", Cookie: "session"}})
	req = request("")
	req.HTTP.AddCookie(&http.Cookie{Name: "session", Value: tok})
	if v, _ := run(both, req); v.Action != pipeline.Allow {
		t.Errorf("header-or-cookie via cookie: %+v", v)
	}
}

func TestHMACIssuer(t *testing.T) {
	t.Parallel()
	secret := "0123456789abcdef0123456789abcdef"
	jwkJSON := `{"kty":"oct","k":"` + base64.RawURLEncoding.EncodeToString([]byte(secret)) + `"}`
	c := mustNew(t, Config{Issuers: []Issuer{{Issuer: testIss, Audiences: []string{testAud}, Algorithms: []string{"HS256"}, Keys: []string{jwkJSON}}}})
	hs := signer{alg: jwa.HS256(), priv: []byte(secret)}
	if v, _ := run(c, request(hs.mint(t, claims(nil)))); v.Action != pipeline.Allow {
		t.Errorf("HS256: %+v", v)
	}
	bad := signer{alg: jwa.HS256(), priv: []byte("another secret of 32 bytes......")}
	if v, _ := run(c, request(bad.mint(t, claims(nil)))); v.Reason != ReasonSignature {
		t.Errorf("HS256 wrong secret: %q", v.Reason)
	}
}

func TestCacheRechecksExpiry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	tok := f.es.mint(t, claims(map[string]any{"exp": time.Now().Add(time.Minute).Unix()}))
	if v, _ := run(f.check, request(tok)); v.Action != pipeline.Allow {
		t.Fatal(v)
	}
	if f.check.cache.len() != 1 {
		t.Fatal("not cached")
	}
	f.check.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if v, _ := run(f.check, request(tok)); v.Reason != ReasonExpired {
		t.Errorf("cached token after exp: %q", v.Reason)
	}
}

func TestCacheBounded(t *testing.T) {
	t.Parallel()
	c := newCache(100)
	for i := range 1000 {
		var sum [32]byte
		sum[0], sum[1], sum[2] = byte(i), byte(i>>8), 1
		c.put(&sum, &entry{})
		c.put(&sum, &entry{}) // re-insert does not grow
	}
	if n := c.len(); n > 100 || n < 90 {
		t.Errorf("cache holds %d entries, want about 100", n)
	}
	small := newCache(3)
	for i := range 10 {
		small.put(&[32]byte{byte(i)}, &entry{})
	}
	if n := small.len(); n != 3 {
		t.Errorf("small cache holds %d", n)
	}
	if small.get(&[32]byte{9}) == nil || small.get(&[32]byte{0}) != nil {
		t.Error("oldest not evicted first")
	}
}

func TestName(t *testing.T) {
	t.Parallel()
	if (&Check{}).Name() != "jwt" {
		t.Fail()
	}
}

func TestKeyFits(t *testing.T) {
	t.Parallel()
	p256 := newES("", elliptic.P256(), jwa.ES256())
	p384 := newES("", elliptic.P384(), jwa.ES384())
	rs := newRS("")
	keys := func(pem string) *key {
		ks, err := parseKeys([]byte(pem))
		if err != nil || len(ks) != 1 {
			t.Fatalf("parseKeys: %v", err)
		}
		return ks[0]
	}
	es256, es384, rsa := keys(pemOf(t, p256.pub)), keys(pemOf(t, p384.pub)), keys(pemOf(t, rs.pub))
	short := &key{fam: famHMAC, raw: []byte("short")}
	long := &key{fam: famHMAC, raw: make([]byte, 64)}
	withAlg := &key{fam: famRSA, alg: "PS256", raw: rsa.raw}
	cases := []struct {
		k    *key
		alg  string
		want bool
	}{
		{es256, "ES256", true}, {es256, "ES384", false}, {es384, "ES384", true}, {es384, "ES256", false},
		{rsa, "RS256", true}, {rsa, "PS512", true}, {rsa, "HS256", false}, {rsa, "ES256", false},
		{short, "HS256", false}, {long, "HS512", true}, {long, "RS256", false},
		{withAlg, "PS256", true}, {withAlg, "RS256", false}, {es256, "none", false},
	}
	for _, tc := range cases {
		if got := tc.k.fits(tc.alg); got != tc.want {
			t.Errorf("%s key fits %s = %v", tc.k.fam, tc.alg, got)
		}
	}
	// Private keys are reduced to public ones; encryption keys refused.
	if _, err := parseKeys([]byte(`{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","use":"enc"}`)); err == nil {
		t.Error("enc key accepted")
	}
}
