package goodbot

import (
	"regexp"
	"strings"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
)

// BotConfig describes one crawler.
type BotConfig struct {
	// Name identifies the bot in results, events and metrics.
	Name string `yaml:"name"`
	// UserAgents are substrings, matched case-insensitively (ASCII), any
	// one of which makes a User-Agent claim to be this bot.
	UserAgents []string `yaml:"user_agents,omitempty"`
	// UserAgentRegex, when set, is an RE2 regular expression that also
	// makes a claim (write (?i) for case-insensitivity).
	UserAgentRegex string `yaml:"user_agent_regex,omitempty"`
	// Suffixes are the bot's DNS domains: a verified PTR name is one of
	// them or ends in "." followed by one. "googlebot.com" and
	// ".googlebot.com" mean the same.
	Suffixes []string `yaml:"suffixes"`
}

// Config is the goodbot configuration.
//
//	goodbot:
//	  timeout: 1s
//	  bots:
//	    - {name: googlebot, user_agents: [Googlebot], suffixes: [googlebot.com, google.com]}
type Config struct {
	// Bots replaces the built-in list (DefaultBots) when not empty; copy
	// the entries you want to keep. The first bot whose User-Agent
	// pattern matches is the one claimed.
	Bots []BotConfig `yaml:"bots,omitempty"`
	// PositiveTTL caches a verified address (default 24h): crawler
	// addresses are stable and re-verifying costs two DNS queries.
	PositiveTTL string `yaml:"positive_ttl,omitempty"`
	// NegativeTTL caches a definite failure (default 1h): an impostor
	// cannot make us query DNS on every request, and an address that
	// gains a PTR is re-checked within the hour.
	NegativeTTL string `yaml:"negative_ttl,omitempty"`
	// ErrorTTL caches an inconclusive result (DNS timeout or failure,
	// default 30s), which shields the resolver while it is struggling
	// without condemning a genuine crawler for long.
	ErrorTTL string `yaml:"error_ttl,omitempty"`
	// Timeout bounds both the DNS work of one verification and how long a
	// request waits for it (default 1s, at most 10s).
	Timeout string `yaml:"timeout,omitempty"`
	// CacheSize bounds the cached results (default 65536, least recently
	// used evicted first).
	CacheSize int `yaml:"cache_size,omitempty"`
	// MaxInFlight bounds concurrent verifications (default 256). Beyond
	// it a claim is answered ReasonBusy at once instead of queueing, so a
	// flood of fake crawler requests from many addresses cannot pile up
	// goroutines or overwhelm the resolver.
	MaxInFlight int `yaml:"max_in_flight,omitempty"`
}

// Defaults.
const (
	DefaultPositiveTTL = 24 * time.Hour
	DefaultNegativeTTL = time.Hour
	DefaultErrorTTL    = 30 * time.Second
	DefaultTimeout     = time.Second
	DefaultCacheSize   = 1 << 16
	DefaultMaxInFlight = 256

	maxTimeout   = 10 * time.Second
	maxCacheSize = 1 << 24
)

// DefaultBots returns the built-in crawlers, with the domains their
// operators document for reverse DNS verification.
//
// Googlebot's domains deliberately leave out googleusercontent.com, which
// Google lists for user-triggered fetchers: Google Cloud VMs get PTR names
// under bc.googleusercontent.com that resolve forward, so anyone renting a
// VM would verify as Googlebot. Add it in Config.Bots if you accept that.
func DefaultBots() []BotConfig {
	return []BotConfig{
		{
			Name: "googlebot",
			UserAgents: []string{
				"Googlebot", "Google-InspectionTool", "GoogleOther", "AdsBot-Google",
				"Mediapartners-Google", "Storebot-Google", "APIs-Google", "FeedFetcher-Google",
			},
			Suffixes: []string{"googlebot.com", "google.com"},
		},
		{Name: "bingbot", UserAgents: []string{"bingbot", "BingPreview", "msnbot", "adidxbot"}, Suffixes: []string{"search.msn.com"}},
		{Name: "applebot", UserAgents: []string{"Applebot"}, Suffixes: []string{"applebot.apple.com"}},
		{Name: "duckduckbot", UserAgents: []string{"DuckDuckBot", "DuckDuckGo-Favicons-Bot"}, Suffixes: []string{"duckduckgo.com"}},
		{Name: "yandexbot", UserAgents: []string{"YandexBot", "YandexImages", "YandexMobileBot", "YandexAccessibilityBot"}, Suffixes: []string{"yandex.ru", "yandex.net", "yandex.com"}},
		{Name: "baiduspider", UserAgents: []string{"Baiduspider"}, Suffixes: []string{"baidu.com", "baidu.jp"}},
		{Name: "amazonbot", UserAgents: []string{"Amazonbot"}, Suffixes: []string{"crawl.amazonbot.amazon"}},
		{Name: "petalbot", UserAgents: []string{"PetalBot"}, Suffixes: []string{"petalsearch.com"}},
	}
}

