package appattest

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// reasonOf returns the Reason of err, failing the test on nil or foreign errors.
func reasonOf(t testing.TB, err error) string {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error, got nil")
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is %T, not *Error", err, err)
	}
	if !strings.HasPrefix(err.Error(), "appattest: "+e.Reason+": ") || e.Detail == "" {
		t.Fatalf("bad error text %q", err.Error())
	}
	return e.Reason
}

func wantReason(t testing.TB, err error, want string) {
	t.Helper()
	if got := reasonOf(t, err); got != want {
		t.Fatalf("reason = %q (%v), want %q", got, err, want)
	}
}

func TestRootCAFingerprint(t *testing.T) {
	got := sha256.Sum256(RootCA().Raw)
	if hex.EncodeToString(got[:]) != "1cb9823ba28ba6ad2d33a006941de2ae4f513ef1d4e831b9f7e0fa7b6242c932" {
		t.Fatalf("root fingerprint %x", got)
	}
	if RootCA().Subject.CommonName != "Apple App Attestation Root CA" {
		t.Fatalf("root subject %q", RootCA().Subject)
	}
}

func TestVerifyAttestationVectors(t *testing.T) {
	atts, _ := loadVectors(t)
	if len(atts) != 11 {
		t.Fatalf("want 11 attestation vectors, got %d", len(atts))
	}
	for _, v := range atts {
		t.Run(v.name, func(t *testing.T) {
			got, err := VerifyAttestation(v.obj, v.cdh, v.keyID, v.opts())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.KeyID, v.keyID) {
				t.Errorf("KeyID = %x, want %x", got.KeyID, v.keyID)
			}
			if got.AppID != v.appID || got.Environment != v.env {
				t.Errorf("AppID/Environment = %q/%q, want %q/%q", got.AppID, got.Environment, v.appID, v.env)
			}
			if v.wantPub != nil && !got.PublicKey.Equal(v.wantPub) {
				t.Error("public key differs from the expected one")
			}
			raw, err := MarshalPublicKey(got.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			if s := sha256.Sum256(raw); !bytes.Equal(s[:], v.keyID) {
				t.Error("SHA-256 of the returned key is not the key id")
			}
			if len(got.Receipt) == 0 || (v.wantRcpt != nil && !bytes.Equal(got.Receipt, v.wantRcpt)) {
				t.Errorf("receipt (%d bytes) missing or not the expected one", len(got.Receipt))
			}
		})
	}
}

func TestVerifyAssertionVectors(t *testing.T) {
	_, asss := loadVectors(t)
	if len(asss) != 10 {
		t.Fatalf("want 10 assertion vectors, got %d", len(asss))
	}
	for _, v := range asss {
		t.Run(v.name, func(t *testing.T) {
			got, err := VerifyAssertion(v.obj, v.cdh, v.pub, v.appID, v.prev)
			if err != nil {
				t.Fatal(err)
			}
			if got != v.counter {
				t.Fatalf("counter = %d, want %d", got, v.counter)
			}
		})
	}
}

// vectorByName finds a loaded attestation vector.
func vectorByName(t *testing.T, name string) attVector {
	atts, _ := loadVectors(t)
	for _, v := range atts {
		if v.name == name {
			return v
		}
	}
	t.Fatalf("no vector %q", name)
	return attVector{}
}

