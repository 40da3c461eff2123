package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// KeySource names one signing key: a PEM file, or an environment variable
// holding the PEM. The first key of the list signs; the others only verify.
type KeySource struct {
	File string `yaml:"file,omitempty"`
	Env  string `yaml:"env,omitempty"`
}

// signingKey is one token key.
type signingKey struct {
	kid    string
	alg    jwa.SignatureAlgorithm
	algStr string
	priv   jwk.Key // nil for a key kept only to verify
	pub    crypto.PublicKey
	// retireAt, when set, is when a key removed from the config stops
	// verifying: the expiry of the last token it can have signed.
	retireAt time.Time
}

// Keyring holds the token keys: the one that signs and every one that
// verifies. It is immutable; a reload builds a new one.
type Keyring struct {
	signer *signingKey
	byKid  map[string]*signingKey
	jwks   []byte
}

// GenerateKey makes a new private key ("EdDSA" or "ES256") as PKCS#8 PEM and
// returns its key id (the RFC 7638 thumbprint).
func GenerateKey(alg string) (pemBytes []byte, kid string, err error) {
	var priv crypto.Signer
	switch strings.ToUpper(alg) {
	case "EDDSA", "ED25519", "":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "ES256", "P-256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, "", fmt.Errorf("unknown algorithm %q (EdDSA or ES256)", alg)
	}
	if err != nil {
		return nil, "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, "", err
	}
	pemBytes = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	k, err := parseKey(pemBytes)
	if err != nil {
		return nil, "", err
	}
	return pemBytes, k.kid, nil
}

// parseKey reads a PKCS#8 PEM private key (Ed25519 or ECDSA P-256).
func parseKey(b []byte) (*signingKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	raw, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		if ec, err2 := x509.ParseECPrivateKey(block.Bytes); err2 == nil {
			raw = ec
		} else {
			return nil, fmt.Errorf("not a PKCS#8 private key: %w", err)
		}
	}
	k := &signingKey{}
	switch p := raw.(type) {
	case ed25519.PrivateKey:
		k.alg, k.algStr, k.pub = jwa.EdDSA(), "EdDSA", p.Public()
	case *ecdsa.PrivateKey:
		if p.Curve != elliptic.P256() {
			return nil, errors.New("ECDSA keys must be P-256 (ES256)")
		}
		k.alg, k.algStr, k.pub = jwa.ES256(), "ES256", p.Public()
	default:
		return nil, fmt.Errorf("unsupported key type %T (Ed25519 or ECDSA P-256)", raw)
	}
	if k.priv, err = jwk.Import(raw); err != nil {
		return nil, err
	}
	if err := jwk.AssignKeyID(k.priv); err != nil {
		return nil, err
	}
	k.kid, _ = k.priv.KeyID()
	if err := k.priv.Set(jwk.AlgorithmKey, k.alg); err != nil {
		return nil, err
	}
	return k, nil
}

// LoadKeyring reads the keys; the first one signs. lookupEnv reads
// environment variables (os.LookupEnv when nil).
func LoadKeyring(srcs []KeySource, lookupEnv func(string) (string, bool)) (*Keyring, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	if len(srcs) == 0 {
		return nil, errors.New("no signing keys")
	}
	var keys []*signingKey
	for i, s := range srcs {
		var b []byte
		var err error
		name := s.File
		switch {
		case s.File != "":
			b, err = os.ReadFile(s.File)
		case s.Env != "":
			name = "$" + s.Env
			v, ok := lookupEnv(s.Env)
			if !ok {
				err = errors.New("environment variable not set")
			}
			b = []byte(v)
		default:
			err = errors.New("key needs file or env")
		}
		if err != nil {
			return nil, fmt.Errorf("signing_keys[%d] %s: %w", i, name, err)
		}
		k, err := parseKey(b)
		if err != nil {
			return nil, fmt.Errorf("signing_keys[%d] %s: %w", i, name, err)
		}
		keys = append(keys, k)
	}
	return newKeyring(keys)
}

func newKeyring(keys []*signingKey) (*Keyring, error) {
	kr := &Keyring{signer: keys[0], byKid: map[string]*signingKey{}}
	set := jwk.NewSet()
	for _, k := range keys {
		if _, dup := kr.byKid[k.kid]; dup {
			continue
		}
		kr.byKid[k.kid] = k
		pub, err := jwk.Import(k.pub)
		if err != nil {
			return nil, err
		}
		_ = pub.Set(jwk.KeyIDKey, k.kid)
		_ = pub.Set(jwk.AlgorithmKey, k.alg)
		_ = pub.Set(jwk.KeyUsageKey, "sig")
		if err := set.AddKey(pub); err != nil {
			return nil, err
		}
	}
	var err error
	kr.jwks, err = json.Marshal(set)
	return kr, err
}

// Carry keeps verifying with the keys of prev that this keyring lacks until
// grace after now (the longest a token they signed can live), so removing
// a key from the config does not cut off tokens already issued with it.
func (kr *Keyring) Carry(prev *Keyring, now time.Time, grace time.Duration) *Keyring {
	if prev == nil {
		return kr
	}
	keys := []*signingKey{kr.signer}
	for kid, k := range kr.byKid {
		if kid != kr.signer.kid {
			keys = append(keys, k)
		}
	}
	added := false
	for kid, k := range prev.byKid {
		if _, ok := kr.byKid[kid]; ok {
			continue
		}
		if !k.retireAt.IsZero() && !now.Before(k.retireAt) {
			continue // fully retired
		}
		c := *k
		c.priv = nil
		if c.retireAt.IsZero() {
			c.retireAt = now.Add(grace)
		}
		keys = append(keys, &c)
		added = true
	}
	if !added {
		return kr
	}
	out, err := newKeyring(keys)
	if err != nil {
		return kr
	}
	return out
}

// JWKS is the public key set (JSON), for /.well-known/apiguard/jwks.json.
func (kr *Keyring) JWKS() []byte { return kr.jwks }

// SignerKeyID is the key id of the signing key.
func (kr *Keyring) SignerKeyID() string { return kr.signer.kid }

// verifier returns the key for kid that still verifies at now.
func (kr *Keyring) verifier(kid string, now time.Time) *signingKey {
	k := kr.byKid[kid]
	if k == nil || (!k.retireAt.IsZero() && !now.Before(k.retireAt)) {
		return nil
	}
	return k
}
