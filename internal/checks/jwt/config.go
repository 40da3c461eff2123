package jwt

import (
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
)

// Config is the jwt check's configuration.
type Config struct {
	pipeline.Options `yaml:",inline"`
	// Required refuses requests without a token (401 unauthorized). When
	// false, requests without a token pass anonymously, but a token that
	// is present must be valid. Default true.
	Required *bool    `yaml:"required,omitempty"`
	Issuers  []Issuer `yaml:"issuers"`
	// Token says where the token is; default Authorization: Bearer.
	Token TokenSource `yaml:"token,omitempty"`
	// Skew is the clock skew allowed on exp, nbf and iat (default 30s).
	Skew string `yaml:"skew,omitempty"`
	// ForwardClaims maps a claim to an upstream request header. The
	// client's own header of that name is always removed first.
	ForwardClaims map[string]string `yaml:"forward_claims,omitempty"`
	// CacheSize bounds the verified-token cache (default 10000; -1
	// disables it).
	CacheSize int `yaml:"cache_size,omitempty"`
}

// Issuer is one trusted token issuer and its keys.
type Issuer struct {
	Issuer     string   `yaml:"issuer"`     // exact iss
	Audiences  []string `yaml:"audiences"`  // the token's aud must contain one
	Algorithms []string `yaml:"algorithms"` // allowlist, e.g. [ES256, EdDSA]
	JWKSURL    string   `yaml:"jwks_url,omitempty"`
	KeyFiles   []string `yaml:"key_files,omitempty"` // PEM public keys or JWK/JWKS JSON files
	Keys       []string `yaml:"keys,omitempty"`      // inline PEM or JWK/JWKS JSON
	// RefreshInterval is the background JWKS refresh period (default 15m).
	RefreshInterval string `yaml:"refresh_interval,omitempty"`
	// MinRefreshInterval is the floor between fetches triggered by tokens
	// with unknown key ids (default 30s), so they cannot cause fetch storms.
	MinRefreshInterval string   `yaml:"min_refresh_interval,omitempty"`
	RequiredClaims     []string `yaml:"required_claims,omitempty"`
}

// TokenSource says where the token is. Header "Authorization" means the
// Bearer scheme; another header carries the raw token. When both are set
// the header is tried first.
type TokenSource struct {
	Header string `yaml:"header,omitempty"`
	Cookie string `yaml:"cookie,omitempty"`
}

const (
	defaultSkew          = 30 * time.Second
	defaultRefresh       = 15 * time.Minute
	defaultMinRefresh    = 30 * time.Second
	defaultCacheSize     = 10000
	maxSkew              = 10 * time.Minute
	defaultTokenHeader   = "Authorization"
	maxTokenLen          = 16 << 10
	maxJWKSBytes         = 1 << 20
	cacheMaxLifetime     = 5 * time.Minute
	fetchTimeout         = 10 * time.Second
	minRSABits           = 2048
	maxKeysPerIssuerScan = 16 // candidates tried for one token
)

// family is a key family: a key may only verify algorithms of its family.
type family uint8

const (
	famNone family = iota
	famHMAC
	famRSA
	famEC
	famEd25519
)

// algFamily gives the family of each supported algorithm; "none" and
// anything else is unsupported.
var algFamily = map[string]family{
	"HS256": famHMAC, "HS384": famHMAC, "HS512": famHMAC,
	"RS256": famRSA, "RS384": famRSA, "RS512": famRSA,
	"PS256": famRSA, "PS384": famRSA, "PS512": famRSA,
	"ES256": famEC, "ES384": famEC, "ES512": famEC,
	"EdDSA": famEd25519,
}

func durationOr(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	return time.ParseDuration(s)
}