func TestVerifyAttestationRejects(t *testing.T) {
	dev := vectorByName(t, "devicecheck/ios-14.2")
	prod := vectorByName(t, "node-app-attest/production")
	leafExpiry := time.Date(2020, 11, 23, 22, 13, 2, 0, time.UTC)
	synth := buildSynth(t, synth{})

	var certs attObject
	if err := cbor.Unmarshal(dev.obj, &certs); err != nil {
		t.Fatal(err)
	}
	withX5C := func(n int) []byte {
		x5c := make([][]byte, n)
		for i := range x5c {
			x5c[i] = []byte{0x30, 0x00} // garbage: must not be parsed when the count is refused
			if i < 2 {
				x5c[i] = certs.AttStmt.X5C[i]
			}
		}
		return cborMarshal(t, map[string]any{
			"fmt": "apple-appattest", "attStmt": map[string]any{"x5c": x5c, "receipt": []byte{}},
			"authData": certs.AuthData,
		})
	}

	type tc struct {
		name  string
		obj   []byte
		cdh   []byte
		keyID []byte
		opts  func(*AttestationOptions)
		want  string
	}
	tests := []tc{
		{name: "wrong clientDataHash", cdh: sum([]byte("other challenge")), want: ReasonNonce},
		{name: "wrong keyID", keyID: sum([]byte("other key")), want: ReasonKeyID},
		{name: "wrong appID", opts: func(o *AttestationOptions) { o.AppIDs = []string{"6MURL8TA57.de.other"} }, want: ReasonAppID},
		{name: "no appIDs", opts: func(o *AttestationOptions) { o.AppIDs = nil }, want: ReasonAppID},
		{name: "teamID missing from appID", opts: func(o *AttestationOptions) { o.AppIDs = []string{"de.vincent-haupert.apple-appattest-poc"} }, want: ReasonAppID},
		{name: "production-only policy", opts: func(o *AttestationOptions) { o.AllowDevelopment, o.AllowProduction = false, true }, want: ReasonEnvironment},
		{name: "after leaf expiry", opts: func(o *AttestationOptions) { o.Now = leafExpiry.Add(time.Second) }, want: ReasonChain},
		{name: "before leaf validity", opts: func(o *AttestationOptions) { o.Now = dev.now.Add(-48 * time.Hour) }, want: ReasonChain},
		{name: "other root pool", opts: func(o *AttestationOptions) { o.Roots = synth.pool }, want: ReasonChain},
		{name: "empty root pool", opts: func(o *AttestationOptions) { o.Roots = x509.NewCertPool() }, want: ReasonChain},
		{name: "oversized", obj: make([]byte, MaxAttestationSize+1), want: ReasonTooLarge},
		{name: "x5c with 6 certs", obj: withX5C(6), want: ReasonChain},
		{name: "x5c empty", obj: withX5C(0), want: ReasonChain},
		{name: "x5c leaf only", obj: withX5C(1), want: ReasonChain},
		{name: "x5c with 17 certs", obj: withX5C(17), want: ReasonMalformed},
		{name: "not CBOR", obj: []byte("hello"), want: ReasonMalformed},
		{name: "empty", obj: []byte{}, want: ReasonMalformed},
		{name: "CBOR array", obj: cborMarshal(t, []int{1, 2}), want: ReasonMalformed},
		{name: "fmt wrong type", obj: cborMarshal(t, map[string]any{"fmt": 1}), want: ReasonMalformed},
		{name: "fmt missing", obj: cborMarshal(t, map[string]any{"authData": []byte{1}}), want: ReasonFormat},
		{name: "fmt packed", obj: cborMarshal(t, map[string]any{"fmt": "packed"}), want: ReasonFormat},
		{name: "trailing bytes", obj: append(append([]byte{}, dev.obj...), 0), want: ReasonMalformed},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			obj, cdh, keyID, opts := dev.obj, dev.cdh, dev.keyID, dev.opts()
			if c.obj != nil {
				obj = c.obj
			}
			if c.cdh != nil {
				cdh = c.cdh
			}
			if c.keyID != nil {
				keyID = c.keyID
			}
			if c.opts != nil {
				c.opts(&opts)
			}
			_, err := VerifyAttestation(obj, cdh, keyID, opts)
			wantReason(t, err, c.want)
		})
	}

	t.Run("development-only policy on production", func(t *testing.T) {
		o := prod.opts()
		o.AllowDevelopment, o.AllowProduction = true, false
		_, err := VerifyAttestation(prod.obj, prod.cdh, prod.keyID, o)
		wantReason(t, err, ReasonEnvironment)
	})
	t.Run("both environments allowed", func(t *testing.T) {
		o := prod.opts()
		o.AllowDevelopment = true
		if _, err := VerifyAttestation(prod.obj, prod.cdh, prod.keyID, o); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("zero Now means wall clock", func(t *testing.T) {
		o := dev.opts()
		o.Now = time.Time{} // the 2020 leaf is long expired
		_, err := VerifyAttestation(dev.obj, dev.cdh, dev.keyID, o)
		wantReason(t, err, ReasonChain)
	})
}

// TestSyntheticAttestation covers checks real vectors cannot reach because
// the authData is bound to an Apple-signed leaf.
func TestSyntheticAttestation(t *testing.T) {
	tests := []struct {
		name string
		s    synth
		mod  func(*AttestationOptions, *synthOut)
		want string // "" = must verify
	}{
		{name: "baseline"},
		{name: "extra entries after COSE key", s: synth{trailing: cborMarshal(t, map[string]string{"apple_validation_category_01": "x"})}},
		{name: "credentialId differs", s: synth{credID: sum([]byte("another key"))}, want: ReasonCredentialID},
		{name: "credentialId short", s: synth{credID: []byte{1}}, want: ReasonCredentialID},
		{name: "counter not zero", s: synth{counter: 1}, want: ReasonCounter},
		{name: "unknown AAGUID", s: synth{aaguid: []byte("appattestXXXXXXX")}, want: ReasonEnvironment},
		{name: "development AAGUID, production policy", s: synth{aaguid: aaguidDevelopment}, want: ReasonEnvironment},
		{name: "AT flag missing", s: synth{flags: 0x01}, want: ReasonMalformed},
		{name: "wrong rpId", s: synth{appID: "ABCDE12345.com.example.other"}, want: ReasonAppID},
		{name: "no nonce extension", s: synth{noNonce: true}, want: ReasonMalformed},
		{name: "bad fmt", s: synth{fmt: "apple"}, want: ReasonFormat},
		{name: "intermediate missing", mod: func(_ *AttestationOptions, o *synthOut) {
			o.obj = cborMarshal(t, map[string]any{"fmt": "apple-appattest", "attStmt": map[string]any{"x5c": o.x5c[:1]}, "authData": o.authData})
		}, want: ReasonChain},
		{name: "garbage certificate", mod: func(_ *AttestationOptions, o *synthOut) {
			o.obj = cborMarshal(t, map[string]any{"fmt": "apple-appattest", "attStmt": map[string]any{"x5c": [][]byte{{0x30, 0x00}}}, "authData": o.authData})
		}, want: ReasonMalformed},
		{name: "authData truncated", mod: func(_ *AttestationOptions, o *synthOut) {
			o.obj = cborMarshal(t, map[string]any{"fmt": "apple-appattest", "attStmt": map[string]any{"x5c": o.x5c}, "authData": o.authData[:60]})
		}, want: ReasonMalformed},
		{name: "embedded Apple root", mod: func(opt *AttestationOptions, _ *synthOut) { opt.Roots = nil }, want: ReasonChain},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			out := buildSynth(t, c.s)
			opts := out.opts()
			if c.mod != nil {
				c.mod(&opts, &out)
			}
			got, err := VerifyAttestation(out.obj, out.cdh, out.keyID, opts)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				clear(out.obj) // the result must not alias the input buffer
				if got.Environment != Production || got.AppID != synthApp || string(got.Receipt) != "receipt" {
					t.Fatalf("unexpected result %+v", got)
				}
				return
			}
			wantReason(t, err, c.want)
		})
	}
}

