package demo

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

func newTestShop(t *testing.T) (*Shop, *httptest.Server) {
	t.Helper()
	s, err := NewShop()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func call(t *testing.T, srv *httptest.Server, method, path, token, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

func login(t *testing.T, srv *httptest.Server, user string) string {
	t.Helper()
	r := call(t, srv, "POST", "/api/login", "", `{"username":"`+user+`","password":"`+DemoPassword+`"}`)
	if r.status != http.StatusOK {
		t.Fatalf("login %s: status %d: %s", user, r.status, r.body)
	}
	var lr struct{ Token string }
	if err := json.Unmarshal(r.body, &lr); err != nil || lr.Token == "" {
		t.Fatalf("login %s: no token in %s", user, r.body)
	}
	return lr.Token
}

// jsonField decodes one top-level field of a JSON object.
func jsonField(t *testing.T, body []byte, name string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("not a JSON object: %s", body)
	}
	return m[name]
}

func TestLogin(t *testing.T) {
	t.Parallel()
	_, srv := newTestShop(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		login(t, srv, u)
	}
	tests := []struct {
		desc, body string
		status     int
	}{
		{"wrong password", `{"username":"alice","password":"nope"}`, 401},
		{"unknown user", `{"username":"mallory","password":"demo-password"}`, 401},
		{"empty password", `{"username":"alice","password":""}`, 401},
		{"invalid JSON", `{"username":`, 400},
		{"wrong type", `{"username":42,"password":"x"}`, 400},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r := call(t, srv, "POST", "/api/login", "", tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if jsonField(t, r.body, "token") != nil {
				t.Fatal("a failed login returned a token")
			}
		})
	}
}

// TestTokenVerifiesAgainstJWKS checks the token as a relying party (the
// gateway) would: with nothing but the published JWKS.
func TestTokenVerifiesAgainstJWKS(t *testing.T) {
	t.Parallel()
	_, srv := newTestShop(t)
	tok := login(t, srv, "carol")

	r := call(t, srv, "GET", JWKSPath, "", "")
	if r.status != 200 {
		t.Fatalf("jwks: status %d", r.status)
	}
	set, err := jwk.Parse(r.body)
	if err != nil {
		t.Fatalf("jwks does not parse: %v\n%s", err, r.body)
	}
	if set.Len() != 1 {
		t.Fatalf("jwks has %d keys, want 1", set.Len())
	}
	key, _ := set.Key(0)
	if isPriv, _ := jwk.IsPrivateKey(key); isPriv {
		t.Fatal("the JWKS publishes a private key")
	}
	if kid, ok := key.KeyID(); !ok || kid == "" {
		t.Fatal("the JWKS key has no kid")
	}

	parsed, err := jwt.ParseString(tok, jwt.WithKeySet(set), jwt.WithValidate(true),
		jwt.WithIssuer("https://idp.demo.apiguard.local"), jwt.WithAudience("shop-api"))
	if err != nil {
		t.Fatalf("token does not verify against the JWKS: %v", err)
	}
	if sub, _ := parsed.Subject(); sub != "carol" {
		t.Errorf("sub = %q, want carol", sub)
	}
	var roles []any
	if err := parsed.Get("roles", &roles); err != nil || len(roles) != 1 || roles[0] != "admin" {
		t.Errorf("roles = %v (%v), want [admin]", roles, err)
	}
	exp, _ := parsed.Expiration()
	iat, _ := parsed.IssuedAt()
	if d := exp.Sub(iat); d != 15*time.Minute {
		t.Errorf("lifetime %v, want 15m", d)
	}

	// The header names the key and the algorithm.
	hdr, err := jsonHeader(tok)
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := key.KeyID()
	if hdr["alg"] != "ES256" || hdr["kid"] != kid {
		t.Errorf("header %v, want alg ES256 and kid %s", hdr, kid)
	}

	// Another shop (another key) does not accept it.
	other, err := NewShop()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.idp.verify(tok); err == nil {
		t.Error("a token of one shop verified with another shop's key")
	}
}

