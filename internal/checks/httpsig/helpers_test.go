package httpsig

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/pipeline"
)

// rfcCreated is the created parameter of every RFC 9421 B.2 example.
const rfcCreated = 1618884473

func readFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testRequest parses RFC 9421 B.2's test-request, received over TLS (so
// @target-uri is https://example.com/...), with its body buffered.
func testRequest(t testing.TB) *pipeline.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(readFile(t, "test-request.http"))))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.TLS = &tls.ConnectionState{}
	return &pipeline.Request{HTTP: r, Body: body}
}

// addFields adds the "Name: value" lines of a testdata file to h.
func addFields(t testing.TB, h http.Header, name string) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(readFile(t, name)), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("%s: bad line %q", name, line)
		}
		h.Add(k, v)
	}
}

func edPrivate(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	blk, _ := pem.Decode([]byte(readFile(t, "test-key-ed25519.key")))
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(ed25519.PrivateKey)
}

func ecPrivate(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	blk, _ := pem.Decode([]byte(readFile(t, "test-key-ecc-p256.key")))
	k, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sign adds a signature labelled label over r, with Signature-Input member
// value input (e.g. `("@method" "@target-uri");created=1;keyid="k"`),
// computing the base with signatureBase (proven against the RFC vectors)
// and signing with signFn.
func sign(t testing.TB, r *http.Request, label, input string, signFn func([]byte) []byte) {
	t.Helper()
	r.Header.Add("Signature-Input", label+"="+input)
	sigs, err := parseSignatures([]string{label + "=" + input}, []string{label + "=:AA==:"})
	var base []byte
	if err == nil && len(sigs) == 1 {
		base, err = signatureBase(requestMessage(r), &sigs[0])
	}
	if err != nil {
		// An input the check must refuse before verifying: sign anything.
		base = []byte("unusable")
	}
	r.Header.Add("Signature", label+"=:"+base64.StdEncoding.EncodeToString(signFn(base))+":")
}

func edSigner(k ed25519.PrivateKey) func([]byte) []byte {
	return func(b []byte) []byte { return ed25519.Sign(k, b) }
}

func ecSigner(t testing.TB, k *ecdsa.PrivateKey) func([]byte) []byte {
	return func(b []byte) []byte {
		h := sha256.Sum256(b)
		r, s, err := ecdsa.Sign(rand.Reader, k, h[:])
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
}
