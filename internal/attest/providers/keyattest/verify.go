package keyattest

import (
	"bytes"
	"crypto"
	"crypto/subtle"
	"crypto/x509"
	"embed"
	"encoding/pem"
	"strconv"
	"sync"
	"time"
)

// Size bounds for untrusted input, checked before any parsing.
const (
	MaxChainLen = 10
	MaxCertSize = 16 << 10
	minChainLen = 2
)

// Reasons carried by *Error: stable strings for metrics and client-visible
// error codes.
const (
	ReasonMalformed     = "malformed"
	ReasonTooLarge      = "too_large"
	ReasonChain         = "chain_invalid"
	ReasonUntrustedRoot = "untrusted_root"
	ReasonRevoked       = "revoked"
	ReasonChallenge     = "challenge_mismatch"
	ReasonPackage       = "package_mismatch"
	ReasonSigner        = "signer_mismatch"
	ReasonSecurityLevel = "security_level"
	ReasonBootState     = "boot_not_verified"
	ReasonDeviceLocked  = "device_unlocked"
	ReasonPatchLevel    = "patch_level"
)

// Error is the only error type returned by this package. Detail is short and
// never contains input bytes, so it is safe to show to a client.
type Error struct {
	Reason string
	Detail string
}

func (e *Error) Error() string { return "keyattest: " + e.Reason + ": " + e.Detail }

func fail(reason, detail string) error { return &Error{Reason: reason, Detail: detail} }

// Policy is what the relying party requires of an attested key. Empty
// Challenge, PackageNames or SigningCertDigests fail closed: a forgotten
// setting must not turn a check off.
type Policy struct {
	Challenge           []byte        // must equal attestationChallenge
	PackageNames        []string      // one must appear in attestationApplicationId
	SigningCertDigests  [][]byte      // SHA-256 of the app signing cert; one must appear
	MinSecurityLevel    SecurityLevel // attestationSecurityLevel must be >= this
	RequireVerifiedBoot bool          // hardware rootOfTrust.verifiedBootState == Verified
	RequireDeviceLocked bool          // hardware rootOfTrust.deviceLocked
	MinOSPatchLevel     int           // YYYYMM (YYYYMMDD accepted); 0 = off
}

// Options tune chain verification.
type Options struct {
	// Roots are trust anchors, matched by public key only. nil means the
	// embedded Google roots; a non-nil empty slice trusts nothing.
	Roots   []*x509.Certificate
	Revoked *RevocationList // nil = no revocation check
	Now     time.Time       // zero = time.Now()
}

// Result describes an attested key that passed Verify.
type Result struct {
	Key           crypto.PublicKey // the attested key (leaf public key)
	Description   *KeyDescription
	Package       string        // the policy package found in the attestation
	SecurityLevel SecurityLevel // attestationSecurityLevel
	ChainSerials  []string      // serials, leaf first, in Google's list format
}

//go:embed roots/*.pem
var rootFiles embed.FS

var googleRoots = sync.OnceValue(func() []*x509.Certificate {
	files, _ := rootFiles.ReadDir("roots")
	var out []*x509.Certificate
	for _, f := range files {
		data, err := rootFiles.ReadFile("roots/" + f.Name())
		if err != nil {
			panic("keyattest: embedded root: " + err.Error())
		}
		for blk, rest := pem.Decode(data); blk != nil; blk, rest = pem.Decode(rest) {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				panic("keyattest: embedded root " + f.Name() + ": " + err.Error())
			}
			out = append(out, c)
		}
	}
	return out
})

// GoogleRoots returns the embedded Google attestation roots (the RSA root in
// its 2016, 2019, 2021 and 2022 issues, and the 2025 EC "Key Attestation
// CA1"). Append to it to build Options.Roots with extra anchors.
func GoogleRoots() []*x509.Certificate {
	r := googleRoots()
	return append([]*x509.Certificate(nil), r...)
}

