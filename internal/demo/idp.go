package demo

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// The demo identity provider. Its tokens are what a real OpenID provider
// would issue for the shop, so apiguard's JWT checks can verify them
// against the JWKS the shop publishes.
const (
	// Issuer is the iss claim of every demo token.
	Issuer = "https://idp.demo.apiguard.local"
	// Audience is the aud claim of every demo token.
	Audience = "shop-api"
	// JWKSPath is where the shop publishes the identity provider's keys.
	JWKSPath = "/.well-known/jwks.json"
	// TokenLifetime is how long a demo token is valid.
	TokenLifetime = 15 * time.Minute
)

// identityProvider signs ES256 tokens with a key generated per process.
type identityProvider struct {
	priv jwk.Key // carries kid and alg, so signed tokens name their key
	pub  jwk.Key
	jwks []byte // the public key set, served as is
	now  func() time.Time
}

func newIdentityProvider() (*identityProvider, error) {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("demo idp: generate key: %w", err)
	}
	priv, err := jwk.Import(raw)
	if err != nil {
		return nil, fmt.Errorf("demo idp: import key: %w", err)
	}
	// kid = RFC 7638 thumbprint, as most providers do.
	if err := jwk.AssignKeyID(priv); err != nil {
		return nil, fmt.Errorf("demo idp: key id: %w", err)
	}
	if err := priv.Set(jwk.AlgorithmKey, jwa.ES256()); err != nil {
		return nil, fmt.Errorf("demo idp: key alg: %w", err)
	}
	if err := priv.Set(jwk.KeyUsageKey, "sig"); err != nil {
		return nil, fmt.Errorf("demo idp: key use: %w", err)
	}
	pub, err := priv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("demo idp: public key: %w", err)
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, fmt.Errorf("demo idp: key set: %w", err)
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("demo idp: marshal key set: %w", err)
	}
	return &identityProvider{priv: priv, pub: pub, jwks: jwks, now: time.Now}, nil
}

// issue signs an access token for sub with the given roles.
func (p *identityProvider) issue(sub string, roles []string) (string, error) {
	return p.issueAt(sub, roles, p.now())
}

// issueAt issues a token as if at now (an old, expired token when now is in
// the past: what an attacker finds in a leaked log).
func (p *identityProvider) issueAt(sub string, roles []string, now time.Time) (string, error) {
	tok, err := jwt.NewBuilder().
		Issuer(Issuer).
		Audience([]string{Audience}).
		Subject(sub).
		IssuedAt(now).
		NotBefore(now).
		Expiration(now.Add(TokenLifetime)).
		JwtID(rand.Text()).
		Claim("roles", roles).
		Build()
	if err != nil {
		return "", fmt.Errorf("demo idp: build token: %w", err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), p.priv))
	if err != nil {
		return "", fmt.Errorf("demo idp: sign token: %w", err)
	}
	return string(signed), nil
}

// principal is who a verified token speaks for.
type principal struct {
	Subject string
	Roles   []string
}

func (p principal) hasRole(role string) bool {
	for _, r := range p.Roles {
		if r == role {
			return true
		}
	}
	return false
}

var errNoSubject = errors.New("token has no subject")

// verify checks signature, issuer, audience and lifetime. The shop verifies
// tokens properly; its holes are elsewhere.
func (p *identityProvider) verify(token string) (principal, error) {
	tok, err := jwt.ParseString(token,
		jwt.WithKey(jwa.ES256(), p.pub),
		jwt.WithValidate(true),
		jwt.WithIssuer(Issuer),
		jwt.WithAudience(Audience),
		jwt.WithClock(jwt.ClockFunc(p.now)),
		jwt.WithAcceptableSkew(30*time.Second),
	)
	if err != nil {
		return principal{}, err
	}
	sub, ok := tok.Subject()
	if !ok || sub == "" {
		return principal{}, errNoSubject
	}
	out := principal{Subject: sub}
	var roles []any
	if tok.Has("roles") {
		if err := tok.Get("roles", &roles); err != nil {
			return principal{}, fmt.Errorf("roles claim: %w", err)
		}
	}
	for _, r := range roles {
		if s, ok := r.(string); ok {
			out.Roles = append(out.Roles, s)
		}
	}
	return out, nil
}
