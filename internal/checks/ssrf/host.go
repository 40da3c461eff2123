package ssrf

import (
	"github.com/apiguard/apiguard/internal/lenient"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// fetchSchemes are the schemes whose values count as URLs when no
// parameters are configured: the ones server-side fetchers (curl, urllib,
// Java) commonly speak.
var fetchSchemes = map[string]bool{"http": true, "https": true, "ftp": true, "gopher": true, "file": true, "dict": true}

// knownSchemes are recognised as schemes in configured parameters even
// without "//"; otherwise "localhost:6379" would read as scheme "localhost".
var knownSchemes = map[string]bool{
	"http": true, "https": true, "ftp": true, "ftps": true, "gopher": true, "file": true, "dict": true,
	"ldap": true, "ldaps": true, "tftp": true, "sftp": true, "ssh": true, "telnet": true, "smb": true,
	"jar": true, "netdoc": true, "ws": true, "wss": true, "data": true, "mailto": true, "redis": true,
}

// target is what a URL-valued parameter points at.
type target struct {
	scheme string // lower case; "" when the value had none
	// hosts are the candidate hosts, normalised. Parsers disagree on where
	// the authority ends and which '@' starts the host (the basis of
	// "http://a@127.0.0.1\@good.com" style tricks), so every reading is
	// kept and each must pass.
	hosts []string
}

// parseTarget reads v as a URL. With auto set, only values that start with
// a fetchable scheme are URLs (ok false otherwise); without it (a
// configured URL parameter), a value with no scheme is read as
// host[:port][/path], as a lenient client would.
func parseTarget(v string, auto bool) (t target, ok bool) {
	v = clean(v)
	rest := v
	if i := schemeEnd(v); i > 0 {
		s := strings.ToLower(v[:i])
		after := v[i+1:]
		switch {
		case auto && fetchSchemes[s]:
			t.scheme, rest = s, after
		case auto:
			return t, false
		case knownSchemes[s] || strings.HasPrefix(after, "/") || strings.HasPrefix(after, `\`):
			t.scheme, rest = s, after
		}
	} else if auto {
		return t, false
	}
	if t.scheme == "data" || t.scheme == "mailto" {
		return t, true // no host; the scheme check decides
	}
	rest = strings.TrimLeft(rest, `/\`)
	seen := map[string]bool{}
	// WHATWG ends the authority at '\' too; RFC 3986 does not; some
	// parsers only stop at '/'.
	for _, stops := range []string{`/\?#`, `/?#`, `/`} {
		auth := rest
		if j := strings.IndexAny(rest, stops); j >= 0 {
			auth = rest[:j]
		}
		for _, hp := range []string{afterLast(auth, '@'), afterFirst(auth, '@')} {
			h := normaliseHost(stripPort(hp))
			if !seen[h] {
				seen[h] = true
				t.hosts = append(t.hosts, h)
			}
		}
	}
	return t, true
}

// clean strips what the WHATWG URL parser ignores: leading and trailing
// C0 controls and spaces, and tabs and newlines anywhere.
func clean(v string) string {
	v = strings.TrimFunc(v, func(r rune) bool { return r <= ' ' })
	if strings.ContainsAny(v, "\t\r\n") {
		v = strings.NewReplacer("\t", "", "\r", "", "\n", "").Replace(v)
	}
	return v
}

// schemeEnd returns the index of the ':' ending a scheme, or -1.
func schemeEnd(v string) int {
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return i
		default:
			return -1
		}
	}
	return -1
}

func afterLast(s string, c byte) string {
	if i := strings.LastIndexByte(s, c); i >= 0 {
		return s[i+1:]
	}
	return s
}

func afterFirst(s string, c byte) string {
	if i := strings.IndexByte(s, c); i >= 0 {
		return s[i+1:]
	}
	return s
}

// stripPort removes ":port", keeping IPv6 literals whole.
func stripPort(hp string) string {
	if strings.HasPrefix(hp, "[") {
		if i := strings.IndexByte(hp, ']'); i > 0 {
			return hp[:i+1]
		}
		return hp
	}
	if strings.Count(hp, ":") > 1 {
		if _, err := netip.ParseAddr(hp); err == nil {
			return hp // a bare IPv6 literal some clients accept
		}
	}
	if i := strings.LastIndexByte(hp, ':'); i >= 0 {
		return hp[:i]
	}
	return hp
}

// normaliseHost percent-decodes, maps full-width forms and ideographic dots
// (as IDNA mapping would), lower-cases and drops trailing dots.
func normaliseHost(h string) string {
	for range 3 { // a fetcher decodes once; decoding more only errs on the safe side
		d := lenient.PercentDecode(h)
		if d == h {
			break
		}
		h = d
	}
	if !isASCII(h) {
		var b strings.Builder
		for _, r := range h {
			switch {
			case r >= 0xFF01 && r <= 0xFF5E: // full-width ASCII
				r -= 0xFEE0
			case r == 0x3002 || r == 0xFF61: // ideographic and half-width full stops
				r = '.'
			case r >= 0x2460 && r <= 0x2468: // circled digits one to nine
				r = '1' + (r - 0x2460)
			case r == 0x24EA: // circled digit zero
				r = '0'
			}
			b.WriteRune(r)
		}
		h = b.String()
	}
	h = strings.ToLower(h)
	if !strings.HasPrefix(h, "[") {
		h = strings.TrimRight(h, ".")
	}
	return h
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// hostKind is what a normalised host is.
type hostKind uint8

const (
	hostName hostKind = iota
	hostAddr
	hostInvalid
)

// parseHost classifies a normalised host: an IP literal in any spelling
// inet_aton or the WHATWG parser accepts (2130706433, 0177.0.0.1,
// 0x7f000001, 127.1, [::ffff:127.0.0.1]), a DNS name, or invalid.
func parseHost(h string) (hostKind, netip.Addr) {
	if h == "" {
		return hostInvalid, netip.Addr{}
	}
	if strings.HasPrefix(h, "[") {
		if !strings.HasSuffix(h, "]") {
			return hostInvalid, netip.Addr{}
		}
		a, err := netip.ParseAddr(h[1 : len(h)-1])
		if err != nil || !a.Is6() {
			return hostInvalid, netip.Addr{}
		}
		return hostAddr, a.WithZone("")
	}
	if strings.IndexByte(h, ':') >= 0 {
		if a, err := netip.ParseAddr(h); err == nil {
			return hostAddr, a.WithZone("")
		}
		return hostInvalid, netip.Addr{}
	}
	parts := strings.Split(h, ".")
	if last := parts[len(parts)-1]; isNumber(last) {
		// WHATWG: a host ending in a number must be an IPv4 address.
		if a, ok := looseIPv4(parts); ok {
			return hostAddr, a
		}
		return hostInvalid, netip.Addr{}
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c >= utf8.RuneSelf) {
			return hostInvalid, netip.Addr{}
		}
	}
	if strings.Contains(h, "..") || h[0] == '.' {
		return hostInvalid, netip.Addr{}
	}
	return hostName, netip.Addr{}
}

// isNumber reports whether s is a decimal or 0x-hex number, the WHATWG
// "ends in a number" test.
func isNumber(s string) bool {
	if s == "" {
		return false
	}
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		for i := 2; i < len(s); i++ {
			if strings.IndexByte("0123456789abcdefABCDEF", s[i]) < 0 {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// looseIPv4 parses one to four dot-separated parts, each decimal, octal
// (leading 0) or hex (0x); the last part fills the remaining bytes.
func looseIPv4(parts []string) (netip.Addr, bool) {
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var out uint64
	for i, p := range parts {
		n, ok := parseIPv4Part(p)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if n > 255 {
				return netip.Addr{}, false
			}
			out |= n << (8 * (3 - i))
			continue
		}
		if n >= 1<<(8*(4-i)) {
			return netip.Addr{}, false
		}
		out |= n
	}
	return netip.AddrFrom4([4]byte{byte(out >> 24), byte(out >> 16), byte(out >> 8), byte(out)}), true
}

func parseIPv4Part(p string) (uint64, bool) {
	base := 10
	switch {
	case p == "":
		return 0, false
	case len(p) >= 2 && (p[:2] == "0x" || p[:2] == "0X"):
		base, p = 16, p[2:]
		if p == "" {
			return 0, true // WHATWG reads "0x" as zero
		}
	case len(p) > 1 && p[0] == '0':
		base, p = 8, p[1:]
	}
	p = strings.TrimLeft(p, "0")
	if p == "" {
		return 0, true
	}
	if len(p) > 11 { // beyond 32 bits in any base; also bounds the work
		return 0, false
	}
	n, err := strconv.ParseUint(p, base, 64)
	return n, err == nil
}

// internalNames are host names that reach the gateway's own network or a
// cloud metadata service without needing DNS to say so.
var internalNames = map[string]bool{
	"localhost": true, "metadata": true, "metadata.google.internal": true, "metadata.goog": true,
	"instance-data": true, "instance-data.ec2.internal": true,
}

// internalSuffixes are private-use and special-use domains (RFC 6761, RFC
// 8375, ICANN's .internal) and cluster-internal service domains.
var internalSuffixes = []string{".localhost", ".internal", ".local", ".localdomain", ".home.arpa", ".svc", ".lan", ".intranet"}

// internalName reports whether a DNS name is internal by its spelling.
// Single-label names count: they resolve through the search domains of
// the gateway's network (a Kubernetes service, a Docker container).
func internalName(h string) bool {
	if internalNames[h] || strings.HasPrefix(h, "metadata.azure.") || !strings.Contains(h, ".") {
		return true
	}
	for _, s := range internalSuffixes {
		if strings.HasSuffix(h, s) {
			return true
		}
	}
	return false
}

// reserved are addresses outside the internet-routable space that netip's
// predicates do not cover.
var reserved = mustPrefixes(
	"0.0.0.0/8",       // "this network"
	"100.64.0.0/10",   // carrier-grade NAT
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // TEST-NET-1
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // TEST-NET-2
	"203.0.113.0/24",  // TEST-NET-3
	"240.0.0.0/4",     // reserved, and broadcast
	"100::/64",        // discard-only
	"2001:db8::/32",   // documentation
	"fec0::/10",       // deprecated site-local
)

func mustPrefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96")
	compat = netip.MustParsePrefix("::/96")
	sixTo4 = netip.MustParsePrefix("2002::/16")
)

// embeddedV4 returns the IPv4 address an IPv6 transition address carries.
func embeddedV4(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	switch {
	case nat64.Contains(a) || compat.Contains(a) && !a.IsUnspecified() && !a.IsLoopback():
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixTo4.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// addrProblem says why an address is not a public destination ("" if it is).
func addrProblem(a netip.Addr, deny []netip.Prefix) string {
	a = a.Unmap().WithZone("")
	if v4, ok := embeddedV4(a); ok {
		if p := addrProblem(v4, deny); p != "" {
			return p
		}
	}
	switch {
	case !a.IsValid():
		return "an invalid address"
	case a.IsLoopback():
		return "a loopback address"
	case a.IsPrivate():
		return "a private address"
	case a.IsLinkLocalUnicast():
		return "a link-local address (cloud metadata)"
	case a.IsUnspecified():
		return "an unspecified address"
	case a.IsMulticast():
		return "a multicast address"
	}
	for _, p := range reserved {
		if p.Contains(a) {
			return "a reserved address"
		}
	}
	for _, p := range deny {
		if p.Contains(a) {
			return "a denied address"
		}
	}
	return ""
}
