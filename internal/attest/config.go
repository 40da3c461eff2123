package attest

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
)

// Config is the attestation service's configuration (top-level key
// attestation). The service runs when signing_keys is set.
type Config struct {
	// Issuer is the tokens' iss (default "apiguard").
	Issuer string `yaml:"issuer,omitempty"`
	// SigningKeys: the first signs, the others verify (rotation). Make
	// keys with `apiguard keys generate`.
	SigningKeys []KeySource `yaml:"signing_keys"`
	// TokenTTL is the attestation token's lifetime (default 5m).
	TokenTTL string `yaml:"token_ttl,omitempty"`
	// ChallengeTTL is how long a challenge can be answered (default 60s).
	ChallengeTTL string `yaml:"challenge_ttl,omitempty"`
	// ChallengesPerMinute bounds challenges per client IP (default 30).
	ChallengesPerMinute int `yaml:"challenges_per_minute,omitempty"`
	// PoWDifficulty is the default proof-of-work difficulty in bits
	// (default 17: about half a second of a browser's time with a
	// synchronous JavaScript SHA-256; see examples/web-pow).
	PoWDifficulty int `yaml:"pow_difficulty,omitempty"`
	// AppAttestKeyTTL is how long an attested App Attest key is remembered
	// for later assertions (default 8760h).
	AppAttestKeyTTL string `yaml:"appattest_key_ttl,omitempty"`
	// AndroidRevocationFile is Google's attestation status list (JSON),
	// https://android.googleapis.com/attestation/status, saved to a file.
	AndroidRevocationFile string `yaml:"android_revocation_file,omitempty"`
	// AllowedOrigins lets browser apps on these origins call the service
	// (CORS); "*" allows any. Empty: same-origin only.
	AllowedOrigins []string `yaml:"allowed_origins,omitempty"`
	// Pinning hands clients a signed set of certificate pins.
	Pinning *Pinning `yaml:"pinning,omitempty"`
	// Secrets are released only to freshly attested clients.
	Secrets []Secret `yaml:"secrets,omitempty"`
	// SecretsMaxTokenAge is how fresh a token must be to fetch secrets
	// (default 60s).
	SecretsMaxTokenAge string `yaml:"secrets_max_token_age,omitempty"`
}

// Pinning configures dynamic certificate pinning.
type Pinning struct {
	// Hosts the pins apply to ("api.example.com", "*.example.com").
	Hosts []string `yaml:"hosts"`
	// Pins are base64 SHA-256 digests of SubjectPublicKeyInfos: backups
	// for the next certificate's key.
	Pins []string `yaml:"pins,omitempty"`
	// CertFiles are PEM certificates whose keys are pinned too.
	CertFiles []string `yaml:"cert_files,omitempty"`
	// ListenerChain pins every key of the public listener's certificate
	// chain (default true).
	ListenerChain *bool `yaml:"listener_chain,omitempty"`
	// TTL is the signed pin set's lifetime (default 24h).
	TTL string `yaml:"ttl,omitempty"`
}

// Secret is one runtime secret.
type Secret struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
	// Apps that may have it (empty: every app).
	Apps []string `yaml:"apps,omitempty"`
	// MinLevel is the weakest attestation level that may have it
	// (default software).
	MinLevel string `yaml:"min_level,omitempty"`
}

// Enabled reports whether the service is configured.
func (c *Config) Enabled() bool { return c != nil && len(c.SigningKeys) > 0 }

const (
	defaultTokenTTL      = 5 * time.Minute
	defaultChallengeTTL  = 60 * time.Second
	defaultChallengeRate = 30
	defaultPoWDifficulty = 17
	defaultAppAttestTTL  = 365 * 24 * time.Hour
	defaultPinsTTL       = 24 * time.Hour
	defaultSecretsAge    = 60 * time.Second
)

func durationOr(s string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d
	}
	return def
}

