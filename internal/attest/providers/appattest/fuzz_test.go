package appattest

import (
	"bytes"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// checkErr fails unless err is nil or an *Error: callers rely on the type.
func checkErr(t *testing.T, err error) {
	var e *Error
	if err != nil && !errors.As(err, &e) {
		t.Fatalf("error of type %T: %v", err, err)
	}
}

func FuzzVerifyAttestation(f *testing.F) {
	atts, _ := loadVectors(f)
	for _, v := range atts {
		f.Add(v.obj)
	}
	f.Add(buildSynth(f, synth{trailing: []byte{0xa0}}).obj)
	v := atts[0]
	f.Fuzz(func(t *testing.T, obj []byte) {
		got, err := VerifyAttestation(obj, v.cdh, v.keyID, v.opts())
		checkErr(t, err)
		if err == nil && (!bytes.Equal(got.KeyID, v.keyID) || got.PublicKey == nil) {
			t.Fatal("accepted with an inconsistent result")
		}
	})
}

func FuzzVerifyAssertion(f *testing.F) {
	_, asss := loadVectors(f)
	for _, v := range asss {
		f.Add(v.obj, uint32(0))
	}
	v := asss[0]
	f.Fuzz(func(t *testing.T, obj []byte, prev uint32) {
		n, err := VerifyAssertion(obj, v.cdh, v.pub, v.appID, prev)
		checkErr(t, err)
		if err == nil && n <= prev {
			t.Fatalf("accepted counter %d after %d", n, prev)
		}
	})
}

func FuzzParseAuthData(f *testing.F) {
	atts, asss := loadVectors(f)
	for _, v := range atts {
		var o attObject
		if err := cbor.Unmarshal(v.obj, &o); err != nil {
			f.Fatal(err)
		}
		f.Add(o.AuthData, true)
	}
	for _, v := range asss {
		var o assertionObject
		if err := cbor.Unmarshal(v.obj, &o); err != nil {
			f.Fatal(err)
		}
		f.Add(o.AuthenticatorData, false)
	}
	f.Add(buildSynth(f, synth{trailing: []byte{0xa1, 0x01, 0x02}}).authData, true)
	f.Fuzz(func(t *testing.T, b []byte, attested bool) {
		ad, err := parseAuthData(b, attested)
		checkErr(t, err)
		if err != nil {
			return
		}
		if len(ad.RPIDHash) != 32 {
			t.Fatal("bad rpIdHash length")
		}
		if attested {
			used := authHeaderLen + 16 + 2 + len(ad.CredentialID) + len(ad.CredentialPK)
			if ad.Flags&flagAT == 0 || len(ad.AAGUID) != 16 || len(ad.CredentialID) == 0 ||
				len(ad.CredentialPK) == 0 || used > len(b) {
				t.Fatalf("inconsistent parse: %d bytes used of %d", used, len(b))
			}
		}
	})
}

func FuzzNonceExtension(f *testing.F) {
	atts, _ := loadVectors(f)
	for _, v := range atts {
		var o attObject
		if err := cbor.Unmarshal(v.obj, &o); err != nil {
			f.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(o.AttStmt.X5C[0])
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range leaf.Extensions {
			if e.Id.Equal(oidNonce) {
				f.Add(e.Value)
			}
		}
	}
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		n, err := parseNonceExtension(der)
		checkErr(t, err)
		if err == nil && len(n) != 32 {
			t.Fatalf("nonce of %d bytes accepted", len(n))
		}
	})
}

func BenchmarkVerifyAttestation(b *testing.B) {
	atts, _ := loadVectors(b)
	v := atts[0]
	opts := v.opts()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyAttestation(v.obj, v.cdh, v.keyID, opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyAssertion(b *testing.B) {
	_, asss := loadVectors(b)
	v := asss[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyAssertion(v.obj, v.cdh, v.pub, v.appID, v.prev); err != nil {
			b.Fatal(err)
		}
	}
}
