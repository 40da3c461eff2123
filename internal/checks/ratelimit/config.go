package ratelimit

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/apiguard/apiguard/internal/state"
)

// Config is the ratelimit check's configuration: a list of policies.
type Config struct {
	pipeline.Options `yaml:",inline"`
	// IPv6Prefix aggregates IPv6 clients to this prefix length (default 64):
	// one host usually owns a whole /64, so per-address limits are useless.
	IPv6Prefix int `yaml:"ipv6_prefix,omitempty"`
	// Headers sends RateLimit-Policy and RateLimit fields (default true);
	// a policy can hide itself with headers: false.
	Headers  *bool    `yaml:"headers,omitempty"`
	Policies []Policy `yaml:"policies"`
}

// Policy is one set of limits on one key.
type Policy struct {
	Name string `yaml:"name"`
	// Key parts: ip, api_key, subject, app, device, ja4, header:<Name>,
	// claim:<name>, json:<field> (a top-level string or number field of a
	// JSON body, e.g. the username of a login). A missing part falls back to
	// the client IP.
	Key    []string    `yaml:"key"`
	Limits []LimitSpec `yaml:"limits"`
	Cost   string      `yaml:"cost,omitempty"` // a number (default 1) or content-bytes
	// Concurrency caps in-flight requests per key (0 = no cap).
	Concurrency int `yaml:"concurrency,omitempty"`
	// Conditions: the policy applies only to these methods and path
	// prefixes (empty = all).
	Methods []string `yaml:"methods,omitempty"`
	Paths   []string `yaml:"paths,omitempty"`
	// CountStatus makes the policy count only responses with these
	// statuses (e.g. 401 on a login route): requests are refused once the
	// counted responses exhaust the limit.
	CountStatus []int `yaml:"count_status,omitempty"`
	// Mode monitor logs would-be denials of this policy only.
	Mode    pipeline.Mode    `yaml:"mode,omitempty"`
	OnError pipeline.OnError `yaml:"on_error,omitempty"` // default allow: a backend outage must not take the API down
	Headers *bool            `yaml:"headers,omitempty"`
}

// LimitSpec is one limit: "10/s" with an optional burst and name.
type LimitSpec struct {
	Rate  string `yaml:"rate"`
	Burst int64  `yaml:"burst,omitempty"`
	Name  string `yaml:"name,omitempty"`
}

var rateRe = regexp.MustCompile(`^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$`)

var rateUnits = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "second": time.Second,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute,
	"h": time.Hour, "hour": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour,
}

// ParseRate parses "10/s", "1000/hour", "100/10s", "20000/day".
func ParseRate(s string) (count int64, period time.Duration, err error) {
	m := rateRe.FindStringSubmatch(strings.ToLower(s))
	if m == nil {
		return 0, 0, fmt.Errorf("invalid rate %q (use N/s, N/m, N/h, N/d or N/<n><unit> such as 100/10s)", s)
	}
	unit, ok := rateUnits[m[3]]
	if !ok {
		return 0, 0, fmt.Errorf("invalid rate %q: unknown unit %q (use s, m, h or d)", s, m[3])
	}
	count, err = strconv.ParseInt(m[1], 10, 64)
	if err != nil || count <= 0 {
		return 0, 0, fmt.Errorf("invalid rate %q: the count must be a positive number", s)
	}
	mult := int64(1)
	if m[2] != "" {
		mult, err = strconv.ParseInt(m[2], 10, 64)
		if err != nil || mult <= 0 {
			return 0, 0, fmt.Errorf("invalid rate %q: the period must be positive", s)
		}
	}
	period = time.Duration(mult) * unit
	// The Redis backend computes in Lua doubles, exact to 2^53 ns (104 days).
	if period > 90*24*time.Hour {
		return 0, 0, fmt.Errorf("invalid rate %q: period longer than 90 days", s)
	}
	return count, period, nil
}

var validKey = regexp.MustCompile(`^(ip|api_key|subject|app|device|ja4|header:[A-Za-z0-9-]+|claim:[A-Za-z0-9_.-]+|json:[A-Za-z0-9_.-]+)$`)

