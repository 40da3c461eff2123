// Package appattest verifies Apple App Attest attestations and assertions on
// the server, following Apple's "Validating apps that connect to your server".
//
// VerifyAttestation checks, in Apple's order and each with its own Reason:
//   - fmt is "apple-appattest";
//   - the x5c chain (leaf, intermediates) verifies to the Apple App
//     Attestation Root CA (embedded, pinned by SHA-256) at a given time;
//   - SHA-256(authData || clientDataHash) equals the nonce the leaf carries in
//     extension 1.2.840.113635.100.8.2;
//   - SHA-256 of the leaf's uncompressed public key equals the key id;
//   - rpIdHash equals SHA-256 of one allowed "<TeamID>.<bundleID>";
//   - the sign counter is 0;
//   - the AAGUID names an environment the policy allows;
//   - the credential id in authData equals the key id.
//
// VerifyAssertion checks a later assertion: rpIdHash, the ECDSA-SHA256
// signature over SHA-256(authenticatorData || clientDataHash) by the attested
// key, and a counter strictly above the stored one.
//
// All input is treated as hostile: sizes are bounded before decoding, CBOR is
// decoded with tight limits, and authData is parsed by structure, never by
// fixed offsets beyond its fixed header.
package appattest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	_ "embed"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Environment of an attested key, from the AAGUID.
const (
	Development = "development"
	Production  = "production"
)

// Size bounds for untrusted input, checked before any decoding.
const (
	MaxAttestationSize = 64 << 10
	MaxAssertionSize   = 4 << 10
	maxChainLen        = 5
)

// Reasons carried by *Error. They are stable strings meant for metrics and
// client-visible error codes.
const (
	ReasonMalformed    = "malformed"
	ReasonFormat       = "bad_format"
	ReasonChain        = "chain_invalid"
	ReasonNonce        = "nonce_mismatch"
	ReasonKeyID        = "key_id_mismatch"
	ReasonAppID        = "app_id_mismatch"
	ReasonCounter      = "counter_invalid"
	ReasonEnvironment  = "environment_not_allowed"
	ReasonCredentialID = "credential_id_mismatch"
	ReasonSignature    = "signature_invalid"
	ReasonTooLarge     = "too_large"
)

// Error is the only error type returned by this package. Detail is short and
// never contains input bytes, so it is safe to show to a client.
type Error struct {
	Reason string
	Detail string
}

func (e *Error) Error() string { return "appattest: " + e.Reason + ": " + e.Detail }

func fail(reason, detail string) error { return &Error{Reason: reason, Detail: detail} }

// AttestationOptions is the policy applied by VerifyAttestation.
type AttestationOptions struct {
	AppIDs           []string       // allowed "<TeamID>.<bundleID>"; rpIdHash must equal SHA-256 of one of them
	AllowDevelopment bool           // accept AAGUID "appattestdevelop"
	AllowProduction  bool           // accept AAGUID "appattest"+7 zero bytes
	Roots            *x509.CertPool // nil = the embedded Apple App Attestation Root CA
	Now              time.Time      // verification time for the chain (zero = time.Now())
}

// Attestation is the result of a successful VerifyAttestation.
type Attestation struct {
	KeyID       []byte // SHA-256 of the uncompressed public key
	PublicKey   *ecdsa.PublicKey
	AppID       string // which of AppIDs matched
	Environment string
	Receipt     []byte // attStmt.receipt, kept for later fraud-metric use
}

// RootCAFingerprint is the SHA-256 of the DER of the embedded Apple App
// Attestation Root CA; init refuses to run with any other file.
const RootCAFingerprint = "1cb9823ba28ba6ad2d33a006941de2ae4f513ef1d4e831b9f7e0fa7b6242c932"

//go:embed apple_app_attestation_root_ca.pem
var rootPEM []byte

var (
	rootCert *x509.Certificate
	rootPool *x509.CertPool
	decMode  cbor.DecMode
)

