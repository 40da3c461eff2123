package jwt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/lestrrat-go/jwx/v3/jwa"
)

// independentlySigned checks an accepted token's signature with the
// standard library only (not jwx, not our parser), against the configured
// keys.
func independentlySigned(tok string, es *ecdsa.PublicKey, ed ed25519.PublicKey) bool {
	i := strings.LastIndexByte(tok, '.')
	if i < 0 {
		return false
	}
	input, sig := tok[:i], tok[i+1:]
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return false
	}
	if ed25519.Verify(ed, []byte(input), raw) {
		return true
	}
	if len(raw) == 64 {
		h := sha256.Sum256([]byte(input))
		r, s := new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])
		return ecdsa.Verify(es, h[:], r, s)
	}
	return false
}

// FuzzParseToken feeds arbitrary tokens through the whole token path
// (extraction, limits, header and claims parsing, key choice,
// verification, claims checks, cache). It must never panic, and must never
// accept a token not signed by a configured key.
func FuzzParseToken(f *testing.F) {
	es := newES("es", elliptic.P256(), jwa.ES256())
	ed := newEd("ed")
	c, err := New(Config{
		Required: ptr(false),
		Issuers: []Issuer{{
			Issuer: testIss, Audiences: []string{testAud}, Algorithms: []string{"ES256", "EdDSA"},
			Keys: []string{string(jwksOf(f, es, ed))},
		}},
		ForwardClaims: map[string]string{"sub": "X-User", "roles": "X-Roles"},
	}, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	valid := es.mint(f, claims(map[string]any{"roles": []string{"a", "b"}}))
	parts := strings.Split(valid, ".")
	f.Add(valid)
	f.Add(ed.mint(f, claims(map[string]any{"exp": 1.5e9})))
	f.Add(ed.mint(f, claims(map[string]any{"aud": []any{1, "api"}, "sub": map[string]any{"a": 1}})))
	f.Add(unsigned(`{"alg":"none"}`, `{"iss":"`+testIss+`"}`))
	f.Add(unsigned(`{"alg":"ES256","kid":"es"}`, `{"iss":"`+testIss+`","exp":1e300}`) + parts[2])
	f.Add(parts[0] + "." + parts[1])
	f.Add("..")
	f.Add("a.b.c")
	f.Add("")
	f.Add("Bearer")
	f.Fuzz(func(t *testing.T, tok string) {
		req := &pipeline.Request{HTTP: request("").HTTP}
		req.HTTP.Header["Authorization"] = []string{"Bearer " + tok}
		v, err := c.Check(t.Context(), req)
		if err != nil {
			t.Fatalf("error on static keys: %v", err)
		}
		if v.Action == pipeline.Allow && req.Identity.Claims != nil {
			if !independentlySigned(strings.TrimSpace(tok), es.pub.(*ecdsa.PublicKey), ed.pub.(ed25519.PublicKey)) {
				t.Fatalf("accepted a token not signed by a configured key: %q", tok)
			}
		}
		if v.Action == pipeline.Deny && (v.Status != 401 || details[v.Reason] == "") {
			t.Fatalf("bad verdict %+v", v)
		}
	})
}
