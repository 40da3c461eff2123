package attest

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/apiguard/apiguard/internal/attest/providers/pow"
	"github.com/apiguard/apiguard/internal/state"
)

func testKey(t testing.TB, alg string) string {
	t.Helper()
	pemBytes, _, err := GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return string(pemBytes)
}

func keyring(t testing.TB, pems ...string) *Keyring {
	t.Helper()
	var srcs []KeySource
	env := map[string]string{}
	for i, p := range pems {
		name := "K" + string(rune('0'+i))
		env[name] = p
		srcs = append(srcs, KeySource{Env: name})
	}
	kr, err := LoadKeyring(srcs, func(n string) (string, bool) { v, ok := env[n]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestTokenRoundTripAndRefusals(t *testing.T) {
	for _, alg := range []string{"EdDSA", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			kr := keyring(t, testKey(t, alg))
			now := time.Unix(1_800_000_000, 0)
			c := &Claims{Issuer: "iss", Subject: "app", Device: "d", IssuedAt: now.Unix(), Expiry: now.Add(time.Minute).Unix(), Provider: "pow", Level: LevelWork, Binding: "b"}
			tok, err := kr.Issue(c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := kr.VerifyToken(tok, "iss", now)
			if err != nil || *got != *c {
				t.Fatalf("round trip: %v %+v", err, got)
			}
			if !strings.Contains(string(kr.JWKS()), `"alg":"`+alg+`"`) {
				t.Fatalf("jwks %s", kr.JWKS())
			}
			other := keyring(t, testKey(t, alg))
			otherTok, _ := other.Issue(&Claims{Issuer: "iss", Subject: "app", Expiry: now.Add(time.Minute).Unix()})
			for _, tc := range []struct {
				name string
				tok  string
				iss  string
				at   time.Time
				want error
			}{
				{"other key", otherTok, "iss", now, ErrSignature},
				{"other issuer", tok, "x", now, ErrIssuer},
				{"expired", tok, "iss", now.Add(time.Minute), ErrExpired},
				{"two parts", "a.b", "iss", now, ErrMalformed},
				{"bad header", "!!.b.c", "iss", now, ErrMalformed},
				{"too long", strings.Repeat("a", MaxTokenBytes+1), "iss", now, ErrMalformed},
			} {
				if _, err := kr.VerifyToken(tc.tok, tc.iss, tc.at); !errors.Is(err, tc.want) {
					t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
				}
			}
		})
	}
}

func TestKeyringCarry(t *testing.T) {
	a, b := testKey(t, "EdDSA"), testKey(t, "ES256")
	old := keyring(t, a)
	now := time.Unix(1_800_000_000, 0)
	tok, _ := old.Issue(&Claims{Issuer: "i", Subject: "s", Expiry: now.Add(time.Hour).Unix()})
	cur := keyring(t, b).Carry(old, now, 5*time.Minute)
	if _, err := cur.VerifyToken(tok, "i", now.Add(4*time.Minute)); err != nil {
		t.Fatalf("removed key within grace: %v", err)
	}
	if _, err := cur.VerifyToken(tok, "i", now.Add(5*time.Minute)); !errors.Is(err, ErrSignature) {
		t.Fatalf("removed key after grace: %v", err)
	}
	// A second reload keeps the original retirement time, not a new grace.
	again := keyring(t, b).Carry(cur, now.Add(4*time.Minute), 5*time.Minute)
	if _, err := again.VerifyToken(tok, "i", now.Add(6*time.Minute)); !errors.Is(err, ErrSignature) {
		t.Fatalf("retirement extended by a reload: %v", err)
	}
	// The carried key never signs.
	if cur.SignerKeyID() == old.SignerKeyID() {
		t.Fatal("carried key became the signer")
	}
}

func TestLoadKeyringErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	_ = os.WriteFile(bad, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}), 0o600)
	for _, srcs := range [][]KeySource{nil, {{File: filepath.Join(dir, "missing")}}, {{File: bad}}, {{Env: "UNSET_VAR_FOR_TEST"}}, {{}}} {
		if _, err := LoadKeyring(srcs, func(string) (string, bool) { return "", false }); err == nil {
			t.Errorf("%+v: no error", srcs)
		}
	}
	if _, _, err := GenerateKey("RS256"); err == nil {
		t.Error("RS256 accepted")
	}
}

// FuzzVerifyToken: no token, however malformed, panics the verifier or
// verifies without the key.
func FuzzVerifyToken(f *testing.F) {
	kr := keyring(f, testKey(f, "EdDSA"))
	good, _ := kr.Issue(&Claims{Issuer: "i", Subject: "s", Expiry: 2_000_000_000})
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := kr.VerifyToken(tok, "i", time.Unix(1_800_000_000, 0))
		if err == nil && tok != good {
			// Only a genuine signature verifies; JSON re-encodings of
			// the same payload would need a new signature.
			parts := strings.Split(tok, ".")
			if len(parts) != 3 || !strings.HasPrefix(good, parts[0]) {
				t.Fatalf("forged token verified: %q %+v", tok, c)
			}
		}
	})
}

