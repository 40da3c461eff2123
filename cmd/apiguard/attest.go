package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apiguard/apiguard/internal/attest"
	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/gateway"
)

const keysUsage = `Usage:
  apiguard keys generate [--alg EdDSA|ES256] [--out FILE]
`

// cmdKeys makes attestation token signing keys.
func cmdKeys(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, keysUsage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] != "generate" {
		fmt.Fprintf(stderr, "apiguard keys: unknown command %q\n\n%s", args[0], keysUsage)
		return exitUsage
	}
	fs := newFlagSet("keys generate", strings.TrimSpace(keysUsage), stderr)
	alg := fs.String("alg", "EdDSA", "EdDSA (Ed25519) or ES256 (P-256)")
	out := fs.String("out", "", "write the private key to FILE (mode 0600) instead of stdout")
	if code, stop := parseFlags(fs, args[1:]); stop {
		return code
	}
	pemBytes, kid, err := attest.GenerateKey(*alg)
	if err != nil {
		fmt.Fprintln(stderr, "apiguard keys generate:", err)
		return exitUsage
	}
	if *out == "" {
		_, _ = stdout.Write(pemBytes)
		fmt.Fprintf(stderr, "key id %s\n", kid)
		return exitOK
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		fmt.Fprintln(stderr, "apiguard keys generate:", err)
		return exitRuntime
	}
	_, err = f.Write(pemBytes)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(stderr, "apiguard keys generate:", err)
		return exitRuntime
	}
	fmt.Fprintf(stdout, "wrote %s (key id %s)\n", *out, kid)
	return exitOK
}

const appUsage = `Usage:
  apiguard app create ID [--name N] [--providers appattest,keyattest,integrity,pow] [--android-package P,...] [policy flags]
  apiguard app update ID [--name N] [--providers ...] [--android-package ...] [policy flags]
  apiguard app list
  apiguard app show ID
  apiguard app register --app ID --file BINARY [--version V]      a release binary (integrity)
  apiguard app register --app ID --apple-app-id TEAMID.BUNDLEID   an iOS app (appattest)
  apiguard app register --app ID --android-signer SHA256HEX|--android-cert FILE   an Android signing certificate (keyattest)
  apiguard app revoke --app ID --release RELEASE
Every command takes [-c FILE | --data-dir DIR | --dsn URL] to find the registry (the event store).
Policy flags: --allow-debug --allow-emulator --allow-unlocked --require-strongbox --min-patch-level YYYYMM --pow-difficulty BITS
`

var (
	appIDPattern   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
	appleAppIDExpr = regexp.MustCompile(`^[A-Z0-9]{10}\.[A-Za-z0-9.-]+$`)
)