// Validate reports every invalid field under path.
func (c *Config) Validate(path string, errs *field.Errors) {
	for _, d := range []struct {
		name, v string
		def     time.Duration
	}{
		{"positive_ttl", c.PositiveTTL, DefaultPositiveTTL},
		{"negative_ttl", c.NegativeTTL, DefaultNegativeTTL},
		{"error_ttl", c.ErrorTTL, DefaultErrorTTL},
		{"timeout", c.Timeout, DefaultTimeout},
	} {
		v, err := durationOr(d.v, d.def)
		switch {
		case err != nil:
			errs.Add(field.Join(path, d.name), "invalid duration %q (use e.g. 500ms, 30s, 1h)", d.v)
		case v <= 0:
			errs.Add(field.Join(path, d.name), "must be > 0")
		case d.name == "timeout" && v > maxTimeout:
			errs.Add(field.Join(path, d.name), "must be at most %s: a request waits this long for DNS", maxTimeout)
		}
	}
	if c.CacheSize < 0 || c.CacheSize > maxCacheSize {
		errs.Add(field.Join(path, "cache_size"), "must be between 1 and %d (0 for the default %d)", maxCacheSize, DefaultCacheSize)
	}
	if c.MaxInFlight < 0 {
		errs.Add(field.Join(path, "max_in_flight"), "must be >= 1 (0 for the default %d)", DefaultMaxInFlight)
	}
	names := make(map[string]bool, len(c.Bots))
	for i := range c.Bots {
		b := &c.Bots[i]
		p := field.Index(field.Join(path, "bots"), i)
		if !field.ValidName(b.Name) {
			errs.Add(field.Join(p, "name"), "must be 1-64 letters, digits, '-' or '_', not %q", b.Name)
		} else if names[strings.ToLower(b.Name)] {
			errs.Add(field.Join(p, "name"), "duplicate bot %q", b.Name)
		}
		names[strings.ToLower(b.Name)] = true
		if len(b.UserAgents) == 0 && b.UserAgentRegex == "" {
			errs.Add(p, "set user_agents or user_agent_regex: how does a request claim to be %s?", b.Name)
		}
		for j, ua := range b.UserAgents {
			if strings.TrimSpace(ua) == "" || len(ua) > maxPattern {
				errs.Add(field.Index(field.Join(p, "user_agents"), j), "must be 1 to %d characters", maxPattern)
			}
		}
		if b.UserAgentRegex != "" {
			if _, err := regexp.Compile(b.UserAgentRegex); err != nil {
				errs.Add(field.Join(p, "user_agent_regex"), "invalid regular expression: %v", err)
			}
		}
		if len(b.Suffixes) == 0 {
			errs.Add(field.Join(p, "suffixes"), "list the bot's DNS domains, e.g. googlebot.com")
		}
		for j, s := range b.Suffixes {
			if msg := checkDomain(normDomain(s)); msg != "" {
				errs.Add(field.Index(field.Join(p, "suffixes"), j), "%q %s", s, msg)
			}
		}
	}
}

// maxPattern bounds a User-Agent substring.
const maxPattern = 128

func durationOr(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	return time.ParseDuration(s)
}

// normDomain lower-cases a suffix and drops its leading and trailing dots.
func normDomain(s string) string {
	return strings.Trim(strings.ToLower(strings.TrimSpace(s)), ".")
}

// checkDomain returns why d is not a usable verification domain, or "".
// A single label (a TLD such as "com") is refused: it would verify anyone
// who can publish a PTR and A record anywhere under it.
func checkDomain(d string) string {
	if d == "" || len(d) > 253 {
		return "is not a domain name"
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return "is a top-level domain: anyone could verify under it; give the bot's own domain"
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "is not a domain name"
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "is not a domain name"
			}
		}
	}
	return ""
}
