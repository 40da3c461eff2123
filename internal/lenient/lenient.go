// Package lenient decodes and quotes request text the way inspection
// checks need it: decoding like the most forgiving server would (so an
// attacker cannot hide a payload behind an invalid escape that the
// upstream later accepts), and quoting attacker-chosen names so they are
// safe in a problem document or a log line.
package lenient

import "strings"

// PercentDecode decodes %XX escapes and keeps invalid ones as written.
func PercentDecode(s string) string {
	d, _ := decode(s, false)
	return d
}

// QueryUnescape decodes a query or form component: '+' is a space, %XX
// escapes are decoded and invalid ones kept as written; ok is false when
// there was an invalid one.
func QueryUnescape(s string) (string, bool) {
	return decode(s, true)
}

func decode(s string, plus bool) (string, bool) {
	if !strings.ContainsAny(s, "%+") {
		return s, true
	}
	ok := true
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+' && plus:
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			if c == '%' {
				ok = false
			}
			b = append(b, c)
		}
	}
	return string(b), ok
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// SafeName percent-escapes every byte but letters, digits and those in
// keep, and truncates after max bytes with "...", so an attacker-chosen
// name cannot inject markup or control characters.
func SafeName(s string, max int, keep string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if b.Len() >= max {
			b.WriteString("...")
			break
		}
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(keep, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// SplitPointer parses an RFC 6901 JSON pointer ("/a/b~1c") into its
// unescaped reference tokens; false when it does not start with "/" or
// has a "~" not followed by 0 or 1. "/" is one empty token.
func SplitPointer(p string) ([]string, bool) {
	if p == "" || p[0] != '/' {
		return nil, false
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		for j := 0; j < len(s); j++ {
			if s[j] == '~' && (j+1 >= len(s) || s[j+1] != '0' && s[j+1] != '1') {
				return nil, false
			}
		}
		segs[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return segs, true
}
