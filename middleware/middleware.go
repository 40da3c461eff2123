// Package middleware runs apiguard's check pipeline inside a Go service as
// net/http middleware: the same config file, the same checks and the same
// problem responses as the gateway, with the wrapped handler in place of the
// upstream.
//
//	guard, err := middleware.Load("apiguard.yaml", middleware.Options{})
//	if err != nil { log.Fatal(err) }
//	defer guard.Close(context.Background())
//	handler, err := guard.Wrap(mux)
//	if err != nil { log.Fatal(err) }
//	http.ListenAndServe(":8080", handler)
//
// Routes in the file select per-route checks by host, path prefix and
// method; their upstream key is ignored. Requests no route matches get the
// global checks.
package middleware

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"

	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/events"
	"github.com/apiguard/apiguard/internal/gateway"
	"github.com/apiguard/apiguard/internal/state"
)

// Options tune the middleware.
type Options struct {
	// Logger receives events and errors; nil logs JSON to stderr.
	Logger *slog.Logger
	// LogRequests logs one event per request, not only denials.
	LogRequests bool
}

// Guard holds a loaded configuration; Wrap it around handlers.
type Guard struct {
	cfg   *config.Config
	bus   *events.Bus
	state state.Backend // shared by every handler this guard wraps
	opts  Options
}

// Load reads and validates a config file. The error lists every problem with
// file:line and field path.
func Load(path string, opts Options) (*Guard, error) {
	cfg, err := config.Load(path, config.Options{Middleware: true})
	if err != nil {
		return nil, err
	}
	return newGuard(cfg, opts)
}

// Parse is Load for YAML bytes; name appears in error positions.
func Parse(name string, yaml []byte, opts Options) (*Guard, error) {
	cfg, err := config.Parse(name, yaml, config.Options{Middleware: true})
	if err != nil {
		return nil, err
	}
	return newGuard(cfg, opts)
}

func newGuard(cfg *config.Config, opts Options) (*Guard, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	bus := events.NewBus(events.BusOptions{QueueSize: cfg.Events.QueueSize, Logger: opts.Logger})
	logRequests := opts.LogRequests
	bus.AddSink(events.NewLogSink(opts.Logger), func(e *events.Event) bool {
		return e.Kind != events.KindRequest || logRequests
	})
	st, err := gateway.NewStateBackend(cfg.State)
	if err != nil {
		_ = bus.Close(context.Background())
		return nil, err
	}
	return &Guard{cfg: cfg, bus: bus, state: st, opts: opts}, nil
}

// Wrap returns next guarded by the pipeline. Denied requests get an RFC 9457
// problem and never reach next.
func (g *Guard) Wrap(next http.Handler) (http.Handler, error) {
	return gateway.NewEngine(g.cfg, gateway.EngineOptions{Logger: g.opts.Logger, Events: g.bus, Terminal: next, State: g.state})
}

// Close flushes pending events and closes the state backend.
func (g *Guard) Close(ctx context.Context) error {
	return errors.Join(g.bus.Close(ctx), g.state.Close())
}
