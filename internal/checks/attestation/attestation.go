// Package attestation is the gateway check that demands an attestation
// token (Apiguard-Token) from the attestation service: verified offline with
// the service's keys and cached, optionally bound to a request header and
// single use. The attested app and device join the client identity.
package attestation

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"hash/maphash"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apiguard/apiguard/internal/attest"
	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/apiguard/apiguard/internal/state"
)

// Config is the attestation check's configuration.
type Config struct {
	pipeline.Options `yaml:",inline"`
	// Token is required (default) or optional: an optional token is still
	// verified when present, and a bad one is refused.
	Token string `yaml:"token,omitempty"`
	// Apps allowed on the route (empty: every registered app).
	Apps []string `yaml:"apps,omitempty"`
	// MinLevel is the weakest attestation accepted: work, software or
	// hardware (default: any).
	MinLevel string `yaml:"min_level,omitempty"`
	// BindHeader names the header the token must be bound to (its pay
	// claim = base64url(SHA-256(value))), e.g. Authorization: a stolen
	// token is then useless with another user's credential.
	BindHeader string `yaml:"bind_header,omitempty"`
	// SingleUse refuses a token seen before on any single-use route.
	SingleUse bool `yaml:"single_use,omitempty"`
	// CacheSize bounds the verified-token cache (default 10000; -1
	// disables it).
	CacheSize int `yaml:"cache_size,omitempty"`
}

// Validate reports invalid fields under path.
func (c *Config) Validate(path string, errs *field.Errors) {
	c.Options.Validate(path, errs)
	switch c.Token {
	case "", "required", "optional":
	default:
		errs.Add(field.Join(path, "token"), "must be required or optional, not %q", c.Token)
	}
	if c.MinLevel != "" && attest.LevelRank(c.MinLevel) == 0 {
		errs.Add(field.Join(path, "min_level"), "must be work, software or hardware, not %q", c.MinLevel)
	}
	if strings.ContainsAny(c.BindHeader, " :\r\n") {
		errs.Add(field.Join(path, "bind_header"), "not a header name: %q", c.BindHeader)
	}
	for i, a := range c.Apps {
		if a == "" {
			errs.Add(field.Index(field.Join(path, "apps"), i), "empty app id")
		}
	}
}

// Check verifies attestation tokens.
type Check struct {
	keys      *attest.Keyring
	issuer    string
	st        state.Backend
	required  bool
	apps      []string
	minRank   int
	bind      string
	singleUse bool
	cache     *cache
	now       func() time.Time
}

var _ pipeline.Check = (*Check)(nil)

// New builds the check with the service's keys and issuer.
func New(cfg Config, svc *attest.Service, st state.Backend) *Check {
	c := &Check{
		keys: svc.Keyring(), issuer: svc.Issuer(), st: st, required: cfg.Token != "optional", apps: cfg.Apps,
		minRank: attest.LevelRank(cfg.MinLevel), bind: http.CanonicalHeaderKey(cfg.BindHeader), singleUse: cfg.SingleUse, now: time.Now,
	}
	switch {
	case cfg.CacheSize == 0:
		c.cache = newCache(10000)
	case cfg.CacheSize > 0:
		c.cache = newCache(cfg.CacheSize)
	}
	return c
}

// Name implements pipeline.Check.
func (*Check) Name() string { return "attestation" }

// Problem slugs, one per way a token fails.
const (
	ReasonMissing    = "attestation-missing"
	ReasonInvalid    = "attestation-invalid"
	ReasonExpired    = "attestation-expired"
	ReasonUnbound    = "attestation-unbound"
	ReasonReplayed   = "attestation-replayed"
	ReasonNotAllowed = "attestation-app-not-allowed"
)

// jtiPrefix keys the single-use record of a token id.
const jtiPrefix = "attest:jti:"

func deny(status int, slug, detail string) pipeline.Verdict {
	return pipeline.Verdict{Action: pipeline.Deny, Status: status, Reason: slug, Detail: detail}
}

