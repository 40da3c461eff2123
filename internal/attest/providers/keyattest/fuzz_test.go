package keyattest

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"
)

func FuzzParseKeyDescription(f *testing.F) {
	for _, dir := range []string{dirECTEE, dirRSATEE, dirECSB, dirRSASB} {
		f.Add(extOf(f, readPEM(f, filepath.Join("testdata", dir, "cert0.pem"))))
	}
	f.Add(extOf(f, readPEM(f, "testdata/parsed_record_test_CERT2.pem")))
	s := goodSynth()
	s.hwExtra = dTag(9999, dOct([]byte{1, 2, 3}))
	f.Add(s.der())
	f.Fuzz(func(t *testing.T, data []byte) {
		kd, err := ParseKeyDescription(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Reason != ReasonMalformed {
				t.Fatalf("unexpected error %T %v", err, err)
			}
			return
		}
		if kd.AttestationSecurityLevel > StrongBox || kd.KeymasterSecurityLevel > StrongBox ||
			kd.AttestationSecurityLevel < Software {
			t.Fatalf("out-of-range level accepted: %+v", kd)
		}
	})
}

// packChain encodes a chain as repeated (uint16 length, DER) records so the
// fuzzer can mutate both the certificates and the chain shape.
func packChain(chain [][]byte) []byte {
	var out []byte
	for _, c := range chain {
		out = binary.BigEndian.AppendUint16(out, uint16(len(c)))
		out = append(out, c...)
	}
	return out
}

func unpackChain(b []byte) [][]byte {
	var chain [][]byte
	for len(b) >= 2 && len(chain) < 16 {
		n := int(binary.BigEndian.Uint16(b))
		b = b[2:]
		n = min(n, len(b))
		chain = append(chain, b[:n])
		b = b[n:]
	}
	return chain
}

func FuzzVerify(f *testing.F) {
	for _, dir := range []string{dirECTEE, dirRSATEE, dirECSB} {
		f.Add(packChain(loadChain(f, dir)))
	}
	ec := loadChain(f, dirECTEE)
	f.Add(packChain([][]byte{ec[0], ec[2], ec[1], ec[3]}))
	f.Add(packChain(ec[:1]))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Verify(unpackChain(data), permissive(), Options{Now: t2020})
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || res != nil {
				t.Fatalf("unexpected %T %v (result %v)", err, err, res)
			}
			return
		}
		if res.Description == nil || res.Package != "android" {
			t.Fatalf("incomplete result %+v", res)
		}
	})
}
