package detect

import (
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Observation is one finished request, as the observe path sees it. The
// engine never keeps a pointer to it or to its maps.
type Observation struct {
	Time    time.Time  // zero: Options.Clock()
	IP      netip.Addr // client address, resolved against trusted proxies
	JA4     string     // TLS fingerprint ("" for plain HTTP)
	JA4H    string     // HTTP fingerprint
	APIKey  string     // API key name (not the secret)
	Subject string     // authenticated user
	Device  string     // attested device id
	// Session links the steps of a business flow (token jti, session
	// cookie); "" when the request has none.
	Session  string
	Route    string // gateway route name
	Method   string
	Path     string // normalized request path
	Template string // matched template such as /api/orders/{id}; "" if none
	// Undeclared is true when the route has an OpenAPI spec and the
	// operation is not in it. It is the negation of the brief's
	// "Declared", chosen so that the zero value (no spec, or a caller
	// that does not know) never looks like probing.
	Undeclared bool
	PathParams map[string]string // template parameters of Template
	Query      url.Values        // optional; only read for EnumConfig.QueryParams
	Status     int               // response status; 0 when unknown
	Login      *LoginAttempt     // non-nil on configured login routes
}

// LoginAttempt is the outcome of a request to a login route.
type LoginAttempt struct {
	Username string // as submitted; compared case-insensitively
	Success  bool
}

// Kind is a kind of identity key.
type Kind uint8

// The identity key kinds, in the order Keys returns them.
const (
	KindIP      Kind = iota // ip:<addr>
	KindNet                 // net:<addr>/24 (IPv4) or /64 (IPv6)
	KindFP                  // fp:<ja4>|<ja4h a_b_c>; see Config.Fingerprint
	KindAPIKey              // key:<api key name>
	KindSubject             // sub:<subject>
	KindDevice              // dev:<device id>
	numKinds
)

var kindNames = [numKinds]string{"ip", "net", "fp", "key", "sub", "dev"}

// String is the key prefix of the kind without its colon ("ip", "net", ...).
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "invalid"
}

func parseKind(s string) (Kind, bool) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), true
		}
	}
	return 0, false
}

// kindSet is a set of kinds as a bit mask.
type kindSet uint8

func (s kindSet) has(k Kind) bool { return s&(1<<k) != 0 }

func kindsOf(names []string, def kindSet) kindSet {
	if len(names) == 0 {
		return def
	}
	var s kindSet
	for _, n := range names {
		if k, ok := parseKind(n); ok {
			s |= 1 << k
		}
	}
	return s
}

func setOf(kinds ...Kind) kindSet {
	var s kindSet
	for _, k := range kinds {
		s |= 1 << k
	}
	return s
}

// Fingerprint modes (Config.Fingerprint).
const (
	// FingerprintJA4JA4H keys fingerprints by JA4 plus the first three
	// sections of JA4H. The fourth JA4H section hashes cookie values, which
	// differ per user and per session, so keeping it would split one tool
	// into as many fingerprints as it has sessions; the first three
	// (method/version/header count, header names, cookie names) are stable
	// for one client program. JA4 alone is shared by every user of a
	// browser build, which would dilute the ratios of a fingerprint to
	// nothing. Default.
	FingerprintJA4JA4H = "ja4+ja4h"
	FingerprintJA4     = "ja4"  // JA4 only: survives header randomisation
	FingerprintJA4H    = "ja4h" // JA4H (a_b_c) only
)

type fpMode uint8

const (
	fpBoth fpMode = iota
	fpJA4
	fpJA4H
)

// maxPart bounds each attacker-influenced part of a key, so one client
// cannot make the engine store kilobytes per key; longer values keep a
// prefix and a hash of the whole (deterministic, so instances agree).
const maxPart = 128

// idents holds the identity keys of one observation ("" when absent).
// All of them are substrings of one string: building them costs one
// allocation per observation.
type idents struct {
	keys [numKinds]string
}