// Check implements pipeline.Check.
func (c *Check) Check(ctx context.Context, req *pipeline.Request) (pipeline.Verdict, error) {
	h := req.HTTP.Header
	tok := h.Get(attest.TokenHeader)
	// The token is for the gateway; the upstream never sees it.
	h.Del(attest.TokenHeader)
	if tok == "" {
		if c.required {
			return deny(http.StatusUnauthorized, ReasonMissing, "this API requires an attestation token in "+attest.TokenHeader), nil
		}
		return pipeline.Verdict{}, nil
	}
	now := c.now()
	claims, err := c.verify(tok, now)
	switch {
	case errors.Is(err, attest.ErrExpired):
		return deny(http.StatusUnauthorized, ReasonExpired, "the attestation token expired; attest again"), nil
	case err != nil:
		return deny(http.StatusUnauthorized, ReasonInvalid, "the attestation token is not valid"), nil
	}
	if len(c.apps) > 0 && !slices.Contains(c.apps, claims.Subject) {
		return deny(http.StatusForbidden, ReasonNotAllowed, "this app may not call this API"), nil
	}
	if attest.LevelRank(claims.Level) < c.minRank {
		return deny(http.StatusForbidden, ReasonNotAllowed, "this API needs a stronger attestation than "+claims.Level), nil
	}
	if c.bind != "" {
		if claims.Binding == "" {
			return deny(http.StatusUnauthorized, ReasonUnbound, "the attestation token must be bound to "+c.bind), nil
		}
		sum := sha256.Sum256([]byte(h.Get(c.bind)))
		var want [43]byte
		base64.RawURLEncoding.Encode(want[:], sum[:])
		if subtle.ConstantTimeCompare(want[:], []byte(claims.Binding)) != 1 {
			return deny(http.StatusUnauthorized, ReasonUnbound, "the attestation token is bound to another "+c.bind), nil
		}
	}
	if c.singleUse {
		ttl := time.Unix(claims.Expiry, 0).Sub(now) + time.Second
		first, err := c.st.PutNX(ctx, jtiPrefix+claims.ID, []byte{1}, ttl)
		if err != nil {
			return pipeline.Verdict{}, err
		}
		if !first {
			return deny(http.StatusUnauthorized, ReasonReplayed, "this attestation token was already used; attest again"), nil
		}
	}
	req.Identity.App = claims.Subject
	req.Identity.Device = claims.Device
	return pipeline.Verdict{}, nil
}

// verify returns the claims of a valid, unexpired token, from the cache
// when it was verified before.
func (c *Check) verify(tok string, now time.Time) (*attest.Claims, error) {
	if c.cache == nil {
		return c.keys.VerifyToken(tok, c.issuer, now)
	}
	if len(tok) > attest.MaxTokenBytes {
		return nil, attest.ErrMalformed
	}
	if cl := c.cache.get(tok); cl != nil {
		if now.Unix() >= cl.Expiry {
			return cl, attest.ErrExpired
		}
		return cl, nil
	}
	cl, err := c.keys.VerifyToken(tok, c.issuer, now)
	if err == nil {
		c.cache.put(tok, cl)
	}
	return cl, err
}

// cache is a bounded map of verified tokens, sharded to keep lock
// contention low; a full shard drops an arbitrary entry. It is keyed by the
// token itself: a map lookup hashes it several times faster than SHA-256
// would, and only tokens whose signature verified get in. Entries are
// read-only once stored.
type cache struct {
	seed   maphash.Seed
	shards [16]shard
	per    int
}

type shard struct {
	mu sync.RWMutex
	m  map[string]*attest.Claims
}

func newCache(size int) *cache {
	c := &cache{seed: maphash.MakeSeed(), per: max(1, size/16)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*attest.Claims)
	}
	return c
}

func (c *cache) shard(tok string) *shard {
	return &c.shards[maphash.String(c.seed, tok)&15]
}

func (c *cache) get(tok string) *attest.Claims {
	s := c.shard(tok)
	s.mu.RLock()
	cl := s.m[tok]
	s.mu.RUnlock()
	return cl
}

func (c *cache) put(tok string, cl *attest.Claims) {
	s := c.shard(tok)
	tok = strings.Clone(tok) // do not pin the request's header memory
	s.mu.Lock()
	if len(s.m) >= c.per {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[tok] = cl
	s.mu.Unlock()
}
