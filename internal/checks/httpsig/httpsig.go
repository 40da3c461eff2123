// Package httpsig authenticates requests signed with HTTP Message
// Signatures (RFC 9421): it parses the Signature-Input and Signature
// fields, rebuilds the signature base (§2.5), verifies it with a configured
// key (ed25519, ecdsa-p256-sha256, hmac-sha256), enforces freshness
// (created, expires, max_age), optional single-use nonces through the state
// backend, and Content-Digest (RFC 9530) against the buffered body.
//
// On success, req.Identity.Subject is set to "httpsig:<keyid>" unless an
// earlier check already set a subject (the earlier identity then stands;
// the signature only proves possession of the key).
package httpsig

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/apiguard/apiguard/internal/state"
)

// Algorithms (RFC 9421 §6.2.2 names).
const (
	AlgEd25519    = "ed25519"
	AlgECDSAP256  = "ecdsa-p256-sha256"
	AlgHMACSHA256 = "hmac-sha256"
)

// Defaults and bounds.
const (
	DefaultMaxAge = 5 * time.Minute
	// FutureSkew is how far in the future created may be (clock skew).
	FutureSkew = 30 * time.Second
	// maxNonce bounds the nonce length stored in the backend.
	maxNonce = 256
	// minSecret is the shortest accepted HMAC secret (256 bits).
	minSecret = 32
)

// DefaultRequiredComponents are covered by every accepted signature unless
// required_components is set.
var DefaultRequiredComponents = []string{"@method", "@target-uri"}

// Config is the httpsig check's configuration.
type Config struct {
	pipeline.Options `yaml:",inline"`
	// Keys are the verification keys, looked up by the signature's keyid.
	Keys []Key `yaml:"keys,omitempty"`
	// JWKSURL serves more keys by kid (OKP Ed25519 -> ed25519, EC P-256 ->
	// ecdsa-p256-sha256), fetched at start, every JWKSRefresh (default 15m),
	// and when a request names an unknown keyid (at most every 30 s).
	JWKSURL     string `yaml:"jwks_url,omitempty"`
	JWKSRefresh string `yaml:"jwks_refresh_interval,omitempty"`
	// RequiredComponents must all be covered by the signature (bare
	// component names without parameters, e.g. "@method", "@target-uri",
	// "content-digest"); default ["@method", "@target-uri"].
	RequiredComponents []string `yaml:"required_components"`
	// MaxAge bounds the age of the signature's created parameter (default
	// "5m"); created may be at most 30s in the future.
	MaxAge string `yaml:"max_age,omitempty"`
	// RequireNonce requires a nonce parameter, remembered in the state
	// backend until created+max_age: replays are refused.
	RequireNonce bool `yaml:"require_nonce,omitempty"`
	// RequireContentDigest requires a Content-Digest field (sha-256 or
	// sha-512) matching the body, and makes content-digest a required
	// covered component.
	RequireContentDigest bool `yaml:"require_content_digest,omitempty"`
}

// Key is one verification key.
type Key struct {
	ID string `yaml:"id"`
	// Algorithm is ed25519, ecdsa-p256-sha256 or hmac-sha256.
	Algorithm string `yaml:"algorithm"`
	// PublicKeyFile or PublicKey (PEM, SubjectPublicKeyInfo) for ed25519
	// and ecdsa-p256-sha256.
	PublicKeyFile string `yaml:"public_key_file,omitempty"`
	PublicKey     string `yaml:"public_key,omitempty"`
	// Secret is the base64 HMAC secret (use ${ENV}), at least 32 bytes.
	Secret string `yaml:"secret,omitempty"`
}

var derived = []string{"@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query"}

