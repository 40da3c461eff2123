package mtls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
)

func issue(t *testing.T) (caFile string, leaf *x509.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, _ := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	_ = os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	lt := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "svc"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, lt, ca, &key.PublicKey, caKey)
	leaf, _ = x509.ParseCertificate(der)
	return caFile, leaf
}

func TestBinding(t *testing.T) {
	t.Parallel()
	caFile, leaf := issue(t)
	sum := sha256.Sum256(leaf.Raw)
	thumb := base64.RawURLEncoding.EncodeToString(sum[:])
	chk, err := New(Config{CAFiles: []string{caFile}, BoundTokens: true, RequireBinding: true})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		desc   string
		claims map[string]any
		sub    string
		reason string
	}{
		{"bound to this certificate", map[string]any{"cnf": map[string]any{"x5t#S256": thumb}}, "alice", ""},
		{"bound to another certificate", map[string]any{"cnf": map[string]any{"x5t#S256": "AAAA"}}, "alice", "token-binding-mismatch"},
		{"unbound token where binding is required", map[string]any{}, "alice", "token-not-bound"},
		{"no token at all", nil, "", ""},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
		req := &pipeline.Request{HTTP: r, Identity: pipeline.Identity{Subject: tc.sub, Claims: tc.claims}}
		v, err := chk.Check(t.Context(), req)
		if err != nil || v.Reason != tc.reason {
			t.Errorf("%s: %+v %v", tc.desc, v, err)
		}
		if tc.reason == "" && req.Identity.CertThumbprint != thumb {
			t.Errorf("%s: thumbprint %q", tc.desc, req.Identity.CertThumbprint)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	bad := filepath.Join(t.TempDir(), "bad.pem")
	_ = os.WriteFile(bad, []byte("not pem"), 0o600)
	errs := &field.Errors{}
	c := Config{CAFiles: []string{bad, "/nonexistent"}, RequireBinding: true, SubjectHeader: "X Bad"}
	c.Validate("checks.mtls", errs)
	want := []string{"checks.mtls.ca_files[0]", "checks.mtls.ca_files[1]", "checks.mtls.require_binding", "checks.mtls.subject_header"}
	if errs.Len() != len(want) {
		t.Fatalf("errors: %v", errs.Err())
	}
	for i, e := range errs.List {
		if e.Path != want[i] {
			t.Errorf("error %d at %s, want %s", i, e.Path, want[i])
		}
	}
}
