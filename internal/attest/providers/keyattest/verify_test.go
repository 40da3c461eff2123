package keyattest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"
)

func rootByName(tb testing.TB, name string) *x509.Certificate {
	tb.Helper()
	return parseCert(tb, readPEM(tb, "roots/"+name))
}

func TestVerify(t *testing.T) {
	ecTEE, rsaTEE := loadChain(t, dirECTEE), loadChain(t, dirRSATEE)
	ecSB, rsaSB := loadChain(t, dirECSB), loadChain(t, dirRSASB)
	root2016 := rootByName(t, "google_hardware_attestation_root_rsa_2016_E8FA196314D2FA18.pem")
	root2019 := rootByName(t, "google_hardware_attestation_root_rsa_2019_D50FF25BA3F2D6B3.pem")
	sbRoot := parseCert(t, ecSB[3])

	with := func(f func(*Policy)) Policy { p := permissive(); f(&p); return p }
	revokeList := func(serial *big.Int, status string) *RevocationList {
		l, err := LoadRevocationList(strings.NewReader(
			`{"entries":{"00` + strings.ToUpper(serial.Text(16)) + `":{"status":"` + status + `","reason":"KEY_COMPROMISE"}}}`))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	tooMany := make([][]byte, 11)
	for i := range tooMany {
		tooMany[i] = ecTEE[i%4]
	}

	tests := []struct {
		name   string
		chain  [][]byte
		pol    Policy
		opts   Options
		reason string // "" = must verify
		level  SecurityLevel
	}{
		{"EC TEE 2020 Google roots", ecTEE, permissive(), Options{Now: t2020}, "", TrustedEnvironment},
		{"RSA TEE 2020 Google roots", rsaTEE, permissive(), Options{Now: t2020}, "", TrustedEnvironment},
		// The chain's cert3 (2016 root) expired 2026-05-24; the same key is
		// trusted through the 2019 re-issue, so the chain still verifies.
		{"EC TEE 2026-11-23 via re-issued root", ecTEE, permissive(), Options{Now: tToday}, "", TrustedEnvironment},
		{"RSA TEE 2026-11-23 via re-issued root", rsaTEE, permissive(), Options{Now: tToday}, "", TrustedEnvironment},
		{"2026-11-23 only 2019 root pinned", ecTEE, permissive(), Options{Now: tToday, Roots: []*x509.Certificate{root2019}}, "", TrustedEnvironment},
		{"2026-11-23 only expired 2016 root pinned", ecTEE, permissive(), Options{Now: tToday, Roots: []*x509.Certificate{root2016}}, ReasonUntrustedRoot, 0},
		{"empty non-nil Roots trusts nothing", ecTEE, permissive(), Options{Now: t2020, Roots: []*x509.Certificate{}}, ReasonUntrustedRoot, 0},
		{"patch level 201907 ok", ecTEE, with(func(p *Policy) { p.MinOSPatchLevel = 201907 }), Options{Now: t2020}, "", TrustedEnvironment},
		{"patch level 20190701 ok", ecTEE, with(func(p *Policy) { p.MinOSPatchLevel = 20190701 }), Options{Now: t2020}, "", TrustedEnvironment},
		{"second allowed package matches", ecTEE, with(func(p *Policy) { p.PackageNames = []string{"com.example", "com.android.settings"} }), Options{Now: t2020}, "", TrustedEnvironment},

		// Policy failures.
		{"production: verified boot", ecTEE, with(func(p *Policy) { p.RequireVerifiedBoot, p.RequireDeviceLocked = true, true }), Options{Now: t2020}, ReasonBootState, 0},
		{"production: device locked", rsaTEE, with(func(p *Policy) { p.RequireDeviceLocked = true }), Options{Now: t2020}, ReasonDeviceLocked, 0},
		{"wrong challenge", ecTEE, with(func(p *Policy) { p.Challenge = []byte("abd") }), Options{Now: t2020}, ReasonChallenge, 0},
		{"challenge prefix", ecTEE, with(func(p *Policy) { p.Challenge = []byte("ab") }), Options{Now: t2020}, ReasonChallenge, 0},
		{"no challenge configured", ecTEE, with(func(p *Policy) { p.Challenge = nil }), Options{Now: t2020}, ReasonChallenge, 0},
		{"wrong package", ecTEE, with(func(p *Policy) { p.PackageNames = []string{"com.example.app"} }), Options{Now: t2020}, ReasonPackage, 0},
		{"no package configured", ecTEE, with(func(p *Policy) { p.PackageNames = nil }), Options{Now: t2020}, ReasonPackage, 0},
		{"wrong digest", ecTEE, with(func(p *Policy) { p.SigningCertDigests = [][]byte{make([]byte, 32)} }), Options{Now: t2020}, ReasonSigner, 0},
		{"no digest configured", rsaTEE, with(func(p *Policy) { p.SigningCertDigests = nil }), Options{Now: t2020}, ReasonSigner, 0},
		{"strongbox required on TEE", ecTEE, with(func(p *Policy) { p.MinSecurityLevel = StrongBox }), Options{Now: t2020}, ReasonSecurityLevel, 0},
		{"patch level 201908", ecTEE, with(func(p *Policy) { p.MinOSPatchLevel = 201908 }), Options{Now: t2020}, ReasonPatchLevel, 0},
		{"patch level 20190801", rsaTEE, with(func(p *Policy) { p.MinOSPatchLevel = 20190801 }), Options{Now: t2020}, ReasonPatchLevel, 0},

		// StrongBox vectors end at a non-Google root.
		{"EC StrongBox Google roots", ecSB, permissive(), Options{Now: t2020}, ReasonUntrustedRoot, 0},
		{"RSA StrongBox Google roots", rsaSB, permissive(), Options{Now: t2020}, ReasonUntrustedRoot, 0},
		// Leaf issuer DN != cert1 subject DN, yet cert1 signed it.
		{"EC StrongBox own root (DN mismatch)", ecSB, with(func(p *Policy) { p.MinSecurityLevel = StrongBox }), Options{Now: t2020, Roots: []*x509.Certificate{sbRoot}}, "", StrongBox},
		{"RSA StrongBox own root", rsaSB, with(func(p *Policy) { p.MinSecurityLevel = StrongBox }), Options{Now: t2020, Roots: []*x509.Certificate{sbRoot}}, "", StrongBox},

		// Revocation.
		{"intermediate revoked", ecTEE, permissive(), Options{Now: t2020, Revoked: revokeList(parseCert(t, ecTEE[1]).SerialNumber, "REVOKED")}, ReasonRevoked, 0},
		{"intermediate suspended", rsaTEE, permissive(), Options{Now: t2020, Revoked: revokeList(parseCert(t, rsaTEE[2]).SerialNumber, "SUSPENDED")}, ReasonRevoked, 0},
		{"other serial listed", ecTEE, permissive(), Options{Now: t2020, Revoked: revokeList(parseCert(t, rsaTEE[1]).SerialNumber, "REVOKED")}, "", TrustedEnvironment},

		// Chain structure.
		{"swapped intermediates", [][]byte{ecTEE[0], ecTEE[2], ecTEE[1], ecTEE[3]}, permissive(), Options{Now: t2020}, ReasonChain, 0},
		{"EC leaf on RSA chain", [][]byte{ecTEE[0], rsaTEE[1], rsaTEE[2], rsaTEE[3]}, permissive(), Options{Now: t2020}, ReasonChain, 0},
		{"root missing", ecTEE[:3], permissive(), Options{Now: t2020}, ReasonChain, 0},
		{"leaf missing", ecTEE[1:], permissive(), Options{Now: t2020}, ReasonMalformed, 0},
		{"single cert", ecTEE[:1], permissive(), Options{Now: t2020}, ReasonChain, 0},
		{"11 certs", tooMany, permissive(), Options{Now: t2020}, ReasonTooLarge, 0},
		{"cert over 16 KiB", [][]byte{ecTEE[0], make([]byte, 16<<10+1)}, permissive(), Options{Now: t2020}, ReasonTooLarge, 0},
		{"garbage DER", [][]byte{[]byte("not a certificate"), ecTEE[1]}, permissive(), Options{Now: t2020}, ReasonMalformed, 0},
		{"before cert1 NotBefore", ecTEE, permissive(), Options{Now: time.Date(2018, 3, 21, 20, 56, 0, 0, time.UTC)}, ReasonChain, 0},
		{"after intermediates expire", ecTEE, permissive(), Options{Now: time.Date(2028, 4, 1, 0, 0, 0, 0, time.UTC)}, ReasonChain, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Verify(tc.chain, tc.pol, tc.opts)
			if got := reasonOf(t, err); got != tc.reason {
				t.Fatalf("reason = %q (%v), want %q", got, err, tc.reason)
			}
			if err != nil {
				if res != nil {
					t.Fatal("result returned with error")
				}
				return
			}
			if res.SecurityLevel != tc.level || res.Description.AttestationSecurityLevel != tc.level {
				t.Errorf("security level = %v", res.SecurityLevel)
			}
			if !slicesContain(tc.pol.PackageNames, res.Package) {
				t.Errorf("package = %q", res.Package)
			}
			if len(res.ChainSerials) != len(tc.chain) || res.ChainSerials[0] != "1" {
				t.Errorf("serials = %v", res.ChainSerials)
			}
			leaf := parseCert(t, tc.chain[0])
			want, _ := x509.MarshalPKIXPublicKey(leaf.PublicKey)
			got, _ := x509.MarshalPKIXPublicKey(res.Key)
			if !bytes.Equal(want, got) {
				t.Error("Key is not the leaf key")
			}
		})
	}
}

