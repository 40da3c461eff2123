package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

func newCert(t *testing.T) *x509.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func spki(c *x509.Certificate) []byte {
	s := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return s[:]
}

func TestPinSetMatches(t *testing.T) {
	leaf, inter, other := newCert(t), newCert(t), newCert(t)
	valid := &PinSet{Hosts: []string{"api.example.com", "*.shop.example", "10.0.0.1"}, Pins: [][]byte{spki(inter)}, Expires: time.Now().Add(time.Hour)}
	expired := &PinSet{Hosts: valid.Hosts, Pins: valid.Pins, Expires: time.Now().Add(-time.Second)}
	chain := []*x509.Certificate{leaf, inter}
	tests := []struct {
		name  string
		set   *PinSet
		host  string
		chain []*x509.Certificate
		want  bool
	}{
		{"exact host, pinned intermediate", valid, "api.example.com", chain, true},
		{"pinned leaf only", &PinSet{Hosts: []string{"api.example.com"}, Pins: [][]byte{spki(leaf)}, Expires: valid.Expires}, "api.example.com", chain, true},
		{"host with port and upper case", valid, "API.Example.com:443", chain, true},
		{"trailing dot", valid, "api.example.com.", chain, true},
		{"wildcard, one label", valid, "eu.shop.example", chain, true},
		{"wildcard, two labels", valid, "a.eu.shop.example", chain, false},
		{"wildcard does not match the apex", valid, "shop.example", chain, false},
		{"wildcard does not match a suffix", valid, "evilshop.example", chain, false},
		{"IP host", valid, "10.0.0.1", chain, true},
		{"host not in the set", valid, "www.example.com", chain, false},
		{"no pinned certificate", valid, "api.example.com", []*x509.Certificate{leaf, other}, false},
		{"empty chain", valid, "api.example.com", nil, false},
		{"expired set", expired, "api.example.com", chain, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.set.Matches(tt.host, tt.chain); got != tt.want {
				t.Errorf("Matches(%q) = %v, want %v", tt.host, got, tt.want)
			}
		})
	}
}

// pinClaims are pin set claims valid for an hour.
func pinClaims(pins ...[]byte) map[string]any {
	var enc []string
	for _, p := range pins {
		enc = append(enc, base64.StdEncoding.EncodeToString(p))
	}
	now := time.Now()
	return map[string]any{"iss": testIssuer, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"hosts": []string{"api.example.com", "*.example.com"}, "pins": enc}
}