// identify computes the identity keys of o.
func identify(o *Observation, mode fpMode) idents {
	var arr [1024]byte
	b := arr[:0]
	var start, end [numKinds]int
	if ip := o.IP.Unmap().WithZone(""); ip.IsValid() {
		start[KindIP] = len(b)
		b = append(b, "ip:"...)
		b = ip.AppendTo(b)
		end[KindIP] = len(b)
		start[KindNet] = len(b)
		b = append(b, "net:"...)
		b = netOf(ip).AppendTo(b)
		end[KindNet] = len(b)
	}
	start[KindFP] = len(b)
	b = appendFingerprint(b, o.JA4, o.JA4H, mode)
	end[KindFP] = len(b)
	for _, p := range [...]struct {
		k Kind
		s string
	}{{KindAPIKey, o.APIKey}, {KindSubject, o.Subject}, {KindDevice, o.Device}} {
		if p.s == "" {
			continue
		}
		start[p.k] = len(b)
		b = append(b, kindNames[p.k]...)
		b = append(b, ':')
		b = appendClipped(b, p.s)
		end[p.k] = len(b)
	}
	s := string(b)
	var id idents
	for k := range id.keys {
		if end[k] > start[k] {
			id.keys[k] = s[start[k]:end[k]]
		}
	}
	return id
}

// netOf is the client's network: /24 for IPv4, /64 for IPv6 (the usual
// allocation to one subscriber, so one household or one attacker host
// rotating through its /64 is one network).
func netOf(ip netip.Addr) netip.Prefix {
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.PrefixFrom(ip, ip.BitLen())
	}
	return p
}

// appendFingerprint appends "fp:<ja4>|<ja4h a_b_c>" (per mode) to b, or
// nothing when the parts the mode needs are all empty.
func appendFingerprint(b []byte, ja4, ja4h string, mode fpMode) []byte {
	h := ja4hStable(ja4h)
	switch mode {
	case fpJA4:
		h = ""
	case fpJA4H:
		ja4 = ""
	}
	if ja4 == "" && h == "" {
		return b
	}
	b = append(b, "fp:"...)
	b = appendClipped(b, ja4)
	b = append(b, '|')
	return appendClipped(b, h)
}

// ja4hStable drops JA4H's fourth section (cookie values, per user): it
// returns the text before the third '_', or all of it.
func ja4hStable(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '_' {
			n++
			if n == 3 {
				return s[:i]
			}
		}
	}
	return s
}

// FingerprintKey returns the fp: identity key for a JA4/JA4H pair under
// the default mode, or "" when both are empty.
func FingerprintKey(ja4, ja4h string) string {
	return string(appendFingerprint(nil, ja4, ja4h, fpBoth))
}

// Keys returns the identity keys of o in kind order (ip, net, fp, key,
// sub, dev), skipping absent ones, with the default fingerprint mode.
func Keys(o *Observation) []string {
	id := identify(o, fpBoth)
	return id.list()
}

func (id *idents) list() []string {
	out := make([]string, 0, numKinds)
	for _, k := range id.keys {
		if k != "" {
			out = append(out, k)
		}
	}
	return out
}

// appendClipped appends s, or when it is longer than maxPart a prefix of
// it, '~' and the FNV-1a hash of all of it in hex.
func appendClipped(b []byte, s string) []byte {
	if len(s) <= maxPart {
		return append(b, s...)
	}
	b = append(b, s[:maxPart-17]...)
	b = append(b, '~')
	return appendHex64(b, fnv64a(s))
}

func clip(s string) string {
	if len(s) <= maxPart {
		return s
	}
	return string(appendClipped(nil, s))
}

func fnv64a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func appendHex64(b []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		b = append(b, digits[(v>>uint(i))&0xf])
	}
	return b
}

// normUser normalises a login username: trimmed, lower-cased (accounts
// are usually case-insensitive, and an attacker must not multiply one
// account's counters by varying case), clipped.
func normUser(s string) string {
	s = strings.TrimSpace(s)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' || c >= 0x80 {
			s = strings.ToLower(s)
			break
		}
	}
	return clip(s)
}