// The StrongBox EC vector is the DN-mismatch case only if its leaf's issuer
// really differs from cert1's subject; Go's name-based x509.Verify rejects it.
func TestStrongBoxVectorHasDNMismatch(t *testing.T) {
	chain := loadChain(t, dirECSB)
	leaf, c1, c2, root := parseCert(t, chain[0]), parseCert(t, chain[1]), parseCert(t, chain[2]), parseCert(t, chain[3])
	if bytes.Equal(leaf.RawIssuer, c1.RawSubject) {
		t.Fatal("vector no longer has the DN mismatch")
	}
	inter := x509.NewCertPool()
	inter.AddCert(c1)
	inter.AddCert(c2)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: t2020}); err == nil {
		t.Fatal("name-based verification unexpectedly accepts the chain")
	}
	if _, err := Verify(chain, permissive(), Options{Now: t2020, Roots: []*x509.Certificate{root}}); err != nil {
		t.Fatal(err)
	}
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestVerifyResultDetails(t *testing.T) {
	res, err := Verify(loadChain(t, dirECTEE), permissive(), Options{Now: t2020})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Key.(*ecdsa.PublicKey); !ok {
		t.Errorf("key is %T", res.Key)
	}
	// Google writes serials as lowercase hex without leading zeros (cert1's
	// hex happens to contain only digits, like most keys in status.json).
	want := []string{"1", "13206311789638820911", "388266760658996857d", "e8fa196314d2fa18"}
	if strings.Join(res.ChainSerials, ",") != strings.Join(want, ",") {
		t.Errorf("serials = %v, want %v", res.ChainSerials, want)
	}
	res, err = Verify(loadChain(t, dirRSATEE), permissive(), Options{Now: t2020})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Key.(*rsa.PublicKey); !ok {
		t.Errorf("key is %T", res.Key)
	}
}