var (
	aaguidDevelopment = []byte("appattestdevelop")
	aaguidProduction  = []byte("appattest\x00\x00\x00\x00\x00\x00\x00")
	oidNonce          = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 8, 2}
)

func init() {
	// A wrong or tampered root is a build defect, not a runtime condition.
	block, rest := pem.Decode(rootPEM)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		panic("appattest: embedded root CA is not a single PEM certificate")
	}
	sum := sha256.Sum256(block.Bytes)
	if hex.EncodeToString(sum[:]) != RootCAFingerprint {
		panic("appattest: embedded root CA fingerprint mismatch")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		panic("appattest: embedded root CA: " + err.Error())
	}
	rootCert = c
	rootPool = x509.NewCertPool()
	rootPool.AddCert(c)

	// Apple's objects are small definite-length maps without tags; anything
	// else is either a bug or an attack, so the limits are tight.
	decMode, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  8,
		MaxArrayElements: 16,
		MaxMapPairs:      16,
	}.DecMode()
	if err != nil {
		panic("appattest: cbor options: " + err.Error())
	}
}

// RootCA returns the embedded Apple App Attestation Root CA.
func RootCA() *x509.Certificate { return rootCert }

type attObject struct {
	Fmt      string  `cbor:"fmt"`
	AttStmt  attStmt `cbor:"attStmt"`
	AuthData []byte  `cbor:"authData"`
}

type attStmt struct {
	X5C     [][]byte `cbor:"x5c"`
	Receipt []byte   `cbor:"receipt"`
}

type assertionObject struct {
	Signature         []byte `cbor:"signature"`
	AuthenticatorData []byte `cbor:"authenticatorData"`
}

// authData is the parsed WebAuthn-style authenticator data.
type authData struct {
	RPIDHash     []byte // 32 bytes
	Flags        byte
	Counter      uint32
	AAGUID       []byte // 16 bytes, only with attested credential data
	CredentialID []byte
	CredentialPK []byte // raw COSE key
}

const (
	flagAT        = 0x40 // attested credential data present
	authHeaderLen = 32 + 1 + 4
	maxCredIDLen  = 1023 // WebAuthn's bound; Apple uses 32
)

// parseAuthData parses authenticator data by structure. With attested set it
// requires the AT flag and a well-formed COSE key map after the credential id;
// anything after the key (extensions, Apple's extra entries) is ignored
// because it is covered by the nonce anyway.
func parseAuthData(b []byte, attested bool) (*authData, error) {
	if len(b) < authHeaderLen {
		return nil, fail(ReasonMalformed, "authenticator data truncated")
	}
	ad := &authData{
		RPIDHash: b[:32],
		Flags:    b[32],
		Counter:  binary.BigEndian.Uint32(b[33:37]),
	}
	if !attested {
		return ad, nil
	}
	if ad.Flags&flagAT == 0 {
		return nil, fail(ReasonMalformed, "attested credential data flag not set")
	}
	rest := b[authHeaderLen:]
	if len(rest) < 16+2 {
		return nil, fail(ReasonMalformed, "authenticator data truncated")
	}
	ad.AAGUID = rest[:16]
	n := int(binary.BigEndian.Uint16(rest[16:18]))
	rest = rest[18:]
	if n == 0 || n > maxCredIDLen || len(rest) < n {
		return nil, fail(ReasonMalformed, "bad credential id length")
	}
	ad.CredentialID = rest[:n]
	rest = rest[n:]
	var key cbor.RawMessage
	after, err := decMode.UnmarshalFirst(rest, &key)
	if err != nil || len(key) == 0 || key[0]>>5 != 5 { // major type 5 = map
		return nil, fail(ReasonMalformed, "bad credential public key")
	}
	ad.CredentialPK = rest[:len(rest)-len(after)]
	return ad, nil
}

