package jwt

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

const (
	testIss = "https://idp.test"
	testAud = "api"
)

// signer is a real key pair that mints tokens.
type signer struct {
	alg  jwa.SignatureAlgorithm
	kid  string
	priv any
	pub  any
}

func newES(kid string, curve elliptic.Curve, alg jwa.SignatureAlgorithm) signer {
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		panic(err)
	}
	return signer{alg: alg, kid: kid, priv: k, pub: &k.PublicKey}
}

func newEd(kid string) signer {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return signer{alg: jwa.EdDSA(), kid: kid, priv: priv, pub: pub}
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func newRS(kid string) signer {
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return signer{alg: jwa.RS256(), kid: kid, priv: rsaKey, pub: &rsaKey.PublicKey}
}

// mint signs claims with s, putting s.kid in the header when set.
func (s signer) mint(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	hdr := jws.NewHeaders()
	if s.kid != "" {
		if err := hdr.Set(jws.KeyIDKey, s.kid); err != nil {
			tb.Fatal(err)
		}
	}
	_ = hdr.Set(jws.TypeKey, "JWT")
	tok, err := jws.Sign(payload, jws.WithKey(s.alg, s.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		tb.Fatal(err)
	}
	return string(tok)
}

func pemOf(tb testing.TB, pub any) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// jwksOf renders the public keys of signers as a JWKS document.
func jwksOf(tb testing.TB, ss ...signer) []byte {
	tb.Helper()
	set := jwk.NewSet()
	for _, s := range ss {
		k, err := jwk.Import(s.pub)
		if err != nil {
			tb.Fatal(err)
		}
		_ = k.Set(jwk.KeyIDKey, s.kid)
		_ = k.Set(jwk.AlgorithmKey, s.alg)
		_ = k.Set(jwk.KeyUsageKey, "sig")
		if err := set.AddKey(k); err != nil {
			tb.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// claims returns valid claims for the test issuer, with overrides; a nil
// override value deletes the claim.
func claims(over map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss":   testIss,
		"aud":   testAud,
		"sub":   "user-1",
		"exp":   now.Add(time.Hour).Unix(),
		"iat":   now.Unix(),
		"scope": "read write",
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func request(token string) *pipeline.Request {
	r := httptest.NewRequest(http.MethodGet, "http://api.test/x", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return &pipeline.Request{HTTP: r}
}

func mustNew(tb testing.TB, cfg Config) *Check {
	tb.Helper()
	c, err := New(cfg, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

func run(c *Check, req *pipeline.Request) (pipeline.Verdict, error) {
	return c.Check(context.Background(), req)
}

func ptr[T any](v T) *T { return &v }