// Validate reports every invalid field under path. It reads key files.
func (c *Config) Validate(path string, errs *field.Errors) {
	c.Options.Validate(path, errs)
	ip := field.Join(path, "issuers")
	if len(c.Issuers) == 0 && c.Mode != pipeline.ModeOff {
		errs.Add(ip, "at least one issuer is required")
	}
	seen := map[string]bool{}
	for i := range c.Issuers {
		is := &c.Issuers[i]
		at := field.Index(ip, i)
		switch {
		case is.Issuer == "":
			errs.Add(field.Join(at, "issuer"), "required (the exact iss claim)")
		case seen[is.Issuer]:
			errs.Add(field.Join(at, "issuer"), "duplicate issuer %q", is.Issuer)
		}
		seen[is.Issuer] = true
		if len(is.Audiences) == 0 {
			errs.Add(field.Join(at, "audiences"), "at least one audience is required")
		}
		for j, a := range is.Audiences {
			if a == "" {
				errs.Add(field.Index(field.Join(at, "audiences"), j), "must not be empty")
			}
		}
		fams := validateAlgs(is.Algorithms, field.Join(at, "algorithms"), errs)
		if is.JWKSURL == "" && len(is.KeyFiles) == 0 && len(is.Keys) == 0 {
			errs.Add(at, "a key source is required: jwks_url, key_files or keys")
		}
		if is.JWKSURL != "" {
			u, err := url.Parse(is.JWKSURL)
			switch {
			case err != nil:
				errs.Add(field.Join(at, "jwks_url"), "not a URL: %v", err)
			case u.Scheme != "https" && u.Scheme != "http":
				errs.Add(field.Join(at, "jwks_url"), "must be an http or https URL")
			case u.Host == "":
				errs.Add(field.Join(at, "jwks_url"), "has no host")
			}
		}
		for j, f := range is.KeyFiles {
			fp := field.Index(field.Join(at, "key_files"), j)
			b, err := os.ReadFile(f)
			if err != nil {
				errs.Add(fp, "cannot read key file: %v", err)
				continue
			}
			validateKeyMaterial(b, fams, fp, errs)
		}
		for j, k := range is.Keys {
			validateKeyMaterial([]byte(k), fams, field.Index(field.Join(at, "keys"), j), errs)
		}
		ref, err := durationOr(is.RefreshInterval, defaultRefresh)
		if err != nil || ref <= 0 {
			errs.Add(field.Join(at, "refresh_interval"), "must be a positive duration such as 15m, not %q", is.RefreshInterval)
		}
		minRef, err := durationOr(is.MinRefreshInterval, defaultMinRefresh)
		if err != nil || minRef <= 0 {
			errs.Add(field.Join(at, "min_refresh_interval"), "must be a positive duration such as 30s, not %q", is.MinRefreshInterval)
		}
		for j, rc := range is.RequiredClaims {
			if rc == "" {
				errs.Add(field.Index(field.Join(at, "required_claims"), j), "must not be empty")
			}
		}
	}
	tp := field.Join(path, "token")
	if c.Token.Header != "" && !validToken(c.Token.Header) {
		errs.Add(field.Join(tp, "header"), "not a valid header name: %q", c.Token.Header)
	}
	if c.Token.Cookie != "" && !validToken(c.Token.Cookie) {
		errs.Add(field.Join(tp, "cookie"), "not a valid cookie name: %q", c.Token.Cookie)
	}
	if sk, err := durationOr(c.Skew, defaultSkew); err != nil || sk < 0 || sk > maxSkew {
		errs.Add(field.Join(path, "skew"), "must be a duration between 0s and %v, not %q", maxSkew, c.Skew)
	}
	fp := field.Join(path, "forward_claims")
	targets := map[string]string{}
	claims := make([]string, 0, len(c.ForwardClaims))
	for k := range c.ForwardClaims {
		claims = append(claims, k)
	}
	slices.Sort(claims)
	for _, claim := range claims {
		h := c.ForwardClaims[claim]
		at := field.Join(fp, claim)
		switch {
		case claim == "":
			errs.Add(fp, "a claim name must not be empty")
		case !validToken(h):
			errs.Add(at, "not a valid header name: %q", h)
		case forbiddenForward(h):
			errs.Add(at, "header %q cannot carry a claim", h)
		case targets[strings.ToLower(h)] != "":
			errs.Add(at, "header %q already carries claim %q", h, targets[strings.ToLower(h)])
		case c.Token.Header != "" && strings.EqualFold(h, c.Token.Header):
			errs.Add(at, "header %q carries the token", h)
		}
		targets[strings.ToLower(h)] = claim
	}
	if c.CacheSize < -1 {
		errs.Add(field.Join(path, "cache_size"), "must be 0 (default 10000), -1 (disabled) or positive")
	}
}

// validateAlgs reports bad algorithm lists and returns the families used.
func validateAlgs(algs []string, path string, errs *field.Errors) map[family]bool {
	fams := map[family]bool{}
	if len(algs) == 0 {
		errs.Add(path, "at least one algorithm is required, e.g. [ES256]")
	}
	for j, a := range algs {
		ap := field.Index(path, j)
		if strings.EqualFold(a, "none") {
			errs.Add(ap, `"none" is never accepted: tokens must be signed`)
			continue
		}
		f, ok := algFamily[a]
		if !ok {
			errs.Add(ap, "unsupported algorithm %q (use HS256/384/512, RS256/384/512, PS256/384/512, ES256/384/512 or EdDSA)", a)
			continue
		}
		fams[f] = true
	}
	if fams[famHMAC] && len(fams) > 1 {
		errs.Add(path, "HS* algorithms cannot be mixed with asymmetric ones (algorithm confusion); use a separate issuer")
	}
	return fams
}

// validateKeyMaterial reports key material that does not parse or fits no
// allowed algorithm.
func validateKeyMaterial(b []byte, fams map[family]bool, path string, errs *field.Errors) {
	keys, err := parseKeys(b)
	if err != nil {
		errs.Add(path, "%v", err)
		return
	}
	for _, k := range keys {
		if !fams[k.fam] {
			errs.Add(path, "a %s key cannot verify any of the issuer's algorithms", k.fam)
			return
		}
	}
}

func (f family) String() string {
	switch f {
	case famHMAC:
		return "symmetric (oct)"
	case famRSA:
		return "RSA"
	case famEC:
		return "EC"
	case famEd25519:
		return "Ed25519"
	}
	return "unsupported"
}

// validToken reports whether s is an RFC 9110 token (header or cookie name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

func forbiddenForward(h string) bool {
	switch strings.ToLower(h) {
	case "host", "content-length", "transfer-encoding", "connection", "te", "trailer", "upgrade",
		"keep-alive", "proxy-connection", "authorization", "cookie":
		return true
	}
	return false
}
