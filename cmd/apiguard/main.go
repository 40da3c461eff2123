// Command apiguard protects HTTP APIs from abuse: a reverse proxy, a
// forward-auth service and (as a library) net/http middleware.
//
// This file only parses flags and wires packages; the logic lives in
// internal/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/gateway"
	"github.com/apiguard/apiguard/internal/state"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

const usage = `apiguard protects HTTP APIs from abuse.

Usage:
  apiguard serve -c apiguard.yaml        run from a config file
  apiguard serve --upstream URL          run in zero-config mode in front of URL
  apiguard check -c apiguard.yaml        validate a config file
  apiguard demo                          sample shop API behind the gateway with simulated clients
  apiguard ratelimit suggest             per-client rates seen per route, and suggested limits
  apiguard apikey create|list|revoke     manage API keys (shown once, stored hashed)
  apiguard decisions list|add|delete     block, challenge, throttle or allow a client (via the admin API)
  apiguard keys generate                 make an attestation token signing key
  apiguard app create|update|list|show|register|revoke   manage the attestation app registry
  apiguard version                       print the version

Run 'apiguard COMMAND --help' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "serve":
		return cmdServe(args[1:], stdout, stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(args[1:], stdout, stderr)
	case "ratelimit":
		return cmdRateLimit(args[1:], stdout, stderr)
	case "apikey":
		return cmdAPIKey(args[1:], stdout, stderr)
	case "decisions":
		return cmdDecisions(args[1:], stdout, stderr)
	case "keys":
		return cmdKeys(args[1:], stdout, stderr)
	case "app":
		return cmdApp(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "apiguard %s\n", version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "apiguard: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

// newFlagSet returns a flag set that prints its usage to stderr and reports
// errors instead of exiting.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags returns an exit code when the command should stop.
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, true
		}
		return exitUsage, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %v\n", fs.Args())
		fs.Usage()
		return exitUsage, true
	}
	return 0, false
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", "apiguard check -c FILE", stderr)
	file := fs.String("c", "", "config file to validate (required)")
	fs.StringVar(file, "config", "", "same as -c")
	mw := fs.Bool("middleware", false, "validate a config for the Go middleware (routes need no upstream)")
	if code, stop := parseFlags(fs, args); stop {
		return code
	}
	if *file == "" {
		fmt.Fprintln(stderr, "apiguard check: -c FILE is required")
		return exitUsage
	}
	cfg, err := config.Load(*file, config.Options{Middleware: *mw})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "%s: ok (%d routes, %d upstreams)\n", *file, len(cfg.Routes), len(cfg.Upstreams))
	return exitOK
}

func cmdServe(args []string, _, stderr io.Writer) int {
	fs := newFlagSet("serve", "apiguard serve -c FILE | apiguard serve --upstream URL [--listen ADDR] [--admin-listen ADDR] [--data-dir DIR]", stderr)
	file := fs.String("c", "", "config file")
	fs.StringVar(file, "config", "", "same as -c")
	upstream := fs.String("upstream", "", "zero-config mode: protect this upstream URL with safe defaults")
	listen := fs.String("listen", "", "public listen address (default "+config.DefaultListen+")")
	adminListen := fs.String("admin-listen", "", "admin listen address (default "+config.DefaultAdminListen+")")
	dataDir := fs.String("data-dir", "", "data directory (default "+config.DefaultDataDir+")")
	if code, stop := parseFlags(fs, args); stop {
		return code
	}
	var (
		cfg *config.Config
		err error
	)
	switch {
	case *file != "" && *upstream != "":
		fmt.Fprintln(stderr, "apiguard serve: use either -c FILE or --upstream URL, not both")
		return exitUsage
	case *file != "":
		cfg, err = config.Load(*file, config.Options{})
	case *upstream != "":
		cfg, err = zeroConfig(*upstream)
	default:
		fmt.Fprintln(stderr, "apiguard serve: -c FILE or --upstream URL is required")
		fs.Usage()
		return exitUsage
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	override := func(c *config.Config) {
		for p, v := range map[*string]string{&c.Listen: *listen, &c.Admin.Listen: *adminListen, &c.DataDir: *dataDir} {
			if v != "" {
				*p = v
			}
		}
	}
	if *listen != "" || *adminListen != "" || *dataDir != "" {
		override(cfg)
		if err := config.ValidateConfig(cfg, config.Options{}); err != nil {
			fmt.Fprintln(stderr, err)
			return exitUsage
		}
	}

	log := newLogger(cfg, stderr)
	state.SetClientLogger(log)
	srv, err := gateway.New(cfg, gateway.Options{Logger: log, Version: version, ConfigPath: *file, Override: override})
	if err != nil {
		log.Error("cannot start", "error", err.Error())
		return exitRuntime
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var watcher *reloadWatcher
	if *file != "" {
		// Watch before serving, so no change made after "started" is missed.
		watcher = newReloadWatcher(*file, log)
	}
	if err := srv.Start(ctx); err != nil {
		log.Error("cannot start", "error", err.Error())
		_ = srv.Shutdown(context.Background())
		return exitRuntime
	}
	if watcher != nil {
		go watcher.run(ctx, srv)
	} else {
		// Zero-config mode has nothing to reload; SIGHUP must not kill it.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for range hup {
				log.Info("SIGHUP ignored: zero-config mode has no config file to reload")
			}
		}()
	}
	<-ctx.Done()
	log.Info("shutting down: draining in-flight requests")
	if err := srv.Shutdown(context.Background()); err != nil {
		log.Error("shutdown", "error", err.Error())
		return exitRuntime
	}
	return exitOK
}

// zeroConfig protects one upstream with the defaults: limits on, no checks.
func zeroConfig(upstream string) (*config.Config, error) {
	cfg := &config.Config{
		Source:    "--upstream",
		Upstreams: map[string]*config.Upstream{"default": {Targets: []string{upstream}}},
		Routes:    []*config.Route{{Name: "default", PathPrefix: "/", Upstream: "default"}},
	}
	cfg.ApplyDefaults()
	if err := config.ValidateConfig(cfg, config.Options{}); err != nil {
		return nil, err
	}
	return cfg, nil
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// reloadWatcher reloads on SIGHUP and when the config file changes. Editors
// replace files, so the directory is watched and events are debounced.
type reloadWatcher struct {
	file    string
	log     *slog.Logger
	hup     chan os.Signal
	w       *fsnotify.Watcher
	changes <-chan fsnotify.Event
}

func newReloadWatcher(file string, log *slog.Logger) *reloadWatcher {
	rw := &reloadWatcher{file: file, log: log, hup: make(chan os.Signal, 1)}
	signal.Notify(rw.hup, syscall.SIGHUP)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Warn("cannot watch the config file; reload with SIGHUP", "error", err.Error())
		return rw
	}
	if err := w.Add(filepath.Dir(file)); err != nil {
		log.Warn("cannot watch config directory; reload with SIGHUP", "error", err.Error())
		_ = w.Close()
		return rw
	}
	rw.w, rw.changes = w, w.Events
	return rw
}

func (rw *reloadWatcher) run(ctx context.Context, srv *gateway.Server) {
	defer signal.Stop(rw.hup)
	if rw.w != nil {
		defer rw.w.Close()
	}
	abs, _ := filepath.Abs(rw.file)
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-rw.hup:
			_ = srv.Reload()
		case ev := <-rw.changes:
			if p, _ := filepath.Abs(ev.Name); p == abs && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
				debounce = time.After(250 * time.Millisecond)
			}
		case <-debounce:
			debounce = nil
			_ = srv.Reload()
		}
	}
}
