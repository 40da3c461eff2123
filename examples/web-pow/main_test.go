// Package webpow tests the browser proof-of-work example against a real
// gateway, with Node standing in for the browser.
package webpow

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/attest"
	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/gateway"
)

func TestNodeProofOfWork(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the browser example cannot run")
	}
	dir := t.TempDir()
	key, _, _ := attest.GenerateKey("EdDSA")
	keyFile := filepath.Join(dir, "k.pem")
	_ = os.WriteFile(keyFile, key, 0o600)
	cfg, err := config.Parse("pow.yaml", []byte(`
listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, token: test-admin-token-0123456789}
data_dir: `+dir+`
attestation: {signing_keys: [{file: "`+keyFile+`"}], pow_difficulty: 12}
`), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	store, err := attest.OpenStore(t.Context(), "sqlite", filepath.Join(dir, "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.PutApp(t.Context(), &attest.App{ID: "shop-web", Providers: []string{attest.ProviderPoW}}, true); err != nil {
		t.Fatal(err)
	}
	url := "http://" + srv.Addr("public")
	out, err := exec.Command(node, "pow.mjs", url, "shop-web").CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var got struct {
		Token      string  `json:"token"`
		Level      string  `json:"level"`
		DeviceID   string  `json:"device_id"`
		Difficulty int     `json:"difficulty"`
		SolveMs    float64 `json:"solveMs"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Token == "" || got.Level != attest.LevelWork || got.DeviceID != "node-example" || got.Difficulty != 12 {
		t.Fatalf("attestation %+v", got)
	}
	t.Logf("solved difficulty %d in %.1f ms", got.Difficulty, got.SolveMs)

	// An app that may not use pow is refused with the problem type.
	out, err = exec.Command(node, "pow.mjs", url, "unknown-app").CombinedOutput()
	if err == nil || !json.Valid(out) || !contains(string(out), "attestation-app-unknown") {
		t.Fatalf("unknown app: %v %s", err, out)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
