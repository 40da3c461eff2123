package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/config"
)

func TestSlowlorisTimeout(t *testing.T) {
	t.Parallel()
	app := newEchoUpstream(t, "app")
	g := startGateway(t, "limits: {read_header_timeout: 300ms}\nupstreams: {app: {targets: [$UPSTREAM_0]}}\nroutes: [{name: r, upstream: app}]\n", app.URL)
	c, err := net.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	// Dribble a header line and never finish the head.
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	for {
		if _, err := c.Read(buf); err != nil {
			break
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("slow header kept the connection open %v", d)
	}
}

func TestClientCertificates(t *testing.T) {
	t.Parallel()
	app := newEchoUpstream(t, "app")
	dir := t.TempDir()
	certFile, keyFile, serverPool := selfSigned(t, dir)
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "test client CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	caFile := filepath.Join(dir, "client-ca.pem")
	_ = os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)

	clientKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	clientTmpl := &x509.Certificate{SerialNumber: big.NewInt(8), Subject: pkix.Name{CommonName: "payments-service"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	clientDER, _ := x509.CreateCertificate(rand.Reader, clientTmpl, caCert, &clientKey.PublicKey, caKey)
	clientCert := tls.Certificate{Certificate: [][]byte{clientDER}, PrivateKey: clientKey}

	g := startGateway(t, "tls: {cert_file: "+certFile+", key_file: "+keyFile+", client_ca_files: ["+caFile+"], client_auth: require}\n"+
		"upstreams: {app: {targets: [$UPSTREAM_0]}}\nroutes: [{name: r, upstream: app}]\n", app.URL)
	url := strings.Replace(g.url, "http://", "https://", 1) + "/x"

	with := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverPool, Certificates: []tls.Certificate{clientCert}}}}
	resp, err := with.Get(url)
	if err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	without := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverPool}}}
	if resp, err := without.Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("request without a client certificate was served")
	}
}

func TestUnwritableDataDir(t *testing.T) {
	t.Parallel()
	// A path below a regular file cannot be created, even by root.
	file := filepath.Join(t.TempDir(), "not-a-dir")
	_ = os.WriteFile(file, nil, 0o600)
	cfg, err := config.Parse("t.yaml", []byte("data_dir: "+file+"/data\nupstreams: {app: {targets: [http://127.0.0.1:1]}}\nroutes: [{name: r, upstream: app}]\n"), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "data_dir") {
		t.Fatalf("want a data_dir error, got %v", err)
	}
}
