package httpsig

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/apiguard/apiguard/internal/pipeline"
)

// TestJWKSKeys: keys served by a JWKS verify by kid; an unknown kid makes
// the check refetch (at most once per floor) and a rotated-in key then
// verifies.
func TestJWKSKeys(t *testing.T) {
	t.Parallel()
	pub1, priv1, _ := ed25519.GenerateKey(rand.Reader)
	pub2, priv2, _ := ed25519.GenerateKey(rand.Reader)
	var fetches atomic.Int64
	var rotated atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		set := jwk.NewSet()
		k1, _ := jwk.Import(pub1)
		_ = k1.Set(jwk.KeyIDKey, "app-1")
		_ = set.AddKey(k1)
		if rotated.Load() {
			k2, _ := jwk.Import(pub2)
			_ = k2.Set(jwk.KeyIDKey, "app-2")
			_ = set.AddKey(k2)
		}
		_ = json.NewEncoder(w).Encode(set)
	}))
	defer srv.Close()
	c, err := New(Config{JWKSURL: srv.URL, RequiredComponents: []string{"@method", "@target-uri"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	check := func(kid string, key ed25519.PrivateKey) string {
		r := httptest.NewRequest("POST", "http://api.example.com/transfer", nil)
		sign(t, r, "sig1", fmt.Sprintf(`("@method" "@target-uri");created=%d;keyid="%s"`, time.Now().Unix(), kid), edSigner(key))
		v, err := c.Check(context.Background(), &pipeline.Request{HTTP: r})
		if err != nil {
			t.Fatal(err)
		}
		return v.Reason
	}
	if got := check("app-1", priv1); got != "" {
		t.Fatalf("JWKS key: %q", got)
	}
	if got := check("app-1", priv2); got != ReasonInvalid {
		t.Fatalf("wrong key under a JWKS kid: %q", got)
	}
	rotated.Store(true)
	if got := check("app-2", priv2); got != ReasonUnknownKey {
		t.Fatalf("a kid not fetched yet: %q", got)
	}
	// Within the floor, unknown kids do not refetch.
	before := fetches.Load()
	for range 20 {
		check("nope", priv2)
	}
	if fetches.Load() != before {
		t.Fatalf("unknown kids caused %d fetches within the floor", fetches.Load()-before)
	}
	// Past the floor an unknown kid triggers one refetch; the new key verifies.
	c.jwks.last.Store(time.Now().Add(-time.Minute).UnixNano())
	check("app-2", priv2)
	deadline := time.Now().Add(3 * time.Second)
	for check("app-2", priv2) != "" {
		if time.Now().After(deadline) {
			t.Fatal("rotated key never verified")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
