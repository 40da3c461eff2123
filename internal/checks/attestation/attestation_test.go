package attestation

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/attest"
	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/apiguard/apiguard/internal/state"
)

func newService(t testing.TB) *attest.Service {
	t.Helper()
	pemBytes, _, err := attest.GenerateKey("EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := attest.NewService(attest.Config{Issuer: "iss", SigningKeys: []attest.KeySource{{Env: "K"}}},
		attest.Options{LookupEnv: func(string) (string, bool) { return string(pemBytes), true }})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func token(t testing.TB, svc *attest.Service, mutate func(*attest.Claims)) string {
	t.Helper()
	now := time.Now()
	c := attest.Claims{Issuer: "iss", Subject: "app-a", Device: "dev-1", IssuedAt: now.Unix(), Expiry: now.Add(time.Minute).Unix(), Provider: "integrity", Level: "software"}
	if mutate != nil {
		mutate(&c)
	}
	s, err := svc.Keyring().Issue(&c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bind(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestCheck(t *testing.T) {
	svc := newService(t)
	st := state.NewMemory(state.MemoryOptions{})
	t.Cleanup(func() { _ = st.Close() })
	bound := token(t, svc, func(c *attest.Claims) { c.Binding = bind("Bearer alice") })
	once := token(t, svc, nil)
	cases := []struct {
		name   string
		cfg    Config
		token  string
		authz  string
		repeat bool // send twice; the second result is checked
		status int
		slug   string
	}{
		{"valid", Config{}, token(t, svc, nil), "", false, 0, ""},
		{"missing required", Config{}, "", "", false, 401, ReasonMissing},
		{"missing optional", Config{Token: "optional"}, "", "", false, 0, ""},
		{"invalid optional", Config{Token: "optional"}, "garbage", "", false, 401, ReasonInvalid},
		{"expired", Config{}, token(t, svc, func(c *attest.Claims) { c.Expiry = time.Now().Add(-time.Second).Unix() }), "", false, 401, ReasonExpired},
		{"other issuer", Config{}, token(t, svc, func(c *attest.Claims) { c.Issuer = "x" }), "", false, 401, ReasonInvalid},
		{"app allowed", Config{Apps: []string{"app-a"}}, token(t, svc, nil), "", false, 0, ""},
		{"app not allowed", Config{Apps: []string{"app-b"}}, token(t, svc, nil), "", false, 403, ReasonNotAllowed},
		{"level too low", Config{MinLevel: "hardware"}, token(t, svc, nil), "", false, 403, ReasonNotAllowed},
		{"bound ok", Config{BindHeader: "authorization"}, bound, "Bearer alice", false, 0, ""},
		{"bound to another", Config{BindHeader: "Authorization"}, bound, "Bearer bob", false, 401, ReasonUnbound},
		{"bound, header absent", Config{BindHeader: "Authorization"}, bound, "", false, 401, ReasonUnbound},
		{"not bound", Config{BindHeader: "Authorization"}, token(t, svc, nil), "Bearer alice", false, 401, ReasonUnbound},
		{"single use first", Config{SingleUse: true}, token(t, svc, nil), "", false, 0, ""},
		{"single use replay", Config{SingleUse: true}, once, "", true, 401, ReasonReplayed},
		{"reuse allowed", Config{}, once, "", true, 0, ""},
		{"no cache", Config{CacheSize: -1}, token(t, svc, nil), "", false, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			chk := New(tc.cfg, svc, st)
			run := func() (pipeline.Verdict, *pipeline.Request) {
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				if tc.token != "" {
					r.Header.Set(attest.TokenHeader, tc.token)
				}
				if tc.authz != "" {
					r.Header.Set("Authorization", tc.authz)
				}
				req := &pipeline.Request{HTTP: r}
				v, err := chk.Check(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				if r.Header.Get(attest.TokenHeader) != "" {
					t.Fatal("token header left for the upstream")
				}
				return v, req
			}
			v, req := run()
			if tc.repeat {
				v, req = run()
			}
			if tc.slug == "" {
				if v.Action != pipeline.Allow {
					t.Fatalf("denied: %+v", v)
				}
				if tc.token != "" && (req.Identity.App != "app-a" || req.Identity.Device != "dev-1") {
					t.Fatalf("identity %+v", req.Identity)
				}
				return
			}
			if v.Action != pipeline.Deny || v.Status != tc.status || v.Reason != tc.slug {
				t.Fatalf("verdict %+v, want %d %s", v, tc.status, tc.slug)
			}
		})
	}
}

// TestCachedTokenStillExpires: a cached token is refused once its exp passed.
func TestCachedTokenStillExpires(t *testing.T) {
	svc := newService(t)
	chk := New(Config{}, svc, nil)
	now := time.Now()
	tok := token(t, svc, func(c *attest.Claims) { c.Expiry = now.Add(10 * time.Second).Unix() })
	check := func() pipeline.Verdict {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set(attest.TokenHeader, tok)
		v, _ := chk.Check(context.Background(), &pipeline.Request{HTTP: r})
		return v
	}
	if v := check(); v.Action != pipeline.Allow {
		t.Fatalf("fresh: %+v", v)
	}
	chk.now = func() time.Time { return now.Add(11 * time.Second) }
	if v := check(); v.Reason != ReasonExpired {
		t.Fatalf("cached after exp: %+v", v)
	}
}

func TestCacheBounded(t *testing.T) {
	c := newCache(32)
	for i := range 1000 {
		c.put(strings.Repeat("x", i), &attest.Claims{})
	}
	n := 0
	for i := range c.shards {
		n += len(c.shards[i].m)
	}
	if n > 32 {
		t.Fatalf("cache holds %d entries, bound 32", n)
	}
}

// BenchmarkCheck compares the cached path with full signature verification
// (the first request of each token).
func BenchmarkCheck(b *testing.B) {
	svc := newService(b)
	tok := token(b, svc, func(c *attest.Claims) { c.Binding = bind("Bearer alice") })
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"cached", Config{}},
		{"cached+bound", Config{BindHeader: "Authorization"}},
		{"uncached", Config{CacheSize: -1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			chk := New(bc.cfg, svc, nil)
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Authorization", "Bearer alice")
			req := &pipeline.Request{HTTP: r}
			b.ReportAllocs()
			for b.Loop() {
				r.Header[attest.TokenHeader] = []string{tok}
				if v, _ := chk.Check(context.Background(), req); v.Action != pipeline.Allow {
					b.Fatalf("%+v", v)
				}
			}
		})
	}
}
