package geo

import (
	"errors"
	"strings"

	"github.com/apiguard/apiguard/internal/config/field"
)

// Unknown-country policies of a Fence.
const (
	UnknownAllow = "allow"
	UnknownDeny  = "deny"
)

// FenceConfig is a route's geo-fence: exactly one of Allow and Deny.
//
//	geo_fence: {allow: [DE, AT, CH], unknown: allow}
type FenceConfig struct {
	// Allow admits only clients located in these countries.
	Allow []string `yaml:"allow,omitempty"`
	// Deny refuses clients located in these countries.
	Deny []string `yaml:"deny,omitempty"`
	// Unknown decides for addresses whose country the database does not
	// know: private and reserved ranges, fresh allocations, no database.
	// "allow" or "deny"; the default follows the list: an allow-list
	// denies what it cannot place (it admits only what it knows), a
	// deny-list allows it (it refuses only what it knows).
	Unknown string `yaml:"unknown,omitempty"`
}

// Validate reports every invalid field under path. Codes are accepted in
// any case; Fence upper-cases them.
func (c *FenceConfig) Validate(path string, errs *field.Errors) {
	switch {
	case len(c.Allow) == 0 && len(c.Deny) == 0:
		errs.Add(path, "set allow or deny (a list of ISO 3166-1 alpha-2 country codes)")
	case len(c.Allow) > 0 && len(c.Deny) > 0:
		errs.Add(path, "set allow or deny, not both: an allow-list already refuses every other country")
	}
	for name, list := range map[string][]string{"allow": c.Allow, "deny": c.Deny} {
		seen := make(map[string]bool, len(list))
		for i, s := range list {
			p := field.Index(field.Join(path, name), i)
			code := strings.ToUpper(strings.TrimSpace(s))
			switch {
			case ValidCountry(code):
				if seen[code] {
					errs.Add(p, "duplicate country %q", code)
				}
				seen[code] = true
			case countryHints[code] != "":
				errs.Add(p, "%q is not an ISO 3166-1 alpha-2 code; did you mean %s?", s, countryHints[code])
			default:
				errs.Add(p, "%q is not an ISO 3166-1 alpha-2 country code (two letters, e.g. DE, US, GB)", s)
			}
		}
	}
	switch c.Unknown {
	case "", UnknownAllow, UnknownDeny:
	default:
		errs.Add(field.Join(path, "unknown"), "must be allow or deny, not %q", c.Unknown)
	}
}

// Fence reasons: stable codes for verdicts, events and metrics.
const (
	ReasonCountryDenied     = "geo.country-denied"
	ReasonCountryNotAllowed = "geo.country-not-allowed"
	ReasonCountryUnknown    = "geo.country-unknown"
)

// Fence is a built geo-fence. It is immutable and safe for concurrent use;
// Check is a table index and allocates nothing.
type Fence struct {
	listed       [26 * 26]bool
	allowList    bool
	allowUnknown bool
}

// NewFence builds a fence from a config, validating it.
func NewFence(c FenceConfig) (*Fence, error) {
	var errs field.Errors
	c.Validate("", &errs)
	if err := errs.Err(); err != nil {
		return nil, errors.Join(errors.New("geo: invalid fence"), err)
	}
	f := &Fence{allowList: len(c.Allow) > 0}
	list := c.Deny
	if f.allowList {
		list = c.Allow
	}
	for _, s := range list {
		i, _ := index(strings.ToUpper(strings.TrimSpace(s)))
		f.listed[i] = true
	}
	switch c.Unknown {
	case UnknownAllow:
		f.allowUnknown = true
	case UnknownDeny:
		f.allowUnknown = false
	default:
		f.allowUnknown = !f.allowList
	}
	return f, nil
}

// Check reports whether a client in country may pass, and when it may not,
// why. country is an ISO code in either case; "" or anything that is not
// two letters is unknown.
func (f *Fence) Check(country string) (allowed bool, reason string) {
	i, ok := index(country)
	if !ok {
		if f.allowUnknown {
			return true, ""
		}
		return false, ReasonCountryUnknown
	}
	switch {
	case f.allowList && !f.listed[i]:
		return false, ReasonCountryNotAllowed
	case !f.allowList && f.listed[i]:
		return false, ReasonCountryDenied
	}
	return true, ""
}

// Allows is Check without the reason.
func (f *Fence) Allows(country string) bool {
	ok, _ := f.Check(country)
	return ok
}

// index maps a two-letter code, in either case, to 0..675.
func index(code string) (int, bool) {
	if len(code) != 2 {
		return 0, false
	}
	a, b := upper(code[0]), upper(code[1])
	if a < 'A' || a > 'Z' || b < 'A' || b > 'Z' {
		return 0, false
	}
	return int(a-'A')*26 + int(b-'A'), true
}

// Validate reports a Files with no database.
func (f *Files) Validate(path string, errs *field.Errors) {
	if strings.TrimSpace(f.Country) == "" && strings.TrimSpace(f.ASN) == "" {
		errs.Add(path, "set country (a GeoLite2/GeoIP2 Country or City .mmdb) and/or asn (a GeoLite2 ASN .mmdb)")
	}
}
