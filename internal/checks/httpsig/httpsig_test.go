package httpsig

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/apiguard/apiguard/internal/state"
)

// fullInput covers what a gateway deployment would require.
func fullInput(created int64, keyid, extra string) string {
	return fmt.Sprintf(`("@method" "@target-uri" "content-digest" "content-type");created=%d;keyid=%q%s`, created, keyid, extra)
}

func fullConfig() Config {
	return Config{Keys: []Key{edKey(), ecKey()}, RequiredComponents: []string{"@method", "@target-uri"}, RequireContentDigest: true}
}

func signedRequest(t *testing.T, input string) *pipeline.Request {
	t.Helper()
	req := testRequest(t)
	sign(t, req.HTTP, "sig1", input, edSigner(edPrivate(t)))
	return req
}

func TestOwnSignatures(t *testing.T) {
	t.Parallel()
	chk := newCheck(t, fullConfig(), nil)
	expectVerdict(t, chk, signedRequest(t, fullInput(rfcCreated, "test-key-ed25519", "")), "")

	// ecdsa-p256-sha256, randomised r||s.
	req := testRequest(t)
	sign(t, req.HTTP, "sig1", fullInput(rfcCreated, "test-key-ecc-p256", `;alg="ecdsa-p256-sha256"`), ecSigner(t, ecPrivate(t)))
	expectVerdict(t, chk, req, "")
	if req.Identity.Subject != "httpsig:test-key-ecc-p256" {
		t.Fatalf("subject %q", req.Identity.Subject)
	}

	// An earlier identity stands.
	req = signedRequest(t, fullInput(rfcCreated, "test-key-ed25519", ""))
	req.Identity.Subject = "alice"
	expectVerdict(t, chk, req, "")
	if req.Identity.Subject != "alice" {
		t.Fatalf("subject %q", req.Identity.Subject)
	}

	// A route rewrite of r.URL after receipt does not change what was
	// signed: path and query come from the request target as received.
	req = signedRequest(t, fullInput(rfcCreated, "test-key-ed25519", ""))
	req.HTTP.URL.Path, req.HTTP.URL.RawQuery = "/rewritten", ""
	expectVerdict(t, chk, req, "")

	// A second signature by an unknown key is skipped; the known one is used.
	req = testRequest(t)
	sign(t, req.HTTP, "other", fullInput(rfcCreated, "someone-else", ""), edSigner(edPrivate(t)))
	sign(t, req.HTTP, "sig1", fullInput(rfcCreated, "test-key-ed25519", ""), edSigner(edPrivate(t)))
	expectVerdict(t, chk, req, "")
}

