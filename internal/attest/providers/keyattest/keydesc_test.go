package keyattest

import (
	"bytes"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseKeyDescriptionVectors(t *testing.T) {
	tests := []struct {
		file                   string
		level                  SecurityLevel
		algorithm, keySize     int
		vendorPatch, bootPatch int
		creation               int64
		ecCurve                int // the StrongBox EC leaf omits [10]
	}{
		{dirECTEE + "/cert0.pem", TrustedEnvironment, AlgorithmEC, 256, 201907, 201907, 0x0164E61167FF, 1},
		{dirRSATEE + "/cert0.pem", TrustedEnvironment, AlgorithmRSA, 2048, 201907, 201907, 0x0164E6061187, 0},
		{dirECSB + "/cert0.pem", StrongBox, AlgorithmEC, 256, 20190705, 20190700, 0x016BD25BFF13, 0},
		{dirRSASB + "/cert0.pem", StrongBox, AlgorithmRSA, 2048, 20190705, 20190700, 0x016BF622A0CC, 0},
		// Upstream's ParsedAttestationRecordTest CERT is the RSA TEE leaf.
		{"parsed_record_test_CERT.pem", TrustedEnvironment, AlgorithmRSA, 2048, 201907, 201907, 0x0164E6061187, 0},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			kd, err := ParseKeyDescription(extOf(t, readPEM(t, filepath.Join("testdata", tc.file))))
			if err != nil {
				t.Fatal(err)
			}
			if kd.AttestationVersion != 3 || kd.KeymasterVersion != 4 {
				t.Errorf("versions = %d/%d, want 3/4", kd.AttestationVersion, kd.KeymasterVersion)
			}
			if kd.AttestationSecurityLevel != tc.level || kd.KeymasterSecurityLevel != tc.level {
				t.Errorf("levels = %v/%v, want %v", kd.AttestationSecurityLevel, kd.KeymasterSecurityLevel, tc.level)
			}
			if string(kd.Challenge) != "abc" || len(kd.UniqueID) != 0 {
				t.Errorf("challenge %q uniqueId %x", kd.Challenge, kd.UniqueID)
			}
			sw, hw := kd.Software, kd.Hardware
			if sw.CreationDateTime != tc.creation {
				t.Errorf("creationDateTime = %#x, want %#x", sw.CreationDateTime, tc.creation)
			}
			app := sw.ApplicationID
			if app == nil || hw.ApplicationID != nil {
				t.Fatalf("applicationId sw=%v hw=%v, want software only", app, hw.ApplicationID)
			}
			if len(app.Packages) != 13 {
				t.Errorf("%d packages, want 13", len(app.Packages))
			}
			for _, want := range []Package{
				{"android", 29}, {"com.android.keychain", 29}, {"com.android.settings", 29},
				{"com.google.android.hiddenmenu", 1}, {"com.android.providers.settings", 29},
			} {
				if !slices.Contains(app.Packages, want) {
					t.Errorf("package %+v missing", want)
				}
			}
			if len(app.SignatureDigests) != 1 || !bytes.Equal(app.SignatureDigests[0], appDigest) {
				t.Errorf("signature digests = %x", app.SignatureDigests)
			}
			if !slices.Equal(hw.Purposes, []int{PurposeSign, PurposeVerify}) || !slices.Equal(hw.Digests, []int{4}) {
				t.Errorf("purposes %v digests %v", hw.Purposes, hw.Digests)
			}
			if hw.Algorithm != tc.algorithm || hw.KeySize != tc.keySize {
				t.Errorf("algorithm/keySize = %d/%d", hw.Algorithm, hw.KeySize)
			}
			if hw.Origin != OriginGenerated || sw.Origin != -1 {
				t.Errorf("origin hw=%d sw=%d, want 0 and -1 (absent)", hw.Origin, sw.Origin)
			}
			if hw.OSVersion != 0 || hw.OSPatchLevel != 201907 || hw.VendorPatchLevel != tc.vendorPatch || hw.BootPatchLevel != tc.bootPatch {
				t.Errorf("os %d patch %d vendor %d boot %d", hw.OSVersion, hw.OSPatchLevel, hw.VendorPatchLevel, hw.BootPatchLevel)
			}
			rot := hw.RootOfTrust
			if rot == nil || sw.RootOfTrust != nil {
				t.Fatal("rootOfTrust must be hardware-only")
			}
			if !bytes.Equal(rot.VerifiedBootKey, make([]byte, 32)) || rot.DeviceLocked ||
				rot.VerifiedBootState != Unverified || !bytes.Equal(rot.VerifiedBootHash, bootHash) {
				t.Errorf("rootOfTrust = %+v", rot)
			}
			if tc.algorithm == AlgorithmEC && (hw.ECCurve != tc.ecCurve || !hw.NoAuthRequired) {
				t.Errorf("ecCurve %d noAuthRequired %v", hw.ECCurve, hw.NoAuthRequired)
			}
		})
	}
}

