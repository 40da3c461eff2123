package httpsig

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/apiguard/apiguard/internal/state"
)

// TestRFCKeys checks the B.1 key pairs are consistent: each public key is
// the public half of its private key.
func TestRFCKeys(t *testing.T) {
	t.Parallel()
	blk, _ := pem.Decode([]byte(readFile(t, "test-key-ed25519.pub")))
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil || !edPrivate(t).Public().(ed25519.PublicKey).Equal(pub) {
		t.Fatalf("test-key-ed25519 halves do not match: %v", err)
	}
	blk, _ = pem.Decode([]byte(readFile(t, "test-key-ecc-p256.pub")))
	pub, err = x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil || !ecPrivate(t).Public().(*ecdsa.PublicKey).Equal(pub) {
		t.Fatalf("test-key-ecc-p256 halves do not match: %v", err)
	}
	secret, err := base64.StdEncoding.DecodeString(strings.TrimSpace(readFile(t, "test-shared-secret.b64")))
	if err != nil || len(secret) != 64 {
		t.Fatalf("test-shared-secret: %v, %d bytes", err, len(secret))
	}
}

// TestRFCContentDigest checks B.2's Content-Digest against its body
// (RFC 9530 sha-512), for the test request and the test response.
func TestRFCContentDigest(t *testing.T) {
	t.Parallel()
	req := testRequest(t)
	if got := digestMatches(req.HTTP.Header.Values("Content-Digest"), req.Body); got != digestOK {
		t.Fatalf("test-request digest: %v", got)
	}
	if got := digestMatches([]string{"sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:"},
		[]byte(`{"message": "good dog"}`)); got != digestOK {
		t.Fatalf("test-response digest: %v", got)
	}
}

// assertBase compares a computed signature base with the RFC's, line by line.
func assertBase(t *testing.T, got []byte, wantFile string) {
	t.Helper()
	want := strings.Split(readFile(t, wantFile), "\n")
	lines := strings.Split(string(got), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%s: %d lines, want %d:\n%s", wantFile, len(lines), len(want), got)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("%s line %d:\n got %q\nwant %q", wantFile, i+1, lines[i], want[i])
		}
	}
}

func onlySignature(t *testing.T, h http.Header) *signature {
	t.Helper()
	sigs, err := parseSignatures(h.Values("Signature-Input"), h.Values("Signature"))
	if err != nil || len(sigs) != 1 {
		t.Fatalf("parse: %v (%d)", err, len(sigs))
	}
	return &sigs[0]
}

// TestRFC_B_2_5_HMAC is "Signing a Request Using hmac-sha256".
func TestRFC_B_2_5_HMAC(t *testing.T) {
	t.Parallel()
	req := testRequest(t)
	addFields(t, req.HTTP.Header, "b25.txt")
	s := onlySignature(t, req.HTTP.Header)
	base, err := signatureBase(requestMessage(req.HTTP), s)
	if err != nil {
		t.Fatal(err)
	}
	assertBase(t, base, "b25.base")
	// HMAC is deterministic: recompute the RFC's signature bytes.
	secret, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(readFile(t, "test-shared-secret.b64")))
	m := hmac.New(sha256.New, secret)
	m.Write(base)
	if !hmac.Equal(m.Sum(nil), s.sig) {
		t.Fatal("recomputed HMAC differs from the RFC's Signature")
	}
	chk := newCheck(t, Config{Keys: []Key{{ID: "test-shared-secret", Algorithm: AlgHMACSHA256, Secret: strings.TrimSpace(readFile(t, "test-shared-secret.b64"))}},
		RequiredComponents: []string{"@authority", "date"}}, nil)
	expectVerdict(t, chk, req, "")
	if req.Identity.Subject != "httpsig:test-shared-secret" {
		t.Fatalf("subject %q", req.Identity.Subject)
	}
}