// cmdApp manages the attestation app registry.
func cmdApp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, appUsage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	verb, rest := args[0], args[1:]
	fs := newFlagSet("app "+verb, strings.TrimSpace(appUsage), stderr)
	file := fs.String("c", "", "config file: use the event store it names")
	dataDir := fs.String("data-dir", "", "use <data-dir>/events.db (default "+config.DefaultDataDir+")")
	dsn := fs.String("dsn", "", "use a PostgreSQL event store")
	name := fs.String("name", "", "create, update: display name")
	providers := fs.String("providers", "appattest,keyattest,integrity", "create, update: allowed providers")
	packages := fs.String("android-package", "", "create, update: Android package names, comma-separated")
	allowDebug := fs.Bool("allow-debug", false, "accept Apple development (debug) builds")
	allowEmulator := fs.Bool("allow-emulator", false, "accept Android keys attested in software (emulators)")
	allowUnlocked := fs.Bool("allow-unlocked", false, "accept Android devices with an unlocked bootloader or unverified boot")
	strongBox := fs.Bool("require-strongbox", false, "demand Android StrongBox")
	patch := fs.Int("min-patch-level", 0, "oldest Android OS patch level accepted, YYYYMM")
	difficulty := fs.Int("pow-difficulty", 0, "proof-of-work difficulty in bits (0: the service default)")
	appFlag := fs.String("app", "", "register, revoke: the app id")
	binary := fs.String("file", "", "register: a release binary")
	version := fs.String("version", "", "register: the release's version, for people")
	appleID := fs.String("apple-app-id", "", "register: TEAMID.BUNDLEID")
	signer := fs.String("android-signer", "", "register: SHA-256 (hex) of the app signing certificate")
	signerCert := fs.String("android-cert", "", "register: the app signing certificate (PEM or DER)")
	releaseID := fs.String("release", "", "revoke: the release id (see app show)")
	var id string
	if (verb == "create" || verb == "update" || verb == "show") && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		id, rest = rest[0], rest[1:]
	}
	if code, stop := parseFlags(fs, rest); stop {
		return code
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	usageErr := func(msg string) int {
		fmt.Fprintf(stderr, "apiguard app %s: %s\n", verb, msg)
		return exitUsage
	}
	switch verb {
	case "create", "update", "show":
		if !appIDPattern.MatchString(id) {
			return usageErr("the app ID is required: 1-128 of [A-Za-z0-9_.-]")
		}
	case "register", "revoke":
		if !appIDPattern.MatchString(*appFlag) {
			return usageErr("--app ID is required")
		}
	case "list":
	default:
		fmt.Fprintf(stderr, "apiguard app: unknown command %q\n\n%s", verb, appUsage)
		return exitUsage
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := openRegistry(ctx, *file, *dataDir, *dsn, verb == "create")
	var cfgErr *field.ListError
	switch {
	case errors.As(err, &cfgErr):
		fmt.Fprintln(stderr, err)
		return exitUsage
	case err != nil:
		fmt.Fprintln(stderr, "apiguard app:", err)
		return exitRuntime
	}
	defer store.Close()
	now := time.Now().UTC()
	fail := func(err error) int {
		fmt.Fprintf(stderr, "apiguard app %s: %v\n", verb, err)
		return exitRuntime
	}

	switch verb {
	case "create", "update":
		app := &attest.App{ID: id, CreatedAt: now}
		if verb == "update" {
			if app, err = store.App(ctx, id); err != nil {
				return fail(err)
			}
		}
		app.UpdatedAt = now
		if set["name"] || verb == "create" {
			app.Name = *name
		}
		if set["providers"] || verb == "create" {
			app.Providers = nil
			for _, p := range splitList(*providers) {
				if !slices.Contains(attest.Providers, p) {
					return usageErr(fmt.Sprintf("unknown provider %q (%s)", p, strings.Join(attest.Providers, ", ")))
				}
				app.Providers = append(app.Providers, p)
			}
		}
		if set["android-package"] {
			app.AndroidPackages = splitList(*packages)
		}
		pol := &app.Policy
		for flagName, apply := range map[string]func(){
			"allow-debug":       func() { pol.AllowDebug = *allowDebug },
			"allow-emulator":    func() { pol.AllowEmulator = *allowEmulator },
			"allow-unlocked":    func() { pol.AllowUnlocked = *allowUnlocked },
			"require-strongbox": func() { pol.RequireStrongBox = *strongBox },
			"min-patch-level":   func() { pol.MinPatchLevel = *patch },
			"pow-difficulty":    func() { pol.PoWDifficulty = *difficulty },
		} {
			if set[flagName] {
				apply()
			}
		}
		if pol.PoWDifficulty < 0 || pol.PoWDifficulty > 32 {
			return usageErr("--pow-difficulty must be 0..32")
		}
		if err := store.PutApp(ctx, app, verb == "create"); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "%sd app %s (providers %s)\n", verb, id, strings.Join(app.Providers, ","))
	case "list":
		apps, err := store.Apps(ctx)
		if err != nil {
			return fail(err)
		}
		rels, err := store.Releases(ctx, "")
		if err != nil {
			return fail(err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tPROVIDERS\tRELEASES\tREVOKED")
		for _, a := range apps {
			n, r := 0, 0
			for _, rel := range rels {
				if rel.AppID == a.ID {
					n++
					if rel.Revoked() {
						r++
					}
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", a.ID, a.Name, strings.Join(a.Providers, ","), n, r)
		}
		_ = tw.Flush()
	case "show":
		app, err := store.App(ctx, id)
		if err != nil {
			return fail(err)
		}
		rels, err := store.Releases(ctx, id)
		if err != nil {
			return fail(err)
		}
		out, _ := json.MarshalIndent(struct {
			*attest.App
			Releases []*attest.Release `json:"releases"`
		}{app, rels}, "", "  ")
		fmt.Fprintln(stdout, string(out))
	case "register":
		var rel *attest.Release
		switch {
		case *binary != "":
			data, err := os.ReadFile(*binary)
			if err != nil {
				return fail(err)
			}
			if rel, err = store.RegisterBinary(ctx, *appFlag, *version, data, now); err != nil {
				return fail(err)
			}
		case *appleID != "":
			if !appleAppIDExpr.MatchString(*appleID) {
				return usageErr("--apple-app-id must be TEAMID.BUNDLEID (a 10-character team id)")
			}
			rel = &attest.Release{AppID: *appFlag, Kind: attest.ReleaseAppleAppID, ID: *appleID, Version: *version, CreatedAt: now}
		case *signer != "" || *signerCert != "":
			digest := strings.ToLower(strings.ReplaceAll(*signer, ":", ""))
			if *signerCert != "" {
				if digest, err = certDigest(*signerCert); err != nil {
					return fail(err)
				}
			}
			if b, err := hex.DecodeString(digest); err != nil || len(b) != sha256.Size {
				return usageErr("--android-signer must be a SHA-256 digest in hex")
			}
			rel = &attest.Release{AppID: *appFlag, Kind: attest.ReleaseAndroidSigner, ID: digest, Version: *version, CreatedAt: now}
		default:
			return usageErr("give --file, --apple-app-id or --android-signer/--android-cert")
		}
		if rel.Kind != attest.ReleaseBinary {
			if _, err := store.App(ctx, *appFlag); err != nil {
				return fail(err)
			}
			if err := store.AddRelease(ctx, rel, nil); err != nil {
				return fail(err)
			}
		}
		fmt.Fprintf(stdout, "registered %s release %s of %s\n", rel.Kind, rel.ID, rel.AppID)
	case "revoke":
		if *releaseID == "" {
			return usageErr("--release is required (see apiguard app show ID)")
		}
		if err := store.RevokeRelease(ctx, *appFlag, *releaseID, now); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "revoked release %s of %s: no new tokens from now; tokens already issued expire at their exp\n", *releaseID, *appFlag)
	}
	return exitOK
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// certDigest is the SHA-256 (hex) of a certificate file's DER.
func certDigest(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	if _, err := x509.ParseCertificate(b); err != nil {
		return "", fmt.Errorf("%s: not a certificate: %w", path, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// openRegistry opens the app registry in the event store a config (or flag)
// names.
func openRegistry(ctx context.Context, file, dataDir, dsn string, create bool) (*attest.Store, error) {
	switch {
	case dsn != "":
		return attest.OpenStore(ctx, "postgres", dsn)
	case file != "":
		cfg, err := config.Load(file, config.Options{})
		if err != nil {
			return nil, err
		}
		driver, loc, err := gateway.KeyStoreLocation(cfg)
		if err != nil {
			return nil, err
		}
		return attest.OpenStore(ctx, driver, loc)
	}
	if dataDir == "" {
		dataDir = config.DefaultDataDir
	}
	path := filepath.Join(dataDir, "events.db")
	if _, err := os.Stat(path); err != nil && !create {
		return nil, fmt.Errorf("no registry at %s (is this the gateway's data dir?)", path)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	return attest.OpenStore(ctx, "sqlite", path)
}