func jsonHeader(tok string) (map[string]any, error) {
	part, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

func TestTokenExpires(t *testing.T) {
	t.Parallel()
	s, srv := newTestShop(t)
	tok, err := s.Token("alice")
	if err != nil {
		t.Fatal(err)
	}
	if r := call(t, srv, "GET", "/api/users/alice", tok, ""); r.status != 200 {
		t.Fatalf("fresh token: %d", r.status)
	}
	if _, err := s.Token("mallory"); err == nil {
		t.Error("Token issued for an unknown user")
	}
	s.idp.now = func() time.Time { return time.Now().Add(TokenLifetime + time.Minute) }
	if r := call(t, srv, "GET", "/api/users/alice", tok, ""); r.status != 401 {
		t.Fatalf("expired token: status %d, want 401", r.status)
	}
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	s, srv := newTestShop(t)
	alice, err := s.Token("alice")
	if err != nil {
		t.Fatal(err)
	}
	carol := login(t, srv, "carol")
	order := `{"product_id":2,"quantity":2,"payment":"paypal"}`
	transferOK := `{"to":"DE89370400440532013000","amount":25.5,"currency":"EUR"}`

	tests := []struct {
		desc, method, path, token, body string
		status                          int
	}{
		{"products", "GET", "/api/products", "", "", 200},
		{"product", "GET", "/api/products/3", "", "", 200},
		{"unknown product", "GET", "/api/products/99", "", "", 404},
		{"non-integer product id", "GET", "/api/products/abc", "", "", 400},

		{"own profile", "GET", "/api/users/alice", alice, "", 200},
		{"profile without token", "GET", "/api/users/alice", "", "", 401},
		{"profile with garbage token", "GET", "/api/users/alice", "not-a-jwt", "", 401},
		{"unknown user", "GET", "/api/users/mallory", alice, "", 404},

		{"own order", "GET", "/api/orders/1001", alice, "", 200},
		{"order without token", "GET", "/api/orders/1001", "", "", 401},
		{"unknown order", "GET", "/api/orders/999999", alice, "", 404},
		{"non-integer order id", "GET", "/api/orders/abc", alice, "", 400},

		{"create order", "POST", "/api/orders", alice, order, 201},
		{"create order without token", "POST", "/api/orders", "", order, 401},
		{"create order invalid JSON", "POST", "/api/orders", alice, `{"product_id":`, 400},
		{"create order unknown product", "POST", "/api/orders", alice, `{"product_id":77,"quantity":1,"payment":"card"}`, 422},
		{"create order bad quantity", "POST", "/api/orders", alice, `{"product_id":1,"quantity":0,"payment":"card"}`, 422},
		{"create order bad payment", "POST", "/api/orders", alice, `{"product_id":1,"quantity":1,"payment":"bitcoin"}`, 422},

		{"transfer to IBAN", "POST", "/api/transfer", alice, transferOK, 200},
		{"transfer to user", "POST", "/api/transfer", alice, `{"to":"bob","amount":5,"currency":"EUR"}`, 200},
		{"transfer without token", "POST", "/api/transfer", "", transferOK, 401},
		{"transfer invalid JSON", "POST", "/api/transfer", alice, `{"to":`, 400},
		{"transfer bad amount", "POST", "/api/transfer", alice, `{"to":"bob","amount":-5,"currency":"EUR"}`, 422},
		{"transfer bad currency", "POST", "/api/transfer", alice, `{"to":"bob","amount":5,"currency":"USD"}`, 422},
		{"transfer bad destination", "POST", "/api/transfer", alice, `{"to":"nobody here","amount":5,"currency":"EUR"}`, 422},

		{"admin list as admin", "GET", "/api/admin/users", carol, "", 200},
		{"admin list as customer", "GET", "/api/admin/users", alice, "", 403},
		{"admin list without token", "GET", "/api/admin/users", "", "", 401},

		{"search", "GET", "/api/products?q=jacket&sort=-price&max_price=200", "", "", 200},
		{"search bad max_price", "GET", "/api/products?max_price=cheap", "", "", 400},
		{"reviews", "GET", "/api/products/2/reviews", "", "", 200},
		{"reviews of unknown product", "GET", "/api/products/99/reviews", "", "", 404},
		{"review", "POST", "/api/products/2/reviews", alice, `{"rating":4,"title":"Warm","text":"It's warm."}`, 201},
		{"review without token", "POST", "/api/products/2/reviews", "", `{"rating":4,"title":"Warm","text":""}`, 401},
		{"review bad rating", "POST", "/api/products/2/reviews", alice, `{"rating":9,"title":"Warm","text":""}`, 422},
		{"review unknown product", "POST", "/api/products/99/reviews", alice, `{"rating":4,"title":"x","text":""}`, 404},
		{"update own profile", "PATCH", "/api/users/alice", alice, `{"phone":"+49 30 5550 1234"}`, 200},
		{"update profile without token", "PATCH", "/api/users/alice", "", `{"phone":"+49 30 5550 1234"}`, 401},
		{"update unknown profile", "PATCH", "/api/users/mallory", alice, `{"phone":"+1 555 0100"}`, 404},
		{"update profile invalid JSON", "PATCH", "/api/users/alice", alice, `{"phone":`, 400},

		{"jwks", "GET", JWKSPath, "", "", 200},
		{"unknown path", "GET", "/api/nothing-here", "", "", 404},
		{"wrong method", "DELETE", "/api/products", "", "", 405},
		{"redirect to clean path", "GET", "/api//products", "", "", http.StatusTemporaryRedirect},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r := call(t, srv, tc.method, tc.path, tc.token, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if r.status >= 300 {
				// Every non-2xx from the shop is JSON, and never apiguard's.
				mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type"))
				if mt != "application/problem+json" {
					t.Fatalf("content type %q, want application/problem+json", r.header.Get("Content-Type"))
				}
				typ, _ := jsonField(t, r.body, "type").(string)
				if !strings.HasPrefix(typ, problemTypeBase) {
					t.Fatalf("problem type %q", typ)
				}
				if denied, _ := denial(r.header.Get("Content-Type"), r.body); denied {
					t.Fatal("a shop error looks like an apiguard denial")
				}
			} else if !json.Valid(r.body) {
				t.Fatalf("body is not JSON: %s", r.body)
			}
		})
	}
}