// TestRFC_B_2_6_Ed25519 is "Signing a Request Using ed25519".
func TestRFC_B_2_6_Ed25519(t *testing.T) {
	t.Parallel()
	req := testRequest(t)
	addFields(t, req.HTTP.Header, "b26.txt")
	s := onlySignature(t, req.HTTP.Header)
	base, err := signatureBase(requestMessage(req.HTTP), s)
	if err != nil {
		t.Fatal(err)
	}
	assertBase(t, base, "b26.base")
	// Ed25519 is deterministic: signing the base reproduces the RFC bytes.
	if got := ed25519.Sign(edPrivate(t), base); !hmac.Equal(got, s.sig) {
		t.Fatalf("ed25519 signature differs from the RFC's: %s", base64.StdEncoding.EncodeToString(got))
	}
	chk := newCheck(t, Config{Keys: []Key{edKey()}, RequiredComponents: []string{"@method", "@path", "@authority"}}, nil)
	expectVerdict(t, chk, req, "")
	if req.Identity.Subject != "httpsig:test-key-ed25519" {
		t.Fatalf("subject %q", req.Identity.Subject)
	}
	// The default requirement (@target-uri) is not met by this signature.
	chk = newCheck(t, Config{Keys: []Key{edKey()}}, nil)
	expectVerdict(t, chk, testRequestWith(t, "b26.txt"), ReasonComponents)
}

// TestRFC_B_2_4_ECDSA is "Signing a Response Using ecdsa-p256-sha256".
// ECDSA signatures are randomised, so only verification is checked; the
// example signs a response, so it runs against the base builder and
// verifier directly (the check itself only judges requests).
func TestRFC_B_2_4_ECDSA(t *testing.T) {
	t.Parallel()
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(readFile(t, "test-response.http"))), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Header.Set("Content-Length", "23") // ReadResponse keeps it, but be explicit
	addFields(t, resp.Header, "b24.txt")
	s := onlySignature(t, resp.Header)
	base, err := signatureBase(&message{status: resp.StatusCode, header: resp.Header}, s)
	if err != nil {
		t.Fatal(err)
	}
	assertBase(t, base, "b24.base")
	k := Key{ID: "test-key-ecc-p256", Algorithm: AlgECDSAP256, PublicKeyFile: "testdata/test-key-ecc-p256.pub"}
	v, err := k.load()
	if err != nil {
		t.Fatal(err)
	}
	if !v.verify(base, s.sig) {
		t.Fatal("RFC B.2.4 signature does not verify")
	}
	tampered := append([]byte{}, base...)
	tampered[len("\"@status\": ")] = '4'
	if v.verify(tampered, s.sig) {
		t.Fatal("tampered base verifies")
	}
}

func edKey() Key {
	return Key{ID: "test-key-ed25519", Algorithm: AlgEd25519, PublicKeyFile: "testdata/test-key-ed25519.pub"}
}

func ecKey() Key {
	return Key{ID: "test-key-ecc-p256", Algorithm: AlgECDSAP256, PublicKeyFile: "testdata/test-key-ecc-p256.pub"}
}

func testRequestWith(t *testing.T, sigFile string) *pipeline.Request {
	req := testRequest(t)
	addFields(t, req.HTTP.Header, sigFile)
	return req
}

// rfcNow is ten seconds after the B.2 examples were created.
func rfcNow() time.Time { return time.Unix(rfcCreated+10, 0) }

func newCheck(t testing.TB, cfg Config, backend state.Backend) *Check {
	t.Helper()
	chk, err := New(cfg, backend)
	if err != nil {
		t.Fatal(err)
	}
	chk.now = rfcNow
	return chk
}

func expectVerdict(t *testing.T, chk *Check, req *pipeline.Request, reason string) pipeline.Verdict {
	t.Helper()
	v, err := chk.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("error: %v", err)
	}
	if v.Reason != reason {
		t.Fatalf("reason %q (%s), want %q", v.Reason, v.Detail, reason)
	}
	if reason != "" && (v.Action != pipeline.Deny || v.Status != http.StatusUnauthorized) {
		t.Fatalf("verdict %+v", v)
	}
	return v
}