// parseNonceExtension extracts the 32-byte nonce from the value of extension
// 1.2.840.113635.100.8.2: SEQUENCE { [1] EXPLICIT OCTET STRING }.
func parseNonceExtension(der []byte) ([]byte, error) {
	var v struct {
		Nonce []byte `asn1:"tag:1,explicit"`
	}
	rest, err := asn1.Unmarshal(der, &v)
	if err != nil || len(rest) != 0 {
		return nil, fail(ReasonMalformed, "bad nonce extension")
	}
	if len(v.Nonce) != sha256.Size {
		return nil, fail(ReasonMalformed, "bad nonce length")
	}
	return v.Nonce, nil
}

// VerifyAttestation verifies an attestation object (CBOR, as the app sends it)
// for the key id the app reports and the clientDataHash = SHA-256(clientData)
// the server expects (the server's challenge is inside clientData).
func VerifyAttestation(attestationObject, clientDataHash, keyID []byte, opts AttestationOptions) (*Attestation, error) {
	if len(attestationObject) > MaxAttestationSize {
		return nil, fail(ReasonTooLarge, "attestation object exceeds 64 KiB")
	}
	var obj attObject
	if err := decMode.Unmarshal(attestationObject, &obj); err != nil {
		return nil, fail(ReasonMalformed, "attestation object is not valid CBOR of the expected shape")
	}
	if obj.Fmt != "apple-appattest" {
		return nil, fail(ReasonFormat, "fmt is not apple-appattest")
	}
	// Bound the work before parsing any certificate.
	if len(obj.AttStmt.X5C) == 0 || len(obj.AttStmt.X5C) > maxChainLen {
		return nil, fail(ReasonChain, "x5c must hold 1 to 5 certificates")
	}
	ad, err := parseAuthData(obj.AuthData, true)
	if err != nil {
		return nil, err
	}
	certs := make([]*x509.Certificate, len(obj.AttStmt.X5C))
	for i, der := range obj.AttStmt.X5C {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fail(ReasonMalformed, "x5c certificate does not parse")
		}
		certs[i] = c
	}
	leaf := certs[0]

	// 1. Chain to the pinned root at the requested time.
	roots := opts.Roots
	if roots == nil {
		roots = rootPool
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return nil, fail(ReasonChain, "certificate expired or not yet valid")
		}
		return nil, fail(ReasonChain, "certificate chain does not verify to the trusted root")
	}

	// 2-4. The leaf binds authData and the server's clientDataHash.
	var ext []byte
	for _, e := range leaf.Extensions {
		if e.Id.Equal(oidNonce) {
			if ext != nil {
				return nil, fail(ReasonMalformed, "duplicate nonce extension")
			}
			ext = e.Value
		}
	}
	if ext == nil {
		return nil, fail(ReasonMalformed, "leaf has no nonce extension")
	}
	want, err := parseNonceExtension(ext)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write(obj.AuthData)
	h.Write(clientDataHash)
	if subtle.ConstantTimeCompare(h.Sum(nil), want) != 1 {
		return nil, fail(ReasonNonce, "nonce does not match authenticator data and client data")
	}

	// 5. The certified key is the one the app claims.
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fail(ReasonMalformed, "leaf key is not ECDSA P-256")
	}
	raw, err := pub.Bytes()
	if err != nil {
		return nil, fail(ReasonMalformed, "leaf key is invalid")
	}
	kid := sha256.Sum256(raw)
	if !bytes.Equal(kid[:], keyID) {
		return nil, fail(ReasonKeyID, "key id does not match the attested key")
	}

	// 6. The key belongs to one of our apps.
	appID := ""
	for _, id := range opts.AppIDs {
		sum := sha256.Sum256([]byte(id))
		if bytes.Equal(sum[:], ad.RPIDHash) {
			appID = id
			break
		}
	}
	if appID == "" {
		return nil, fail(ReasonAppID, "rpIdHash does not match an allowed app id")
	}

	// 7. A fresh key has never signed anything.
	if ad.Counter != 0 {
		return nil, fail(ReasonCounter, "attestation counter is not zero")
	}

	// 8. Environment policy; unknown AAGUIDs are never accepted.
	var env string
	switch {
	case bytes.Equal(ad.AAGUID, aaguidDevelopment):
		env = Development
		if !opts.AllowDevelopment {
			return nil, fail(ReasonEnvironment, "development environment not allowed")
		}
	case bytes.Equal(ad.AAGUID, aaguidProduction):
		env = Production
		if !opts.AllowProduction {
			return nil, fail(ReasonEnvironment, "production environment not allowed")
		}
	default:
		return nil, fail(ReasonEnvironment, "unknown AAGUID")
	}

	// 9. authData names the same key.
	if !bytes.Equal(ad.CredentialID, keyID) {
		return nil, fail(ReasonCredentialID, "credential id does not match key id")
	}

	return &Attestation{
		KeyID:       kid[:],
		PublicKey:   pub,
		AppID:       appID,
		Environment: env,
		Receipt:     obj.AttStmt.Receipt, // the decoder copies; a test guards against aliasing
	}, nil
}