func TestVerifyZeroNowMeansWallClock(t *testing.T) {
	// A chain that expired in 2001 verifies at a fixed 2000 but not at the
	// zero Now, which must mean time.Now().
	past := [2]time.Time{time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := goodSynth()
	sc := buildChain(t, synthOpts{intermediateCA: true, leafExt: s.der(), validity: past})
	pol := Policy{Challenge: s.challenge, PackageNames: []string{"com.example.app"}, SigningCertDigests: [][]byte{appDigest}}
	roots := []*x509.Certificate{sc.root}
	if _, err := Verify(sc.chain, pol, Options{Roots: roots, Now: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(sc.chain, pol, Options{Roots: roots}); reasonOf(t, err) != ReasonChain {
		t.Fatalf("zero Now: err = %v", err)
	}
}

func TestVerifySynthetic(t *testing.T) {
	kd := goodSynth().der()
	prod := Policy{
		Challenge:           []byte("nonce-1"),
		PackageNames:        []string{"com.example.app"},
		SigningCertDigests:  [][]byte{appDigest},
		MinSecurityLevel:    TrustedEnvironment,
		RequireVerifiedBoot: true,
		RequireDeviceLocked: true,
		MinOSPatchLevel:     202409,
	}
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		o      synthOpts
		reason string
		detail string
	}{
		{"production policy passes", synthOpts{intermediateCA: true, leafExt: kd}, "", ""},
		// An attested (non-CA) key signing a forged leaf must not pass.
		{"non-CA signer", synthOpts{intermediateCA: false, leafExt: kd}, ReasonChain, "not signed"},
		{"extension above leaf", synthOpts{intermediateCA: true, intermediateExt: kd, leafExt: kd}, ReasonChain, "outside the leaf"},
		{"malformed extension", synthOpts{intermediateCA: true, leafExt: []byte{0x30, 0x01}}, ReasonMalformed, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc := buildChain(t, tc.o)
			res, err := Verify(sc.chain, prod, Options{Now: at, Roots: []*x509.Certificate{sc.root}})
			if got := reasonOf(t, err); got != tc.reason {
				t.Fatalf("reason = %q (%v), want %q", got, err, tc.reason)
			}
			if err != nil && !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("error %q lacks %q", err, tc.detail)
			}
			if err == nil && res.Package != "com.example.app" {
				t.Fatalf("package = %q", res.Package)
			}
		})
	}
}