// Verify verifies a certificate chain (DER, leaf first, as Android's
// KeyStore.getCertificateChain returns it) and applies the policy. See the
// package documentation for exactly what is and is not checked.
func Verify(chain [][]byte, pol Policy, opts Options) (*Result, error) {
	if len(chain) > MaxChainLen {
		return nil, fail(ReasonTooLarge, "chain longer than 10 certificates")
	}
	if len(chain) < minChainLen {
		return nil, fail(ReasonChain, "chain shorter than 2 certificates")
	}
	for i, der := range chain {
		if len(der) > MaxCertSize {
			return nil, fail(ReasonTooLarge, "certificate "+strconv.Itoa(i)+" exceeds 16 KiB")
		}
	}
	certs := make([]*x509.Certificate, len(chain))
	for i, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fail(ReasonMalformed, "certificate "+strconv.Itoa(i)+" does not parse")
		}
		certs[i] = c
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}

	// The extension must be in the leaf and only there. An attested app key
	// can sign arbitrary bytes, so a chain "leaf(forged) <- real attested
	// leaf <- ..." would pass signature checks; refusing the extension above
	// the leaf (and requiring CA parents, below) shuts that. This also means
	// ATTEST_KEY chains (an app-owned attestation key) are not supported.
	var ext []byte
	for i, c := range certs {
		n := 0
		for _, e := range c.Extensions {
			if e.Id.Equal(OIDKeyDescription) {
				n++
				if i == 0 {
					ext = e.Value
				}
			}
		}
		switch {
		case i == 0 && n != 1:
			return nil, fail(ReasonMalformed, "leaf must carry exactly one key attestation extension")
		case i > 0 && n != 0:
			return nil, fail(ReasonChain, "key attestation extension outside the leaf")
		}
	}

	// Signature by signature, never by name: Google's guidance, and real
	// StrongBox chains have issuer DNs that do not match their signer's
	// subject. CheckSignatureFrom (unlike CheckSignature) also insists the
	// parent is a CA with certSign usage, which no attested app key is.
	last := len(certs) - 1
	for i := 0; i < last; i++ {
		if err := certs[i].CheckSignatureFrom(certs[i+1]); err != nil {
			return nil, fail(ReasonChain, "certificate "+strconv.Itoa(i)+" is not signed by its successor")
		}
	}
	if err := certs[last].CheckSignatureFrom(certs[last]); err != nil {
		return nil, fail(ReasonChain, "last certificate is not self-signed")
	}

	// Validity of everything but the chain's own copy of the root: trust in
	// the root is by key, and its lifetime comes from the anchor we hold
	// (Google re-issued the 2016 root with the same key when it expired).
	for i := 0; i < last; i++ {
		if now.Before(certs[i].NotBefore) || now.After(certs[i].NotAfter) {
			return nil, fail(ReasonChain, "certificate "+strconv.Itoa(i)+" is not valid at this time")
		}
	}
	roots := opts.Roots
	if roots == nil {
		roots = googleRoots()
	}
	switch known, valid := anchorStatus(certs[last], roots, now); {
	case !known:
		return nil, fail(ReasonUntrustedRoot, "root key is not a trusted attestation root")
	case !valid:
		return nil, fail(ReasonUntrustedRoot, "no trusted root with this key is valid at this time")
	}

	serials := make([]string, len(certs))
	for i, c := range certs {
		serials[i] = serialHex(c.SerialNumber)
		if e, ok := opts.Revoked.Lookup(c.SerialNumber); ok {
			return nil, fail(ReasonRevoked, "certificate "+strconv.Itoa(i)+" is listed as "+safeWord(e.Status))
		}
	}

	kd, err := ParseKeyDescription(ext)
	if err != nil {
		return nil, err
	}
	pkg, err := pol.check(kd)
	if err != nil {
		return nil, err
	}
	return &Result{
		Key:           certs[0].PublicKey,
		Description:   kd,
		Package:       pkg,
		SecurityLevel: kd.AttestationSecurityLevel,
		ChainSerials:  serials,
	}, nil
}

