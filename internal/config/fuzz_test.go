package config_test

import (
	"os"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/config"
)

// FuzzParse checks that Parse never panics and that it returns either a
// config or an error, every line of which names the file. It is seeded with
// every golden file (run: go test -run=^$ -fuzz=FuzzParse ./internal/config/).
func FuzzParse(f *testing.F) {
	for _, path := range goldenFiles(f) {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"a: &x [*x]\n",
		"routes: &r [*r]\n",
		"trusted_proxies: &t [*t]\n",
		"upstreams: {a: &u {targets: [*u]}}\n",
		"routes:\n  - &r {name: a, limits: *r}\n",
		"listen: ${A}${\n",
		"listen: $$${A}$\n",
		"? [a]\n: b\n",
		"upstreams: {? [a] : {targets: [http://x]}}\n",
		"--- !!map\n--- x\n",
		"limits: {json_max_depth: -.inf, max_conns_per_ip: 1e300}\n",
		"checks: {iplist: {<<: {deny: [x]}}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParse(t, data, config.Options{Lookup: goldenLookup})
		checkParse(t, data, config.Options{Lookup: goldenLookup, Middleware: true})
	})
}

func checkParse(t *testing.T, data []byte, opts config.Options) {
	const name = "fuzz.yaml"
	cfg, err := config.Parse(name, data, opts)
	if err == nil {
		if cfg == nil {
			t.Fatal("Parse returned neither a config nor an error")
		}
		if cfg.Source != name {
			t.Fatalf("Source = %q", cfg.Source)
		}
		// A valid config stays valid: validation is repeatable.
		if err := config.ValidateConfig(cfg, opts); err != nil {
			t.Fatalf("ValidateConfig after a successful Parse: %v", err)
		}
		return
	}
	for _, l := range strings.Split(err.Error(), "\n") {
		if !strings.HasPrefix(l, name+":") {
			t.Fatalf("error line %q does not start with %q\nfull error:\n%v", l, name+":", err)
		}
	}
}
