//go:build ignore

// Command capture records what a real TLS client sends first, for the
// fingerprint package's tests: it listens on 127.0.0.1, completes a TLS
// handshake with a throwaway self-signed certificate (ALPN h2, http/1.1),
// and saves
//
//	<out>/<name>.hello  the raw TLS records that carry the ClientHello
//	<out>/<name>.plain  the first plaintext bytes after the handshake
//	                    (HTTP/2 preface and frames, or an HTTP/1 request)
//
// Usage (one connection, then exit); capture.sh records every client:
//
//	go run main.go -name curl -out .. -port-file /tmp/port -ca /tmp/ca.pem &
//	curl --cacert /tmp/ca.pem https://localhost:$(cat /tmp/port)/
//
// Nothing here runs during tests; the saved files are the test data.
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

func main() {
	name := flag.String("name", "", "base name of the output files")
	out := flag.String("out", ".", "output directory")
	portFile := flag.String("port-file", "", "write the listening port here")
	caFile := flag.String("ca", "", "write the self-signed certificate (PEM) here")
	wait := flag.Duration("wait", 700*time.Millisecond, "how long to collect plaintext after the handshake")
	goClient := flag.Bool("go-client", false, "connect with this binary's own net/http client")
	flag.Parse()
	if *name == "" {
		log.Fatal("capture: -name is required")
	}
	cert, pemBytes, err := selfSigned()
	if err != nil {
		log.Fatal(err)
	}
	if *caFile != "" {
		if err := os.WriteFile(*caFile, pemBytes, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if *portFile != "" {
		if err := os.WriteFile(*portFile, []byte(strconv.Itoa(port)), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(port)
	if *goClient {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pemBytes)
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool},
			ForceAttemptHTTP2: true,
		}}
		go func() {
			if resp, err := c.Get(fmt.Sprintf("https://localhost:%d/", port)); err == nil {
				resp.Body.Close()
			}
		}()
	}
	raw, err := ln.Accept()
	if err != nil {
		log.Fatal(err)
	}
	ln.Close()
	rec := &recorder{Conn: raw}
	tc := tls.Server(rec, &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
	})
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	hsErr := tc.Handshake()
	hello, err := clientHelloRecords(rec.bytes())
	if err != nil {
		log.Fatalf("capture: %v (handshake: %v)", err, hsErr)
	}
	if err := os.WriteFile(filepath.Join(*out, *name+".hello"), hello, 0o644); err != nil {
		log.Fatal(err)
	}
	if hsErr != nil {
		log.Printf("capture: handshake failed (%v); saved the hello only", hsErr)
		return
	}
	plain := readFor(tc, *wait)
	if err := os.WriteFile(filepath.Join(*out, *name+".plain"), plain, 0o644); err != nil {
		log.Fatal(err)
	}
	if tc.ConnectionState().NegotiatedProtocol != "h2" {
		_, _ = io.WriteString(tc, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
	}
	tc.Close()
	log.Printf("capture: %s: hello %d bytes, plaintext %d bytes, alpn %q",
		*name, len(hello), len(plain), tc.ConnectionState().NegotiatedProtocol)
}

// readFor collects plaintext until the client pauses or 16 KiB arrive.
func readFor(c net.Conn, d time.Duration) []byte {
	var buf bytes.Buffer
	p := make([]byte, 4096)
	deadline := time.Now().Add(d)
	for buf.Len() < 16<<10 {
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(p)
		buf.Write(p[:n])
		if err != nil {
			break
		}
		if bytes.Contains(buf.Bytes(), []byte("\r\n\r\n")) && !bytes.HasPrefix(buf.Bytes(), []byte("PRI ")) {
			break // an HTTP/1 request head is complete
		}
	}
	return buf.Bytes()
}

// clientHelloRecords returns the prefix of the client's byte stream made of
// the handshake records that carry the complete ClientHello message.
func clientHelloRecords(b []byte) ([]byte, error) {
	var msg []byte
	off := 0
	for off+5 <= len(b) {
		if b[off] != 22 {
			return nil, fmt.Errorf("record type %d before the hello was complete", b[off])
		}
		n := int(b[off+3])<<8 | int(b[off+4])
		if off+5+n > len(b) {
			break
		}
		msg = append(msg, b[off+5:off+5+n]...)
		off += 5 + n
		if len(msg) >= 4 && len(msg) >= 4+(int(msg[1])<<16|int(msg[2])<<8|int(msg[3])) {
			return b[:off], nil
		}
	}
	return nil, errors.New("incomplete ClientHello")
}

type recorder struct {
	net.Conn
	mu  sync.Mutex
	buf []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	if len(r.buf) < 64<<10 {
		r.buf = append(r.buf, p[:n]...)
	}
	r.mu.Unlock()
	return n, err
}

func (r *recorder) bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.buf...)
}

func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		DNSNames:              []string{"localhost", "example.test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, p, nil
}
