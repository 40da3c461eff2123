package fingerprint

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"slices"
	"strings"
)

// TLS code points JA4 and the stack classifier use.
const (
	extServerName      = 0x0000
	extALPN            = 0x0010
	extSCT             = 0x0012 // signed_certificate_timestamp
	extEncryptThenMAC  = 0x0016
	extCompressCert    = 0x001b
	extRecordSizeLimit = 0x001c
	extDelegatedCreds  = 0x0022
	extQUICParams      = 0x0039
	extALPSOld         = 0x4469 // application_settings, original code point
	extALPSNew         = 0x44cd // application_settings, current code point

	scsvRenegotiation = 0x00ff
)

// maxList bounds the code-point lists copied onto the stack; longer lists
// (a hostile hello may carry thousands of ciphers) spill to the heap.
const maxList = 128

// TLSFingerprint is what the ClientHello of one connection says about the
// client. It is immutable once stored in a ConnInfo.
type TLSFingerprint struct {
	// JA4 is the FoxIO JA4 fingerprint, e.g. t13d1516h2_8daaf6152771_02713d6af862.
	JA4 string
	// JA4R is JA4's raw (ja4_r) form: the sorted lists before hashing.
	// For debugging and for comparing with other implementations.
	JA4R string
	// Family is the TLS stack the hello looks like it came from.
	Family Family
	// FamilyReason says briefly which hello features decided Family.
	FamilyReason string
	// ServerName is the SNI host name, if any.
	ServerName string
}

// hello holds the ClientHello fields JA4 and the classifier read, in wire
// order with GREASE still present.
type hello struct {
	quic      bool
	versions  []uint16 // supported_versions, or crypto/tls's synthesised list
	ciphers   []uint16
	exts      []uint16
	sigalgs   []tls.SignatureScheme
	alpn      string // first ALPN protocol; "" when none
	hasSNIExt bool
}

// helloFromInfo adapts Go's view of the ClientHello. Go keeps GREASE values
// in CipherSuites, Extensions and SupportedVersions (checked by
// TestGoKeepsGREASE), so JA4 filters them itself. When the client sent no
// supported_versions extension Go synthesises SupportedVersions from the
// legacy version; its highest entry is then that legacy version, except
// that SSL 3.0 and unknown versions are not representable (see doc.go).
func helloFromInfo(chi *tls.ClientHelloInfo, h *hello) {
	h.ciphers = chi.CipherSuites
	h.exts = chi.Extensions
	h.versions = chi.SupportedVersions
	h.hasSNIExt = slices.Contains(chi.Extensions, extServerName)
	h.quic = slices.Contains(chi.Extensions, extQUICParams)
	if len(chi.SupportedProtos) > 0 {
		h.alpn = chi.SupportedProtos[0]
	}
	h.sigalgs = chi.SignatureSchemes
}

// NewTLSFingerprint computes JA4, its raw form and the stack family from
// what crypto/tls reports about a ClientHello (for example inside
// tls.Config.GetConfigForClient).
func NewTLSFingerprint(chi *tls.ClientHelloInfo) *TLSFingerprint {
	if chi == nil {
		return nil
	}
	var h hello
	helloFromInfo(chi, &h)
	ja4, raw := h.ja4(true)
	fam, why := h.classify()
	return &TLSFingerprint{JA4: ja4, JA4R: raw, Family: fam, FamilyReason: why, ServerName: chi.ServerName}
}

// JA4 returns the JA4 fingerprint of a ClientHello. It is the cheap form
// of NewTLSFingerprint for callers that only want the string.
func JA4(chi *tls.ClientHelloInfo) string {
	if chi == nil {
		return ""
	}
	var h hello
	helloFromInfo(chi, &h)
	s, _ := h.ja4(false)
	return s
}

// isGREASE reports RFC 8701 GREASE values: 0x0a0a, 0x1a1a, ... 0xfafa.
func isGREASE(v uint16) bool {
	return v&0x0f0f == 0x0a0a && v>>8 == v&0xff
}

func hasGREASE(l []uint16) bool {
	for _, v := range l {
		if isGREASE(v) {
			return true
		}
	}
	return false
}