// Validate reports invalid fields under path.
func (c *Config) Validate(path string, errs *field.Errors) {
	if len(c.SigningKeys) == 0 {
		errs.Add(field.Join(path, "signing_keys"), "at least one key is required (make one with `apiguard keys generate`)")
	}
	for i, k := range c.SigningKeys {
		p := field.Index(field.Join(path, "signing_keys"), i)
		if (k.File == "") == (k.Env == "") {
			errs.Add(p, "set exactly one of file and env")
			continue
		}
		if k.File != "" {
			if b, err := os.ReadFile(k.File); err != nil {
				errs.Add(field.Join(p, "file"), "%v", err)
			} else if _, err := parseKey(b); err != nil {
				errs.Add(field.Join(p, "file"), "%v", err)
			}
		}
	}
	for _, d := range []struct{ name, v string }{{"token_ttl", c.TokenTTL}, {"challenge_ttl", c.ChallengeTTL}, {"appattest_key_ttl", c.AppAttestKeyTTL}, {"secrets_max_token_age", c.SecretsMaxTokenAge}} {
		if d.v == "" {
			continue
		}
		if v, err := time.ParseDuration(d.v); err != nil || v <= 0 {
			errs.Add(field.Join(path, d.name), "not a positive duration: %q", d.v)
		}
	}
	if c.ChallengesPerMinute < 0 {
		errs.Add(field.Join(path, "challenges_per_minute"), "must be positive")
	}
	if c.PoWDifficulty < 0 || c.PoWDifficulty > 32 {
		errs.Add(field.Join(path, "pow_difficulty"), "must be 0..32 bits, not %d", c.PoWDifficulty)
	}
	for i, o := range c.AllowedOrigins {
		if o != "*" && !strings.HasPrefix(o, "https://") && !strings.HasPrefix(o, "http://") {
			errs.Add(field.Index(field.Join(path, "allowed_origins"), i), "an origin is scheme://host[:port] or *, not %q", o)
		}
	}
	if c.AndroidRevocationFile != "" {
		if _, err := os.Stat(c.AndroidRevocationFile); err != nil {
			errs.Add(field.Join(path, "android_revocation_file"), "%v", err)
		}
	}
	if p := c.Pinning; p != nil {
		pp := field.Join(path, "pinning")
		if len(p.Hosts) == 0 {
			errs.Add(field.Join(pp, "hosts"), "pins need at least one host")
		}
		for i, h := range p.Hosts {
			if h == "" || strings.ContainsAny(h, "/: ") {
				errs.Add(field.Index(field.Join(pp, "hosts"), i), "not a host name: %q", h)
			}
		}
		for i, pin := range p.Pins {
			if b, err := base64.StdEncoding.DecodeString(pin); err != nil || len(b) != sha256.Size {
				errs.Add(field.Index(field.Join(pp, "pins"), i), "not a base64 SHA-256 digest")
			}
		}
		for i, f := range p.CertFiles {
			if _, err := spkiPinsFromFile(f); err != nil {
				errs.Add(field.Index(field.Join(pp, "cert_files"), i), "%v", err)
			}
		}
		if p.TTL != "" {
			if v, err := time.ParseDuration(p.TTL); err != nil || v <= 0 {
				errs.Add(field.Join(pp, "ttl"), "not a positive duration: %q", p.TTL)
			}
		}
	}
	seen := map[string]bool{}
	for i, s := range c.Secrets {
		sp := field.Index(field.Join(path, "secrets"), i)
		if !field.ValidName(s.Name) {
			errs.Add(field.Join(sp, "name"), "not a valid name: %q", s.Name)
		}
		if seen[s.Name] {
			errs.Add(field.Join(sp, "name"), "duplicate secret %q", s.Name)
		}
		seen[s.Name] = true
		if s.Value == "" {
			errs.Add(field.Join(sp, "value"), "empty secret")
		}
		if s.MinLevel != "" && LevelRank(s.MinLevel) == 0 {
			errs.Add(field.Join(sp, "min_level"), "must be work, software or hardware, not %q", s.MinLevel)
		}
	}
}

// spkiPinsFromFile returns the SPKI pins of every certificate in a PEM file.
func spkiPinsFromFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var pins []string
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		pins = append(pins, SPKIPin(cert))
	}
	if len(pins) == 0 {
		return nil, errors.New("no certificate in " + path)
	}
	return slices.Compact(pins), nil
}

// SPKIPin is base64(SHA-256(SubjectPublicKeyInfo)), the pin of a key.
func SPKIPin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}
