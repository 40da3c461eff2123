package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSignedRequests: RFC 9421 signatures verified at the gateway, with
// nonces remembered in the state backend so a captured request cannot be
// replayed.
func TestSignedRequests(t *testing.T) {
	t.Parallel()
	app := newEchoUpstream(t, "app")
	secret := []byte("a-shared-secret-of-32-bytes-long")
	g := startGateway(t, `
upstreams: {app: {targets: [$UPSTREAM_0]}}
routes:
  - name: transfer
    path_prefix: /api/transfer
    upstream: app
    checks:
      httpsig:
        keys: [{id: svc, algorithm: hmac-sha256, secret: "`+base64.StdEncoding.EncodeToString(secret)+`"}]
        required_components: ["@method", "@target-uri"]
        require_nonce: true
`, app.URL)
	target := g.url + "/api/transfer"
	signed := func(method, nonce string) *http.Request {
		req, _ := http.NewRequest(method, target, strings.NewReader(`{"amount":5}`))
		req.Header.Set("Content-Type", "application/json")
		params := fmt.Sprintf(`("@method" "@target-uri");created=%d;keyid="svc";nonce="%s"`, time.Now().Unix(), nonce)
		base := fmt.Sprintf("\"@method\": %s\n\"@target-uri\": %s\n\"@signature-params\": %s", "POST", target, params)
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(base))
		req.Header.Set("Signature-Input", "sig1="+params)
		req.Header.Set("Signature", "sig1=:"+base64.StdEncoding.EncodeToString(mac.Sum(nil))+":")
		return req
	}
	if r := do(t, signed("POST", "n-1")); r.status != 200 || r.echo.Body != `{"amount":5}` {
		t.Fatalf("signed request: %d %s", r.status, r.body)
	}
	wantProblem(t, do(t, signed("POST", "n-1")), 401, "signature-replayed")
	wantProblem(t, do(t, signed("PUT", "n-2")), 401, "signature-invalid") // signed as POST, sent as PUT
	req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	wantProblem(t, do(t, req), 401, "signature-missing")
}
