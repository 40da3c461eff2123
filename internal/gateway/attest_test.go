package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/attest"
	"github.com/apiguard/apiguard/internal/attest/providers/integrity"
	"github.com/apiguard/apiguard/internal/attest/providers/pow"
	"github.com/apiguard/apiguard/internal/events"
	"github.com/apiguard/apiguard/internal/testutil"
)

// attestFixture is a gateway with the attestation service, a registered
// app "shop-cli" with one release binary, and "shop-web" (proof of work).
type attestFixture struct {
	*testGateway
	store   *attest.Store
	binary  []byte
	release string
	keyFile string
	yaml    string
}

const attestYAML = `
events: {store: {driver: sqlite}}
attestation:
  issuer: https://shop.test
  signing_keys: [{file: "$KEY"}]
  challenges_per_minute: 1000
  pow_difficulty: 8
  pinning: {hosts: [shop.test], pins: ["47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="]}
  secrets:
    - {name: maps_api_key, value: s3cr3t-maps, apps: [shop-cli]}
    - {name: hardware_only, value: hw, min_level: hardware}
upstreams: {app: {targets: [$UPSTREAM_0]}}
routes:
  - name: transfers
    path_prefix: /api/transfers
    upstream: app
    checks:
      attestation: {apps: [shop-cli], min_level: software, bind_header: Authorization, single_use: true}
  - name: products
    path_prefix: /api/products
    upstream: app
    checks:
      attestation: {}
`

