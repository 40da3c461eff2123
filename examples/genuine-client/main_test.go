package main

import (
	"bytes"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/attest"
	"github.com/apiguard/apiguard/internal/demo"
	"github.com/apiguard/apiguard/internal/testutil/gatewaytest"
)

// startGateway runs the real gateway in front of the demo shop: /api/
// requires an attestation token, transfers a bound single-use one. It
// returns the gateway's URL and its app registry.
func startGateway(t *testing.T) (string, *attest.Store) {
	t.Helper()
	shop, err := demo.NewShop()
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(shop)
	t.Cleanup(up.Close)
	key, _, err := attest.GenerateKey("EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "attest.pem")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	g := gatewaytest.Start(t, `attestation: {signing_keys: [{file: "`+keyFile+`"}]}
upstreams: {shop: {targets: ["`+up.URL+`"]}}
routes:
  - {name: transfer, path_prefix: /api/transfer, upstream: shop,
     checks: {attestation: {apps: [shop-cli], bind_header: Authorization, single_use: true}}}
  - {name: login, path_prefix: /api/login, upstream: shop}
  - {name: api, path_prefix: /api/, upstream: shop, checks: {attestation: {apps: [shop-cli]}}}
`)
	store, err := attest.OpenStore(t.Context(), "sqlite", filepath.Join(g.DataDir, "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if err := store.PutApp(t.Context(), &attest.App{ID: "shop-cli", Providers: []string{attest.ProviderIntegrity}, CreatedAt: time.Now()}, true); err != nil {
		t.Fatal(err)
	}
	return g.URL, store
}

// TestGenuineAndTamperedBinary builds the example, registers the build as
// a release, runs it against the real gateway, then flips one byte of a
// copy and shows the copy is refused.
func TestGenuineAndTamperedBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example binary")
	}
	url, store := startGateway(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "genuine-client")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.RegisterBinary(t.Context(), "shop-cli", "test", data, time.Now()); err != nil {
		t.Fatal(err)
	}

	runBin := func(path string) (string, int) {
		cmd := exec.Command(path, "-gateway", url, "-user", "alice", "-password", demo.DemoPassword)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := runBin(bin)
	if code != 0 || !strings.Contains(out, "attested as shop-cli") || !strings.Contains(out, "GET /api/products: 200") ||
		!strings.Contains(out, "POST /api/transfer: 200") {
		t.Fatalf("genuine binary: exit %d\n%s", code, out)
	}

	tampered := bytes.Clone(data)
	tampered[len(tampered)/2] ^= 0x01
	copyPath := filepath.Join(dir, "tampered-client")
	if err := os.WriteFile(copyPath, tampered, 0o755); err != nil {
		t.Fatal(err)
	}
	out, code = runBin(copyPath)
	if code != 1 || !strings.Contains(out, "attestation-release-unknown") || strings.Contains(out, "/api/products: 200") {
		t.Fatalf("tampered binary: exit %d\n%s", code, out)
	}
}

// TestRunInProcess drives run() with the test binary as a release that is
// not registered, and with bad flags.
func TestRunInProcess(t *testing.T) {
	url, _ := startGateway(t)
	var out bytes.Buffer
	if code := run(t.Context(), []string{"-gateway", url}, &out); code != 1 || !strings.Contains(out.String(), "attestation-release-unknown") {
		t.Fatalf("unregistered release: exit %d\n%s", code, out.String())
	}
	out.Reset()
	if code := run(t.Context(), []string{"-nope"}, &out); code != 2 {
		t.Fatalf("bad flag: exit %d", code)
	}
}
