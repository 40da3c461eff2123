package fingerprint

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
)

// maxNames bounds the header names and cookies JA4H sorts on the stack.
const maxNames = 64

// JA4H computes the FoxIO JA4H fingerprint of a request:
//
//	ge11cr13enus_88d2d584d47f_0f2659b474bf_161698816dab
//	(method)(version)(cookie c/n)(referer r/n)(header count)(language)
//	_(header names)_(sorted cookie names)_(sorted cookie name=value pairs)
//
// wireOrder reports whether part b hashed the header names in the order
// and case the client sent them. That is only known for HTTP/2 requests
// whose HEADERS block fell inside the connection's capture window (see
// EnableHTTP2). Otherwise net/http has already folded the headers into a
// map: part b is then computed from the canonical names in sorted order
// (Host first for HTTP/1) and will not match JA4H values computed from
// packet captures; parts a, c and d are exact either way.
func JA4H(r *http.Request) (fp string, wireOrder bool) {
	var nbuf [maxNames]string
	names, wire := headerNames(r, nbuf[:0])
	return ja4h(r, names, false), wire
}

// JA4HRaw is JA4H's raw (ja4h_r) form. It contains the request's cookie
// values in clear: use it for debugging only, and never log it.
func JA4HRaw(r *http.Request) string {
	var nbuf [maxNames]string
	names, _ := headerNames(r, nbuf[:0])
	return ja4h(r, names, true)
}

// headerNames lists the request's header names, Cookie and Referer
// included, in wire order when the HTTP/2 capture saw them.
func headerNames(r *http.Request, dst []string) ([]string, bool) {
	if r.ProtoMajor == 2 {
		if ci := FromContext(r.Context()); ci != nil {
			if c := ci.h2.Load(); c != nil {
				if names, ok := c.headerNames(r.Method, r.RequestURI); ok {
					return append(dst, names...), true
				}
			}
		}
	}
	h2 := r.ProtoMajor >= 2
	if !h2 && r.Host != "" {
		dst = append(dst, "Host") // net/http moves Host out of the map
	}
	if !h2 && len(r.TransferEncoding) > 0 {
		dst = append(dst, "Transfer-Encoding") // and drops Transfer-Encoding
	}
	start := len(dst)
	for k, vs := range r.Header {
		if h2 {
			k = strings.ToLower(k)
		}
		for range vs {
			dst = append(dst, k)
		}
	}
	slices.Sort(dst[start:])
	return dst, false
}

// cookie is one name=value pair of the Cookie header(s).
type cookie struct{ name, pair string }

func ja4h(r *http.Request, names []string, raw bool) string {
	// Part a.
	var a [12]byte
	m := r.Method
	a[0], a[1] = '0', '0'
	for i := 0; i < len(m) && i < 2; i++ {
		if c := lowerASCII(m[i]); isAlnum(c) {
			a[i] = c // other token characters could forge the '_' separators
		}
	}
	switch {
	case r.ProtoMajor == 1 && r.ProtoMinor == 0:
		a[2], a[3] = '1', '0'
	case r.ProtoMajor == 1:
		a[2], a[3] = '1', '1'
	case r.ProtoMajor == 2:
		a[2], a[3] = '2', '0'
	case r.ProtoMajor == 3:
		a[2], a[3] = '3', '0'
	default:
		a[2], a[3] = '0', '0'
	}
	hasCookie, hasReferer := false, false
	kept := names[:0]
	for _, n := range names {
		switch {
		case strings.EqualFold(n, "cookie"):
			hasCookie = true
		case strings.EqualFold(n, "referer"):
			hasReferer = true
		default:
			kept = append(kept, n)
		}
	}
	names = kept
	a[4], a[5] = 'n', 'n'
	if hasCookie {
		a[4] = 'c'
	}
	if hasReferer {
		a[5] = 'r'
	}
	putCount(a[6:8], len(names))
	putLanguage(a[8:12], r.Header.Get("Accept-Language"))

	// Cookies, split from every Cookie header line or field.
	var cbuf [maxNames]cookie
	cookies := cbuf[:0]
	for _, line := range r.Header["Cookie"] {
		for part := range strings.SplitSeq(line, ";") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			name, _, _ := strings.Cut(part, "=")
			cookies = append(cookies, cookie{name: strings.TrimSpace(name), pair: part})
		}
	}
	slices.SortFunc(cookies, func(x, y cookie) int {
		return cmp.Or(strings.Compare(x.name, y.name), strings.Compare(x.pair, y.pair))
	})

	var scratch [1024]byte
	out := make([]byte, 0, 12+3*13)
	out = append(out, a[:]...)
	if raw {
		out = append(out, '_')
		out = appendJoined(out, names)
		out = append(out, '_')
		out = appendCookies(out, cookies, false)
		out = append(out, '_')
		out = appendCookies(out, cookies, true)
		return string(out)
	}
	out = append(out, '_')
	out = appendHash12(out, appendJoined(scratch[:0], names), len(names) == 0)
	out = append(out, '_')
	out = appendHash12(out, appendCookies(scratch[:0], cookies, false), len(cookies) == 0)
	out = append(out, '_')
	out = appendHash12(out, appendCookies(scratch[:0], cookies, true), len(cookies) == 0)
	return string(out)
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// putLanguage writes JA4H's language field: the first Accept-Language
// entry without dashes, lowercased, cut or zero-padded to 4 characters.
func putLanguage(dst []byte, v string) {
	n := 0
	for i := 0; i < len(v) && n < len(dst); i++ {
		c := v[i]
		if c == ',' || c == ';' {
			break
		}
		if !isAlnum(c) && c != '*' {
			continue // '-' by the spec; anything else is outside the grammar
		}
		dst[n] = lowerASCII(c)
		n++
	}
	for ; n < len(dst); n++ {
		dst[n] = '0'
	}
}

func appendJoined(dst []byte, l []string) []byte {
	for i, s := range l {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, s...)
	}
	return dst
}

func appendCookies(dst []byte, l []cookie, pairs bool) []byte {
	for i, c := range l {
		if i > 0 {
			dst = append(dst, ',')
		}
		if pairs {
			dst = append(dst, c.pair...)
		} else {
			dst = append(dst, c.name...)
		}
	}
	return dst
}