func TestEmbeddedRoots(t *testing.T) {
	roots := GoogleRoots()
	if len(roots) != 5 {
		t.Fatalf("%d embedded roots, want 5", len(roots))
	}
	// Fingerprint heads and tails as listed in VECTORS.md.
	pins := map[string]string{
		"c1984a3e": "0c97d5", "1ef1a04b": "7d87cc", "ab664117": "8b487a", "cedb1cb6": "800dfc", "6d9db4ce": "a4bcc0",
	}
	rsaKey := roots[0].RawSubjectPublicKeyInfo
	for _, r := range roots {
		fp := sha256.Sum256(r.Raw)
		h := hex.EncodeToString(fp[:])
		if tail, ok := pins[h[:8]]; !ok || !strings.HasSuffix(h, tail) {
			t.Errorf("unexpected root %s (%s)", h, r.Subject)
		}
		delete(pins, h[:8])
		if _, isRSA := r.PublicKey.(*rsa.PublicKey); isRSA && !bytes.Equal(r.RawSubjectPublicKeyInfo, rsaKey) {
			t.Errorf("RSA root %s has a different key", r.SerialNumber.Text(16))
		}
	}
	if len(pins) != 0 {
		t.Errorf("missing roots %v", pins)
	}
	roots[0] = nil // GoogleRoots returns a copy
	if GoogleRoots()[0] == nil {
		t.Error("GoogleRoots exposes internal slice")
	}
}

func TestRevocationList(t *testing.T) {
	f, err := os.Open("testdata/status.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := LoadRevocationList(f)
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 5 {
		t.Errorf("Len = %d, want 5", l.Len())
	}
	hexInt := func(s string) *big.Int {
		n, ok := new(big.Int).SetString(s, 16)
		if !ok {
			t.Fatal(s)
		}
		return n
	}
	for _, tc := range []struct {
		serial, status string
		found          bool
	}{
		{"6681152659205225093", "REVOKED", true},
		{"11244410301401252959", "REVOKED", true},
		{"cc66e9a93713b6e643b26c15879786f7", "SUSPENDED", true},
		{"e8fa196314d2fa18", "", false},
		{"1", "", false},
	} {
		e, ok := l.Lookup(hexInt(tc.serial))
		if ok != tc.found || e.Status != tc.status {
			t.Errorf("%s: got %+v %v", tc.serial, e, ok)
		}
	}
	if e, ok := l.Lookup(hexInt("cc66e9a93713b6e643b26c15879786f7")); !ok || e.Reason != "KEY_COMPROMISE" {
		t.Errorf("reason = %+v", e)
	}
	var nilList *RevocationList
	if _, ok := nilList.Lookup(big.NewInt(1)); ok || nilList.Len() != 0 {
		t.Error("nil list must be empty")
	}

	for _, tc := range []struct{ name, doc, reason string }{
		{"not json", `{`, ReasonMalformed},
		{"no entries", `{"other":{}}`, ReasonMalformed},
		{"non-hex serial", `{"entries":{"xyz":{"status":"REVOKED"}}}`, ReasonMalformed},
		{"empty entries ok", `{"entries":{}}`, ""},
	} {
		_, err := LoadRevocationList(strings.NewReader(tc.doc))
		if got := reasonOf(t, err); got != tc.reason {
			t.Errorf("%s: reason %q, want %q", tc.name, got, tc.reason)
		}
	}
	_, err = LoadRevocationList(strings.NewReader(`{"entries":{"` + strings.Repeat("a", maxRevocationListSize) + `":{}}}`))
	if reasonOf(t, err) != ReasonTooLarge {
		t.Errorf("oversized list: %v", err)
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := Verify(nil, Policy{}, Options{})
	var e *Error
	if !errors.As(err, &e) || err.Error() != "keyattest: chain_invalid: "+e.Detail || e.Detail == "" {
		t.Fatalf("err = %v", err)
	}
}

func BenchmarkVerifyTEEChain(b *testing.B) {
	for _, dir := range []string{dirECTEE, dirRSATEE} {
		chain := loadChain(b, dir)
		name := "EC"
		if dir == dirRSATEE {
			name = "RSA"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Verify(chain, permissive(), Options{Now: t2020}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseKeyDescription(b *testing.B) {
	ext := extOf(b, loadChain(b, dirECTEE)[0])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseKeyDescription(ext); err != nil {
			b.Fatal(err)
		}
	}
}
