package demo

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// AppSigningKeysPath is where the shop publishes the public keys its mobile
// app signs transfers with (RFC 9421 HTTP Message Signatures). Only the
// gateway reads it; no public route leads there.
const AppSigningKeysPath = "/.well-known/app-signing-keys.json"

const appKeyID = "shop-app-1"

// appSigner signs requests the way the shop's app does: RFC 9421 over the
// method, target URI and Content-Digest (RFC 9530), with a fresh nonce so a
// captured request cannot be sent again.
type appSigner struct {
	priv ed25519.PrivateKey
	jwks []byte
}

func newAppSigner() (*appSigner, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	k, err := jwk.Import(pub)
	if err != nil {
		return nil, err
	}
	if err := k.Set(jwk.KeyIDKey, appKeyID); err != nil {
		return nil, err
	}
	set := jwk.NewSet()
	if err := set.AddKey(k); err != nil {
		return nil, err
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	return &appSigner{priv: priv, jwks: b}, nil
}

// sign adds Content-Digest, Signature-Input and Signature to req, whose
// URL must be the one the gateway receives (it rebuilds @target-uri from
// its scheme, Host and request target).
func (s *appSigner) sign(req *http.Request, body []byte) { s.signAt(req, body, time.Now()) }

// signAt signs as if at created.
func (s *appSigner) signAt(req *http.Request, body []byte, created time.Time) {
	sum := sha256.Sum256(body)
	digest := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
	req.Header.Set("Content-Digest", digest)
	params := fmt.Sprintf(`("@method" "@target-uri" "content-digest");created=%d;keyid="%s";nonce="%s"`,
		created.Unix(), appKeyID, rand.Text())
	base := fmt.Sprintf("\"@method\": %s\n\"@target-uri\": %s\n\"content-digest\": %s\n\"@signature-params\": %s",
		req.Method, req.URL.String(), digest, params)
	req.Header.Set("Signature-Input", "sig1="+params)
	req.Header.Set("Signature", "sig1=:"+base64.StdEncoding.EncodeToString(ed25519.Sign(s.priv, []byte(base)))+":")
}

func (s *Shop) appKeys(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(s.signer.jwks)
}

// capturedRequest is a signed request as an attacker on the path would
// record it.
type capturedRequest struct {
	method, path string
	header       http.Header
	body         []byte
}
