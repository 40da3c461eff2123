package attest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/attest/providers/integrity"
	"github.com/apiguard/apiguard/internal/attest/providers/pow"
)

// serve posts body to a service path and decodes the answer.
func serve(tb testing.TB, svc *Service, path string, body any, out any) int {
	b, _ := json.Marshal(body)
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(b))
	w := httptest.NewRecorder()
	svc.Serve(w, r, netip.MustParseAddr("127.0.0.1"), "req")
	if w.Code != http.StatusOK {
		tb.Log(w.Body.String())
	}
	if out != nil && w.Code == http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			tb.Fatal(err)
		}
	}
	return w.Code
}

type benchChallenge struct {
	Challenge string `json:"challenge"`
	Integrity struct {
		Salt   string            `json:"salt"`
		Ranges []integrity.Range `json:"ranges"`
	} `json:"integrity"`
	PoW struct {
		Difficulty int `json:"difficulty"`
	} `json:"pow"`
}

// BenchmarkServiceIntegrity is one whole software-integrity attestation at
// the service: challenge, then verify (1 MiB read from the SQLite registry,
// HMAC, token signing), for a 20 MiB release.
func BenchmarkServiceIntegrity(b *testing.B) {
	svc, store := serviceWithClock(b, time.Now, Config{})
	svc.rate[0].Count, svc.rate[0].Burst = 1_000_000, 1_000_000
	ctx := context.Background()
	_ = store.PutApp(ctx, &App{ID: "cli", Providers: []string{ProviderIntegrity}}, true)
	bin := make([]byte, 20<<20)
	_, _ = rand.Read(bin)
	rel, err := store.RegisterBinary(ctx, "cli", "1", bin, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	var ch benchChallenge
	for b.Loop() {
		b.StopTimer()
		if serve(b, svc, "/.apiguard/attest/challenge", map[string]string{"app_id": "cli", "provider": "integrity", "release": rel.ID}, &ch) != 200 {
			b.Fatal("challenge")
		}
		salt, _ := base64.RawURLEncoding.DecodeString(ch.Integrity.Salt)
		mac, _ := integrity.Answer(salt, ch.Integrity.Ranges, bytes.NewReader(bin), int64(len(bin)))
		body := map[string]string{"challenge": ch.Challenge, "mac": base64.RawURLEncoding.EncodeToString(mac)}
		b.StartTimer()
		if code := serve(b, svc, "/.apiguard/attest/integrity", body, nil); code != 200 {
			b.Fatalf("verify: %d", code)
		}
	}
}

// BenchmarkServicePoW is one proof-of-work verification at the service
// (the client's solving excluded).
func BenchmarkServicePoW(b *testing.B) {
	svc, store := serviceWithClock(b, time.Now, Config{})
	svc.rate[0].Count, svc.rate[0].Burst = 1_000_000, 1_000_000
	_ = store.PutApp(context.Background(), &App{ID: "web", Providers: []string{ProviderPoW}, Policy: Policy{PoWDifficulty: 8}}, true)
	var ch benchChallenge
	for b.Loop() {
		b.StopTimer()
		serve(b, svc, "/.apiguard/attest/challenge", map[string]string{"app_id": "web", "provider": "pow"}, &ch)
		nonce, _ := base64.RawURLEncoding.DecodeString(ch.Challenge)
		c, _ := pow.Solve(context.Background(), nonce, ch.PoW.Difficulty)
		b.StartTimer()
		if code := serve(b, svc, "/.apiguard/attest/pow", map[string]any{"challenge": ch.Challenge, "counter": c}, nil); code != 200 {
			b.Fatalf("verify: %d", code)
		}
	}
}

// BenchmarkPoWSolve is the client's cost at the default difficulty (18
// bits) in Go on this machine; a browser's SubtleCrypto is several times
// slower per hash.
func BenchmarkPoWSolve(b *testing.B) {
	nonce := make([]byte, 32)
	for b.Loop() {
		_, _ = rand.Read(nonce)
		_, _ = pow.Solve(context.Background(), nonce, defaultPoWDifficulty)
	}
}
