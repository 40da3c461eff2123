package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/attest"
	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/events"
	"github.com/apiguard/apiguard/internal/gateway"
	"github.com/apiguard/apiguard/internal/testutil"
)

// TestPrepareAttestation: the key, the binaries and the registry entries
// are made once and kept by later runs on the same data directory.
func TestPrepareAttestation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()
	k1, err := prepareAttestation(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	key1, err := os.ReadFile(filepath.Join(dir, AttestKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, AttestKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v %v", fi.Mode(), err)
	}
	k2, err := prepareAttestation(ctx, dir)
	if err != nil {
		t.Fatalf("second run on the same data dir: %v", err)
	}
	key2, _ := os.ReadFile(filepath.Join(dir, AttestKeyFile))
	if !bytes.Equal(key1, key2) || k1.release != k2.release || k1.keys.SignerKeyID() != k2.keys.SignerKeyID() {
		t.Error("the second run changed the key or the release")
	}

	genuine, _ := os.ReadFile(k1.genuine)
	tampered, _ := os.ReadFile(k1.tampered)
	if len(genuine) != shopAppSize || len(tampered) != shopAppSize {
		t.Fatalf("binaries of %d and %d bytes", len(genuine), len(tampered))
	}
	diff := 0
	for i := range genuine {
		if genuine[i] != tampered[i] {
			diff++
		}
	}
	if diff != 1 {
		t.Errorf("the tampered copy differs in %d bytes, want 1", diff)
	}

	store, err := attest.OpenStore(ctx, "sqlite", filepath.Join(dir, eventsDB))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	app, err := store.App(ctx, ShopAppID)
	if err != nil || !app.Allows(attest.ProviderIntegrity) {
		t.Fatalf("app %+v, %v", app, err)
	}
	rels, err := store.Releases(ctx, ShopAppID)
	if err != nil || len(rels) != 1 || rels[0].ID != k1.release || rels[0].Version != ShopAppVersion || rels[0].Revoked() {
		t.Fatalf("releases %+v, %v", rels, err)
	}
}

// realGateway is the gateway cmd/apiguard starts for the demo.
type realGateway struct {
	srv   *gateway.Server
	stats *gateway.StatsSink
}

func (g *realGateway) PublicURL() string { return "http://" + g.srv.Addr("public") }
func (g *realGateway) AdminURL() string  { return "http://" + g.srv.Addr("admin") }
func (g *realGateway) Stats() GatewayStats {
	n, q := g.stats.Snapshot(0.5, 0.99)
	return GatewayStats{Requests: n, P50: q[0], P99: q[1]}
}
func (g *realGateway) Shutdown(ctx context.Context) error { return g.srv.Shutdown(ctx) }

func startReal(ctx context.Context, cfg *config.Config) (Gateway, error) {
	stats := gateway.NewStatsSink(200_000)
	srv, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler), ExtraSinks: []events.Sink{stats}})
	if err != nil {
		return nil, err
	}
	if err := srv.Start(ctx); err != nil {
		_ = srv.Shutdown(context.Background())
		return nil, err
	}
	return &realGateway{srv: srv, stats: stats}, nil
}

// appTransfers is a test scenario: alice's app transferring steadily, so
// the replayed-attestation attacker has genuine tokens to capture.
type appTransfers struct {
	sent, ok atomic.Int64
}

func (s *appTransfers) scenario() Scenario {
	return Scenario{Name: "app-transfers", Kind: Genuine, Description: "alice's app transfers", Run: func(ctx context.Context, c *Client) {
		a := c.AttestedAgent("84.17.40.24", uaShopAppIOS, appHeaders("de-DE"), c.attest.genuine)
		if r := a.Login(ctx, "alice", DemoPassword); !r.OK() {
			return
		}
		for think(ctx, 200*time.Millisecond, 500*time.Millisecond) {
			r := a.SignedPostJSON(ctx, "/api/transfer", map[string]any{"to": transferPayees[0], "amount": 12.5, "currency": "EUR"})
			if r.Err != nil && ctx.Err() != nil {
				return
			}
			s.sent.Add(1)
			if r.Status == http.StatusOK {
				s.ok.Add(1)
			}
		}
	}}
}

// TestRunAttestation runs the demo against the real gateway and checks the
// attestation scenarios: genuine apps attest and every transfer passes;
// each attack is refused every time, for the reason it is meant to meet.
// A second run on the same data directory works too.
func TestRunAttestation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app := &appTransfers{}
	run := func(d time.Duration) Summary {
		t.Helper()
		var out bytes.Buffer
		o := testOptions(t, &out, &testutil.SyncBuffer{}, startReal)
		o.DataDir, o.JSON, o.Duration = dir, true, d
		o.Scenarios = append(DefaultScenarios(), app.scenario())
		if err := Run(t.Context(), o); err != nil {
			t.Fatal(err)
		}
		var sum Summary
		if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		return sum
	}
	sum := run(5 * time.Second)
	want := map[string][]string{
		"unattested-script":    {"attestation-missing"},
		"tampered-app":         {"attestation-release-unknown"},
		"replayed-attestation": {"attestation-replayed", "attestation-unbound"},
		"expired-attestation":  {"attestation-expired"},
	}
	seen := map[string]bool{}
	for _, sc := range sum.Scenarios {
		seen[sc.Name] = true
		if sc.Requests == 0 || sc.Errors != 0 {
			t.Errorf("%s: %d requests, %d transport errors", sc.Name, sc.Requests, sc.Errors)
		}
		switch {
		case sc.Kind == Genuine:
			if sc.Denied != 0 {
				t.Errorf("genuine %s denied: %v", sc.Name, sc.DeniedBy)
			}
		case want[sc.Name] != nil:
			if sc.Denied != sc.Requests {
				t.Errorf("%s: %d of %d requests got through: %v", sc.Name, sc.Allowed, sc.Requests, sc.Statuses)
			}
			if got := slices.Sorted(maps.Keys(sc.DeniedBy)); !slices.Equal(got, want[sc.Name]) {
				t.Errorf("%s denied by %v, want %v", sc.Name, sc.DeniedBy, want[sc.Name])
			}
		default:
			if sc.Denied == 0 {
				t.Errorf("attack %s was never denied", sc.Name)
			}
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("no scenario %s", name)
		}
	}
	if n, ok := app.sent.Load(), app.ok.Load(); n == 0 || ok != n {
		t.Errorf("genuine app transfers: %d of %d succeeded", ok, n)
	}
	for _, sc := range sum.Scenarios {
		t.Logf("%-21s %-7s %5d requests, %5d denied %v", sc.Name, sc.Kind, sc.Requests, sc.Denied, sc.DeniedBy)
	}

	// Again, with the key and the registry of the first run.
	key, _ := os.ReadFile(filepath.Join(dir, AttestKeyFile))
	app.sent.Store(0)
	app.ok.Store(0)
	sum = run(2 * time.Second)
	for _, sc := range sum.Scenarios {
		if sc.Kind == Genuine && (sc.Denied != 0 || sc.Errors != 0) {
			t.Errorf("second run: genuine %s: %+v", sc.Name, sc)
		}
		if want[sc.Name] != nil && (sc.Requests == 0 || sc.Denied != sc.Requests) {
			t.Errorf("second run: %s: %+v", sc.Name, sc)
		}
	}
	if n, ok := app.sent.Load(), app.ok.Load(); n == 0 || ok != n {
		t.Errorf("second run: genuine app transfers: %d of %d succeeded", ok, n)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, AttestKeyFile)); !bytes.Equal(key, again) {
		t.Error("the second run replaced the signing key")
	}
}
