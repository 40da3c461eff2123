// Package demo is `apiguard demo`: a sample shop API with deliberate
// security holes, put behind the gateway with examples/demo/apiguard.yaml,
// and simulated genuine and attacking clients whose fate is summarised at
// the end. The gateway itself is injected (Options.Start), so this package
// does not import it.
package demo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	demoassets "github.com/apiguard/apiguard/examples/demo"
	"github.com/apiguard/apiguard/internal/config"
)

// Gateway is a running gateway, as the demo needs it.
type Gateway interface {
	// PublicURL is the public listener's base URL, e.g. http://127.0.0.1:8080.
	PublicURL() string
	// AdminURL is the admin listener's base URL.
	AdminURL() string
	// Stats returns the gateway-side request count and latency percentiles.
	// The demo calls it after Shutdown, once the gateway's event pipeline
	// has been flushed.
	Stats() GatewayStats
	Shutdown(ctx context.Context) error
}

// GatewayStats are the gateway's own measurements.
type GatewayStats struct {
	Requests int64
	P50, P99 time.Duration
}

// StartFunc starts a gateway for cfg; it returns once the listeners accept
// connections. cmd/apiguard injects the real one.
type StartFunc func(ctx context.Context, cfg *config.Config) (Gateway, error)

// Options configure Run. Zero values take the defaults.
type Options struct {
	Listen      string // default 127.0.0.1:8080
	AdminListen string // default 127.0.0.1:9090
	DataDir     string // default ./apiguard-data
	// Duration of the simulated traffic (default 20s).
	Duration time.Duration
	// Traffic runs the simulated clients, then prints the summary and
	// returns. Without it the demo serves until ctx is cancelled.
	Traffic bool
	// JSON prints the summary as one JSON object and nothing else on Out;
	// the URLs and the admin token then go to Log.
	JSON bool
	Out  io.Writer    // default os.Stdout
	Log  *slog.Logger // default: discard
	// Start starts the gateway (required).
	Start StartFunc
	// Scenarios replace DefaultScenarios when not nil.
	Scenarios []Scenario
}

var errNoStart = errors.New("demo: Options.Start is nil: no gateway to start")

const (
	defaultDuration = 20 * time.Second
	shutdownTimeout = 10 * time.Second
)

func (o *Options) defaults() {
	if o.Listen == "" {
		o.Listen = config.DefaultListen
	}
	if o.AdminListen == "" {
		o.AdminListen = config.DefaultAdminListen
	}
	if o.DataDir == "" {
		o.DataDir = config.DefaultDataDir
	}
	if o.Duration <= 0 {
		o.Duration = defaultDuration
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Scenarios == nil {
		o.Scenarios = DefaultScenarios()
	}
}

// ConfigVars are the values the demo config references as ${DEMO_*}.
type ConfigVars struct {
	ShopURL     string // DEMO_SHOP_URL
	Listen      string // DEMO_LISTEN
	AdminListen string // DEMO_ADMIN_LISTEN
	DataDir     string // DEMO_DATA_DIR
	AdminToken  string // DEMO_ADMIN_TOKEN (at least 16 characters)
}

// SpecFile is the shop's OpenAPI description in the data directory
// (apiguard.yaml: checks.openapi.spec).
const SpecFile = "shop.openapi.yaml"

// WriteSpec writes examples/demo/openapi.yaml to dataDir/SpecFile, where
// the demo config expects it.
func WriteSpec(dataDir string) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("demo: data dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, SpecFile), demoassets.OpenAPI, 0o600); err != nil {
		return fmt.Errorf("demo: write the shop's spec: %w", err)
	}
	return nil
}

// LoadConfig parses the embedded examples/demo/apiguard.yaml with vars;
// other ${NAME} references fall back to the environment.
func LoadConfig(vars ConfigVars) (*config.Config, error) {
	m := map[string]string{
		"DEMO_SHOP_URL":     vars.ShopURL,
		"DEMO_LISTEN":       vars.Listen,
		"DEMO_ADMIN_LISTEN": vars.AdminListen,
		"DEMO_DATA_DIR":     vars.DataDir,
		"DEMO_ADMIN_TOKEN":  vars.AdminToken,
	}
	lookup := func(name string) (string, bool) {
		if v, ok := m[name]; ok {
			return v, true
		}
		return os.LookupEnv(name)
	}
	return config.Parse(demoassets.ConfigName, demoassets.Config, config.Options{Lookup: lookup})
}