// VerifyAssertion verifies a later assertion (CBOR {signature,
// authenticatorData}) made by an attested key: ECDSA-SHA256 signature over
// SHA-256(authenticatorData || clientDataHash), rpIdHash = SHA-256(appID),
// counter > prevCounter. It returns the new counter, which the caller stores.
func VerifyAssertion(assertion, clientDataHash []byte, pub *ecdsa.PublicKey, appID string, prevCounter uint32) (counter uint32, err error) {
	if len(assertion) > MaxAssertionSize {
		return 0, fail(ReasonTooLarge, "assertion exceeds 4 KiB")
	}
	if pub == nil || pub.Curve != elliptic.P256() {
		return 0, fail(ReasonSignature, "no P-256 public key")
	}
	var obj assertionObject
	if err := decMode.Unmarshal(assertion, &obj); err != nil {
		return 0, fail(ReasonMalformed, "assertion is not valid CBOR of the expected shape")
	}
	ad, err := parseAuthData(obj.AuthenticatorData, false)
	if err != nil {
		return 0, err
	}
	// Cheap check first so foreign-app traffic costs no ECDSA.
	want := sha256.Sum256([]byte(appID))
	if !bytes.Equal(want[:], ad.RPIDHash) {
		return 0, fail(ReasonAppID, "rpIdHash does not match the app id")
	}
	h := sha256.New()
	h.Write(obj.AuthenticatorData)
	h.Write(clientDataHash)
	nonce := h.Sum(nil)
	// ECDSA-SHA256 over the nonce: the signed digest is SHA-256(nonce).
	digest := sha256.Sum256(nonce)
	if !ecdsa.VerifyASN1(pub, digest[:], obj.Signature) {
		return 0, fail(ReasonSignature, "assertion signature does not verify")
	}
	// Only authentic data may move the counter; equal means a replay.
	if ad.Counter <= prevCounter {
		return 0, fail(ReasonCounter, "counter did not increase")
	}
	return ad.Counter, nil
}

// ParsePublicKey parses a stored P-256 key in uncompressed X9.62 form.
func ParsePublicKey(b []byte) (*ecdsa.PublicKey, error) {
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), b)
	if err != nil {
		return nil, fail(ReasonMalformed, "not an uncompressed P-256 point")
	}
	return pub, nil
}

// MarshalPublicKey encodes a P-256 key as an uncompressed X9.62 point; its
// SHA-256 is the App Attest key id.
func MarshalPublicKey(pub *ecdsa.PublicKey) ([]byte, error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, fail(ReasonMalformed, "not a P-256 key")
	}
	b, err := pub.Bytes()
	if err != nil {
		return nil, fail(ReasonMalformed, "invalid public key")
	}
	return b, nil
}
