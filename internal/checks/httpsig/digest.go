package httpsig

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"

	"github.com/dunglas/httpsfv"
)

type digestResult int

const (
	digestOK        digestResult = iota
	digestMismatch               // a supported digest differs from the body
	digestNone                   // no supported algorithm present
	digestMalformed              // not a dictionary of byte sequences
)

// digestMatches checks a Content-Digest field (RFC 9530 §2) against body:
// every sha-256 and sha-512 member must match; other algorithms are
// ignored.
func digestMatches(vals []string, body []byte) digestResult {
	d, err := httpsfv.UnmarshalDictionary(vals)
	if err != nil {
		return digestMalformed
	}
	checked := false
	for _, alg := range d.Names() {
		var sum []byte
		switch alg {
		case "sha-256":
			s := sha256.Sum256(body)
			sum = s[:]
		case "sha-512":
			s := sha512.Sum512(body)
			sum = s[:]
		default:
			continue
		}
		m, _ := d.Get(alg)
		it, ok := m.(httpsfv.Item)
		if !ok {
			return digestMalformed
		}
		got, ok := it.Value.([]byte)
		if !ok {
			return digestMalformed
		}
		if subtle.ConstantTimeCompare(got, sum) != 1 {
			return digestMismatch
		}
		checked = true
	}
	if !checked {
		return digestNone
	}
	return digestOK
}