func TestRefused(t *testing.T) {
	t.Parallel()
	good := fullInput(rfcCreated, "test-key-ed25519", "")
	cases := []struct {
		desc   string
		input  string
		mutate func(*pipeline.Request)
		reason string
	}{
		{"tampered method", good, func(r *pipeline.Request) { r.HTTP.Method = "PUT" }, ReasonInvalid},
		{"tampered path", good, func(r *pipeline.Request) { r.HTTP.URL.Path = "/bar"; r.HTTP.RequestURI = "/bar?param=Value&Pet=dog" }, ReasonInvalid},
		{"tampered query", good, func(r *pipeline.Request) { r.HTTP.RequestURI = "/foo?param=Value&Pet=cat" }, ReasonInvalid},
		{"tampered authority", good, func(r *pipeline.Request) { r.HTTP.Host = "evil.example" }, ReasonInvalid},
		{"plain http instead of https", good, func(r *pipeline.Request) { r.HTTP.TLS = nil }, ReasonInvalid},
		{"tampered header", good, func(r *pipeline.Request) { r.HTTP.Header.Set("Content-Type", "text/plain") }, ReasonInvalid},
		{"covered header removed", good, func(r *pipeline.Request) { r.HTTP.Header.Del("Content-Type") }, ReasonInvalid},
		{"tampered body", good, func(r *pipeline.Request) { r.Body = []byte(`{"hello": "w0rld"}`) }, ReasonDigestMismatch},
		{"tampered digest", good, func(r *pipeline.Request) {
			r.HTTP.Header.Set("Content-Digest", "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:")
		}, ReasonInvalid},
		{"body not buffered", good, func(r *pipeline.Request) { r.Body = nil }, ReasonDigestMismatch},
		{"tampered signature", good, func(r *pipeline.Request) {
			s := r.HTTP.Header.Get("Signature")
			b := []byte(s)
			i := strings.IndexByte(s, ':') + 2
			b[i] ^= 1 // flip a base64 character to another valid one or garbage
			if b[i] == ':' || b[i] == '=' {
				b[i] = 'A'
			}
			r.HTTP.Header.Set("Signature", string(b))
		}, ReasonInvalid},
		{"expired (max_age)", fullInput(rfcCreated-600, "test-key-ed25519", ""), nil, ReasonExpired},
		{"created in the future", fullInput(rfcCreated+120, "test-key-ed25519", ""), nil, ReasonExpired},
		{"expires passed", fullInput(rfcCreated, "test-key-ed25519", fmt.Sprintf(";expires=%d", rfcCreated+5)), nil, ReasonExpired},
		{"no created", `("@method" "@target-uri" "content-digest");keyid="test-key-ed25519"`, nil, ReasonMalformed},
		{"alg mismatch", fullInput(rfcCreated, "test-key-ed25519", `;alg="hmac-sha256"`), nil, ReasonInvalid},
		{"required component not covered", `("@method" "@path" "@query" "content-digest");created=1618884473;keyid="test-key-ed25519"`, nil, ReasonComponents},
		{"content-digest not covered", `("@method" "@target-uri");created=1618884473;keyid="test-key-ed25519"`, nil, ReasonComponents},
		{"unknown keyid", fullInput(rfcCreated, "nobody", ""), nil, ReasonUnknownKey},
		{"keyid of wrong type", `("@method" "@target-uri" "content-digest");created=1618884473;keyid=tok`, nil, ReasonMalformed},
		{"duplicate component", `("@method" "@method" "@target-uri" "content-digest");created=1618884473;keyid="test-key-ed25519"`, nil, ReasonMalformed},
		{"unsupported component", `("@method" "@target-uri" "content-digest" "@bogus");created=1618884473;keyid="test-key-ed25519"`, nil, ReasonMalformed},
		{"missing headers", good, func(r *pipeline.Request) { r.HTTP.Header.Del("Signature") }, ReasonMissing},
		{"malformed Signature-Input", good, func(r *pipeline.Request) { r.HTTP.Header.Set("Signature-Input", `sig1=("@method"`) }, ReasonMalformed},
		{"malformed Signature", good, func(r *pipeline.Request) { r.HTTP.Header.Set("Signature", `sig1="not bytes"`) }, ReasonMalformed},
		{"label mismatch", good, func(r *pipeline.Request) {
			r.HTTP.Header.Set("Signature", strings.Replace(r.HTTP.Header.Get("Signature"), "sig1=", "sig2=", 1))
		}, ReasonMalformed},
	}
	chk := newCheck(t, fullConfig(), nil)
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			req := signedRequest(t, tc.input)
			if tc.mutate != nil {
				tc.mutate(req)
			}
			v := expectVerdict(t, chk, req, tc.reason)
			if req.Identity.Subject != "" {
				t.Fatal("identity set on a refused request")
			}
			for _, secretish := range []string{"test-key-ed25519", "nobody", "param=Value", "hello"} {
				if strings.Contains(v.Detail, secretish) {
					t.Fatalf("detail echoes input: %q", v.Detail)
				}
			}
		})
	}
}

func TestNoSignature(t *testing.T) {
	t.Parallel()
	chk := newCheck(t, fullConfig(), nil)
	expectVerdict(t, chk, testRequest(t), ReasonMissing)
	expectVerdict(t, chk, &pipeline.Request{}, ReasonMissing)
}

func TestDigestOptional(t *testing.T) {
	t.Parallel()
	// Without require_content_digest an unbuffered body passes, but a
	// buffered body that contradicts its digest does not.
	chk := newCheck(t, Config{Keys: []Key{edKey()}}, nil)
	req := signedRequest(t, `("@method" "@target-uri");created=1618884473;keyid="test-key-ed25519"`)
	req.Body = nil
	expectVerdict(t, chk, req, "")
	req = signedRequest(t, `("@method" "@target-uri");created=1618884473;keyid="test-key-ed25519"`)
	req.Body = []byte("other")
	expectVerdict(t, chk, req, ReasonDigestMismatch)
}

