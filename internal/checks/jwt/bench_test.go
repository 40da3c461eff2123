package jwt

import (
	"context"
	"crypto/elliptic"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/lestrrat-go/jwx/v3/jwa"
)

func benchCheck(b *testing.B, s signer, cacheSize int) {
	c, err := New(Config{
		CacheSize: cacheSize,
		Issuers: []Issuer{{
			Issuer: testIss, Audiences: []string{testAud}, Algorithms: []string{s.alg.String()},
			Keys: []string{string(jwksOf(b, s))}, RequiredClaims: []string{"sub"},
		}},
		ForwardClaims: map[string]string{"sub": "X-User"},
	}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	tok := s.mint(b, claims(nil))
	r := httptest.NewRequest(http.MethodGet, "http://api.test/x", nil)
	auth := []string{"Bearer " + tok}
	ctx := context.Background()
	req := &pipeline.Request{HTTP: r}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.Header["Authorization"] = auth
		v, _ := c.Check(ctx, req)
		if v.Action != pipeline.Allow {
			b.Fatal(v)
		}
	}
}

// BenchmarkCached is the hot path: a token seen before (target ≤ 1 µs/op).
func BenchmarkCached(b *testing.B) {
	benchCheck(b, newES("k", elliptic.P256(), jwa.ES256()), 0)
}

// BenchmarkCachedParallel is the cached path from every core.
func BenchmarkCachedParallel(b *testing.B) {
	s := newES("k", elliptic.P256(), jwa.ES256())
	c, err := New(Config{Issuers: []Issuer{{Issuer: testIss, Audiences: []string{testAud}, Algorithms: []string{"ES256"}, Keys: []string{string(jwksOf(b, s))}}}}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	auth := []string{"Bearer " + s.mint(b, claims(nil))}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest(http.MethodGet, "http://api.test/x", nil)
		req := &pipeline.Request{HTTP: r}
		for pb.Next() {
			r.Header["Authorization"] = auth
			if v, _ := c.Check(context.Background(), req); v.Action != pipeline.Allow {
				b.Fatal(v)
			}
		}
	})
}

func BenchmarkUncachedES256(b *testing.B) {
	benchCheck(b, newES("k", elliptic.P256(), jwa.ES256()), -1)
}

func BenchmarkUncachedEdDSA(b *testing.B) {
	benchCheck(b, newEd("k"), -1)
}

func BenchmarkUncachedRS256(b *testing.B) {
	benchCheck(b, newRS("k"), -1)
}
