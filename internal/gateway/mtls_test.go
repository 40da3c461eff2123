package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA issues client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(dir, name+".pem")
	_ = os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	return &testCA{cert: cert, key: key, file: file}
}

func (ca *testCA) client(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{cn + ".internal"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestMTLSCheck(t *testing.T) {
	t.Parallel()
	app := newEchoUpstream(t, "app")
	dir := t.TempDir()
	certFile, keyFile, serverPool := selfSigned(t, dir)
	partners, others := newTestCA(t, dir, "partners-ca"), newTestCA(t, dir, "other-ca")
	g := startGateway(t, "tls: {cert_file: "+certFile+", key_file: "+keyFile+", client_auth: request}\n"+
		"upstreams: {app: {targets: [$UPSTREAM_0]}}\n"+
		"routes:\n"+
		"  - {name: partner, path_prefix: /partner, upstream: app, checks: {mtls: {ca_files: ["+partners.file+"], allowed_subjects: [payments], subject_header: X-Client-Cert-Subject}}}\n"+
		"  - {name: public, path_prefix: /, upstream: app}\n", app.URL)
	base := strings.Replace(g.url, "http://", "https://", 1)

	call := func(cert *tls.Certificate, path string) result {
		cfg := &tls.Config{RootCAs: serverPool}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("X-Client-Cert-Subject", "CN=forged")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		r := result{status: resp.StatusCode, header: resp.Header, body: body}
		if resp.Header.Get("Content-Type") == "application/problem+json" {
			r.problem = &problemBody{}
			_ = json.Unmarshal(body, r.problem)
		} else {
			r.echo = &echo{}
			_ = json.Unmarshal(body, r.echo)
		}
		return r
	}
	good, wrongName, foreign := partners.client(t, "payments"), partners.client(t, "billing"), others.client(t, "payments")

	wantProblem(t, call(nil, "/partner/x"), 401, "client-certificate-required")
	wantProblem(t, call(&foreign, "/partner/x"), 401, "client-certificate-invalid")
	wantProblem(t, call(&wrongName, "/partner/x"), 403, "client-certificate-not-allowed")
	r := call(&good, "/partner/x")
	if r.status != 200 || r.echo.Header.Get("X-Client-Cert-Subject") != "CN=payments" {
		t.Fatalf("good certificate: %d, upstream saw subject %q", r.status, r.echo.Header.Get("X-Client-Cert-Subject"))
	}
	// Routes without the check do not need a certificate, and a forged
	// subject header passes through untouched only where no check owns it.
	if r := call(nil, "/other"); r.status != 200 {
		t.Fatalf("public route: %d", r.status)
	}
}
