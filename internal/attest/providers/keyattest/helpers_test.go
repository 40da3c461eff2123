package keyattest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var (
	t2020  = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	tToday = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

	appDigest = mustHex("301aa3cb081134501c45f1422abc66c24224fd5ded5fdc8f17e697176fd866aa")
	bootHash  = mustHex("728db1274f1f1cf1571de4380b048a554ac4a380e76f5355083529084a937801")
)

const (
	dirECTEE  = "algorithm_EC_SecurityLevel_TEE"
	dirRSATEE = "algorithm_RSA_SecurityLevel_TEE"
	dirECSB   = "algorithm_EC_SecurityLevel_StrongBox"
	dirRSASB  = "algorithm_RSA_SecurityLevel_StrongBox"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func readPEM(tb testing.TB, path string) []byte {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	blk, _ := pem.Decode(data)
	if blk == nil {
		tb.Fatalf("%s: no PEM block", path)
	}
	return blk.Bytes
}

// loadChain returns the four DER certificates of a vector directory.
func loadChain(tb testing.TB, dir string) [][]byte {
	tb.Helper()
	var out [][]byte
	for i := range 4 {
		out = append(out, readPEM(tb, filepath.Join("testdata", dir, "cert"+string(rune('0'+i))+".pem")))
	}
	return out
}

func parseCert(tb testing.TB, der []byte) *x509.Certificate {
	tb.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func extOf(tb testing.TB, der []byte) []byte {
	tb.Helper()
	for _, e := range parseCert(tb, der).Extensions {
		if e.Id.Equal(OIDKeyDescription) {
			return e.Value
		}
	}
	tb.Fatal("no key description extension")
	return nil
}

func permissive() Policy {
	return Policy{
		Challenge:          []byte("abc"),
		PackageNames:       []string{"android"},
		SigningCertDigests: [][]byte{appDigest},
		MinSecurityLevel:   TrustedEnvironment,
	}
}

// reasonOf returns the Reason of a *Error, failing the test on other types.
func reasonOf(tb testing.TB, err error) string {
	tb.Helper()
	if err == nil {
		return ""
	}
	var e *Error
	if !errors.As(err, &e) {
		tb.Fatalf("error %v is %T, not *Error", err, err)
	}
	return e.Reason
}

// --- a small DER writer for synthetic KeyDescriptions ---

func tlv(id []byte, content []byte) []byte {
	out := append([]byte(nil), id...)
	switch n := len(content); {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 0x100:
		out = append(out, 0x81, byte(n))
	default:
		out = append(out, 0x82, byte(n>>8), byte(n))
	}
	return append(out, content...)
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func dSeq(parts ...[]byte) []byte { return tlv([]byte{0x30}, cat(parts...)) }
func dSet(parts ...[]byte) []byte { return tlv([]byte{0x31}, cat(parts...)) }
func dOct(b []byte) []byte        { return tlv([]byte{0x04}, b) }
func dBool(v byte) []byte         { return tlv([]byte{0x01}, []byte{v}) }
func dNull() []byte               { return []byte{0x05, 0x00} }
func dInt(v int64) []byte         { return tlv([]byte{0x02}, intBytes(v)) }
func dEnum(v int64) []byte        { return tlv([]byte{0x0a}, intBytes(v)) }

func intBytes(v int64) []byte {
	b := big.NewInt(v).Bytes()
	if len(b) == 0 || b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return b
}

// dTag wraps inner in a context-specific constructed [n] (EXPLICIT) tag.
func dTag(n int, inner []byte) []byte {
	if n < 31 {
		return tlv([]byte{0xa0 | byte(n)}, inner)
	}
	var groups []byte
	for v := n; v > 0; v >>= 7 {
		groups = append([]byte{byte(v & 0x7f)}, groups...)
	}
	for i := 0; i < len(groups)-1; i++ {
		groups[i] |= 0x80
	}
	return tlv(append([]byte{0xbf}, groups...), inner)
}

type synth struct {
	version, kmVersion int64
	level              int64
	challenge          []byte
	boot               int64
	locked             byte
	swExtra, hwExtra   []byte
}

func (s synth) der() []byte {
	app := dSeq(
		dSet(dSeq(dOct([]byte("com.example.app")), dInt(42))),
		dSet(dOct(appDigest)),
	)
	sw := dSeq(dTag(701, dInt(1_600_000_000_000)), dTag(709, dOct(app)), s.swExtra)
	hw := dSeq(
		dTag(1, dSet(dInt(PurposeSign))),
		dTag(2, dInt(AlgorithmEC)),
		dTag(702, dInt(OriginGenerated)),
		dTag(704, dSeq(dOct(make([]byte, 32)), dBool(s.locked), dEnum(s.boot), dOct(bootHash))),
		dTag(705, dInt(140000)),
		dTag(706, dInt(202409)),
		s.hwExtra,
	)
	return dSeq(dInt(s.version), dEnum(s.level), dInt(s.kmVersion), dEnum(s.level),
		dOct(s.challenge), dOct(nil), sw, hw)
}

func goodSynth() synth {
	return synth{version: 300, kmVersion: 300, level: 1, challenge: []byte("nonce-1"), boot: 0, locked: 0xff}
}

// --- synthetic chains: root -> intermediate -> leaf, all P-256 ---

type synthChain struct {
	root         *x509.Certificate
	chain        [][]byte
	intermediate *ecdsa.PrivateKey
}

type synthOpts struct {
	intermediateCA  bool   // basicConstraints CA on the intermediate
	intermediateExt []byte // KeyDescription on the intermediate, if any
	leafExt         []byte
	validity        [2]time.Time // zero = 2024..2034
}

func buildChain(tb testing.TB, o synthOpts) synthChain {
	tb.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		return k
	}
	rootKey, midKey, leafKey := key(), key(), key()
	nb, na := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2034, 1, 1, 0, 0, 0, 0, time.UTC)
	if !o.validity[0].IsZero() {
		nb, na = o.validity[0], o.validity[1]
	}
	mk := func(serial int64, cn string, ca bool, ext []byte, pub, signKey *ecdsa.PrivateKey, parent *x509.Certificate) []byte {
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(serial),
			Subject:               pkix.Name{CommonName: cn},
			NotBefore:             nb,
			NotAfter:              na,
			BasicConstraintsValid: ca,
			IsCA:                  ca,
		}
		if ca {
			tmpl.KeyUsage = x509.KeyUsageCertSign
		} else {
			tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		}
		if ext != nil {
			tmpl.ExtraExtensions = []pkix.Extension{{Id: OIDKeyDescription, Value: ext}}
		}
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &pub.PublicKey, signKey)
		if err != nil {
			tb.Fatal(err)
		}
		return der
	}
	rootDER := mk(1, "synthetic root", true, nil, rootKey, rootKey, nil)
	root := parseCert(tb, rootDER)
	midDER := mk(2, "synthetic intermediate", o.intermediateCA, o.intermediateExt, midKey, rootKey, root)
	leafDER := mk(3, "Android Keystore Key", false, o.leafExt, leafKey, midKey, parseCert(tb, midDER))
	return synthChain{root: root, chain: [][]byte{leafDER, midDER, rootDER}, intermediate: midKey}
}