// serviceFixture builds a service on the memory backend and a SQLite
// registry, with its clock (and the backend's) at now.
func serviceFixture(t testing.TB, now time.Time) (*Service, *Store) {
	return serviceWithClock(t, func() time.Time { return now }, Config{})
}

func serviceWithClock(t testing.TB, clock func() time.Time, cfg Config) (*Service, *Store) {
	t.Helper()
	st := state.NewMemory(state.MemoryOptions{Clock: clock})
	t.Cleanup(func() { _ = st.Close() })
	store, err := OpenStore(context.Background(), "sqlite", filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	pemKey := testKey(t, "EdDSA")
	cfg.SigningKeys = []KeySource{{Env: "K"}}
	svc, err := NewService(cfg, Options{
		State: st, Registry: NewRegistry(store), Now: clock,
		LookupEnv: func(string) (string, bool) { return pemKey, true },
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc, store
}

// TestAppAttestAdapter runs a real App Attest attestation and assertion
// (devicecheck-appattest ios-14.2) through the service's provider, whose
// clientDataHash is SHA-256 of the challenge string: the vector's
// clientData "wurzelpfropf" stands in for it.
func TestAppAttestAdapter(t *testing.T) {
	raw, err := os.ReadFile("providers/appattest/testdata/devicecheck-appattest/ios-14.2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]map[string]any{}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	for {
		var d map[string]any
		if dec.Decode(&d) != nil {
			break
		}
		if typ, _ := d["type"].(string); docs[typ] == nil {
			docs[typ] = d
		}
	}
	att, asr := docs["attestation"], docs["assertion"]
	ts, _ := time.Parse(time.RFC3339, att["timestamp"].(string))
	svc, store := serviceFixture(t, ts)
	ctx := context.Background()
	app := &App{ID: "ios", Providers: []string{ProviderAppAttest}}
	if err := store.PutApp(ctx, app, true); err != nil {
		t.Fatal(err)
	}
	appID := att["teamIdentifier"].(string) + "." + att["bundleIdentifier"].(string)
	rels := []*Release{{AppID: "ios", Kind: ReleaseAppleAppID, ID: appID}}
	p := appAttestProvider{}
	req := &verifyRequest{Challenge: "wurzelpfropf", KeyID: att["keyIdBase64"].(string), Attestation: att["attestationBase64"].(string)}

	// The vector is a development key: refused unless the app allows debug builds.
	if _, f := p.verify(ctx, svc, app, rels, nil, nil, req); f == nil || f.Reason != "environment_not_allowed" {
		t.Fatalf("development key under a production policy: %+v", f)
	}
	app.Policy.AllowDebug = true
	got, f := p.verify(ctx, svc, app, rels, nil, nil, req)
	if f != nil {
		t.Fatalf("attestation: %+v", f)
	}
	keyID, _ := base64.StdEncoding.DecodeString(req.KeyID)
	if got.level != LevelHardware || got.device != base64.RawURLEncoding.EncodeToString(keyID) || got.release != appID {
		t.Fatalf("attested %+v", got)
	}
	wrongChallenge := *req
	wrongChallenge.Challenge = "another challenge"
	if _, f := p.verify(ctx, svc, app, rels, nil, nil, &wrongChallenge); f == nil || f.Reason != "nonce_mismatch" {
		t.Fatalf("other challenge: %+v", f)
	}

	// A later assertion by the attested key; its counter must increase.
	areq := &verifyRequest{Challenge: "wurzelpfropf", KeyID: req.KeyID, Assertion: asr["assertionBase64"].(string)}
	if got, f := p.verify(ctx, svc, app, rels, nil, nil, areq); f != nil || got.device == "" {
		t.Fatalf("assertion: %+v", f)
	}
	if _, f := p.verify(ctx, svc, app, rels, nil, nil, areq); f == nil || f.Reason != "counter_invalid" {
		t.Fatalf("replayed assertion: %+v", f)
	}
	// Revoking the app id stops assertions too.
	rels[0].RevokedAt = ts
	if _, f := p.verify(ctx, svc, app, rels, nil, nil, areq); f == nil || f.Slug != "attestation-release-revoked" {
		t.Fatalf("revoked app id: %+v", f)
	}
	// Bad input.
	for name, r := range map[string]*verifyRequest{
		"garbage attestation": {KeyID: req.KeyID, Attestation: base64.StdEncoding.EncodeToString([]byte("\xa1\x63fmt"))},
		"huge attestation":    {KeyID: req.KeyID, Attestation: base64.StdEncoding.EncodeToString(make([]byte, 70<<10))},
		"unknown key":         {KeyID: base64.StdEncoding.EncodeToString(make([]byte, 32)), Assertion: asr["assertionBase64"].(string)},
	} {
		rels[0].RevokedAt = time.Time{}
		if _, f := p.verify(ctx, svc, app, rels, nil, nil, r); f == nil || f.Status != http.StatusForbidden {
			t.Errorf("%s: %+v", name, f)
		}
	}
	if _, f := p.verify(ctx, svc, app, rels, nil, nil, &verifyRequest{KeyID: "short"}); f == nil || f.Status != http.StatusBadRequest {
		t.Errorf("bad key id: %+v", f)
	}
}

// TestKeyAttestAdapter runs a real Android TEE chain (challenge "abc",
// platform packages, unverified boot) through the service's provider.
func TestKeyAttestAdapter(t *testing.T) {
	var chain []string
	for i := range 4 {
		b, err := os.ReadFile("providers/keyattest/testdata/algorithm_EC_SecurityLevel_TEE/cert" + string(rune('0'+i)) + ".pem")
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		chain = append(chain, base64.StdEncoding.EncodeToString(blk.Bytes))
	}
	svc, _ := serviceFixture(t, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	ctx := context.Background()
	const signer = "301aa3cb081134501c45f1422abc66c24224fd5ded5fdc8f17e697176fd866aa"
	app := &App{ID: "android", Providers: []string{ProviderKeyAttest}, AndroidPackages: []string{"android"}}
	rels := []*Release{{AppID: "android", Kind: ReleaseAndroidSigner, ID: signer}}
	p := keyAttestProvider{}
	req := &verifyRequest{Chain: chain}
	nonce := []byte("abc")

	if _, f := p.verify(ctx, svc, app, rels, nil, nonce, req); f == nil || f.Reason != "boot_not_verified" {
		t.Fatalf("unverified boot under the default policy: %+v", f)
	}
	app.Policy.AllowUnlocked = true
	got, f := p.verify(ctx, svc, app, rels, nil, nonce, req)
	if f != nil || got.level != LevelHardware || got.release != signer || got.device == "" {
		t.Fatalf("attested %+v %+v", got, f)
	}
	for name, tc := range map[string]struct {
		mutate func(*App, []*Release) ([]*Release, []byte, *verifyRequest)
		reason string
		slug   string
	}{
		"other challenge": {func(a *App, r []*Release) ([]*Release, []byte, *verifyRequest) { return r, []byte("abd"), req }, "challenge_mismatch", ""},
		"other package": {func(a *App, r []*Release) ([]*Release, []byte, *verifyRequest) {
			a.AndroidPackages = []string{"com.example.shop"}
			return r, nonce, req
		}, "package_mismatch", ""},
		"strongbox required": {func(a *App, r []*Release) ([]*Release, []byte, *verifyRequest) {
			a.Policy.RequireStrongBox = true
			return r, nonce, req
		}, "security_level", ""},
		"revoked signer": {func(a *App, r []*Release) ([]*Release, []byte, *verifyRequest) {
			return []*Release{{AppID: "android", Kind: ReleaseAndroidSigner, ID: signer, RevokedAt: time.Now()}}, nonce, req
		}, "", "attestation-release-revoked"},
		"absurd chain": {func(a *App, r []*Release) ([]*Release, []byte, *verifyRequest) {
			long := append(append(append([]string{}, chain...), chain...), chain...)
			return r, nonce, &verifyRequest{Chain: long}
		}, "too_large", ""},
		"garbage chain": {func(a *App, r []*Release) ([]*Release, []byte, *verifyRequest) {
			return r, nonce, &verifyRequest{Chain: []string{"AAAA", "AAAA"}}
		}, "malformed", ""},
	} {
		a := *app
		a.Policy = app.Policy
		r, n, vr := tc.mutate(&a, rels)
		_, f := p.verify(ctx, svc, &a, r, nil, n, vr)
		if f == nil || (tc.reason != "" && f.Reason != tc.reason) || (tc.slug != "" && f.Slug != tc.slug) {
			t.Errorf("%s: %+v", name, f)
		}
	}
}

// TestChallengeExpires: a challenge answered after its TTL is unknown,
// even with a correct answer.
func TestChallengeExpires(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	svc, store := serviceWithClock(t, func() time.Time { return now }, Config{PoWDifficulty: 1})
	_ = store.PutApp(context.Background(), &App{ID: "web", Providers: []string{ProviderPoW}}, true)
	solve := func() map[string]any {
		var ch benchChallenge
		if code := serve(t, svc, "/.apiguard/attest/challenge", map[string]string{"app_id": "web", "provider": "pow"}, &ch); code != 200 {
			t.Fatalf("challenge: %d", code)
		}
		nonce, _ := base64.RawURLEncoding.DecodeString(ch.Challenge)
		c, _ := pow.Solve(context.Background(), nonce, ch.PoW.Difficulty)
		return map[string]any{"challenge": ch.Challenge, "counter": c}
	}
	fresh, stale := solve(), solve()
	now = now.Add(59 * time.Second)
	if code := serve(t, svc, "/.apiguard/attest/pow", fresh, nil); code != 200 {
		t.Fatalf("answer within the TTL: %d", code)
	}
	now = now.Add(2 * time.Second)
	if code := serve(t, svc, "/.apiguard/attest/pow", stale, nil); code != http.StatusForbidden {
		t.Fatalf("answer after the TTL: %d", code)
	}
}
