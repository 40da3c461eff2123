// Package keyattest verifies Android Key Attestation on the server: a
// certificate chain from KeyStore.getCertificateChain whose leaf carries the
// KeyDescription extension (OID 1.3.6.1.4.1.11129.2.1.17).
//
// Verify checks, in this order and each with its own Reason:
//   - at most 10 certificates of at most 16 KiB each, at least 2;
//   - every certificate parses; the leaf has exactly one KeyDescription
//     extension and no other certificate has one;
//   - each certificate is signed by the next one, by signature and never by
//     name (issuer DN and subject DN are not compared), and each signer is a
//     CA allowed to sign certificates; the last one is self-signed;
//   - every certificate except the last is within its validity at Now;
//   - the last certificate's public key equals the key of a trusted root
//     that is itself valid at Now (trust is by key: Google re-issues its
//     root with the same key, and devices keep shipping the old copy);
//   - no serial in the chain is on the revocation list (REVOKED and
//     SUSPENDED both refuse);
//   - the KeyDescription parses and satisfies the Policy: challenge,
//     security level, package, signing certificate, boot state, lock state,
//     OS patch level.
//
// What this does not establish: it attests the key and the device state at
// key generation, not the app's runtime integrity (use Play Integrity for
// that), nor that the key is still on the device. Boot, lock and patch
// claims are read only from the hardware-enforced list; a Software-level
// attestation proves nothing about the device. Chains from a device using
// ATTEST_KEY (an app-owned attestation key) are refused, because they put
// a KeyDescription above the leaf. Remotely provisioned (RKP) chains verify
// like factory ones, as long as they end at a trusted Google key; their
// intermediates are short-lived, so Now matters. Name constraints, path
// length and policy extensions are not evaluated. Fetching and refreshing
// Google's revocation list is the caller's job (LoadRevocationList).
package keyattest
