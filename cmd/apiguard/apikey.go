package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apiguard/apiguard/internal/checks/apikey"
	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/gateway"
	"github.com/apiguard/apiguard/internal/state"
)

const apikeyUsage = `Usage:
  apiguard apikey create --name NAME [--scopes a,b] [--expires DURATION] [-c FILE | --data-dir DIR | --dsn URL]
  apiguard apikey list [-c FILE | --data-dir DIR | --dsn URL]
  apiguard apikey revoke ID [-c FILE | --data-dir DIR | --dsn URL]
`

func cmdAPIKey(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, apikeyUsage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	verb, rest := args[0], args[1:]
	fs := newFlagSet("apikey "+verb, strings.TrimSpace(apikeyUsage), stderr)
	file := fs.String("c", "", "config file: use the key store (event store) and state backend it names")
	dataDir := fs.String("data-dir", "", "use <data-dir>/events.db (default "+config.DefaultDataDir+")")
	dsn := fs.String("dsn", "", "use a PostgreSQL key store")
	name := fs.String("name", "", "create: a name for the key (shown in events, never secret)")
	scopes := fs.String("scopes", "", "create: comma-separated scopes")
	expires := fs.Duration("expires", 0, "create: lifetime, e.g. 720h (default: no expiry)")
	var id string
	if verb == "revoke" && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		id, rest = rest[0], rest[1:]
	}
	if code, stop := parseFlags(fs, rest); stop {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, backend, err := openKeyStore(ctx, *file, *dataDir, *dsn, verb == "create")
	var cfgErr *field.ListError
	switch {
	case errors.As(err, &cfgErr):
		fmt.Fprintln(stderr, err)
		return exitUsage
	case err != nil:
		fmt.Fprintln(stderr, "apiguard apikey:", err)
		return exitRuntime
	}
	defer store.Close()
	if backend != nil {
		defer backend.Close()
	}

	switch verb {
	case "create":
		if *name == "" {
			fmt.Fprintln(stderr, "apiguard apikey create: --name is required")
			return exitUsage
		}
		var sc []string
		for _, s := range strings.Split(*scopes, ",") {
			if s = strings.TrimSpace(s); s != "" {
				sc = append(sc, s)
			}
		}
		plain, k := apikey.Generate(*name, sc, *expires, time.Now())
		if err := store.Create(ctx, k); err != nil {
			fmt.Fprintln(stderr, "apiguard apikey create:", err)
			return exitRuntime
		}
		apikey.Announce(ctx, backend)
		fmt.Fprintf(stderr, "created key %s (%s); it is shown once: store it now\n", k.ID, k.Name)
		fmt.Fprintln(stdout, plain)
	case "list":
		keys, err := store.List(ctx)
		if err != nil {
			fmt.Fprintln(stderr, "apiguard apikey list:", err)
			return exitRuntime
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tCREATED\tEXPIRES\tSTATUS")
		for _, k := range keys {
			status := "active"
			switch {
			case !k.RevokedAt.IsZero():
				status = "revoked " + k.RevokedAt.Format(time.RFC3339)
			case !k.ExpiresAt.IsZero() && time.Now().After(k.ExpiresAt):
				status = "expired"
			}
			exp := "-"
			if !k.ExpiresAt.IsZero() {
				exp = k.ExpiresAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, strings.Join(k.Scopes, ","), k.CreatedAt.Format(time.RFC3339), exp, status)
		}
		_ = tw.Flush()
	case "revoke":
		if id == "" {
			fmt.Fprintln(stderr, "apiguard apikey revoke: the key ID is required (see apiguard apikey list)")
			return exitUsage
		}
		if err := store.Revoke(ctx, id, time.Now()); err != nil {
			fmt.Fprintln(stderr, "apiguard apikey revoke:", err)
			return exitRuntime
		}
		apikey.Announce(ctx, backend)
		fmt.Fprintf(stdout, "revoked %s\n", id)
	default:
		fmt.Fprintf(stderr, "apiguard apikey: unknown command %q\n\n%s", verb, apikeyUsage)
		return exitUsage
	}
	return exitOK
}

// openKeyStore opens the key table a config (or flag) names, and the state
// backend to announce changes on, when the config has a shared one.
func openKeyStore(ctx context.Context, file, dataDir, dsn string, create bool) (*apikey.Store, state.Backend, error) {
	switch {
	case dsn != "":
		s, err := apikey.OpenStore(ctx, "postgres", dsn)
		return s, nil, err
	case file != "":
		cfg, err := config.Load(file, config.Options{})
		if err != nil {
			return nil, nil, err
		}
		driver, loc, err := gateway.KeyStoreLocation(cfg)
		if err != nil {
			return nil, nil, err
		}
		s, err := apikey.OpenStore(ctx, driver, loc)
		if err != nil {
			return nil, nil, err
		}
		var b state.Backend
		if cfg.State.Backend == "redis" {
			b, _ = gateway.NewStateBackend(cfg.State)
		}
		return s, b, nil
	}
	if dataDir == "" {
		dataDir = config.DefaultDataDir
	}
	path := filepath.Join(dataDir, "events.db")
	if _, err := os.Stat(path); err != nil && !create {
		return nil, nil, fmt.Errorf("no key store at %s (is this the gateway's data dir?)", path)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, nil, err
	}
	s, err := apikey.OpenStore(ctx, "sqlite", path)
	return s, nil, err
}
