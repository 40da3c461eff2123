package fingerprint

import "slices"

// Family is a TLS client stack, as far as a ClientHello (or a User-Agent's
// claim) tells it.
type Family string

// Families the classifier knows. Library stacks (Go, OpenSSL) are what
// scripts and bots use; a browser User-Agent over one of them is the
// mismatch Consistency reports.
const (
	FamilyUnknown  Family = "unknown"
	FamilyChromium Family = "chromium" // BoringSSL as shipped in Chrome, Edge, Opera, Brave...
	FamilyFirefox  Family = "firefox"  // NSS
	FamilySafari   Family = "safari"   // Apple's stack (also every iOS browser)
	FamilyGo       Family = "go"       // crypto/tls
	FamilyOpenSSL  Family = "openssl"  // curl, python, node, wget... on OpenSSL
)

// Browser reports whether f is a web browser's stack.
func (f Family) Browser() bool {
	return f == FamilyChromium || f == FamilyFirefox || f == FamilySafari
}

// Library reports whether f is a general-purpose TLS library that browsers
// do not use.
func (f Family) Library() bool {
	return f == FamilyGo || f == FamilyOpenSSL
}

// classify guesses the stack from defaults that each one ships and that
// applications rarely change. It looks at the hello's shape, not at
// fingerprints of particular versions, so it survives version churn; a
// client that imitates another stack on purpose (uTLS, curl-impersonate)
// is classified as what it imitates.
func (h *hello) classify() (Family, string) {
	grease := hasGREASE(h.ciphers) || hasGREASE(h.exts) || hasGREASE(h.versions)
	has := func(e uint16) bool { return slices.Contains(h.exts, e) }
	first := firstNonGREASE(h.ciphers)
	if grease {
		if has(extALPSOld) || has(extALPSNew) {
			return FamilyChromium, "grease and alps (application_settings)"
		}
		if has(extCompressCert) {
			return FamilySafari, "grease and compress_certificate without alps"
		}
		return FamilyUnknown, "grease without alps or compress_certificate"
	}
	if has(extRecordSizeLimit) && (has(extDelegatedCreds) || has(extCompressCert)) {
		return FamilyFirefox, "record_size_limit with delegated_credentials, no grease"
	}
	goShape := !slices.Contains(h.ciphers, scsvRenegotiation) && has(extSCT) && !has(extEncryptThenMAC)
	if goShape && first>>8 != 0x13 && lastTLS13Suite(h.ciphers) {
		return FamilyGo, "tls 1.3 suites after tls 1.2 suites, sct, no grease"
	}
	if goShape && first == 0xc02b && len(h.sigalgs) > 0 && uint16(h.sigalgs[0]) == 0x0804 {
		return FamilyGo, "go's tls 1.2 suite and signature order, sct, no grease"
	}
	if first == 0x1302 || (slices.Contains(h.ciphers, scsvRenegotiation) && has(extEncryptThenMAC)) {
		return FamilyOpenSSL, "openssl default suite order or renegotiation scsv with encrypt_then_mac"
	}
	return FamilyUnknown, "no known stack's defaults"
}

func firstNonGREASE(l []uint16) uint16 {
	for _, v := range l {
		if !isGREASE(v) {
			return v
		}
	}
	return 0
}

// lastTLS13Suite reports whether the list ends with TLS 1.3 suites, as Go's
// crypto/tls sends them (after its TLS 1.2 preferences).
func lastTLS13Suite(l []uint16) bool {
	for i := len(l) - 1; i >= 0; i-- {
		if isGREASE(l[i]) {
			continue
		}
		return l[i]>>8 == 0x13
	}
	return false
}
