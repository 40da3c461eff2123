package httpsig

import (
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/dunglas/httpsfv"
)

// Errors of parsing and signature-base construction. They carry no input:
// details shown to clients are fixed strings chosen by the check.
var (
	errMalformed   = errors.New("httpsig: malformed signature fields")
	errComponent   = errors.New("httpsig: unsupported or invalid component identifier")
	errMissingPart = errors.New("httpsig: a covered component is absent from the message")
)

// maxSignatures bounds how many signatures of one request are considered.
const maxSignatures = 16

// signature is one labelled signature of a request: the Signature-Input
// member and the matching Signature bytes.
type signature struct {
	label      string
	components []httpsfv.Item // covered component identifiers (sf-strings)
	params     *httpsfv.Params
	input      httpsfv.InnerList // for the @signature-params line
	sig        []byte

	created, expires int64 // 0 when absent
	hasCreated       bool
	hasExpires       bool
	keyID, alg       string
	nonce            string
	hasNonce         bool
}

// parseSignatures parses the Signature-Input and Signature dictionaries
// (RFC 9421 §4.1, §4.2) and returns every label present in both, in
// Signature-Input order. Labels present in only one field are ignored.
func parseSignatures(inputs, sigs []string) ([]signature, error) {
	in, err := httpsfv.UnmarshalDictionary(inputs)
	if err != nil {
		return nil, errMalformed
	}
	sd, err := httpsfv.UnmarshalDictionary(sigs)
	if err != nil {
		return nil, errMalformed
	}
	var out []signature
	for _, label := range in.Names() {
		m, _ := in.Get(label)
		il, ok := m.(httpsfv.InnerList)
		if !ok {
			return nil, errMalformed
		}
		sm, ok := sd.Get(label)
		if !ok {
			continue
		}
		si, ok := sm.(httpsfv.Item)
		if !ok {
			return nil, errMalformed
		}
		b, ok := si.Value.([]byte)
		if !ok || len(b) == 0 {
			return nil, errMalformed
		}
		s := signature{label: label, components: il.Items, params: il.Params, input: il, sig: b}
		if err := s.readParams(); err != nil {
			return nil, err
		}
		seen := make([]string, 0, len(il.Items))
		for _, c := range il.Items {
			if _, ok := c.Value.(string); !ok {
				return nil, errMalformed
			}
			id, err := httpsfv.Marshal(c)
			if err != nil {
				return nil, errMalformed
			}
			// RFC 9421 §3.2: a component identifier covered twice is an error.
			if slices.Contains(seen, id) {
				return nil, errMalformed
			}
			seen = append(seen, id)
		}
		out = append(out, s)
		if len(out) == maxSignatures {
			break
		}
	}
	return out, nil
}

// readParams reads the signature parameters of RFC 9421 §2.3, checking
// their types; unknown parameters are ignored.
func (s *signature) readParams() error {
	if s.params == nil {
		return errMalformed
	}
	for _, name := range s.params.Names() {
		v, _ := s.params.Get(name)
		var ok bool
		switch name {
		case "created":
			s.created, ok = v.(int64)
			s.hasCreated = true
		case "expires":
			s.expires, ok = v.(int64)
			s.hasExpires = true
		case "keyid":
			s.keyID, ok = v.(string)
		case "alg":
			s.alg, ok = v.(string)
		case "nonce":
			s.nonce, ok = v.(string)
			s.hasNonce = true
		case "tag":
			_, ok = v.(string)
		default:
			ok = true
		}
		if !ok {
			return errMalformed
		}
	}
	return nil
}

// covers reports whether the signature covers the bare component name
// (no parameters).
func (s *signature) covers(name string) bool {
	for _, c := range s.components {
		if v, _ := c.Value.(string); v == name && (c.Params == nil || len(c.Params.Names()) == 0) {
			return true
		}
	}
	return false
}

// message is what the signature base is computed over. status is set only
// for responses (used by the RFC's response example B.2.4 in tests).
type message struct {
	method        string
	scheme        string // lower case
	authority     string // host[:port], normalised
	path          string // escaped path, never empty
	rawQuery      string
	hasQuery      bool
	requestTarget string
	header        http.Header
	status        int
}