func TestCreateOrder(t *testing.T) {
	t.Parallel()
	_, srv := newTestShop(t)
	bob := login(t, srv, "bob")
	r := call(t, srv, "POST", "/api/orders", bob, `{"product_id":2,"quantity":2,"payment":"paypal"}`)
	if r.status != 201 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var o order
	if err := json.Unmarshal(r.body, &o); err != nil {
		t.Fatal(err)
	}
	if o.Owner != "bob" || o.ID < 1006 || o.Total != 138 || o.Status != "placed" || o.ShippingAddress.City != "Amsterdam" {
		t.Errorf("order = %+v", o)
	}
	if loc := r.header.Get("Location"); loc != "/api/orders/"+jsonNumber(o.ID) {
		t.Errorf("Location = %q", loc)
	}
	if g := call(t, srv, "GET", "/api/orders/"+jsonNumber(o.ID), bob, ""); g.status != 200 {
		t.Errorf("new order: status %d", g.status)
	}
}

func jsonNumber(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestHoles documents the shop's deliberate vulnerabilities: apiguard closes
// them from outside. If one of these fails, the fixture changed.
func TestHoles(t *testing.T) {
	t.Parallel()
	_, srv := newTestShop(t)
	bob := login(t, srv, "bob")

	t.Run("BOLA: any user reads another user's profile", func(t *testing.T) {
		r := call(t, srv, "GET", "/api/users/alice", bob, "")
		if r.status != 200 || jsonField(t, r.body, "iban") != "DE89370400440532013000" {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("BOLA: any user reads another user's order and address", func(t *testing.T) {
		r := call(t, srv, "GET", "/api/orders/1001", bob, "")
		if r.status != 200 || jsonField(t, r.body, "owner") != "alice" {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("mass assignment: the client sets the order status", func(t *testing.T) {
		r := call(t, srv, "POST", "/api/orders", bob, `{"product_id":5,"quantity":1,"payment":"invoice","status":"paid"}`)
		if r.status != 201 || jsonField(t, r.body, "status") != "paid" {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("mass assignment: the client makes itself admin", func(t *testing.T) {
		s, srv := newTestShop(t)
		mallory := login(t, srv, "bob")
		r := call(t, srv, "PATCH", "/api/users/bob", mallory, `{"role":"admin"}`)
		if r.status != 200 || jsonField(t, r.body, "role") != "admin" {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		tok := login(t, srv, "bob")
		if r := call(t, srv, "GET", "/api/admin/users", tok, ""); r.status != 200 {
			t.Fatalf("bob as admin: status %d", r.status)
		}
		if p, _ := s.profile("bob"); p.Username != "bob" || p.Address.City != "Amsterdam" {
			t.Errorf("profile %+v", p)
		}
	})
	t.Run("SSRF: the shop downloads any avatar URL", func(t *testing.T) {
		_, srv := newTestShop(t)
		hit := make(chan string, 1)
		internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hit <- r.URL.Path
			_, _ = io.WriteString(w, "secret")
		}))
		defer internal.Close()
		r := call(t, srv, "PATCH", "/api/users/bob", login(t, srv, "bob"), `{"avatar_url":"`+internal.URL+`/latest/meta-data/"}`)
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		select {
		case p := <-hit:
			if p != "/latest/meta-data/" {
				t.Errorf("fetched %s", p)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the shop did not fetch the avatar URL")
		}
	})
	t.Run("stored XSS: reviews are kept as sent", func(t *testing.T) {
		payload := `<script>alert(1)</script>`
		if r := call(t, srv, "POST", "/api/products/4/reviews", bob, `{"rating":5,"title":"x","text":"`+payload+`"}`); r.status != 201 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		r := call(t, srv, "GET", "/api/products/4/reviews", "", "")
		if !strings.Contains(string(r.body), `\u003cscript\u003ealert(1)\u003c/script\u003e`) {
			t.Fatalf("review not stored as sent: %s", r.body)
		}
	})
	t.Run("zombie API: v1 profile without authentication", func(t *testing.T) {
		r := call(t, srv, "GET", "/api/v1/users/carol", "", "")
		if r.status != 200 || jsonField(t, r.body, "date_of_birth") != "1979-06-23" {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		if r.header.Get("Deprecation") == "" {
			t.Error("no Deprecation header")
		}
		if r := call(t, srv, "GET", "/api/v1/users/nobody", "", ""); r.status != 404 {
			t.Errorf("unknown v1 user: %d", r.status)
		}
	})
	t.Run("shadow API: debug vars leak a secret", func(t *testing.T) {
		r := call(t, srv, "GET", "/api/debug/vars", "", "")
		if r.status != 200 || !strings.Contains(string(r.body), "payment_api_key") {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("no body limit: a 2MiB body is read and parsed", func(t *testing.T) {
		body := `{"product_id":1,"quantity":1,"payment":"card","note":"` + strings.Repeat("x", 2<<20) + `"}`
		if r := call(t, srv, "POST", "/api/orders", bob, body); r.status != 201 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("no login throttling: 30 wrong passwords in a row are all just 401", func(t *testing.T) {
		for range 30 {
			if r := call(t, srv, "POST", "/api/login", "", `{"username":"alice","password":"guess"}`); r.status != 401 {
				t.Fatalf("status %d", r.status)
			}
		}
		login(t, srv, "alice")
	})
}
