package gateway

import (
	"encoding/hex"
	"math/rand/v2"
)

// maxRequestIDLen bounds a client-supplied request id.
const maxRequestIDLen = 128

// validRequestID accepts ids made of [A-Za-z0-9._:-], 1 to 128 bytes, so an
// id copied into logs, events and problem bodies cannot inject anything.
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// newRequestID returns 128 random bits as 32 hex characters. The runtime's
// per-thread ChaCha8 generator is fast and unpredictable enough for ids,
// which are correlation handles, not secrets.
func newRequestID() string {
	var b [16]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		b[i] = byte(hi >> (8 * i))
		b[8+i] = byte(lo >> (8 * i))
	}
	return hex.EncodeToString(b[:])
}
