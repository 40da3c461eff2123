package appattest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// A synthetic CA lets tests reach checks that real vectors cannot (a signed
// leaf over an authData with a wrong credentialId, counter, AAGUID...).

var synthNow = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

const synthApp = "ABCDE12345.com.example.synth"

type synthCA struct {
	rootKey, interKey, leafKey *ecdsa.PrivateKey
	root, inter                *x509.Certificate
	pool                       *x509.CertPool
}

var (
	synthOnce sync.Once
	synthCAv  *synthCA
)

func newCert(t testing.TB, tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func getSynthCA(t testing.TB) *synthCA {
	synthOnce.Do(func() {
		ca := &synthCA{}
		for _, k := range []**ecdsa.PrivateKey{&ca.rootKey, &ca.interKey, &ca.leafKey} {
			var err error
			if *k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
				t.Fatal(err)
			}
		}
		rt := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Synthetic Root"},
			NotBefore: synthNow.Add(-time.Hour), NotAfter: synthNow.Add(24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		}
		ca.root = newCert(t, rt, rt, &ca.rootKey.PublicKey, ca.rootKey)
		it := &x509.Certificate{
			SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Synthetic Intermediate"},
			NotBefore: synthNow.Add(-time.Hour), NotAfter: synthNow.Add(24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		}
		ca.inter = newCert(t, it, ca.root, &ca.interKey.PublicKey, ca.rootKey)
		ca.pool = x509.NewCertPool()
		ca.pool.AddCert(ca.root)
		synthCAv = ca
	})
	if synthCAv == nil {
		t.Fatal("synthetic CA setup failed")
	}
	return synthCAv
}

// synth describes one synthetic attestation; zero values mean "correct".
type synth struct {
	appID    string
	flags    byte
	counter  uint32
	aaguid   []byte
	credID   []byte
	trailing []byte // bytes after the COSE key, like Apple's own sample
	fmt      string
	noNonce  bool
}

type synthOut struct {
	obj, cdh, keyID []byte
	authData        []byte
	x5c             [][]byte
	pool            *x509.CertPool
}

func cborMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func buildSynth(t testing.TB, s synth) synthOut {
	t.Helper()
	ca := getSynthCA(t)
	raw, err := MarshalPublicKey(&ca.leafKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	keyID := sum(raw)
	if s.appID == "" {
		s.appID = synthApp
	}
	if s.flags == 0 {
		s.flags = flagAT
	}
	if s.aaguid == nil {
		s.aaguid = aaguidProduction
	}
	if s.credID == nil {
		s.credID = keyID
	}
	if s.fmt == "" {
		s.fmt = "apple-appattest"
	}
	cose := cborMarshal(t, map[int]any{1: 2, 3: -7, -1: 1, -2: raw[1:33], -3: raw[33:]})
	ad := append([]byte{}, sum([]byte(s.appID))...)
	ad = append(ad, s.flags)
	ad = binary.BigEndian.AppendUint32(ad, s.counter)
	ad = append(ad, s.aaguid...)
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(s.credID)))
	ad = append(ad, s.credID...)
	ad = append(ad, cose...)
	ad = append(ad, s.trailing...)

	cdh := sum([]byte("synthetic client data"))
	lt := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "Synthetic Leaf"},
		NotBefore: synthNow.Add(-time.Hour), NotAfter: synthNow.Add(time.Hour),
	}
	if !s.noNonce {
		ext, err := asn1.Marshal(struct {
			Nonce []byte `asn1:"tag:1,explicit"`
		}{sum(append(append([]byte{}, ad...), cdh...))})
		if err != nil {
			t.Fatal(err)
		}
		lt.ExtraExtensions = []pkix.Extension{{Id: oidNonce, Value: ext}}
	}
	leaf := newCert(t, lt, ca.inter, &ca.leafKey.PublicKey, ca.interKey)
	x5c := [][]byte{leaf.Raw, ca.inter.Raw}
	obj := cborMarshal(t, map[string]any{
		"fmt":      s.fmt,
		"attStmt":  map[string]any{"x5c": x5c, "receipt": []byte("receipt")},
		"authData": ad,
	})
	return synthOut{obj: obj, cdh: cdh, keyID: keyID, authData: ad, x5c: x5c, pool: ca.pool}
}

func (o synthOut) opts() AttestationOptions {
	return AttestationOptions{AppIDs: []string{synthApp}, AllowProduction: true, Roots: o.pool, Now: synthNow}
}

// signAssertion makes an assertion with the synthetic leaf key.
func signAssertion(t testing.TB, appID string, counter uint32, cdh []byte) []byte {
	t.Helper()
	ca := getSynthCA(t)
	ad := append([]byte{}, sum([]byte(appID))...)
	ad = append(ad, 0)
	ad = binary.BigEndian.AppendUint32(ad, counter)
	nonce := sum(append(append([]byte{}, ad...), cdh...))
	sig, err := ecdsa.SignASN1(rand.Reader, ca.leafKey, sum(nonce))
	if err != nil {
		t.Fatal(err)
	}
	return cborMarshal(t, map[string]any{"signature": sig, "authenticatorData": ad})
}