func TestVerifyAssertionRejects(t *testing.T) {
	_, asss := loadVectors(t)
	v := asss[0]
	var a assertionObject
	if err := cbor.Unmarshal(v.obj, &a); err != nil {
		t.Fatal(err)
	}
	reencode := func(sig, ad []byte) []byte {
		return cborMarshal(t, map[string]any{"signature": sig, "authenticatorData": ad})
	}
	flipped := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		return c
	}
	other := asss[len(asss)-1].pub

	tests := []struct {
		name  string
		obj   []byte
		cdh   []byte
		appID string
		prev  uint32
		pub   bool // use another key
		want  string
	}{
		{name: "flipped signature byte (r)", obj: reencode(flipped(a.Signature, 10), a.AuthenticatorData), want: ReasonSignature},
		{name: "flipped signature byte (last)", obj: reencode(flipped(a.Signature, len(a.Signature)-1), a.AuthenticatorData), want: ReasonSignature},
		{name: "flipped counter byte", obj: reencode(a.Signature, flipped(a.AuthenticatorData, 36)), want: ReasonSignature},
		{name: "empty signature", obj: reencode(nil, a.AuthenticatorData), want: ReasonSignature},
		{name: "wrong clientDataHash", cdh: sum([]byte("x")), want: ReasonSignature},
		{name: "other key", pub: true, want: ReasonSignature},
		{name: "prevCounter equal", prev: 1, want: ReasonCounter},
		{name: "prevCounter greater", prev: 7, want: ReasonCounter},
		{name: "wrong appID", appID: "6MURL8TA57.de.other", want: ReasonAppID},
		{name: "oversized", obj: make([]byte, MaxAssertionSize+1), want: ReasonTooLarge},
		{name: "authData truncated", obj: reencode(a.Signature, a.AuthenticatorData[:36]), want: ReasonMalformed},
		{name: "not CBOR", obj: []byte{0xff}, want: ReasonMalformed},
		{name: "trailing bytes", obj: append(bytes.Clone(v.obj), 0), want: ReasonMalformed},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			obj, cdh, appID, pub := v.obj, v.cdh, v.appID, v.pub
			if c.obj != nil {
				obj = c.obj
			}
			if c.cdh != nil {
				cdh = c.cdh
			}
			if c.appID != "" {
				appID = c.appID
			}
			if c.pub {
				pub = other
			}
			_, err := VerifyAssertion(obj, cdh, pub, appID, c.prev)
			wantReason(t, err, c.want)
		})
	}
	t.Run("nil key", func(t *testing.T) {
		_, err := VerifyAssertion(v.obj, v.cdh, nil, v.appID, 0)
		wantReason(t, err, ReasonSignature)
	})
	t.Run("synthetic counter progression", func(t *testing.T) {
		pub := &getSynthCA(t).leafKey.PublicKey
		cdh := sum([]byte("req"))
		prev := uint32(0)
		for _, n := range []uint32{1, 2, 10, 1 << 31} {
			got, err := VerifyAssertion(signAssertion(t, synthApp, n, cdh), cdh, pub, synthApp, prev)
			if err != nil || got != n {
				t.Fatalf("counter %d: got %d, %v", n, got, err)
			}
			prev = got
		}
		_, err := VerifyAssertion(signAssertion(t, synthApp, 5, cdh), cdh, pub, synthApp, prev)
		wantReason(t, err, ReasonCounter)
	})
}