func TestNonceReplay(t *testing.T) {
	t.Parallel()
	mem := state.NewMemory(state.MemoryOptions{})
	defer mem.Close()
	cfg := fullConfig()
	cfg.RequireNonce = true
	chk := newCheck(t, cfg, mem)
	input := fullInput(rfcCreated, "test-key-ed25519", `;nonce="b3k2pp5k7z-50gnwp.yemd"`)
	expectVerdict(t, chk, signedRequest(t, input), "")
	expectVerdict(t, chk, signedRequest(t, input), ReasonReplayed)
	// Another nonce is fine; no nonce is refused.
	expectVerdict(t, chk, signedRequest(t, fullInput(rfcCreated, "test-key-ed25519", `;nonce="another"`)), "")
	expectVerdict(t, chk, signedRequest(t, fullInput(rfcCreated, "test-key-ed25519", "")), ReasonMalformed)
	// A forged request does not burn the nonce.
	req := signedRequest(t, fullInput(rfcCreated, "test-key-ed25519", `;nonce="third"`))
	req.HTTP.Method = "DELETE"
	expectVerdict(t, chk, req, ReasonInvalid)
	expectVerdict(t, chk, signedRequest(t, fullInput(rfcCreated, "test-key-ed25519", `;nonce="third"`)), "")

	if _, err := New(cfg, nil); err == nil {
		t.Fatal("require_nonce without a backend accepted")
	}
}

type failingBackend struct{ state.Backend }

func (failingBackend) PutNX(context.Context, string, []byte, time.Duration) (bool, error) {
	return false, errors.New("down")
}

func TestNonceBackendDown(t *testing.T) {
	t.Parallel()
	cfg := fullConfig()
	cfg.RequireNonce = true
	chk := newCheck(t, cfg, failingBackend{})
	v, err := chk.Check(context.Background(), signedRequest(t, fullInput(rfcCreated, "test-key-ed25519", `;nonce="n"`)))
	if err == nil || v.Action != pipeline.Allow {
		t.Fatalf("want an undecided error, got %+v %v", v, err)
	}
}

func TestHMACWrongSecret(t *testing.T) {
	t.Parallel()
	other := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
	chk := newCheck(t, Config{Keys: []Key{{ID: "test-shared-secret", Algorithm: AlgHMACSHA256, Secret: other}},
		RequiredComponents: []string{"@authority"}}, nil)
	expectVerdict(t, chk, testRequestWith(t, "b25.txt"), ReasonInvalid)
}

