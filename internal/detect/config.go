package detect

import (
	"log/slog"
	"math"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/state"
)

// Config configures the engine and every detector. The zero value is
// valid: every detector on with its defaults, except flows, which need
// rules. Durations are written as "30s", "10m".
type Config struct {
	// Fingerprint chooses what fp: keys are made of: "ja4+ja4h"
	// (default), "ja4" or "ja4h". See FingerprintJA4JA4H.
	Fingerprint string `yaml:"fingerprint,omitempty"`
	// Cooldown is how long a rule that keeps firing for a key waits
	// before reporting again at the same score (default 1m).
	Cooldown string    `yaml:"cooldown,omitempty"`
	NAT      NATConfig `yaml:"nat,omitempty"`
	// ExemptAPIKeys lists API key names whose requests are not observed
	// at all: partners' bulk jobs that crawl and sync by contract.
	ExemptAPIKeys []string `yaml:"exempt_api_keys,omitempty"`

	Rate   RateConfig   `yaml:"rate,omitempty"`
	Timing TimingConfig `yaml:"timing,omitempty"`
	Scrape ScrapeConfig `yaml:"scraping,omitempty"`
	Enum   EnumConfig   `yaml:"enumeration,omitempty"`
	Probe  ProbeConfig  `yaml:"probing,omitempty"`
	Login  LoginConfig  `yaml:"login,omitempty"`
	Flow   FlowConfig   `yaml:"flows,omitempty"`
	Risk   RiskConfig   `yaml:"risk,omitempty"`
}

// Common holds what every detector's config has.
type Common struct {
	// Enabled turns the detector off when false (default on).
	Enabled *bool `yaml:"enabled,omitempty"`
	// Keys are the identity key kinds (ip, net, fp, key, sub, dev) the
	// detector accounts each observation under; defaults per detector.
	Keys []string `yaml:"keys,omitempty"`
	// MaxKeys bounds the detector's tracked keys (default
	// Options.MaxKeys); the least recently seen key is evicted.
	MaxKeys int `yaml:"max_keys,omitempty"`
	// Weight scales the detector's score contributions (default 1; at
	// most 2; results are capped at 100).
	Weight float64 `yaml:"weight,omitempty"`
}

// Options are the engine's dependencies.
type Options struct {
	Clock func() time.Time // default time.Now
	// Backend shares the login counters that must agree across gateway
	// instances (per username, per fingerprint). nil: a private in-memory
	// backend, closed by Engine.Close.
	Backend state.Backend
	// KeyPrefix starts every backend key the engine writes (default
	// "det:").
	KeyPrefix string
	// MaxKeys is the default bound of every per-key table (default
	// 100000 keys per table).
	MaxKeys int
	// BackendTimeout bounds the backend calls of one observation
	// (default 250ms).
	BackendTimeout time.Duration
	Logger         *slog.Logger // backend errors; default slog.Default()
}

const (
	defaultMaxKeys        = 100_000
	maxMaxKeys            = 1 << 24
	defaultCooldown       = time.Minute
	defaultBackendTimeout = 250 * time.Millisecond
	defaultKeyPrefix      = "det:"
)

// NATConfig makes per-IP and per-network volume thresholds scale with the
// number of distinct actors seen behind the address: a corporate NAT with
// six people browsing needs six times the volume of one client before
// scraping, probing, enumeration or rate rules fire on its ip: key. An
// actor is the subject, else the device, else the API key, else the
// fingerprint of a request. Clients can fake fingerprints, so the scale is
// capped (MaxScale); ratio-based rules are not scaled.
type NATConfig struct {
	Enabled  *bool  `yaml:"enabled,omitempty"`
	Window   string `yaml:"window,omitempty"`    // default 10m
	MaxScale int    `yaml:"max_scale,omitempty"` // default 8
	MaxKeys  int    `yaml:"max_keys,omitempty"`
}