// TestTruncatedInputs feeds every proper prefix of real objects: each must be
// rejected with an *Error, never accepted and never panic.
func TestTruncatedInputs(t *testing.T) {
	atts, asss := loadVectors(t)
	for _, v := range []attVector{atts[0], atts[len(atts)-1]} {
		for n := 0; n < len(v.obj); n++ {
			if _, err := VerifyAttestation(v.obj[:n], v.cdh, v.keyID, v.opts()); err == nil {
				t.Fatalf("%s: prefix %d accepted", v.name, n)
			} else {
				reasonOf(t, err)
			}
		}
	}
	for _, v := range asss {
		for n := 0; n < len(v.obj); n++ {
			if _, err := VerifyAssertion(v.obj[:n], v.cdh, v.pub, v.appID, v.prev); err == nil {
				t.Fatalf("%s: prefix %d accepted", v.name, n)
			} else {
				reasonOf(t, err)
			}
		}
	}
}

func TestCBORLimits(t *testing.T) {
	deep := bytes.Repeat([]byte{0x81}, 20) // 20 nested 1-element arrays
	deep = append(deep, 0x00)
	tests := []struct {
		name string
		in   []byte
	}{
		// {"fmt": "a", "fmt": "b"}
		{"duplicate key", []byte{0xa2, 0x63, 'f', 'm', 't', 0x61, 'a', 0x63, 'f', 'm', 't', 0x61, 'b'}},
		// {_ "fmt": "apple-appattest"} indefinite-length map
		{"indefinite map", append(append([]byte{0xbf, 0x63, 'f', 'm', 't', 0x6f}, "apple-appattest"...), 0xff)},
		{"deep nesting", append([]byte{0xa1, 0x63, 'f', 'o', 'o'}, deep...)},
		{"tag", append([]byte{0xa1, 0x63, 'f', 'm', 't', 0xd8, 0x20, 0x6f}, "apple-appattest"...)},
		{"huge declared length", []byte{0xa1, 0x63, 'f', 'm', 't', 0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"many map pairs", func() []byte {
			b := []byte{0xb8, 20}
			for i := 0; i < 20; i++ {
				b = append(b, 0x61, byte('a'+i), 0x00)
			}
			return b
		}()},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			_, err := VerifyAttestation(c.in, nil, nil, AttestationOptions{})
			wantReason(t, err, ReasonMalformed)
			_, err = VerifyAssertion(c.in, nil, &getSynthCA(t).leafKey.PublicKey, "x", 0)
			wantReason(t, err, ReasonMalformed)
		})
	}
}

