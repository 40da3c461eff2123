package jwt

import (
	"crypto/elliptic"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/lestrrat-go/jwx/v3/jwa"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	es := newES("k", elliptic.P256(), jwa.ES256())
	rs := newRS("r")
	dir := t.TempDir()
	good := filepath.Join(dir, "es.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	jwksFile := filepath.Join(dir, "keys.json")
	_ = os.WriteFile(good, []byte(pemOf(t, es.pub)), 0o600)
	_ = os.WriteFile(garbage, []byte("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n"), 0o600)
	_ = os.WriteFile(jwksFile, jwksOf(t, es), 0o600)

	ok := Issuer{Issuer: testIss, Audiences: []string{testAud}, Algorithms: []string{"ES256"}, KeyFiles: []string{good, jwksFile}}
	cases := []struct {
		name string
		cfg  Config
		want []string // paths
		msg  string   // substring of the first error
	}{
		{"valid", Config{Issuers: []Issuer{ok}}, nil, ""},
		{"valid jwks", Config{Issuers: []Issuer{{Issuer: testIss, Audiences: []string{"a"}, Algorithms: []string{"EdDSA", "ES256"}, JWKSURL: "https://idp.test/jwks"}}}, nil, ""},
		{"no issuers", Config{}, []string{"jwt.issuers"}, "at least one issuer"},
		{"off without issuers", Config{}, nil, ""},
		{"alg none", Config{Issuers: []Issuer{{Issuer: testIss, Audiences: []string{"a"}, Algorithms: []string{"ES256", "none"}, KeyFiles: []string{good}}}},
			[]string{"jwt.issuers[0].algorithms[1]"}, `"none" is never accepted`},
		{"unknown alg", Config{Issuers: []Issuer{{Issuer: testIss, Audiences: []string{"a"}, Algorithms: []string{"ES257"}, KeyFiles: []string{good}}}},
			[]string{"jwt.issuers[0].algorithms[0]", "jwt.issuers[0].key_files[0]"}, "unsupported algorithm"},
		{"HS mixed with RS", Config{Issuers: []Issuer{{Issuer: testIss, Audiences: []string{"a"}, Algorithms: []string{"RS256", "HS256"}, JWKSURL: "https://idp.test/jwks"}}},
			[]string{"jwt.issuers[0].algorithms"}, "cannot be mixed"},
		{"no algorithms", Config{Issuers: []Issuer{{Issuer: testIss, Audiences: []string{"a"}, JWKSURL: "https://idp.test/jwks"}}},
			[]string{"jwt.issuers[0].algorithms"}, "at least one algorithm"},
		{"no key source", Config{Issuers: []Issuer{{Issuer: testIss, Audiences: []string{"a"}, Algorithms: []string{"ES256"}}}},
			[]string{"jwt.issuers[0]"}, "key source is required"},
		{"bad urls", Config{Issuers: []Issuer{
			{Issuer: "a", Audiences: []string{"a"}, Algorithms: []string{"ES256"}, JWKSURL: "ftp://idp.test/jwks"},
			{Issuer: "b", Audiences: []string{"a"}, Algorithms: []string{"ES256"}, JWKSURL: "https:///jwks"},
			{Issuer: "c", Audiences: []string{"a"}, Algorithms: []string{"ES256"}, JWKSURL: "http://[::1"},
		}}, []string{"jwt.issuers[0].jwks_url", "jwt.issuers[1].jwks_url", "jwt.issuers[2].jwks_url"}, "http or https"},
		{"unreadable and bad key files", Config{Issuers: []Issuer{{Issuer: testIss, Audiences: []string{"a"}, Algorithms: []string{"ES256"},
			KeyFiles: []string{filepath.Join(dir, "missing.pem"), garbage, good}}}},
			[]string{"jwt.issuers[0].key_files[0]", "jwt.issuers[0].key_files[1]"}, "cannot read key file"},
		{"key does not fit algorithms", Config{Issuers: []Issuer{{Issuer: testIss, Audiences: []string{"a"}, Algorithms: []string{"ES256"},
			Keys: []string{pemOf(t, rs.pub), "not a key"}}}},
			[]string{"jwt.issuers[0].keys[0]", "jwt.issuers[0].keys[1]"}, "RSA key cannot verify"},
		{"bad durations", Config{Skew: "forever", Issuers: []Issuer{{Issuer: testIss, Audiences: []string{"a"}, Algorithms: []string{"ES256"},
			JWKSURL: "https://idp.test/jwks", RefreshInterval: "-1m", MinRefreshInterval: "soon"}}},
			[]string{"jwt.issuers[0].refresh_interval", "jwt.issuers[0].min_refresh_interval", "jwt.skew"}, "positive duration"},
		{"skew too large", Config{Skew: "1h", Issuers: []Issuer{ok}}, []string{"jwt.skew"}, "between 0s"},
		{"issuer fields", Config{Issuers: []Issuer{
			{Algorithms: []string{"ES256"}, KeyFiles: []string{good}, RequiredClaims: []string{""}},
			ok, ok,
		}}, []string{"jwt.issuers[0].issuer", "jwt.issuers[0].audiences", "jwt.issuers[0].required_claims[0]", "jwt.issuers[2].issuer"}, "required"},
		{"token, forward, cache", Config{Issuers: []Issuer{ok}, Token: TokenSource{Header: "Bad Header", Cookie: "a;b"},
			ForwardClaims: map[string]string{"a": "X-A", "b": "x-a", "c": "Host", "d": "bad header"}, CacheSize: -2},
			[]string{"jwt.token.header", "jwt.token.cookie", "jwt.forward_claims.b", "jwt.forward_claims.c", "jwt.forward_claims.d", "jwt.cache_size"}, "not a valid header name"},
		{"mode", Config{Options: optionsMode("sometimes"), Issuers: []Issuer{ok}}, []string{"jwt.mode"}, "must be enforce"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if tc.name == "off without issuers" {
				cfg.Mode = "off"
			}
			errs := &field.Errors{}
			cfg.Validate("jwt", errs)
			var got []string
			for _, e := range errs.List {
				got = append(got, e.Path)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("paths = %q, want %q\n%v", got, tc.want, errs.Err())
			}
			if tc.msg != "" && !strings.Contains(errs.List[0].Msg, tc.msg) {
				t.Errorf("message %q, want %q", errs.List[0].Msg, tc.msg)
			}
			if len(tc.want) > 0 {
				if _, err := New(cfg, nil, nil); err == nil {
					t.Error("New accepted an invalid config")
				}
			}
		})
	}
}

func optionsMode(m string) (o pipelineOptions) {
	o.Mode = pipelineMode(m)
	return o
}

type (
	pipelineOptions = pipeline.Options
	pipelineMode    = pipeline.Mode
)