// Validate reports every invalid field under path.
func (c *Config) Validate(path string, errs *field.Errors) {
	c.Options.Validate(path, errs)
	kp := field.Join(path, "keys")
	if len(c.Keys) == 0 && c.JWKSURL == "" {
		errs.Add(kp, "at least one key (or jwks_url) is required")
	}
	if c.JWKSURL != "" && !strings.HasPrefix(c.JWKSURL, "https://") && !strings.HasPrefix(c.JWKSURL, "http://") {
		errs.Add(field.Join(path, "jwks_url"), "must be an http:// or https:// URL")
	}
	if c.JWKSRefresh != "" {
		if d, err := time.ParseDuration(c.JWKSRefresh); err != nil || d < time.Second {
			errs.Add(field.Join(path, "jwks_refresh_interval"), "must be a duration of at least 1s, not %q", c.JWKSRefresh)
		}
	}
	ids := map[string]bool{}
	for i := range c.Keys {
		p := field.Index(kp, i)
		k := &c.Keys[i]
		if k.ID == "" {
			errs.Add(field.Join(p, "id"), "is required")
		} else if ids[k.ID] {
			errs.Add(field.Join(p, "id"), "duplicate key id %q", k.ID)
		}
		ids[k.ID] = true
		if _, err := k.load(); err != nil {
			errs.Add(p, "%v", err)
		}
	}
	rp := field.Join(path, "required_components")
	for i, name := range c.RequiredComponents {
		switch {
		case strings.HasPrefix(name, "@"):
			if !slices.Contains(derived, name) {
				errs.Add(field.Index(rp, i), "unknown derived component %q (one of %s)", name, strings.Join(derived, ", "))
			}
		case !validFieldName(name):
			errs.Add(field.Index(rp, i), "not a lower-case field name: %q", name)
		}
	}
	if c.MaxAge != "" {
		if d, err := time.ParseDuration(c.MaxAge); err != nil || d <= 0 {
			errs.Add(field.Join(path, "max_age"), "must be a positive duration such as 5m, not %q", c.MaxAge)
		}
	}
}

func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// verifier is a loaded key.
type verifier struct {
	alg    string
	ed     ed25519.PublicKey
	ec     *ecdsa.PublicKey
	secret []byte
}

// load parses the key material. Errors never contain the secret.
func (k *Key) load() (*verifier, error) {
	v := &verifier{alg: k.Algorithm}
	switch k.Algorithm {
	case AlgEd25519, AlgECDSAP256:
		if k.Secret != "" {
			return nil, fmt.Errorf("secret is only for hmac-sha256")
		}
		pemText := []byte(k.PublicKey)
		switch {
		case k.PublicKey != "" && k.PublicKeyFile != "":
			return nil, fmt.Errorf("set public_key or public_key_file, not both")
		case k.PublicKeyFile != "":
			b, err := os.ReadFile(k.PublicKeyFile)
			if err != nil {
				return nil, fmt.Errorf("cannot read %s", k.PublicKeyFile)
			}
			pemText = b
		case k.PublicKey == "":
			return nil, fmt.Errorf("public_key or public_key_file is required for %s", k.Algorithm)
		}
		blk, _ := pem.Decode(pemText)
		if blk == nil || blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("public key is not a PEM PUBLIC KEY block")
		}
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %v", err)
		}
		switch p := pub.(type) {
		case ed25519.PublicKey:
			if k.Algorithm != AlgEd25519 {
				return nil, fmt.Errorf("public key is ed25519, not %s", k.Algorithm)
			}
			v.ed = p
		case *ecdsa.PublicKey:
			if k.Algorithm != AlgECDSAP256 || p.Curve != elliptic.P256() {
				return nil, fmt.Errorf("public key is not a P-256 key for %s", k.Algorithm)
			}
			v.ec = p
		default:
			return nil, fmt.Errorf("public key type %T does not fit %s", pub, k.Algorithm)
		}
	case AlgHMACSHA256:
		if k.PublicKey != "" || k.PublicKeyFile != "" {
			return nil, fmt.Errorf("hmac-sha256 takes a secret, not a public key")
		}
		s := strings.TrimSpace(k.Secret)
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			b, err = base64.RawStdEncoding.DecodeString(s)
		}
		if err != nil {
			return nil, fmt.Errorf("secret is not base64")
		}
		if len(b) < minSecret {
			return nil, fmt.Errorf("secret must be at least %d bytes", minSecret)
		}
		v.secret = b
	default:
		return nil, fmt.Errorf("algorithm must be ed25519, ecdsa-p256-sha256 or hmac-sha256, not %q", k.Algorithm)
	}
	return v, nil
}

