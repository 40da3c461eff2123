package decision

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/geo"
)

// Action is what a decision makes the gateway do.
type Action uint8

// Actions. The zero Action is invalid.
const (
	Throttle  Action = iota + 1 // rate-limit the key harder
	Challenge                   // require attestation or proof-of-work
	Block                       // refuse
	Allow                       // allow-list: skip other decisions (see the package doc)
)

var actionNames = [...]string{Throttle: "throttle", Challenge: "challenge", Block: "block", Allow: "allow"}

// String returns the action's name ("block"), or "action(N)".
func (a Action) String() string {
	if a >= Throttle && a <= Allow {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// ParseAction parses "block", "challenge", "throttle" or "allow".
func ParseAction(s string) (Action, error) {
	for a := Throttle; a <= Allow; a++ {
		if actionNames[a] == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown action %q (want block, challenge, throttle or allow)", ErrInvalid, s)
}

// MarshalText encodes the action by name, in JSON too.
func (a Action) MarshalText() ([]byte, error) {
	if a < Throttle || a > Allow {
		return nil, fmt.Errorf("%w: action %d", ErrInvalid, uint8(a))
	}
	return []byte(actionNames[a]), nil
}

// UnmarshalText decodes an action name.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// SourceManual is the Source of decisions made by an operator.
const SourceManual = "manual"

// Decision is one enforced decision. Its JSON encoding is the stable form
// printed by the admin API and `apiguard decisions list --json`: fields in
// this order, map keys sorted, times in UTC with millisecond precision,
// empty maps and reason omitted.
type Decision struct {
	// ID is unique per decision. Add derives it from Key, Action and
	// Source when empty, so a detector that re-adds the same decision
	// every window refreshes it instead of piling up copies.
	ID     string `json:"id"`
	Key    string `json:"key"`
	Action Action `json:"action"`
	Reason string `json:"reason,omitempty"`
	// Source is SourceManual or the name of the detector that decided.
	Source string `json:"source"`
	// Evidence says what was observed ("failed_logins": "212"), and
	// Thresholds what it was compared with ("failed_logins": "50/5m").
	Evidence   map[string]string `json:"evidence,omitempty"`
	Thresholds map[string]string `json:"thresholds,omitempty"`
	Created    time.Time         `json:"created"`
	// Expires is required: every decision ends, so a forgotten block
	// cannot outlive its cause.
	Expires time.Time `json:"expires"`
}

// Errors.
var (
	ErrInvalid  = errors.New("decision: invalid")
	ErrNotFound = errors.New("decision: not found")
	ErrFull     = errors.New("decision: too many decisions")
)

// Key kinds (the part before the colon).
const (
	KindIP          = "ip"
	KindNet         = "net"
	KindFingerprint = "fp"
	KindAPIKey      = "key"
	KindSubject     = "sub"
	KindDevice      = "dev"
	KindCountry     = "country"
)

// Limits of a decision's fields, so one decision stays small in Redis and
// in every instance's memory.
const (
	maxValue    = 256 // a key's value
	maxID       = 64
	maxReason   = 512
	maxMapLen   = 32
	maxMapKey   = 64
	maxMapValue = 512
	// MaxTTL bounds how far in the future a decision may expire.
	MaxTTL = 366 * 24 * time.Hour
)

// ParseKey checks a key and returns its canonical form: addresses are
// unmapped and zone-less, networks masked (a network of one address
// becomes an ip key), countries upper case.
func ParseKey(s string) (string, error) {
	kind, val, ok := strings.Cut(s, ":")
	if !ok || val == "" {
		return "", fmt.Errorf("%w: key %q is not kind:value (ip, net, fp, key, sub, dev, country)", ErrInvalid, s)
	}
	switch kind {
	case KindIP:
		a, err := netip.ParseAddr(val)
		if err != nil {
			return "", fmt.Errorf("%w: key %q: %v", ErrInvalid, s, err)
		}
		return IPKey(a), nil
	case KindNet:
		p, err := netip.ParsePrefix(val)
		if err != nil {
			return "", fmt.Errorf("%w: key %q: %v", ErrInvalid, s, err)
		}
		return NetKey(p), nil
	case KindCountry:
		cc := strings.ToUpper(val)
		if !geo.ValidCountry(cc) {
			return "", fmt.Errorf("%w: key %q: not an ISO 3166-1 alpha-2 country code", ErrInvalid, s)
		}
		return CountryKey(cc), nil
	case KindFingerprint, KindAPIKey, KindSubject, KindDevice:
		if len(val) > maxValue || !printable(val) {
			return "", fmt.Errorf("%w: key %q: the value must be 1 to %d printable characters", ErrInvalid, s, maxValue)
		}
		return s, nil
	}
	return "", fmt.Errorf("%w: key %q: unknown kind %q (ip, net, fp, key, sub, dev, country)", ErrInvalid, s, kind)
}

// IPKey is the canonical key of an address.
func IPKey(a netip.Addr) string { return "ip:" + a.Unmap().WithZone("").String() }

// NetKey is the canonical key of a network; a single-address network is
// the address's ip key.
func NetKey(p netip.Prefix) string {
	p = canonPrefix(p)
	if p.IsSingleIP() {
		return IPKey(p.Addr())
	}
	return "net:" + p.String()
}

// canonPrefix unmaps an IPv4-mapped network and masks it.
func canonPrefix(p netip.Prefix) netip.Prefix {
	a, bits := p.Addr().WithZone(""), p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	q, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return q
}

// countryKeys holds "country:AA" .. "country:ZZ" so CountryKey does not
// allocate on the request path.
var countryKeys = func() []string {
	k := make([]string, 26*26)
	for i := range k {
		k[i] = "country:" + string([]byte{byte('A' + i/26), byte('A' + i%26)})
	}
	return k
}()

// CountryKey is the key of a country code given in upper or lower case;
// it does not allocate. Anything but two letters yields "".
func CountryKey(cc string) string {
	if len(cc) != 2 {
		return ""
	}
	a, b := cc[0]&^0x20, cc[1]&^0x20 // ASCII upper case
	if a < 'A' || a > 'Z' || b < 'A' || b > 'Z' {
		return ""
	}
	return countryKeys[int(a-'A')*26+int(b-'A')]
}

func printable(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func validID(s string) bool {
	if s == "" || len(s) > maxID {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// DeriveID is the ID Add gives a decision without one.
func DeriveID(key string, a Action, source string) string {
	h := sha256.Sum256([]byte(key + "\x00" + a.String() + "\x00" + source))
	return hex.EncodeToString(h[:12])
}

// normalize checks d and puts it in canonical form: canonical key,
// derived ID, UTC millisecond times, copied maps. now is for the expiry
// checks and the default Created.
func (d *Decision) normalize(now time.Time) error {
	key, err := ParseKey(d.Key)
	if err != nil {
		return err
	}
	d.Key = key
	if d.Action < Throttle || d.Action > Allow {
		return fmt.Errorf("%w: action %d", ErrInvalid, uint8(d.Action))
	}
	if d.Source != SourceManual && !field.ValidName(d.Source) {
		return fmt.Errorf("%w: source %q must be %q or a detector name (letters, digits, '-', '_')", ErrInvalid, d.Source, SourceManual)
	}
	if d.ID == "" {
		d.ID = DeriveID(d.Key, d.Action, d.Source)
	} else if !validID(d.ID) {
		return fmt.Errorf("%w: id %q must be 1 to %d letters, digits, '-', '_' or '.'", ErrInvalid, d.ID, maxID)
	}
	if len(d.Reason) > maxReason || d.Reason != "" && !printable(d.Reason) {
		return fmt.Errorf("%w: reason must be at most %d printable characters", ErrInvalid, maxReason)
	}
	for name, m := range map[string]map[string]string{"evidence": d.Evidence, "thresholds": d.Thresholds} {
		if len(m) > maxMapLen {
			return fmt.Errorf("%w: %s has %d entries, at most %d allowed", ErrInvalid, name, len(m), maxMapLen)
		}
		for k, v := range m {
			if len(k) > maxMapKey || !printable(k) || len(v) > maxMapValue || v != "" && !printable(v) {
				return fmt.Errorf("%w: %s entry %.64q: keys of 1 to %d and values of at most %d printable characters", ErrInvalid, name, k, maxMapKey, maxMapValue)
			}
		}
	}
	d.Evidence = cloneMap(d.Evidence)
	d.Thresholds = cloneMap(d.Thresholds)
	if d.Created.IsZero() {
		d.Created = now
	}
	d.Created = canonTime(d.Created)
	d.Expires = canonTime(d.Expires)
	switch {
	case d.Expires.IsZero():
		return fmt.Errorf("%w: expires is required", ErrInvalid)
	case !d.Expires.After(now):
		return fmt.Errorf("%w: expires %s is not in the future", ErrInvalid, d.Expires.Format(time.RFC3339))
	case d.Expires.Sub(now) > MaxTTL:
		return fmt.Errorf("%w: expires %s is more than %s away", ErrInvalid, d.Expires.Format(time.RFC3339), MaxTTL)
	}
	return nil
}

func cloneMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// canonTime drops the monotonic reading, the location and sub-millisecond
// digits, so a decision encodes the same on every instance and round-trips
// through JSON unchanged.
func canonTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Millisecond)
}

// equal reports whether two normalized decisions are the same.
func equal(a, b *Decision) bool {
	return a.ID == b.ID && a.Key == b.Key && a.Action == b.Action && a.Reason == b.Reason &&
		a.Source == b.Source && a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires) &&
		maps.Equal(a.Evidence, b.Evidence) && maps.Equal(a.Thresholds, b.Thresholds)
}

// rank orders decisions for Match (see the package doc): manual allow 4,
// block 3, challenge 2, throttle 1, a detector's allow 0.
func rank(d *Decision) int8 {
	switch d.Action {
	case Allow:
		if d.Source == SourceManual {
			return 4
		}
		return 0
	case Block:
		return 3
	case Challenge:
		return 2
	}
	return 1
}