func TestParseAuthData(t *testing.T) {
	out := buildSynth(t, synth{trailing: []byte{0xa0}})
	ad, err := parseAuthData(out.authData, true)
	if err != nil {
		t.Fatal(err)
	}
	if ad.Flags != flagAT || ad.Counter != 0 || !bytes.Equal(ad.AAGUID, aaguidProduction) ||
		!bytes.Equal(ad.CredentialID, out.keyID) || len(ad.CredentialPK) != 77 {
		t.Fatalf("parsed %+v", ad)
	}
	for n := 0; n < len(out.authData)-1; n++ { // the last byte is optional trailing data
		if _, err := parseAuthData(out.authData[:n], true); err == nil {
			t.Fatalf("prefix %d accepted", n)
		}
	}
	bad := bytes.Clone(out.authData)
	bad[37+16], bad[37+16+1] = 0xff, 0xff // credential id length beyond the data
	if _, err := parseAuthData(bad, true); err == nil {
		t.Fatal("oversized credential id length accepted")
	}
	notMap := bytes.Clone(out.authData[:37+16+2+32])
	notMap = append(notMap, 0x01)
	if _, err := parseAuthData(notMap, true); err == nil {
		t.Fatal("non-map COSE key accepted")
	}
}

func TestParseNonceExtension(t *testing.T) {
	n := sum([]byte("n"))
	good := append([]byte{0x30, 0x24, 0xa1, 0x22, 0x04, 0x20}, n...)
	got, err := parseNonceExtension(good)
	if err != nil || !bytes.Equal(got, n) {
		t.Fatalf("good: %x, %v", got, err)
	}
	for name, in := range map[string][]byte{
		"empty":         nil,
		"trailing":      append(bytes.Clone(good), 0),
		"short nonce":   {0x30, 0x05, 0xa1, 0x03, 0x04, 0x01, 0x00},
		"wrong tag":     append([]byte{0x30, 0x24, 0xa2, 0x22, 0x04, 0x20}, n...),
		"not a string":  append([]byte{0x30, 0x24, 0xa1, 0x22, 0x02, 0x20}, n...),
		"truncated":     good[:20],
		"bare sequence": {0x30, 0x00},
	} {
		if _, err := parseNonceExtension(in); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			wantReason(t, err, ReasonMalformed)
		}
	}
}

func TestPublicKeyRoundTrip(t *testing.T) {
	raw := unhex(t, "0437c404fa2bbf8fbcf4ee7080573d5fa80c4f6cc3a22f7db43af92c394e7cd1c880c95ab422972625e8e673af1bda2b096654e9b602895601f925bb5941c53082")
	pub, err := ParsePublicKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	back, err := MarshalPublicKey(pub)
	if err != nil || !bytes.Equal(back, raw) {
		t.Fatalf("round trip: %x, %v", back, err)
	}
	for name, in := range map[string][]byte{
		"empty": nil, "compressed": append([]byte{0x02}, raw[1:33]...),
		"off curve": append(bytes.Clone(raw[:64]), raw[64]^1), "truncated": raw[:64],
	} {
		_, err := ParsePublicKey(in)
		wantReason(t, err, ReasonMalformed)
		_ = name
	}
	if _, err := MarshalPublicKey(nil); err == nil {
		t.Fatal("nil key marshalled")
	}
}