func newAttestFixture(t *testing.T) *attestFixture {
	t.Helper()
	keyDir := t.TempDir()
	keyFile := filepath.Join(keyDir, "k1.pem")
	writeKey(t, keyFile)
	app := newEchoUpstream(t, "app")
	yaml := strings.ReplaceAll(attestYAML, "$KEY", keyFile)
	g := startGateway(t, yaml, app.URL)
	ctx := context.Background()
	store, err := attest.OpenStore(ctx, "sqlite", filepath.Join(g.srv.cfg.DataDir, "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	now := time.Now()
	for _, a := range []*attest.App{
		{ID: "shop-cli", Providers: []string{"integrity"}, CreatedAt: now},
		{ID: "shop-web", Providers: []string{"pow"}, CreatedAt: now},
	} {
		if err := store.PutApp(ctx, a, true); err != nil {
			t.Fatal(err)
		}
	}
	bin := make([]byte, 3<<20)
	_, _ = rand.Read(bin)
	rel, err := store.RegisterBinary(ctx, "shop-cli", "1.0.0", bin, now)
	if err != nil {
		t.Fatal(err)
	}
	return &attestFixture{testGateway: g, store: store, binary: bin, release: rel.ID, keyFile: keyFile, yaml: yaml}
}

func writeKey(t *testing.T, path string) {
	t.Helper()
	pemBytes, _, err := attest.GenerateKey("EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
}

// postJSON posts v as JSON and decodes a JSON answer into out.
func (f *attestFixture) postJSON(t *testing.T, path string, v any, out any, hdr ...string) result {
	t.Helper()
	b, _ := json.Marshal(v)
	r := send(t, http.MethodPost, f.url+path, "application/json", string(b), hdr...)
	if out != nil && r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, out); err != nil {
			t.Fatalf("%s: %v: %s", path, err, r.body)
		}
	}
	return r
}

type challengeResp struct {
	Challenge string `json:"challenge"`
	Provider  string `json:"provider"`
	ExpiresIn int    `json:"expires_in"`
	Integrity struct {
		Salt   string            `json:"salt"`
		Ranges []integrity.Range `json:"ranges"`
	} `json:"integrity"`
	PoW struct {
		Difficulty int `json:"difficulty"`
	} `json:"pow"`
}

type tokenResp struct {
	Token     string `json:"token"`
	ExpiresIn int    `json:"expires_in"`
	Level     string `json:"level"`
	DeviceID  string `json:"device_id"`
	Pins      string `json:"pins"`
}

func (f *attestFixture) challenge(t *testing.T, app, provider, release string) challengeResp {
	t.Helper()
	var ch challengeResp
	r := f.postJSON(t, "/.apiguard/attest/challenge", map[string]string{"app_id": app, "provider": provider, "release": release}, &ch)
	if r.status != http.StatusOK {
		t.Fatalf("challenge: %d %s", r.status, r.body)
	}
	return ch
}

// integrityAnswer answers a challenge from bin.
func integrityAnswer(t *testing.T, ch challengeResp, bin []byte) string {
	t.Helper()
	salt, _ := base64.RawURLEncoding.DecodeString(ch.Integrity.Salt)
	mac, err := integrity.Answer(salt, ch.Integrity.Ranges, bytes.NewReader(bin), int64(len(bin)))
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(mac)
}

func bindOf(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// integrityToken runs the whole integrity flow.
func (f *attestFixture) integrityToken(t *testing.T, bind string) tokenResp {
	t.Helper()
	ch := f.challenge(t, "shop-cli", "integrity", f.release)
	body := map[string]string{"challenge": ch.Challenge, "mac": integrityAnswer(t, ch, f.binary), "installation_id": "inst-1"}
	if bind != "" {
		body["bind"] = bindOf(bind)
	}
	var tok tokenResp
	if r := f.postJSON(t, "/.apiguard/attest/integrity", body, &tok); r.status != http.StatusOK {
		t.Fatalf("integrity: %d %s", r.status, r.body)
	}
	return tok
}

func wantReason(t *testing.T, r result, status int, slug, reason string) {
	t.Helper()
	wantProblem(t, r, status, slug)
	var p struct {
		Reason string `json:"reason"`
	}
	_ = json.Unmarshal(r.body, &p)
	if p.Reason != reason {
		t.Fatalf("reason = %q, want %q (%s)", p.Reason, reason, r.body)
	}
}

func TestAttestationIntegrityFlow(t *testing.T) {
	t.Parallel()
	f := newAttestFixture(t)

	tok := f.integrityToken(t, "")
	if tok.Level != attest.LevelSoftware || tok.DeviceID != "inst-1" || tok.ExpiresIn != 300 || tok.Pins == "" {
		t.Fatalf("token response %+v", tok)
	}
	r := get(t, f.url+"/api/products", attest.TokenHeader, tok.Token)
	if r.status != http.StatusOK {
		t.Fatalf("products with token: %d %s", r.status, r.body)
	}
	if r.echo.Header.Get(attest.TokenHeader) != "" {
		t.Fatal("the attestation token reached the upstream")
	}
	wantProblem(t, get(t, f.url+"/api/products"), http.StatusUnauthorized, "attestation-missing")

	// The attested app and device are in the request's event.
	ev := f.events.waitFor(t, func(e events.Event) bool {
		return e.Kind == events.KindRequest && e.Route == "products" && e.Status == http.StatusOK
	})
	if ev.App != "shop-cli" || ev.Device != "inst-1" {
		t.Fatalf("event identity app=%q device=%q", ev.App, ev.Device)
	}

	t.Run("tampered binary", func(t *testing.T) {
		// An honest SDK hashes its own executable: a modified binary is
		// not a registered release.
		tampered := bytes.Clone(f.binary)
		tampered[len(tampered)/2] ^= 1
		sum := sha256.Sum256(tampered)
		r := f.postJSON(t, "/.apiguard/attest/challenge", map[string]string{"app_id": "shop-cli", "provider": "integrity", "release": hex.EncodeToString(sum[:])}, nil)
		wantProblem(t, r, http.StatusForbidden, "attestation-release-unknown")
		// A lying one claims the genuine digest; a change in a sampled
		// range gives it away.
		ch := f.challenge(t, "shop-cli", "integrity", f.release)
		tampered = bytes.Clone(f.binary)
		tampered[ch.Integrity.Ranges[5].Offset+7] ^= 0x80
		r = f.postJSON(t, "/.apiguard/attest/integrity", map[string]string{"challenge": ch.Challenge, "mac": integrityAnswer(t, ch, tampered)}, nil)
		wantReason(t, r, http.StatusForbidden, "attestation-failed", "mac_mismatch")
		f.events.waitFor(t, func(e events.Event) bool {
			return e.Kind == events.KindVerdict && e.Check == "attest" && e.Reason == "attestation-failed" && strings.HasPrefix(e.Detail, "mac_mismatch")
		})
	})

	t.Run("challenges", func(t *testing.T) {
		ch := f.challenge(t, "shop-cli", "integrity", f.release)
		answer := map[string]string{"challenge": ch.Challenge, "mac": integrityAnswer(t, ch, f.binary)}
		if r := f.postJSON(t, "/.apiguard/attest/integrity", answer, nil); r.status != http.StatusOK {
			t.Fatalf("first answer: %d %s", r.status, r.body)
		}
		wantReason(t, f.postJSON(t, "/.apiguard/attest/integrity", answer, nil), http.StatusForbidden, "attestation-challenge-invalid", "used")

		powCh := f.challenge(t, "shop-web", "pow", "")
		wantReason(t, f.postJSON(t, "/.apiguard/attest/integrity", map[string]string{"challenge": powCh.Challenge, "mac": answer["mac"]}, nil),
			http.StatusForbidden, "attestation-challenge-invalid", "foreign")
		forged := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
		wantReason(t, f.postJSON(t, "/.apiguard/attest/integrity", map[string]string{"challenge": forged, "mac": answer["mac"]}, nil),
			http.StatusForbidden, "attestation-challenge-invalid", "unknown")
		wantProblem(t, f.postJSON(t, "/.apiguard/attest/challenge", map[string]string{"app_id": "nope", "provider": "integrity"}, nil), http.StatusForbidden, "attestation-app-unknown")
		wantProblem(t, f.postJSON(t, "/.apiguard/attest/challenge", map[string]string{"app_id": "shop-cli", "provider": "pow"}, nil), http.StatusForbidden, "attestation-provider-not-allowed")
		wantProblem(t, f.postJSON(t, "/.apiguard/attest/challenge", map[string]string{"app_id": "shop-cli", "provider": "magic"}, nil), http.StatusBadRequest, "bad-request")
	})

	t.Run("bad input", func(t *testing.T) {
		wantProblem(t, send(t, http.MethodPost, f.url+"/.apiguard/attest/challenge", "application/json", `{"app_id":`), http.StatusBadRequest, "bad-request")
		wantProblem(t, send(t, http.MethodPost, f.url+"/.apiguard/attest/challenge", "application/json", `{"app_id":"`+strings.Repeat("a", 70<<10)+`"}`), http.StatusRequestEntityTooLarge, "body-too-large")
		wantProblem(t, send(t, http.MethodPost, f.url+"/.apiguard/attest/challenge", "text/plain", `{}`), http.StatusUnsupportedMediaType, "unsupported-media-type")
		wantProblem(t, get(t, f.url+"/.apiguard/attest/challenge"), http.StatusMethodNotAllowed, "method-not-allowed")
		wantProblem(t, send(t, http.MethodPost, f.url+"/.apiguard/attest/nothing", "application/json", `{}`), http.StatusNotFound, "not-found")
		ch := f.challenge(t, "shop-cli", "integrity", f.release)
		wantProblem(t, f.postJSON(t, "/.apiguard/attest/integrity", map[string]string{"challenge": ch.Challenge, "mac": "short"}, nil), http.StatusBadRequest, "bad-request")
		wantProblem(t, f.postJSON(t, "/.apiguard/attest/integrity", map[string]string{"challenge": ch.Challenge, "installation_id": "bad id!"}, nil), http.StatusBadRequest, "bad-request")
	})

	t.Run("revoked release", func(t *testing.T) {
		bin := make([]byte, 8192)
		_, _ = rand.Read(bin)
		rel, err := f.store.RegisterBinary(t.Context(), "shop-cli", "0.9.0", bin, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// A new release is seen within the registry cache's second.
		var ch challengeResp
		for deadline := time.Now().Add(3 * time.Second); ; {
			r := f.postJSON(t, "/.apiguard/attest/challenge", map[string]string{"app_id": "shop-cli", "provider": "integrity", "release": rel.ID}, &ch)
			if r.status == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("new release never accepted: %d %s", r.status, r.body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		var tok tokenResp
		if r := f.postJSON(t, "/.apiguard/attest/integrity", map[string]string{"challenge": ch.Challenge, "mac": integrityAnswer(t, ch, bin)}, &tok); r.status != http.StatusOK {
			t.Fatalf("old release before revocation: %d %s", r.status, r.body)
		}
		pending := f.challenge(t, "shop-cli", "integrity", rel.ID)
		if err := f.store.RevokeRelease(t.Context(), "shop-cli", rel.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		// No new tokens within the registry cache's second...
		deadline := time.Now().Add(3 * time.Second)
		for {
			r := f.postJSON(t, "/.apiguard/attest/challenge", map[string]string{"app_id": "shop-cli", "provider": "integrity", "release": rel.ID}, nil)
			if r.status == http.StatusForbidden {
				wantProblem(t, r, http.StatusForbidden, "attestation-release-revoked")
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("revoked release still gets challenges")
			}
			time.Sleep(100 * time.Millisecond)
		}
		// ...not even for a challenge handed out before the revocation...
		wantProblem(t, f.postJSON(t, "/.apiguard/attest/integrity", map[string]string{"challenge": pending.Challenge, "mac": integrityAnswer(t, pending, bin)}, nil),
			http.StatusForbidden, "attestation-release-revoked")
		// ...but tokens already issued live until their exp.
		if r := get(t, f.url+"/api/products", attest.TokenHeader, tok.Token); r.status != http.StatusOK {
			t.Fatalf("token of a revoked release before its exp: %d", r.status)
		}
	})
}

func TestAttestationTokenChecks(t *testing.T) {
	t.Parallel()
	f := newAttestFixture(t)
	const alice, bob = "Bearer alice-token", "Bearer bob-token"
	transfer := func(tok, authz string) result {
		return send(t, http.MethodPost, f.url+"/api/transfers", "application/json", `{"to":"x","amount":1}`, attest.TokenHeader, tok, "Authorization", authz)
	}

	bound := f.integrityToken(t, alice)
	if r := transfer(bound.Token, alice); r.status != http.StatusOK {
		t.Fatalf("bound single-use token: %d %s", r.status, r.body)
	}
	wantProblem(t, transfer(bound.Token, alice), http.StatusUnauthorized, "attestation-replayed")
	wantProblem(t, transfer(f.integrityToken(t, alice).Token, bob), http.StatusUnauthorized, "attestation-unbound")
	wantProblem(t, transfer(f.integrityToken(t, "").Token, alice), http.StatusUnauthorized, "attestation-unbound")

	// Proof of work is level "work" and app shop-web: not enough here.
	ch := f.challenge(t, "shop-web", "pow", "")
	nonce, _ := base64.RawURLEncoding.DecodeString(ch.Challenge)
	counter, _ := pow.Solve(t.Context(), nonce, ch.PoW.Difficulty)
	var powTok tokenResp
	if r := f.postJSON(t, "/.apiguard/attest/pow", map[string]any{"challenge": ch.Challenge, "counter": counter, "bind": bindOf(alice)}, &powTok); r.status != http.StatusOK {
		t.Fatalf("pow: %d %s", r.status, r.body)
	}
	if powTok.Level != attest.LevelWork || ch.PoW.Difficulty != 8 {
		t.Fatalf("pow token level %q difficulty %d", powTok.Level, ch.PoW.Difficulty)
	}
	wantProblem(t, transfer(powTok.Token, alice), http.StatusForbidden, "attestation-app-not-allowed")
	if r := get(t, f.url+"/api/products", attest.TokenHeader, powTok.Token); r.status != http.StatusOK {
		t.Fatalf("pow token on a route open to any app: %d", r.status)
	}
	ch = f.challenge(t, "shop-web", "pow", "")
	wantReason(t, f.postJSON(t, "/.apiguard/attest/pow", map[string]any{"challenge": ch.Challenge, "counter": 1}, nil), http.StatusForbidden, "attestation-failed", "insufficient_work")

	// Forged tokens.
	kr, err := attest.LoadKeyring([]attest.KeySource{{File: f.keyFile}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(t.TempDir(), "other.pem")
	writeKey(t, otherFile)
	other, _ := attest.LoadKeyring([]attest.KeySource{{File: otherFile}}, nil)
	now := time.Now()
	good := attest.Claims{Issuer: "https://shop.test", Subject: "shop-cli", Device: "d", IssuedAt: now.Unix(), Expiry: now.Add(time.Minute).Unix(), Provider: "integrity", Level: "software"}
	sign := func(kr *attest.Keyring, c attest.Claims) string {
		s, err := kr.Issue(&c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := sign(kr, good)
	parts := strings.Split(valid, ".")
	altered := good
	altered.Subject = "shop-admin"
	alteredPayload, _ := json.Marshal(altered)
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"` + kr.SignerKeyID() + `","typ":"apiguard-attest+jwt"}`))
	expired := good
	expired.IssuedAt, expired.Expiry = now.Add(-10*time.Minute).Unix(), now.Add(-5*time.Minute).Unix()
	otherIssuer := good
	otherIssuer.Issuer = "https://evil.test"
	pinsTyped, _ := kr.Sign(good, attest.PinsType)
	for _, tc := range []struct {
		name, token, slug string
	}{
		{"valid", valid, ""},
		{"other key", sign(other, good), "attestation-invalid"},
		{"alg none", noneHeader + "." + parts[1] + ".", "attestation-invalid"},
		{"altered claims", parts[0] + "." + base64.RawURLEncoding.EncodeToString(alteredPayload) + "." + parts[2], "attestation-invalid"},
		{"other issuer", sign(kr, otherIssuer), "attestation-invalid"},
		{"pin set as token", pinsTyped, "attestation-invalid"},
		{"expired", sign(kr, expired), "attestation-expired"},
		{"garbage", "not-a-token", "attestation-invalid"},
		{"huge", strings.Repeat("a", 5000), "attestation-invalid"},
	} {
		r := get(t, f.url+"/api/products", attest.TokenHeader, tc.token)
		if tc.slug == "" {
			if r.status != http.StatusOK {
				t.Errorf("%s: %d %s", tc.name, r.status, r.body)
			}
			continue
		}
		if r.status != http.StatusUnauthorized || r.problem == nil || r.problem.Type != "urn:apiguard:problem:"+tc.slug {
			t.Errorf("%s: %d %s, want %s", tc.name, r.status, r.body, tc.slug)
		}
	}
}

func TestAttestationServiceExtras(t *testing.T) {
	t.Parallel()
	f := newAttestFixture(t)
	kr, _ := attest.LoadKeyring([]attest.KeySource{{File: f.keyFile}}, nil)

	// JWKS.
	r := get(t, f.url+attest.JWKSPath)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), kr.SignerKeyID()) || strings.Contains(string(r.body), `"d"`) {
		t.Fatalf("jwks: %d %s", r.status, r.body)
	}

	// Runtime secrets: only to fresh tokens, only what the app may have.
	tok := f.integrityToken(t, "")
	var sec struct {
		Secrets map[string]string `json:"secrets"`
	}
	if r := f.postJSON(t, "/.apiguard/attest/secrets", map[string]string{}, &sec, attest.TokenHeader, tok.Token); r.status != http.StatusOK {
		t.Fatalf("secrets: %d %s", r.status, r.body)
	}
	if len(sec.Secrets) != 1 || sec.Secrets["maps_api_key"] != "s3cr3t-maps" {
		t.Fatalf("secrets = %v", sec.Secrets)
	}
	wantProblem(t, f.postJSON(t, "/.apiguard/attest/secrets", map[string]string{}, nil), http.StatusUnauthorized, "attestation-missing")
	now := time.Now()
	stale, _ := kr.Issue(&attest.Claims{Issuer: "https://shop.test", Subject: "shop-cli", Device: "d", IssuedAt: now.Add(-2 * time.Minute).Unix(), Expiry: now.Add(time.Minute).Unix(), Level: "software"})
	wantProblem(t, f.postJSON(t, "/.apiguard/attest/secrets", map[string]string{}, nil, attest.TokenHeader, stale), http.StatusUnauthorized, "attestation-expired")

	// Pins: a signed set with the configured backup pin.
	var pins struct {
		Pins string `json:"pins"`
	}
	r = get(t, f.url+"/.apiguard/attest/pins")
	if r.status != http.StatusOK || json.Unmarshal(r.body, &pins) != nil {
		t.Fatalf("pins: %d %s", r.status, r.body)
	}
	var set attest.PinSet
	if err := kr.Verify(pins.Pins, attest.PinsType, time.Now(), &set); err != nil {
		t.Fatalf("pin set does not verify: %v", err)
	}
	if len(set.Pins) != 1 || set.Pins[0] != "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" || set.Hosts[0] != "shop.test" || set.Expiry <= time.Now().Unix() {
		t.Fatalf("pin set %+v", set)
	}

	// Key rotation: a new key signs, the old one keeps verifying, first
	// while listed and then, once removed, until its tokens expire.
	newKey := filepath.Join(t.TempDir(), "k2.pem")
	writeKey(t, newKey)
	rewrite := func(keys string) {
		t.Helper()
		y := strings.Replace(f.yaml, `signing_keys: [{file: "`+f.keyFile+`"}]`, "signing_keys: "+keys, 1)
		cfgPath := f.srv.opts.ConfigPath
		old, _ := os.ReadFile(cfgPath)
		head := string(old[:strings.Index(string(old), "\nevents:")+1])
		if err := os.WriteFile(cfgPath, []byte(head+strings.Replace(y, "$UPSTREAM_0", f.srv.cfg.Upstreams["app"].Targets[0], 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := f.srv.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	rewrite(`[{file: "` + newKey + `"}, {file: "` + f.keyFile + `"}]`)
	if r := get(t, f.url+"/api/products", attest.TokenHeader, tok.Token); r.status != http.StatusOK {
		t.Fatalf("old-key token after rotation: %d", r.status)
	}
	fresh := f.integrityToken(t, "")
	newKR, _ := attest.LoadKeyring([]attest.KeySource{{File: newKey}}, nil)
	if _, err := newKR.VerifyToken(fresh.Token, "https://shop.test", time.Now()); err != nil {
		t.Fatalf("new tokens are not signed with the new key: %v", err)
	}
	rewrite(`[{file: "` + newKey + `"}]`)
	if r := get(t, f.url+"/api/products", attest.TokenHeader, tok.Token); r.status != http.StatusOK {
		t.Fatalf("old-key token after the key was removed, before its exp: %d", r.status)
	}
	if r := get(t, f.url+attest.JWKSPath); !strings.Contains(string(r.body), kr.SignerKeyID()) {
		t.Fatal("the retiring key left the JWKS before its tokens expired")
	}
}

func TestAttestationChallengeFlood(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "k.pem")
	writeKey(t, keyFile)
	g := startGateway(t, `
events: {store: {driver: sqlite}}
attestation: {signing_keys: [{file: "`+keyFile+`"}], challenges_per_minute: 3}
upstreams: {app: {targets: [http://127.0.0.1:1]}}
routes: [{name: r, path_prefix: /, upstream: app}]
`)
	var last result
	for range 5 {
		last = send(t, http.MethodPost, g.url+"/.apiguard/attest/challenge", "application/json", `{"app_id":"x","provider":"pow"}`)
	}
	wantProblem(t, last, http.StatusTooManyRequests, "rate-limited")
	if last.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
}

// TestAttestationAcrossInstances: two gateways share Redis (challenges,
// single-use token ids) and PostgreSQL (the app registry): a challenge from
// one is answered at the other, and a single-use token spent at one is a
// replay at the other.
func TestAttestationAcrossInstances(t *testing.T) {
	t.Parallel()
	redisAddr := testutil.Redis(t)
	dsn := testutil.Postgres(t)
	keyFile := filepath.Join(t.TempDir(), "k.pem")
	writeKey(t, keyFile)
	app := newEchoUpstream(t, "app")
	cfg := fmt.Sprintf(`
state: {backend: redis, redis: {addrs: [%s], key_prefix: "t%d:"}}
events: {store: {driver: postgres, dsn: "%s"}}
attestation: {signing_keys: [{file: "%s"}]}
upstreams: {app: {targets: [$UPSTREAM_0]}}
routes:
  - {name: transfers, path_prefix: /api/transfers, upstream: app, checks: {attestation: {single_use: true}}}
`, redisAddr, time.Now().UnixNano(), dsn, keyFile)
	a, b := startGateway(t, cfg, app.URL), startGateway(t, cfg, app.URL)
	store, err := attest.OpenStore(t.Context(), "postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if err := store.PutApp(t.Context(), &attest.App{ID: "shop-cli", Providers: []string{"integrity"}}, true); err != nil {
		t.Fatal(err)
	}
	bin := make([]byte, 300_000) // several chunks
	_, _ = rand.Read(bin)
	rel, err := store.RegisterBinary(t.Context(), "shop-cli", "1", bin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fa := &attestFixture{testGateway: a}
	fb := &attestFixture{testGateway: b}
	ch := fa.challenge(t, "shop-cli", "integrity", rel.ID)
	var tok tokenResp
	if r := fb.postJSON(t, "/.apiguard/attest/integrity", map[string]string{"challenge": ch.Challenge, "mac": integrityAnswer(t, ch, bin)}, &tok); r.status != http.StatusOK {
		t.Fatalf("answer at the other instance: %d %s", r.status, r.body)
	}
	if r := fa.postJSON(t, "/api/transfers", map[string]int{"amount": 1}, nil, attest.TokenHeader, tok.Token); r.status != http.StatusOK {
		t.Fatalf("spend at a: %d %s", r.status, r.body)
	}
	wantProblem(t, fb.postJSON(t, "/api/transfers", map[string]int{"amount": 1}, nil, attest.TokenHeader, tok.Token), http.StatusUnauthorized, "attestation-replayed")
	wantReason(t, fa.postJSON(t, "/.apiguard/attest/integrity", map[string]string{"challenge": ch.Challenge, "mac": integrityAnswer(t, ch, bin)}, nil),
		http.StatusForbidden, "attestation-challenge-invalid", "used")
}

// TestAttestationCORS: a browser app on an allowed origin may call the
// service; another origin may not.
func TestAttestationCORS(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "k.pem")
	writeKey(t, keyFile)
	g := startGateway(t, `
events: {store: {driver: sqlite}}
attestation: {signing_keys: [{file: "`+keyFile+`"}], allowed_origins: ["https://shop.example"]}
`)
	pre := func(origin string) result {
		req, _ := http.NewRequest(http.MethodOptions, g.url+"/.apiguard/attest/challenge", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		return do(t, req)
	}
	if r := pre("https://shop.example"); r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "https://shop.example" {
		t.Fatalf("allowed origin preflight: %d %v", r.status, r.header)
	}
	wantProblem(t, pre("https://evil.example"), http.StatusForbidden, "cors-rejected")
	r := send(t, http.MethodPost, g.url+"/.apiguard/attest/challenge", "application/json", `{"app_id":"x","provider":"pow"}`, "Origin", "https://shop.example")
	if r.header.Get("Access-Control-Allow-Origin") != "https://shop.example" {
		t.Fatalf("actual request without CORS headers: %v", r.header)
	}
}
