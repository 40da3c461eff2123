// Package gatewaytest starts a real gateway for tests outside package
// gateway (examples, bench, the demo): loopback listeners on free ports, a
// data dir of the test's own, shut down when the test ends.
package gatewaytest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/gateway"
)

// Gateway is a running gateway.
type Gateway struct {
	Server  *gateway.Server
	URL     string // http://host:port of the public listener
	Addr    string // host:port of the public listener
	DataDir string
}

// Start parses yaml (without listen, admin or data_dir, which it sets) and
// starts the gateway.
func Start(t testing.TB, yaml string) *Gateway {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse("test.yaml", []byte("listen: 127.0.0.1:0\n"+
		"admin: {listen: 127.0.0.1:0, token: test-admin-token-0123456789}\n"+
		"data_dir: "+dir+"\n"+yaml), config.Options{})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	srv, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	addr := srv.Addr("public")
	return &Gateway{Server: srv, URL: "http://" + addr, Addr: addr, DataDir: dir}
}