// anchorStatus reports whether root's public key belongs to an anchor, and
// whether at least one anchor with that key is within its validity at now.
func anchorStatus(root *x509.Certificate, anchors []*x509.Certificate, now time.Time) (known, valid bool) {
	var canon []byte // root's key re-marshalled, computed only if needed
	for _, a := range anchors {
		if a == nil {
			continue
		}
		same := bytes.Equal(a.RawSubjectPublicKeyInfo, root.RawSubjectPublicKeyInfo)
		if !same {
			// Same key, different DER (e.g. absent vs NULL RSA parameters).
			if canon == nil {
				canon, _ = x509.MarshalPKIXPublicKey(root.PublicKey)
			}
			ac, err := x509.MarshalPKIXPublicKey(a.PublicKey)
			same = err == nil && canon != nil && bytes.Equal(ac, canon)
		}
		if same {
			known = true
			if !now.Before(a.NotBefore) && !now.After(a.NotAfter) {
				return true, true
			}
		}
	}
	return known, false
}

// check applies the policy in a fixed order so each failure has one Reason.
func (p *Policy) check(kd *KeyDescription) (string, error) {
	if len(p.Challenge) == 0 {
		return "", fail(ReasonChallenge, "no challenge configured")
	}
	if subtle.ConstantTimeCompare(p.Challenge, kd.Challenge) != 1 {
		return "", fail(ReasonChallenge, "attestation challenge does not match")
	}
	if kd.AttestationSecurityLevel < p.MinSecurityLevel {
		return "", fail(ReasonSecurityLevel, "attested at "+kd.AttestationSecurityLevel.String()+", need "+p.MinSecurityLevel.String())
	}

	// attestationApplicationId is written by Android's keystore into the
	// software list; accept it from the hardware list should a TEE ever do so.
	app := kd.Hardware.ApplicationID
	if app == nil {
		app = kd.Software.ApplicationID
	}
	if app == nil {
		return "", fail(ReasonPackage, "attestation has no application id")
	}
	pkg := ""
	for _, want := range p.PackageNames {
		for _, have := range app.Packages {
			if have.Name == want {
				pkg = want
				break
			}
		}
		if pkg != "" {
			break
		}
	}
	if pkg == "" {
		return "", fail(ReasonPackage, "no allowed package in attestation")
	}
	signer := false
	for _, want := range p.SigningCertDigests {
		for _, have := range app.SignatureDigests {
			if len(want) > 0 && bytes.Equal(want, have) {
				signer = true
			}
		}
	}
	if !signer {
		return "", fail(ReasonSigner, "no allowed signing certificate in attestation")
	}

	// Boot state, lock and patch level only count when the secure hardware
	// vouches for them; a software-list copy is ignored.
	rot := kd.Hardware.RootOfTrust
	if p.RequireVerifiedBoot && (rot == nil || rot.VerifiedBootState != Verified) {
		return "", fail(ReasonBootState, "verified boot state is not verified")
	}
	if p.RequireDeviceLocked && (rot == nil || !rot.DeviceLocked) {
		return "", fail(ReasonDeviceLocked, "bootloader is unlocked")
	}
	if p.MinOSPatchLevel > 0 && monthOf(kd.Hardware.OSPatchLevel) < monthOf(p.MinOSPatchLevel) {
		return "", fail(ReasonPatchLevel, "OS patch level too old")
	}
	return pkg, nil
}

// monthOf reduces YYYYMMDD to YYYYMM so either form compares.
func monthOf(v int) int {
	if v >= 1000_00_00 {
		return v / 100
	}
	return v
}

// safeWord keeps only [A-Z_] from a list-supplied string before it reaches
// a client-visible Detail.
func safeWord(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(b) < 32; i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' || c == '_' {
			b = append(b, c)
		}
	}
	if len(b) == 0 {
		return "revoked"
	}
	return string(b)
}
