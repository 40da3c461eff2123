// Package webpow tests the browser proof-of-work example against a real
// gateway, with Node standing in for the browser.
package webpow

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/attest"
	"github.com/apiguard/apiguard/internal/testutil/gatewaytest"
)

func TestNodeProofOfWork(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the browser example cannot run")
	}
	keyFile := filepath.Join(t.TempDir(), "k.pem")
	key, _, _ := attest.GenerateKey("EdDSA")
	_ = os.WriteFile(keyFile, key, 0o600)
	g := gatewaytest.Start(t, `attestation: {signing_keys: [{file: "`+keyFile+`"}], pow_difficulty: 12}`)
	store, err := attest.OpenStore(t.Context(), "sqlite", filepath.Join(g.DataDir, "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.PutApp(t.Context(), &attest.App{ID: "shop-web", Providers: []string{attest.ProviderPoW}}, true); err != nil {
		t.Fatal(err)
	}
	url := g.URL
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
