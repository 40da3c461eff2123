package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"
	"time"

	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/demo"
	"github.com/apiguard/apiguard/internal/events"
	"github.com/apiguard/apiguard/internal/gateway"
)

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", "apiguard demo [--listen ADDR] [--admin-listen ADDR] [--duration D] [--traffic=true|false] [--json] [--data-dir DIR]", stderr)
	listen := fs.String("listen", config.DefaultListen, "public listen address of the gateway")
	adminListen := fs.String("admin-listen", config.DefaultAdminListen, "admin listen address")
	duration := fs.Duration("duration", 20*time.Second, "how long the simulated clients run")
	traffic := fs.Bool("traffic", true, "run simulated genuine and attacking clients, then print the summary (false: serve until interrupted)")
	asJSON := fs.Bool("json", false, "print the summary as one JSON object on stdout (logs go to stderr)")
	dataDir := fs.String("data-dir", config.DefaultDataDir, "data directory (event store, admin token)")
	verbose := fs.Bool("v", false, "log gateway events to stderr")
	if code, stop := parseFlags(fs, args); stop {
		return code
	}
	// The demo's own messages (URLs, admin token in --json mode) are Info;
	// the gateway's event lines only with -v.
	gwLevel := slog.LevelWarn
	if *verbose {
		gwLevel = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	gwLog := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: gwLevel}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := demo.Run(ctx, demo.Options{
		Listen: *listen, AdminListen: *adminListen, DataDir: *dataDir,
		Duration: *duration, Traffic: *traffic, JSON: *asJSON,
		Out: stdout, Log: log,
		Start: func(ctx context.Context, cfg *config.Config) (demo.Gateway, error) {
			return startDemoGateway(ctx, cfg, gwLog)
		},
	})
	if err != nil {
		fmt.Fprintln(stderr, "apiguard demo:", err)
		return exitRuntime
	}
	return exitOK
}

// demoGateway adapts gateway.Server to what the demo needs.
type demoGateway struct {
	srv   *gateway.Server
	stats *gateway.StatsSink
}

func startDemoGateway(ctx context.Context, cfg *config.Config, log *slog.Logger) (*demoGateway, error) {
	stats := gateway.NewStatsSink(200_000)
	srv, err := gateway.New(cfg, gateway.Options{Logger: log, Version: version, ExtraSinks: []events.Sink{stats}})
	if err != nil {
		return nil, err
	}
	if err := srv.Start(ctx); err != nil {
		_ = srv.Shutdown(context.Background())
		return nil, err
	}
	return &demoGateway{srv: srv, stats: stats}, nil
}

func (g *demoGateway) PublicURL() string { return "http://" + g.srv.Addr("public") }
func (g *demoGateway) AdminURL() string  { return "http://" + g.srv.Addr("admin") }

func (g *demoGateway) Stats() demo.GatewayStats {
	n, q := g.stats.Snapshot(0.5, 0.99)
	return demo.GatewayStats{Requests: n, P50: q[0], P99: q[1]}
}

func (g *demoGateway) Shutdown(ctx context.Context) error { return g.srv.Shutdown(ctx) }