// Run starts the shop and the gateway in front of it, prints where to reach
// them, and either drives the simulated traffic and prints the summary, or
// serves until ctx is cancelled.
func Run(ctx context.Context, o Options) (err error) {
	o.defaults()
	if o.Start == nil {
		return errNoStart
	}

	shop, err := NewShop()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: shop listener: %w", err)
	}
	srv := &http.Server{
		Handler:           shop,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.Log.Error("demo shop stopped", "err", err)
		}
	}()
	shopURL := "http://" + ln.Addr().String()
	// Runs after the gateway's shutdown, which drained the requests in flight.
	defer srv.Close()
	o.Log.Debug("demo shop listening (reachable only through the gateway)", "url", shopURL)

	// The config names the attestation key file and the shop's spec, so
	// they must exist first.
	kit, err := prepareAttestation(ctx, o.DataDir)
	if err != nil {
		return err
	}
	if err := WriteSpec(o.DataDir); err != nil {
		return err
	}
	token := rand.Text() // 26 base32 characters, 130 bits
	cfg, err := LoadConfig(ConfigVars{ShopURL: shopURL, Listen: o.Listen, AdminListen: o.AdminListen, DataDir: o.DataDir, AdminToken: token})
	if err != nil {
		return fmt.Errorf("demo: config: %w", err)
	}
	kit.issuer = defaultAttestIssuer
	if cfg.Attestation != nil && cfg.Attestation.Issuer != "" {
		kit.issuer = cfg.Attestation.Issuer
	}
	gw, err := o.Start(ctx, cfg)
	if err != nil {
		return fmt.Errorf("demo: start gateway: %w", err)
	}
	stopped := false
	stop := func() error {
		stopped = true
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		if err := gw.Shutdown(sctx); err != nil {
			return fmt.Errorf("demo: gateway shutdown: %w", err)
		}
		return nil
	}
	defer func() {
		if !stopped {
			if serr := stop(); err == nil {
				err = serr
			}
		}
	}()

	printBanner(o, gw, token)
	if !o.Traffic {
		<-ctx.Done()
		return nil
	}

	tctx, cancel := context.WithTimeout(ctx, o.Duration)
	start := time.Now()
	hc := newTrafficClient()
	w := &world{signer: shop.signer, idp: shop.idp, captured: make(chan capturedRequest, 16), tokens: make(chan capturedToken, 16), attest: kit}
	results := runScenarios(tctx, gw.PublicURL(), hc, o.Log, w, o.Scenarios)
	cancel()
	ran := time.Since(start)
	// Connections dialled for requests the end of the run cancelled would
	// otherwise hold up the gateway's graceful shutdown.
	hc.CloseIdleConnections()
	// Stats are read after the shutdown, which flushes the gateway's
	// asynchronous event pipeline, so the count includes the last requests.
	serr := stop()
	sum := newSummary(results, gw.Stats(), ran)
	if o.JSON {
		err = sum.writeJSON(o.Out)
	} else {
		err = sum.writeTable(o.Out)
	}
	return errors.Join(err, serr)
}

// printBanner tells the user where things are. With JSON output it goes to
// the log, so stdout carries the JSON object only.
func printBanner(o Options, gw Gateway, token string) {
	pub, adm := gw.PublicURL(), gw.AdminURL()
	if o.JSON {
		o.Log.Info("apiguard demo running",
			"gateway_url", pub, "admin_url", adm, "admin_token", token,
			"users", "alice, bob, carol (admin)", "password", DemoPassword)
		return
	}
	w := o.Out
	fmt.Fprintf(w, "apiguard demo: a sample shop API is running behind apiguard.\n\n")
	fmt.Fprintf(w, "  shop API (via apiguard)  %s/api/products\n", pub)
	fmt.Fprintf(w, "  admin API                %s   (Authorization: Bearer <admin token>)\n", adm)
	fmt.Fprintf(w, "  admin token              %s\n", token)
	fmt.Fprintf(w, "  demo users               alice, bob, carol (admin), password %q\n\n", DemoPassword)
	fmt.Fprintf(w, "Try:\n")
	fmt.Fprintf(w, "  curl -s %s/api/products\n", pub)
	fmt.Fprintf(w, "  curl -s -X POST -H 'Content-Type: application/json' -d '{\"username\":\"alice\",\"password\":%q}' %s/api/login\n", DemoPassword, pub)
	fmt.Fprintf(w, "  curl -s %s/api/admin/users   # refused: not from the office network\n", pub)
	fmt.Fprintf(w, "  curl -s -H 'Authorization: Bearer %s' %s/metrics\n\n", token, adm)
	if o.Traffic {
		fmt.Fprintf(w, "Simulating genuine and attacking clients for %s...\n\n", o.Duration)
	} else {
		fmt.Fprintf(w, "Serving until interrupted (Ctrl-C).\n")
	}
}