func TestValidate(t *testing.T) {
	t.Parallel()
	pub := readFile(t, "test-key-ed25519.pub")
	cases := []struct {
		desc string
		cfg  Config
		path string // expected error path, "" for valid
	}{
		{"valid", Config{Keys: []Key{edKey(), ecKey(), {ID: "h", Algorithm: AlgHMACSHA256, Secret: strings.TrimSpace(readFile(t, "test-shared-secret.b64"))}},
			RequiredComponents: []string{"@method", "content-digest"}, MaxAge: "1m"}, ""},
		{"inline PEM", Config{Keys: []Key{{ID: "k", Algorithm: AlgEd25519, PublicKey: pub}}}, ""},
		{"no keys", Config{}, "httpsig.keys"},
		{"no id", Config{Keys: []Key{{Algorithm: AlgEd25519, PublicKey: pub}}}, "httpsig.keys[0].id"},
		{"duplicate id", Config{Keys: []Key{edKey(), edKey()}}, "httpsig.keys[1].id"},
		{"bad algorithm", Config{Keys: []Key{{ID: "k", Algorithm: "rsa-v1_5-sha256", PublicKey: pub}}}, "httpsig.keys[0]"},
		{"wrong key type", Config{Keys: []Key{{ID: "k", Algorithm: AlgECDSAP256, PublicKey: pub}}}, "httpsig.keys[0]"},
		{"missing file", Config{Keys: []Key{{ID: "k", Algorithm: AlgEd25519, PublicKeyFile: "testdata/nope.pem"}}}, "httpsig.keys[0]"},
		{"short secret", Config{Keys: []Key{{ID: "k", Algorithm: AlgHMACSHA256, Secret: "c2hvcnQ="}}}, "httpsig.keys[0]"},
		{"secret not base64", Config{Keys: []Key{{ID: "k", Algorithm: AlgHMACSHA256, Secret: "!!!"}}}, "httpsig.keys[0]"},
		{"bad component", Config{Keys: []Key{edKey()}, RequiredComponents: []string{"@nope"}}, "httpsig.required_components[0]"},
		{"upper-case field", Config{Keys: []Key{edKey()}, RequiredComponents: []string{"Content-Digest"}}, "httpsig.required_components[0]"},
		{"bad max_age", Config{Keys: []Key{edKey()}, MaxAge: "soon"}, "httpsig.max_age"},
		{"bad mode", Config{Options: pipeline.Options{Mode: "loud"}, Keys: []Key{edKey()}}, "httpsig.mode"},
	}
	for _, tc := range cases {
		var errs field.Errors
		tc.cfg.Validate("httpsig", &errs)
		if tc.path == "" {
			if errs.Len() != 0 {
				t.Errorf("%s: %v", tc.desc, errs.Err())
			}
			continue
		}
		found := false
		for _, e := range errs.List {
			found = found || e.Path == tc.path
			if strings.Contains(e.Msg, "c2hvcnQ") {
				t.Errorf("%s: error echoes the secret", tc.desc)
			}
		}
		if !found {
			t.Errorf("%s: want an error at %s, got %v", tc.desc, tc.path, errs.Err())
		}
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Fatal("New accepted an invalid config")
	}
	if c := newCheck(t, Config{Keys: []Key{edKey()}}, nil); c.Name() != "httpsig" || c.maxAge != DefaultMaxAge {
		t.Fatal("defaults")
	}
}

func TestDerivedComponents(t *testing.T) {
	t.Parallel()
	r, _ := http.NewRequest("GET", "https://Example.COM:443/a%20b/c?x=1&y", nil)
	r.RequestURI = "/a%20b/c?x=1&y"
	m := requestMessage(r)
	sigs, err := parseSignatures([]string{`s=("@method" "@target-uri" "@authority" "@scheme" "@request-target" "@path" "@query" "host";bs);created=1`},
		[]string{`s=:AA==:`})
	if err != nil {
		t.Fatal(err)
	}
	base, err := signatureBase(m, &sigs[0])
	if err != nil {
		t.Fatal(err)
	}
	want := `"@method": GET
"@target-uri": https://example.com/a%20b/c?x=1&y
"@authority": example.com
"@scheme": https
"@request-target": /a%20b/c?x=1&y
"@path": /a%20b/c
"@query": ?x=1&y
"host";bs: :ZXhhbXBsZS5jb20=:
"@signature-params": ("@method" "@target-uri" "@authority" "@scheme" "@request-target" "@path" "@query" "host";bs);created=1`
	if string(base) != want {
		t.Fatalf("base:\n%s\nwant:\n%s", base, want)
	}
	// RFC 9421 §2.2.7: no query is "?"; §2.1: values trimmed and combined.
	r, _ = http.NewRequest("GET", "http://example.com:80/", nil)
	r.Header.Add("X-Multi", "  a ")
	r.Header.Add("X-Multi", "b\t")
	r.Header.Set("X-Dict", "a=1, b=2;x=?0, c=(1 2)")
	sigs, _ = parseSignatures([]string{`s=("@query" "@authority" "x-multi" "x-dict";key="b" "x-dict";key="c")`}, []string{`s=:AA==:`})
	base, err = signatureBase(requestMessage(r), &sigs[0])
	if err != nil {
		t.Fatal(err)
	}
	want = "\"@query\": ?\n\"@authority\": example.com\n\"x-multi\": a, b\n\"x-dict\";key=\"b\": 2;x=?0\n\"x-dict\";key=\"c\": (1 2)\n\"@signature-params\": (\"@query\" \"@authority\" \"x-multi\" \"x-dict\";key=\"b\" \"x-dict\";key=\"c\")"
	if string(base) != want {
		t.Fatalf("base:\n%s\nwant:\n%s", base, want)
	}
}