// verify checks sig over base.
func (v *verifier) verify(base, sig []byte) bool {
	switch v.alg {
	case AlgEd25519:
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(v.ed, base, sig)
	case AlgECDSAP256:
		// RFC 9421 §3.3.4: r||s, each 32 bytes big-endian.
		if len(sig) != 64 {
			return false
		}
		h := sha256.Sum256(base)
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(v.ec, h[:], r, s)
	case AlgHMACSHA256:
		m := hmac.New(sha256.New, v.secret)
		m.Write(base)
		return hmac.Equal(m.Sum(nil), sig)
	}
	return false
}

// Check is the built httpsig check.
type Check struct {
	keys          map[string]*verifier // from the config
	jwks          *jwksKeys            // nil without jwks_url
	required      []string
	maxAge        time.Duration
	requireNonce  bool
	requireDigest bool
	backend       state.Backend
	now           func() time.Time
}

var _ pipeline.Check = (*Check)(nil)

// New builds the check. backend may be nil unless RequireNonce.
func New(cfg Config, backend state.Backend) (*Check, error) {
	var errs field.Errors
	cfg.Validate("httpsig", &errs)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	if cfg.RequireNonce && backend == nil {
		return nil, errors.New("httpsig: require_nonce needs a state backend")
	}
	c := &Check{keys: make(map[string]*verifier, len(cfg.Keys)), maxAge: DefaultMaxAge,
		requireNonce: cfg.RequireNonce, requireDigest: cfg.RequireContentDigest, backend: backend, now: time.Now}
	for i := range cfg.Keys {
		v, _ := cfg.Keys[i].load() // validated above
		c.keys[cfg.Keys[i].ID] = v
	}
	if cfg.JWKSURL != "" {
		every := 15 * time.Minute
		if cfg.JWKSRefresh != "" {
			every, _ = time.ParseDuration(cfg.JWKSRefresh)
		}
		c.jwks = newJWKSKeys(cfg.JWKSURL, every)
	}
	c.required = slices.Clone(cfg.RequiredComponents)
	if len(c.required) == 0 {
		c.required = slices.Clone(DefaultRequiredComponents)
	}
	if c.requireDigest && !slices.Contains(c.required, "content-digest") {
		c.required = append(c.required, "content-digest")
	}
	if cfg.MaxAge != "" {
		c.maxAge, _ = time.ParseDuration(cfg.MaxAge)
	}
	return c, nil
}

// Name implements pipeline.Check.
func (*Check) Name() string { return "httpsig" }

// Close stops the JWKS refresh.
func (c *Check) Close() error {
	if c.jwks != nil {
		c.jwks.close()
	}
	return nil
}

// Reason slugs.
const (
	ReasonMissing        = "signature-missing"
	ReasonMalformed      = "signature-malformed"
	ReasonUnknownKey     = "signature-unknown-key"
	ReasonComponents     = "signature-components"
	ReasonInvalid        = "signature-invalid"
	ReasonExpired        = "signature-expired"
	ReasonReplayed       = "signature-replayed"
	ReasonDigestMismatch = "content-digest-mismatch"
)

func deny(slug, detail string) pipeline.Verdict {
	return pipeline.Verdict{Action: pipeline.Deny, Status: http.StatusUnauthorized, Reason: slug, Detail: detail}
}

