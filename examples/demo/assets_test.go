package demoassets_test

import (
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	demoassets "github.com/apiguard/apiguard/examples/demo"
	"github.com/apiguard/apiguard/internal/attest"
	"github.com/apiguard/apiguard/internal/config"
)

// TestConfigParses keeps apiguard.yaml valid against the config schema.
// internal/demo tests what it means.
func TestConfigParses(t *testing.T) {
	t.Parallel()
	// The attestation service's key file must exist (the demo writes it to
	// the data directory before it loads the file).
	dataDir := t.TempDir()
	key, _, err := attest.GenerateKey("EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "attest-signing.pem"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	// So must the shop's spec, which the openapi check compiles at load.
	if err := os.WriteFile(filepath.Join(dataDir, "shop.openapi.yaml"), demoassets.OpenAPI, 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"DEMO_SHOP_URL":     "http://127.0.0.1:41234",
		"DEMO_LISTEN":       "127.0.0.1:8080",
		"DEMO_ADMIN_LISTEN": "127.0.0.1:9090",
		"DEMO_DATA_DIR":     dataDir,
		"DEMO_ADMIN_TOKEN":  "0123456789abcdef0123",
	}
	lookup := func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
	if _, err := config.Parse(demoassets.ConfigName, demoassets.Config, config.Options{Lookup: lookup}); err != nil {
		t.Fatalf("apiguard.yaml:\n%v", err)
	}
	// Without the variables it must say which are missing, not start.
	_, err = config.Parse(demoassets.ConfigName, demoassets.Config, config.Options{Lookup: func(string) (string, bool) { return "", false }})
	if err == nil {
		t.Fatal("apiguard.yaml loaded without its DEMO_ variables")
	}
}

func TestOpenAPIIsYAML(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI string         `yaml:"openapi"`
		Paths   map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(demoassets.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || len(doc.Paths) == 0 {
		t.Fatalf("openapi %q with %d paths", doc.OpenAPI, len(doc.Paths))
	}
}
