package main

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/attest"
)

func TestKeysGenerate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, alg := range []string{"EdDSA", "ES256"} {
		out := filepath.Join(dir, alg+".pem")
		code, stdout, errOut := runCLI("keys", "generate", "--alg", alg, "--out", out)
		if code != exitOK || !strings.Contains(stdout, "key id") {
			t.Fatalf("%s: %d %s %s", alg, code, stdout, errOut)
		}
		fi, err := os.Stat(out)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: key file %v %v", alg, fi, err)
		}
		if _, err := attest.LoadKeyring([]attest.KeySource{{File: out}}, nil); err != nil {
			t.Fatalf("%s: generated key does not load: %v", alg, err)
		}
		// Never overwrite a key.
		if code, _, _ := runCLI("keys", "generate", "--out", out); code != exitRuntime {
			t.Fatalf("%s: overwrote an existing key file (exit %d)", alg, code)
		}
	}
	if code, pemOut, _ := runCLI("keys", "generate"); code != exitOK || !strings.HasPrefix(pemOut, "-----BEGIN PRIVATE KEY-----") {
		t.Fatalf("to stdout: %d %q", code, pemOut)
	}
	if code, _, _ := runCLI("keys", "generate", "--alg", "RS256"); code != exitUsage {
		t.Fatalf("RS256: exit %d", code)
	}
}

func TestAppRegistryCommands(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	bin := filepath.Join(t.TempDir(), "shop-cli")
	data := make([]byte, 5000)
	_, _ = rand.Read(data)
	_ = os.WriteFile(bin, data, 0o755)
	cli := func(args ...string) (int, string, string) {
		return runCLI(append(args, "--data-dir", dir)...)
	}
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"app", "list"}, exitRuntime, "no registry"},
		{[]string{"app", "create", "shop", "--providers", "integrity,pow", "--name", "Shop"}, exitOK, "created app shop"},
		{[]string{"app", "create", "shop"}, exitRuntime, "already exists"},
		{[]string{"app", "create", "x", "--providers", "magic"}, exitUsage, "unknown provider"},
		{[]string{"app", "create", "bad id!"}, exitUsage, "app ID is required"},
		{[]string{"app", "update", "shop", "--allow-debug", "--pow-difficulty", "12"}, exitOK, "updated app shop"},
		{[]string{"app", "update", "nope"}, exitRuntime, "no such app"},
		{[]string{"app", "register", "--app", "shop", "--file", bin, "--version", "1.0"}, exitOK, "registered binary release"},
		{[]string{"app", "register", "--app", "shop", "--file", bin}, exitRuntime, "already registered"},
		{[]string{"app", "register", "--app", "shop", "--apple-app-id", "6MURL8TA57.com.example.shop"}, exitOK, "apple-app-id"},
		{[]string{"app", "register", "--app", "shop", "--apple-app-id", "com.example.shop"}, exitUsage, "TEAMID.BUNDLEID"},
		{[]string{"app", "register", "--app", "shop", "--android-signer", "30:1A:A3:CB:08:11:34:50:1C:45:F1:42:2A:BC:66:C2:42:24:FD:5D:ED:5F:DC:8F:17:E6:97:17:6F:D8:66:AA"}, exitOK, "android-signer release 301aa3cb"},
		{[]string{"app", "register", "--app", "shop", "--android-signer", "abc"}, exitUsage, "SHA-256"},
		{[]string{"app", "register", "--app", "nope", "--apple-app-id", "6MURL8TA57.com.example.shop"}, exitRuntime, "no such app"},
		{[]string{"app", "register", "--app", "shop"}, exitUsage, "give --file"},
		{[]string{"app", "list"}, exitOK, "shop  Shop  integrity,pow  3         0"},
		{[]string{"app", "revoke", "--app", "shop", "--release", "6MURL8TA57.com.example.shop"}, exitOK, "revoked release"},
		{[]string{"app", "revoke", "--app", "shop", "--release", "6MURL8TA57.com.example.shop"}, exitRuntime, "no such release"},
		{[]string{"app", "revoke", "--app", "shop"}, exitUsage, "--release is required"},
	}
	for _, s := range steps {
		code, out, errOut := cli(s.args...)
		if code != s.code || !strings.Contains(out+errOut, s.want) {
			t.Fatalf("%v: exit %d (want %d)\nstdout %s\nstderr %s\nwant %q", s.args, code, s.code, out, errOut, s.want)
		}
	}
	_, out, _ := cli("app", "show", "shop")
	var shown struct {
		Policy   attest.Policy     `json:"policy"`
		Releases []*attest.Release `json:"releases"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("show: %v\n%s", err, out)
	}
	if !shown.Policy.AllowDebug || shown.Policy.PoWDifficulty != 12 || len(shown.Releases) != 3 {
		t.Fatalf("show: %+v", shown)
	}
	revoked := 0
	for _, r := range shown.Releases {
		if r.Revoked() {
			revoked++
			if r.Kind != attest.ReleaseAppleAppID {
				t.Fatalf("wrong release revoked: %+v", r)
			}
		}
	}
	if revoked != 1 {
		t.Fatalf("%d releases revoked", revoked)
	}
}