// Validate reports every invalid field under path.
func (c *Config) Validate(path string, errs *field.Errors) {
	c.Options.Validate(path, errs)
	if c.IPv6Prefix < 0 || c.IPv6Prefix > 128 {
		errs.Add(field.Join(path, "ipv6_prefix"), "must be between 0 and 128")
	}
	names := map[string]bool{}
	pp := field.Join(path, "policies")
	if len(c.Policies) == 0 && c.Mode != pipeline.ModeOff {
		errs.Add(pp, "at least one policy is required")
	}
	for i := range c.Policies {
		p := &c.Policies[i]
		at := field.Index(pp, i)
		switch {
		case p.Name == "":
			errs.Add(field.Join(at, "name"), "required")
		case !field.ValidName(p.Name):
			errs.Add(field.Join(at, "name"), "must be letters, digits, - and _ (it appears in response headers)")
		case names[p.Name]:
			errs.Add(field.Join(at, "name"), "duplicate policy name %q", p.Name)
		}
		names[p.Name] = true
		if len(p.Key) == 0 {
			errs.Add(field.Join(at, "key"), "required: one or more of ip, api_key, subject, app, device, ja4, header:<Name>, claim:<name>, json:<field>")
		}
		for j, k := range p.Key {
			if !validKey.MatchString(k) {
				errs.Add(field.Index(field.Join(at, "key"), j), "unknown key part %q (use ip, api_key, subject, app, device, ja4, header:<Name>, claim:<name> or json:<field>)", k)
			}
		}
		if len(p.Limits) == 0 && p.Concurrency == 0 {
			errs.Add(field.Join(at, "limits"), "at least one limit (or a concurrency cap) is required")
		}
		for j, l := range p.Limits {
			lp := field.Index(field.Join(at, "limits"), j)
			count, _, err := ParseRate(l.Rate)
			if err != nil {
				errs.Add(field.Join(lp, "rate"), "%v", err)
			}
			if l.Burst < 0 {
				errs.Add(field.Join(lp, "burst"), "must be positive")
			}
			if err == nil && l.Burst > 0 && l.Burst > count*1000 {
				errs.Add(field.Join(lp, "burst"), "%d is more than 1000 periods' worth of %s", l.Burst, l.Rate)
			}
			if l.Name != "" && !field.ValidName(l.Name) {
				errs.Add(field.Join(lp, "name"), "must be letters, digits, - and _")
			}
		}
		if _, err := parseCost(p.Cost); err != nil {
			errs.Add(field.Join(at, "cost"), "%v", err)
		}
		if p.Concurrency < 0 {
			errs.Add(field.Join(at, "concurrency"), "must not be negative")
		}
		for j, m := range p.Methods {
			if strings.ToUpper(m) != m || !field.ValidMethod(m) {
				errs.Add(field.Index(field.Join(at, "methods"), j), "not an upper-case HTTP method: %q", m)
			}
		}
		for j, pth := range p.Paths {
			if !strings.HasPrefix(pth, "/") {
				errs.Add(field.Index(field.Join(at, "paths"), j), "must start with /")
			}
		}
		for j, st := range p.CountStatus {
			if st < 100 || st > 599 {
				errs.Add(field.Index(field.Join(at, "count_status"), j), "not an HTTP status: %d", st)
			}
		}
		pipeline.Options{Mode: p.Mode, OnError: p.OnError}.Validate(at, errs)
	}
}

// costContentBytes marks the content-bytes cost unit.
const costContentBytes = -1

func parseCost(s string) (int64, error) {
	switch s {
	case "":
		return 1, nil
	case "content-bytes":
		return costContentBytes, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("must be a positive number or content-bytes, not %q", s)
	}
	return n, nil
}

// limits converts the specs to backend limits. Burst defaults to the count:
// "1000/h" admits up to 1000 at once, then 1000 spread over the hour.
func (p *Policy) limits() ([]state.Limit, []string, error) {
	out := make([]state.Limit, len(p.Limits))
	names := make([]string, len(p.Limits))
	for i, l := range p.Limits {
		count, period, err := ParseRate(l.Rate)
		if err != nil {
			return nil, nil, err
		}
		burst := l.Burst
		if burst == 0 {
			burst = count
		}
		out[i] = state.Limit{Count: count, Period: period, Burst: burst}
		names[i] = l.Name
		if names[i] == "" {
			names[i] = p.Name
			if i > 0 {
				names[i] = fmt.Sprintf("%s-%d", p.Name, i+1)
			}
		}
	}
	return out, names, nil
}