// version is JA4's two-character TLS version: the highest non-GREASE
// supported_versions entry. Without that extension crypto/tls derives the
// list from the legacy version, whose highest entry is that version.
func (h *hello) version() string {
	var v uint16
	for _, x := range h.versions {
		if !isGREASE(x) && x > v {
			v = x
		}
	}
	switch v {
	case 0x0304:
		return "13"
	case 0x0303:
		return "12"
	case 0x0302:
		return "11"
	case 0x0301:
		return "10"
	case 0x0300:
		return "s3"
	case 0x0002:
		return "s2"
	case 0xfeff:
		return "d1"
	case 0xfefd:
		return "d2"
	case 0xfefc:
		return "d3"
	}
	return "00"
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// alpnChars is JA4's ALPN field: first and last character of the first
// protocol when both are alphanumeric, else the first and last hex digit
// of the protocol's bytes; "00" when there is none.
func alpnChars(p string) (byte, byte) {
	if len(p) == 0 {
		return '0', '0'
	}
	first, last := p[0], p[len(p)-1]
	if isAlnum(first) && isAlnum(last) {
		return first, last
	}
	const digits = "0123456789abcdef"
	return digits[first>>4], digits[last&0x0f]
}

// ja4 builds the fingerprint and, when withRaw, the ja4_r string. Sorting
// happens on stack copies; the only allocations are the returned strings.
func (h *hello) ja4(withRaw bool) (string, string) {
	var cbuf, ebuf [maxList]uint16
	ciphers := appendNonGREASE(cbuf[:0], h.ciphers)
	nCiphers := len(ciphers)
	exts := ebuf[:0]
	nExts := 0
	for _, e := range h.exts {
		if isGREASE(e) {
			continue
		}
		nExts++
		if e != extServerName && e != extALPN {
			exts = append(exts, e)
		}
	}
	var sbuf [maxList]uint16
	sigs := sbuf[:0]
	for _, v := range h.sigalgs {
		if !isGREASE(uint16(v)) {
			sigs = append(sigs, uint16(v))
		}
	}
	slices.Sort(ciphers)
	slices.Sort(exts)

	var a [10]byte
	a[0] = 't'
	if h.quic {
		a[0] = 'q'
	}
	v := h.version()
	a[1], a[2] = v[0], v[1]
	a[3] = 'i'
	if h.hasSNIExt {
		a[3] = 'd'
	}
	putCount(a[4:6], nCiphers)
	putCount(a[6:8], nExts)
	a[8], a[9] = alpnChars(h.alpn)

	// One scratch buffer holds the cipher list, then the extension list
	// and signature algorithms; 5 bytes per entry.
	var scratch [1024]byte
	buf := appendHexList(scratch[:0], ciphers)
	cipherEnd := len(buf)
	buf = appendHexList(buf, exts)
	if len(sigs) > 0 {
		buf = append(buf, '_')
		buf = appendHexList(buf, sigs)
	}

	var out [36]byte
	o := append(out[:0], a[:]...)
	o = append(o, '_')
	o = appendHash12(o, buf[:cipherEnd], len(ciphers) == 0)
	o = append(o, '_')
	o = appendHash12(o, buf[cipherEnd:], len(exts) == 0)
	if !withRaw {
		return string(o), ""
	}
	var raw strings.Builder
	raw.Grow(12 + len(buf))
	raw.Write(a[:])
	raw.WriteByte('_')
	raw.Write(buf[:cipherEnd])
	raw.WriteByte('_')
	raw.Write(buf[cipherEnd:])
	return string(o), raw.String()
}

func appendNonGREASE(dst, src []uint16) []uint16 {
	for _, v := range src {
		if !isGREASE(v) {
			dst = append(dst, v)
		}
	}
	return dst
}

// putCount writes min(n, 99) as two decimal digits.
func putCount(dst []byte, n int) {
	n = min(n, 99)
	dst[0] = byte('0' + n/10)
	dst[1] = byte('0' + n%10)
}

// appendHexList appends l as comma-separated 4-digit lowercase hex.
func appendHexList(dst []byte, l []uint16) []byte {
	const digits = "0123456789abcdef"
	for i, v := range l {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, digits[v>>12], digits[v>>8&0xf], digits[v>>4&0xf], digits[v&0xf])
	}
	return dst
}

// appendHash12 appends the first 12 hex digits of SHA-256(b), or twelve
// zeros when the hashed list is empty (JA4+ rule for empty fields).
func appendHash12(dst, b []byte, empty bool) []byte {
	if empty {
		return append(dst, "000000000000"...)
	}
	sum := sha256.Sum256(b)
	var h [12]byte
	hex.Encode(h[:], sum[:6])
	return append(dst, h[:]...)
}