func TestCheckPins(t *testing.T) {
	s := newFakeService(t)
	c, _ := newTestClient(t, s, func(c *Config) { c.Issuer = testIssuer })
	set, err := jwk.Parse(s.jwks)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	pin := sha256.Sum256([]byte("spki"))
	with := func(k string, v any) map[string]any {
		m := pinClaims(pin[:])
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	b64 := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	tests := []struct {
		name    string
		raw     string
		wantErr string
	}{
		{"valid", signJWS(t, s.priv, "k1", PinsTyp, pinClaims(pin[:])), ""},
		{"signed by another key", signJWS(t, otherKey, "k1", PinsTyp, pinClaims(pin[:])), "signature"},
		{"unknown kid", signJWS(t, otherKey, "k2", PinsTyp, pinClaims(pin[:])), "unknown key"},
		{"alg none", b64(map[string]string{"alg": "none", "kid": "k1", "typ": PinsTyp}) + "." + b64(pinClaims(pin[:])) + ".", "none"},
		{"alg none with a signature", b64(map[string]string{"alg": "none", "kid": "k1", "typ": PinsTyp}) + "." + b64(pinClaims(pin[:])) + ".AAAA", "none"},
		{"HS256", b64(map[string]string{"alg": "HS256", "kid": "k1", "typ": PinsTyp}) + "." + b64(pinClaims(pin[:])) + ".AAAA", "HS256"},
		{"expired", signJWS(t, s.priv, "k1", PinsTyp, with("exp", time.Now().Add(-time.Minute).Unix())), "expired"},
		{"no exp", signJWS(t, s.priv, "k1", PinsTyp, with("exp", nil)), "exp"},
		{"token typ", signJWS(t, s.priv, "k1", TokenTyp, pinClaims(pin[:])), "typ"},
		{"other issuer", signJWS(t, s.priv, "k1", PinsTyp, with("iss", "https://evil")), "issuer"},
		{"no issuer", signJWS(t, s.priv, "k1", PinsTyp, with("iss", nil)), "iss"},
		{"pin not a SHA-256", signJWS(t, s.priv, "k1", PinsTyp, with("pins", []string{"AAAA"})), "pin"},
		{"no pins", signJWS(t, s.priv, "k1", PinsTyp, with("pins", []string{})), "no pins"},
		{"JSON serialization", `{"payload":"e30","signatures":[]}`, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := c.checkPins(set, tt.raw)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(ps.Pins) != 1 || string(ps.Pins[0]) != string(pin[:]) || ps.Issuer != testIssuer || len(ps.Hosts) != 2 {
					t.Errorf("set = %+v", ps)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestPinsFetchAndVerify(t *testing.T) {
	s := newFakeService(t)
	pin := sha256.Sum256([]byte("spki"))
	s.pins = signJWS(t, s.priv, "k1", PinsTyp, pinClaims(pin[:]))
	c, _ := newTestClient(t, s, nil)
	ps, err := c.Pins(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !ps.Covers("a.example.com") || string(ps.Pins[0]) != string(pin[:]) {
		t.Errorf("set = %+v", ps)
	}
	if _, err := c.Pins(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, k := s.nPins.Load(), s.nJWKS.Load(); n != 1 || k != 1 {
		t.Errorf("pins fetched %d times, JWKS %d times; want 1 and 1 (cached)", n, k)
	}

	// Provisioned keys: the JWKS is never fetched, and a set signed by
	// another key is refused.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	s2 := newFakeService(t)
	s2.pins = signJWS(t, other, "k1", PinsTyp, pinClaims(pin[:]))
	trusted, _ := jwk.Parse(s.jwks)
	c2, _ := newTestClient(t, s2, func(c *Config) { c.TrustedKeys = trusted })
	if _, err := c2.Pins(context.Background()); err == nil {
		t.Error("a set signed by a key not in TrustedKeys was accepted")
	}
	if s2.nJWKS.Load() != 0 {
		t.Error("JWKS fetched although TrustedKeys is set")
	}
}

func TestPinsFromVerify(t *testing.T) {
	s := newFakeService(t)
	pin := sha256.Sum256([]byte("spki"))
	s.pins = signJWS(t, s.priv, "k1", PinsTyp, pinClaims(pin[:]))
	c, _ := newTestClient(t, s, nil)
	if _, err := c.Token(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	ps, err := c.Pins(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if string(ps.Pins[0]) != string(pin[:]) {
		t.Errorf("pins = %x", ps.Pins)
	}
	if s.nPins.Load() != 0 {
		t.Error("GET pins although verify returned a set")
	}
}

func TestPinnedTLSConfig(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hi")) }))
	defer srv.Close()
	leaf := srv.Certificate()
	s := newFakeService(t)
	c, _ := newTestClient(t, s, nil)
	base := srv.Client().Transport.(*http.Transport).TLSClientConfig
	get := func() error {
		tr := &http.Transport{TLSClientConfig: c.PinnedTLSConfig(base)}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	other := newCert(t)
	tests := []struct {
		name string
		set  *PinSet
		ok   bool
	}{
		{"no pin set yet", nil, true},
		{"host pinned to its key", &PinSet{Hosts: []string{"127.0.0.1"}, Pins: [][]byte{spki(leaf)}, Expires: time.Now().Add(time.Hour)}, true},
		{"host pinned to another key", &PinSet{Hosts: []string{"127.0.0.1"}, Pins: [][]byte{spki(other)}, Expires: time.Now().Add(time.Hour)}, false},
		{"expired set still enforced", &PinSet{Hosts: []string{"127.0.0.1"}, Pins: [][]byte{spki(other)}, Expires: time.Now().Add(-time.Hour)}, false},
		{"host not covered", &PinSet{Hosts: []string{"api.example.com"}, Pins: [][]byte{spki(other)}, Expires: time.Now().Add(time.Hour)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.tls.Store(tt.set)
			err := get()
			if (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok %v", err, tt.ok)
			}
		})
	}
	// Chain verification still happens: no root CAs, pinned key: refused.
	c.tls.Store(&PinSet{Hosts: []string{"127.0.0.1"}, Pins: [][]byte{spki(leaf)}, Expires: time.Now().Add(time.Hour)})
	tr := &http.Transport{TLSClientConfig: c.PinnedTLSConfig(&tls.Config{})}
	if _, err := (&http.Client{Transport: tr}).Get(srv.URL); err == nil {
		t.Error("pinned but untrusted chain accepted")
	}
}
