package attest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"
)

// Token types (the JWS "typ" header) keep a pin set from passing as an
// attestation token and the other way round.
const (
	TokenType = "apiguard-attest+jwt"
	PinsType  = "apiguard-pins+jwt"
)

// Levels of assurance, weakest first.
const (
	LevelWork     = "work"     // proof of work: CPU time spent, nothing about the app
	LevelSoftware = "software" // the client holds the release's bytes
	LevelHardware = "hardware" // a platform attested key (Secure Enclave, TEE, StrongBox)
)

// LevelRank orders levels; 0 is unknown.
func LevelRank(level string) int {
	switch level {
	case LevelWork:
		return 1
	case LevelSoftware:
		return 2
	case LevelHardware:
		return 3
	}
	return 0
}

// Claims are an attestation token's claims.
type Claims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"` // app id
	Device   string `json:"did"`
	IssuedAt int64  `json:"iat"`
	Expiry   int64  `json:"exp"`
	ID       string `json:"jti"`
	Provider string `json:"prv"`
	Level    string `json:"lvl"`
	Release  string `json:"rel,omitempty"`
	Binding  string `json:"pay,omitempty"` // base64url(SHA-256(bound header value))
}

// Sign makes a compact JWS of v with the signing key and typ.
func (kr *Keyring) Sign(v any, typ string) (string, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, typ)
	_ = hdr.Set(jws.KeyIDKey, kr.signer.kid)
	out, err := jws.Sign(payload, jws.WithKey(kr.signer.alg, kr.signer.priv, jws.WithProtectedHeaders(hdr)))
	return string(out), err
}

// Issue signs claims after filling jti when it is empty.
func (kr *Keyring) Issue(c *Claims) (string, error) {
	if c.ID == "" {
		c.ID = newID()
	}
	return kr.Sign(c, TokenType)
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Token verification errors. ErrExpired is distinct so clients learn to
// refresh rather than give up.
var (
	ErrMalformed = errors.New("attest: malformed token")
	ErrSignature = errors.New("attest: token signature invalid or key unknown")
	ErrIssuer    = errors.New("attest: token from another issuer")
	ErrExpired   = errors.New("attest: token expired")
	ErrType      = errors.New("attest: not a token of this type")
)

// MaxTokenBytes bounds a token before any decoding.
const MaxTokenBytes = 4096

// header is the part of the JOSE header we read before verifying.
type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// Verify checks a compact JWS of type typ: size, header, key by kid, the
// key's own algorithm (never the header's choice: no alg confusion, no
// "none"), signature; then decodes its payload into v.
func (kr *Keyring) Verify(token, typ string, now time.Time, v any) error {
	if len(token) > MaxTokenBytes {
		return ErrMalformed
	}
	h64, rest, ok := strings.Cut(token, ".")
	if !ok || strings.Count(rest, ".") != 1 {
		return ErrMalformed
	}
	hb, err := base64.RawURLEncoding.DecodeString(h64)
	if err != nil {
		return ErrMalformed
	}
	var h header
	if err := json.Unmarshal(hb, &h); err != nil {
		return ErrMalformed
	}
	if h.Typ != typ {
		return ErrType
	}
	k := kr.verifier(h.Kid, now)
	if k == nil || h.Alg != k.algStr {
		return ErrSignature
	}
	payload, err := jws.VerifyCompactFast(k.pub, []byte(token), k.alg)
	if err != nil {
		return ErrSignature
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(v); err != nil {
		return ErrMalformed
	}
	return nil
}

// VerifyToken verifies an attestation token from issuer at now.
func (kr *Keyring) VerifyToken(token, issuer string, now time.Time) (*Claims, error) {
	var c Claims
	if err := kr.Verify(token, TokenType, now, &c); err != nil {
		return nil, err
	}
	if c.Issuer != issuer {
		return nil, ErrIssuer
	}
	if c.Subject == "" || c.ID == "" || c.Expiry == 0 {
		return nil, ErrMalformed
	}
	if now.Unix() >= c.Expiry {
		return &c, ErrExpired
	}
	return &c, nil
}
