package appattest

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// attVector is one real attestation with everything needed to verify it.
type attVector struct {
	name     string
	obj      []byte
	cdh      []byte
	keyID    []byte
	appID    string
	env      string
	now      time.Time
	wantPub  *ecdsa.PublicKey // nil when the source gives none
	wantRcpt []byte           // nil when the source gives none
}

// assVector is one real assertion.
type assVector struct {
	name    string
	obj     []byte
	cdh     []byte
	pub     *ecdsa.PublicKey
	appID   string
	prev    uint32
	counter uint32
}

// b64 decodes std or URL alphabet, padded or not, as the sources mix them.
func b64(t testing.TB, s string) []byte {
	t.Helper()
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		t.Fatalf("base64: %v", err)
	}
	return b
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex: %v", err)
	}
	return b
}

func sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func pemKey(t testing.TB, s string) *ecdsa.PublicKey {
	t.Helper()
	blk, _ := pem.Decode([]byte(s))
	if blk == nil {
		t.Fatal("no PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok {
		t.Fatalf("PEM key is %T", k)
	}
	return pub
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", path))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

type yamlDoc struct {
	Type              string `yaml:"type"`
	AttestationBase64 string `yaml:"attestationBase64"`
	AssertionBase64   string `yaml:"assertionBase64"`
	ClientDataBase64  string `yaml:"clientDataBase64"`
	ClientDataHash    string `yaml:"clientDataHashSha256Base64"`
	KeyIDBase64       string `yaml:"keyIdBase64"`
	PublicKey         string `yaml:"publicKey"`
	TeamIdentifier    string `yaml:"teamIdentifier"`
	BundleIdentifier  string `yaml:"bundleIdentifier"`
	Environment       string `yaml:"environment"`
	Timestamp         string `yaml:"timestamp"`
	Counter           uint32 `yaml:"counter"`
}

// loadVectors reads every Apple vector described in VECTORS.md.
func loadVectors(t testing.TB) ([]attVector, []assVector) {
	t.Helper()
	var atts []attVector
	var asss []assVector

	// veehaitch/devicecheck-appattest: multi-document YAML.
	files, err := filepath.Glob("testdata/devicecheck-appattest/ios-*.yaml")
	if err != nil || len(files) != 7 {
		t.Fatalf("want 7 yaml files, got %d (%v)", len(files), err)
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(fh)
		var att, ass *yamlDoc
		for {
			var d yamlDoc
			if err := dec.Decode(&d); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			switch d.Type {
			case "attestation":
				att = &d
			case "assertion":
				ass = &d
			}
		}
		fh.Close()
		if att == nil || ass == nil {
			t.Fatalf("%s: missing attestation or assertion document", f)
		}
		name := "devicecheck/" + strings.TrimSuffix(filepath.Base(f), ".yaml")
		cd := b64(t, att.ClientDataBase64)
		cdh := b64(t, att.ClientDataHash)
		if string(sum(cd)) != string(cdh) {
			t.Fatalf("%s: clientDataHash is not SHA-256(clientData)", f)
		}
		pub := pemKey(t, att.PublicKey)
		appID := att.TeamIdentifier + "." + att.BundleIdentifier
		atts = append(atts, attVector{
			name: name, obj: b64(t, att.AttestationBase64), cdh: cdh,
			keyID: b64(t, att.KeyIDBase64), appID: appID, env: att.Environment,
			now: mustTime(t, att.Timestamp), wantPub: pub,
		})
		asss = append(asss, assVector{
			name: name, obj: b64(t, ass.AssertionBase64), cdh: sum(b64(t, ass.ClientDataBase64)),
			pub: pub, appID: ass.TeamIdentifier + "." + ass.BundleIdentifier, prev: 0, counter: ass.Counter,
		})
	}

	// uebelack/node-app-attest.
	const nodeApp = "V8H6LQ9448.io.uebelacker.AppAttestExample"
	for _, env := range []string{Development, Production} {
		var v struct{ Attestation, Challenge, KeyID string }
		readJSON(t, "node-app-attest/attestation-"+env+".json", &v)
		atts = append(atts, attVector{
			name: "node-app-attest/" + env, obj: b64(t, v.Attestation), cdh: sum(b64(t, v.Challenge)),
			keyID: b64(t, v.KeyID), appID: nodeApp, env: env, now: mustTime(t, "2024-06-01T00:00:00Z"),
		})
	}
	var na struct {
		AssertionBase64, ClientDataUtf8, ClientDataHashHex, PublicKeyPem, AppID string
	}
	readJSON(t, "node-app-attest/assertion.json", &na)
	if hex.EncodeToString(sum([]byte(na.ClientDataUtf8))) != na.ClientDataHashHex {
		t.Fatal("node-app-attest assertion: clientDataHashHex is not SHA-256(clientDataUtf8)")
	}
	asss = append(asss, assVector{
		name: "node-app-attest", obj: b64(t, na.AssertionBase64), cdh: unhex(t, na.ClientDataHashHex),
		pub: pemKey(t, na.PublicKeyPem), appID: na.AppID, counter: 1,
	})

	// bas-d/appattest.
	const basApp = "35MFYY2JY5.co.chiff.attestation-test"
	var ba struct{ AttestationObject, KeyID, ClientData string }
	readJSON(t, "bas-d-appattest/attestation.json", &ba)
	basPub, err := ParsePublicKey(unhex(t, "0437c404fa2bbf8fbcf4ee7080573d5fa80c4f6cc3a22f7db43af92c394e7cd1c880c95ab422972625e8e673af1bda2b096654e9b602895601f925bb5941c53082"))
	if err != nil {
		t.Fatal(err)
	}
	atts = append(atts, attVector{
		name: "bas-d", obj: b64(t, ba.AttestationObject), cdh: sum(b64(t, ba.ClientData)),
		keyID: b64(t, ba.KeyID), appID: basApp, env: Development,
		now: mustTime(t, "2021-04-14T09:55:20Z"), wantPub: basPub,
	})
	var bs struct{ Assertion, ClientData string }
	readJSON(t, "bas-d-appattest/assertion.json", &bs)
	asss = append(asss, assVector{
		name: "bas-d", obj: b64(t, bs.Assertion), cdh: sum(b64(t, bs.ClientData)),
		pub: basPub, appID: basApp, prev: 0, counter: 3,
	})

	// srinivas1729/appattest-checker-node.
	var cn struct {
		Attestation struct {
			AttestationObjectBase64, KeyIDBase64, AppID, Environment string
			ChallengeBytesHex, ClientDataHashHex                     string
			ExpectedPublicKeyPem, ExpectedReceiptBase64              string
		}
		Assertion struct {
			AssertionBase64, ClientDataUtf8, ClientDataHashHex string
			ExpectedSignCount                                  uint32
		}
	}
	readJSON(t, "appattest-checker-node/vector.json", &cn)
	if hex.EncodeToString(sum(unhex(t, cn.Attestation.ChallengeBytesHex))) != cn.Attestation.ClientDataHashHex ||
		hex.EncodeToString(sum([]byte(cn.Assertion.ClientDataUtf8))) != cn.Assertion.ClientDataHashHex {
		t.Fatal("checker-node: client data hashes do not match their inputs")
	}
	cnPub := pemKey(t, cn.Attestation.ExpectedPublicKeyPem)
	atts = append(atts, attVector{
		name: "checker-node", obj: b64(t, cn.Attestation.AttestationObjectBase64),
		cdh: unhex(t, cn.Attestation.ClientDataHashHex), keyID: b64(t, cn.Attestation.KeyIDBase64),
		appID: cn.Attestation.AppID, env: cn.Attestation.Environment,
		now: mustTime(t, "2024-06-01T00:00:00Z"), wantPub: cnPub,
		wantRcpt: b64(t, cn.Attestation.ExpectedReceiptBase64),
	})
	asss = append(asss, assVector{
		name: "checker-node", obj: b64(t, cn.Assertion.AssertionBase64),
		cdh: unhex(t, cn.Assertion.ClientDataHashHex), pub: cnPub,
		appID: cn.Attestation.AppID, counter: cn.Assertion.ExpectedSignCount,
	})
	return atts, asss
}

// opts returns the policy under which a vector must verify.
func (v attVector) opts() AttestationOptions {
	return AttestationOptions{
		AppIDs:           []string{"XXXXXXXXXX.not.this.one", v.appID},
		AllowDevelopment: v.env == Development,
		AllowProduction:  v.env == Production,
		Now:              v.now,
	}
}