// requestMessage describes r for the signature base.
func requestMessage(r *http.Request) *message {
	m := &message{method: r.Method, header: r.Header}
	m.scheme = strings.ToLower(r.URL.Scheme)
	if m.scheme == "" {
		m.scheme = "http"
		if r.TLS != nil {
			m.scheme = "https"
		}
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	host = strings.ToLower(host)
	switch {
	case m.scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	case m.scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	}
	m.authority = host
	// Path and query come from the request target as received (origin
	// form), so a route rewrite of r.URL before this check does not change
	// what was signed; otherwise from r.URL.
	if rt := r.RequestURI; strings.HasPrefix(rt, "/") {
		m.path, m.rawQuery, m.hasQuery = strings.Cut(rt, "?")
	} else {
		m.path = r.URL.EscapedPath()
		m.rawQuery = r.URL.RawQuery
		m.hasQuery = r.URL.RawQuery != "" || r.URL.ForceQuery
	}
	if m.path == "" {
		m.path = "/"
	}
	m.requestTarget = r.RequestURI
	if m.requestTarget == "" {
		m.requestTarget = m.path
		if m.hasQuery {
			m.requestTarget += "?" + m.rawQuery
		}
	}
	return m
}

// signatureBase builds the signature base of RFC 9421 §2.5: one line per
// covered component, then the "@signature-params" line, joined by LF with
// no trailing LF.
func signatureBase(m *message, s *signature) ([]byte, error) {
	var b strings.Builder
	for _, c := range s.components {
		id, err := httpsfv.Marshal(c)
		if err != nil {
			return nil, errMalformed
		}
		vals, err := componentValues(m, c)
		if err != nil {
			return nil, err
		}
		for _, v := range vals {
			if strings.ContainsAny(v, "\r\n") {
				return nil, errMalformed
			}
			b.WriteString(id)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteByte('\n')
		}
	}
	params, err := httpsfv.Marshal(s.input)
	if err != nil {
		return nil, errMalformed
	}
	b.WriteString(`"@signature-params": `)
	b.WriteString(params)
	return []byte(b.String()), nil
}

// componentValues returns the value(s) of one covered component: derived
// components (§2.2) or HTTP fields (§2.1) with the bs and key parameters.
// The sf, req and tr parameters and @query-param are not supported.
func componentValues(m *message, c httpsfv.Item) ([]string, error) {
	name := c.Value.(string)
	var pnames []string
	if c.Params != nil {
		pnames = c.Params.Names()
	}
	if strings.HasPrefix(name, "@") {
		if len(pnames) > 0 {
			return nil, errComponent
		}
		var v string
		switch name {
		case "@method":
			v = m.method
		case "@target-uri":
			v = m.scheme + "://" + m.authority + m.requestTarget
		case "@authority":
			v = m.authority
		case "@scheme":
			v = m.scheme
		case "@request-target":
			v = m.requestTarget
		case "@path":
			v = m.path
		case "@query":
			v = "?" + m.rawQuery
		case "@status":
			if m.status == 0 {
				return nil, errComponent
			}
			v = strconv.Itoa(m.status)
		default:
			return nil, errComponent
		}
		return []string{v}, nil
	}
	if name == "" || name != strings.ToLower(name) {
		return nil, errComponent
	}
	raw, ok := fieldValues(m, name)
	if !ok {
		return nil, errMissingPart
	}
	var bs bool
	var key string
	var hasKey bool
	for _, p := range pnames {
		v, _ := c.Params.Get(p)
		switch p {
		case "bs":
			bs = v == true
			if !bs {
				return nil, errComponent
			}
		case "key":
			k, ok := v.(string)
			if !ok {
				return nil, errComponent
			}
			key, hasKey = k, true
		default:
			return nil, errComponent
		}
	}
	switch {
	case bs && hasKey:
		return nil, errComponent
	case bs:
		// §2.1.3: each field line value wrapped as a byte sequence.
		parts := make([]string, len(raw))
		for i, v := range raw {
			parts[i] = ":" + base64.StdEncoding.EncodeToString([]byte(trimOWS(v))) + ":"
		}
		return []string{strings.Join(parts, ", ")}, nil
	case hasKey:
		// §2.1.2: the re-serialised dictionary member.
		d, err := httpsfv.UnmarshalDictionary(raw)
		if err != nil {
			return nil, errComponent
		}
		mem, ok := d.Get(key)
		if !ok {
			return nil, errMissingPart
		}
		var s string
		switch mv := mem.(type) {
		case httpsfv.Item:
			s, err = httpsfv.Marshal(mv)
		case httpsfv.InnerList:
			s, err = httpsfv.Marshal(mv)
		default:
			err = errComponent
		}
		if err != nil {
			return nil, errComponent
		}
		return []string{s}, nil
	}
	// §2.1: values trimmed, obs-fold replaced, combined with ", ".
	parts := make([]string, len(raw))
	for i, v := range raw {
		parts[i] = trimOWS(strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(v))
	}
	return []string{strings.Join(parts, ", ")}, nil
}

// fieldValues returns the field lines of name. Go keeps Host out of the
// header map, so "host" is the request's authority.
func fieldValues(m *message, name string) ([]string, bool) {
	if name == "host" {
		if m.authority == "" {
			return nil, false
		}
		return []string{m.authority}, true
	}
	v, ok := m.header[http.CanonicalHeaderKey(name)]
	if !ok || len(v) == 0 {
		return nil, false
	}
	return v, true
}

func trimOWS(s string) string { return strings.Trim(s, " \t") }