// Validate reports every invalid field of c under path.
func (c *Config) Validate(path string, errs *field.Errors) {
	switch c.Fingerprint {
	case "", FingerprintJA4JA4H, FingerprintJA4, FingerprintJA4H:
	default:
		errs.Add(field.Join(path, "fingerprint"), "must be %q, %q or %q", FingerprintJA4JA4H, FingerprintJA4, FingerprintJA4H)
	}
	checkDuration(field.Join(path, "cooldown"), c.Cooldown, time.Second, 24*time.Hour, errs)
	for i, k := range c.ExemptAPIKeys {
		if k == "" {
			errs.Add(field.Index(field.Join(path, "exempt_api_keys"), i), "must not be empty")
		}
	}
	np := field.Join(path, "nat")
	checkDuration(field.Join(np, "window"), c.NAT.Window, time.Second, 24*time.Hour, errs)
	checkInt(field.Join(np, "max_scale"), c.NAT.MaxScale, 1, 64, errs)
	checkInt(field.Join(np, "max_keys"), c.NAT.MaxKeys, 1, maxMaxKeys, errs)
	c.Rate.Validate(field.Join(path, "rate"), errs)
	c.Timing.Validate(field.Join(path, "timing"), errs)
	c.Scrape.Validate(field.Join(path, "scraping"), errs)
	c.Enum.Validate(field.Join(path, "enumeration"), errs)
	c.Probe.Validate(field.Join(path, "probing"), errs)
	c.Login.Validate(field.Join(path, "login"), errs)
	c.Flow.Validate(field.Join(path, "flows"), errs)
	c.Risk.Validate(field.Join(path, "risk"), errs)
}

func (c *Common) validate(path string, errs *field.Errors) {
	for i, k := range c.Keys {
		if _, ok := parseKind(k); !ok {
			errs.Add(field.Index(field.Join(path, "keys"), i), "unknown key kind %q (want ip, net, fp, key, sub or dev)", k)
		}
	}
	checkInt(field.Join(path, "max_keys"), c.MaxKeys, 1, maxMaxKeys, errs)
	checkFloat(field.Join(path, "weight"), c.Weight, 0, 2, false, errs)
}

func (c *Common) on() bool { return c.Enabled == nil || *c.Enabled }

func (c *Common) weight() float64 {
	if c.Weight > 0 && c.Weight <= 2 {
		return c.Weight
	}
	return 1
}

func (c *Common) maxKeys(def int) int {
	if c.MaxKeys > 0 && c.MaxKeys <= maxMaxKeys {
		return c.MaxKeys
	}
	return def
}

// checkDuration reports s unless it is "" (default) or a duration in
// [lo, hi].
func checkDuration(path, s string, lo, hi time.Duration, errs *field.Errors) {
	if s == "" {
		return
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		errs.Add(path, "invalid duration %q (use e.g. 30s, 10m)", s)
	case d < lo || d > hi:
		errs.Add(path, "must be between %v and %v", lo, hi)
	}
}

// checkInt reports n unless it is 0 (default) or in [lo, hi].
func checkInt(path string, n, lo, hi int, errs *field.Errors) {
	if n != 0 && (n < lo || n > hi) {
		errs.Add(path, "must be between %d and %d", lo, hi)
	}
}

// checkFloat reports f unless it is 0 (default) or in (lo, hi] (or
// [lo, hi] when closed).
func checkFloat(path string, f, lo, hi float64, closed bool, errs *field.Errors) {
	if f == 0 {
		return
	}
	if math.IsNaN(f) || f > hi || f < lo || (!closed && f == lo) {
		if closed {
			errs.Add(path, "must be between %g and %g", lo, hi)
		} else {
			errs.Add(path, "must be > %g and <= %g", lo, hi)
		}
	}
}

// Resolution of defaults. Validate has reported bad values; New refuses
// them, so these only see valid input, but stay total anyway.

func durOr(s string, def time.Duration) int64 {
	if s == "" {
		return int64(def)
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return int64(def)
	}
	return int64(d)
}

func intOr(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}

func floatOr(f, def float64) float64 {
	if f > 0 && !math.IsInf(f, 0) {
		return f
	}
	return def
}