func TestParseKeyDescriptionCERT2(t *testing.T) {
	kd, err := ParseKeyDescription(extOf(t, readPEM(t, "testdata/parsed_record_test_CERT2.pem")))
	if err != nil {
		t.Fatal(err)
	}
	if kd.AttestationVersion != 1 || kd.KeymasterVersion != 2 ||
		kd.AttestationSecurityLevel != TrustedEnvironment || kd.KeymasterSecurityLevel != TrustedEnvironment {
		t.Errorf("got %+v", kd)
	}
	if string(kd.Challenge) != "A random challenge" || len(kd.UniqueID) != 0 {
		t.Errorf("challenge %q uniqueId %x", kd.Challenge, kd.UniqueID)
	}
	// Only attestationIdSerial [713] and attestationIdImei [714]: skipped.
	empty := AuthorizationList{Origin: -1}
	if !equalAuth(kd.Software, empty) || !equalAuth(kd.Hardware, empty) {
		t.Errorf("lists not empty: sw %+v hw %+v", kd.Software, kd.Hardware)
	}
}

func equalAuth(a, b AuthorizationList) bool {
	return a.RootOfTrust == b.RootOfTrust && a.ApplicationID == b.ApplicationID &&
		slices.Equal(a.Purposes, b.Purposes) && slices.Equal(a.Digests, b.Digests) &&
		a.Algorithm == b.Algorithm && a.KeySize == b.KeySize && a.Origin == b.Origin &&
		a.OSPatchLevel == b.OSPatchLevel && a.CreationDateTime == b.CreationDateTime
}

func TestParseKeyDescriptionSynthetic(t *testing.T) {
	good := goodSynth()
	kd, err := ParseKeyDescription(good.der())
	if err != nil {
		t.Fatal(err)
	}
	if kd.AttestationVersion != 300 || kd.KeymasterVersion != 300 || kd.Hardware.RootOfTrust.VerifiedBootState != Verified ||
		!kd.Hardware.RootOfTrust.DeviceLocked || kd.Software.ApplicationID.Packages[0] != (Package{"com.example.app", 42}) {
		t.Fatalf("synthetic parse = %+v", kd)
	}

	mod := func(f func(*synth)) []byte { s := goodSynth(); f(&s); return s.der() }
	tests := []struct {
		name string
		der  []byte
		ok   bool
	}{
		{"KeyMint 400 with unknown tags 724 and 9999", mod(func(s *synth) {
			s.version, s.kmVersion = 400, 400
			s.hwExtra = cat(dTag(724, dOct(make([]byte, 32))), dTag(9999, dSeq(dInt(1))))
		}), true},
		{"low unknown tag [4] blockMode", mod(func(s *synth) { s.swExtra = dTag(4, dSet(dInt(1))) }), true},
		{"DeviceLocked encoded 0x01", mod(func(s *synth) { s.locked = 0x01 }), true},
		{"trailing field after hardwareEnforced", append(good.der()[:0:0], dSeq(dInt(3), dEnum(1), dInt(4), dEnum(1), dOct(nil), dOct(nil), dSeq(), dSeq(), dInt(7))...), true},
		{"duplicate osPatchLevel", mod(func(s *synth) { s.hwExtra = dTag(706, dInt(202501)) }), false},
		{"security level 3", mod(func(s *synth) { s.level = 3 }), false},
		{"boot state 4", mod(func(s *synth) { s.boot = 4 }), false},
		{"bootPatchLevel as OCTET STRING", mod(func(s *synth) { s.hwExtra = dTag(719, dOct([]byte{1})) }), false},
		{"universal tag in list", mod(func(s *synth) { s.hwExtra = dInt(5) }), false},
		{"integer too large", mod(func(s *synth) { s.hwExtra = dTag(718, tlv([]byte{2}, make([]byte, 9))) }), false},
		{"trailing bytes after SEQUENCE", append(good.der(), 0), false},
		{"truncated", good.der()[:40], false},
		{"indefinite length", []byte{0x30, 0x80, 0, 0}, false},
		{"empty", nil, false},
		{"missing hardwareEnforced", dSeq(dInt(3), dEnum(1), dInt(4), dEnum(1), dOct(nil), dOct(nil), dSeq()), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKeyDescription(tc.der)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && reasonOf(t, err) != ReasonMalformed {
				t.Fatalf("reason = %s", reasonOf(t, err))
			}
		})
	}
}

func TestParseKeyDescriptionDoesNotAlias(t *testing.T) {
	der := goodSynth().der()
	kd, err := ParseKeyDescription(der)
	if err != nil {
		t.Fatal(err)
	}
	for i := range der {
		der[i] = 0
	}
	if string(kd.Challenge) != "nonce-1" {
		t.Fatalf("challenge changed with input buffer: %q", kd.Challenge)
	}
}

func TestStringers(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Software.String(), "software"}, {TrustedEnvironment.String(), "tee"}, {StrongBox.String(), "strongbox"},
		{Verified.String(), "verified"}, {SelfSigned.String(), "self_signed"}, {Unverified.String(), "unverified"},
		{Failed.String(), "failed"}, {SecurityLevel(9).String(), "SecurityLevel(9)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q want %q", tc.got, tc.want)
		}
	}
}