// Check implements pipeline.Check.
func (c *Check) Check(ctx context.Context, req *pipeline.Request) (pipeline.Verdict, error) {
	r := req.HTTP
	if r == nil {
		return deny(ReasonMissing, "the request must be signed (RFC 9421 Signature-Input and Signature)"), nil
	}
	inputs, sigs := r.Header.Values("Signature-Input"), r.Header.Values("Signature")
	if len(inputs) == 0 || len(sigs) == 0 {
		return deny(ReasonMissing, "the request must be signed (RFC 9421 Signature-Input and Signature)"), nil
	}
	all, err := parseSignatures(inputs, sigs)
	if err != nil {
		return deny(ReasonMalformed, "the Signature-Input or Signature field is malformed"), nil
	}
	if len(all) == 0 {
		return deny(ReasonMalformed, "no Signature-Input label has a matching Signature"), nil
	}
	var s *signature
	var v *verifier
	knownKey := false
	for i := range all {
		k, ok := c.keys[all[i].keyID]
		if !ok && c.jwks != nil {
			k, ok = c.jwks.get(all[i].keyID)
		}
		if !ok {
			continue
		}
		knownKey = true
		if c.coversRequired(&all[i]) {
			s, v = &all[i], k
			break
		}
	}
	switch {
	case !knownKey:
		return deny(ReasonUnknownKey, "no signature is made with a key known here"), nil
	case s == nil:
		return deny(ReasonComponents, "the signature does not cover every required component: "+strings.Join(c.required, ", ")), nil
	}
	if s.alg != "" && s.alg != v.alg {
		return deny(ReasonInvalid, "the signature does not verify"), nil
	}
	// Freshness first: it is cheap, and stale signatures need no crypto.
	if !s.hasCreated {
		return deny(ReasonMalformed, "the signature must carry a created parameter"), nil
	}
	now := c.now()
	created := time.Unix(s.created, 0)
	switch {
	case created.After(now.Add(FutureSkew)):
		return deny(ReasonExpired, "the signature was created in the future"), nil
	case now.Sub(created) > c.maxAge:
		return deny(ReasonExpired, "the signature is too old"), nil
	case s.hasExpires && now.Unix() > s.expires:
		return deny(ReasonExpired, "the signature has expired"), nil
	}
	if c.requireNonce && (!s.hasNonce || s.nonce == "") {
		return deny(ReasonMalformed, "the signature must carry a nonce parameter"), nil
	}
	if len(s.nonce) > maxNonce {
		return deny(ReasonMalformed, "the nonce parameter is too long"), nil
	}
	base, err := signatureBase(requestMessage(r), s)
	switch {
	case errors.Is(err, errMissingPart):
		return deny(ReasonInvalid, "the signature covers a component the request does not have"), nil
	case err != nil:
		return deny(ReasonMalformed, "the signature covers an unsupported or invalid component"), nil
	}
	if !v.verify(base, s.sig) {
		return deny(ReasonInvalid, "the signature does not verify"), nil
	}
	if vd, ok := c.checkDigest(req); !ok {
		return vd, nil
	}
	if c.requireNonce {
		ttl := created.Add(c.maxAge).Sub(now) + FutureSkew
		if ttl < time.Second {
			ttl = time.Second
		}
		stored, err := c.backend.PutNX(ctx, "httpsig:nonce:"+s.keyID+":"+s.nonce, []byte{1}, ttl)
		if err != nil {
			return pipeline.Allowed, fmt.Errorf("httpsig: nonce store: %w", err)
		}
		if !stored {
			return deny(ReasonReplayed, "this signature nonce was already used"), nil
		}
	}
	if req.Identity.Subject == "" {
		req.Identity.Subject = "httpsig:" + s.keyID
	}
	return pipeline.Allowed, nil
}

func (c *Check) coversRequired(s *signature) bool {
	for _, name := range c.required {
		if !s.covers(name) {
			return false
		}
	}
	return true
}

// checkDigest verifies Content-Digest against the buffered body.
func (c *Check) checkDigest(req *pipeline.Request) (pipeline.Verdict, bool) {
	r := req.HTTP
	vals := r.Header.Values("Content-Digest")
	if len(vals) == 0 {
		if c.requireDigest {
			return deny(ReasonDigestMismatch, "a Content-Digest field (sha-256 or sha-512) is required"), false
		}
		return pipeline.Allowed, true
	}
	body := req.Body
	if body == nil && r.ContentLength != 0 {
		// The gateway did not buffer this body (not JSON, or over the
		// route's limit): its digest cannot be checked here.
		if c.requireDigest {
			return deny(ReasonDigestMismatch, "the request body cannot be checked against Content-Digest on this route (body not buffered)"), false
		}
		return pipeline.Allowed, true
	}
	switch digestMatches(vals, body) {
	case digestOK:
		return pipeline.Allowed, true
	case digestNone:
		if c.requireDigest {
			return deny(ReasonDigestMismatch, "Content-Digest must use sha-256 or sha-512"), false
		}
		return pipeline.Allowed, true
	case digestMalformed:
		return deny(ReasonDigestMismatch, "the Content-Digest field is malformed"), false
	}
	return deny(ReasonDigestMismatch, "the body does not match its Content-Digest"), false
}
