package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"github.com/apiguard/apiguard/internal/testutil"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/problem"
)

// fakeGateway stands in for the real gateway: a plain reverse proxy to the
// shop. With denyGlobal it also refuses the config's globally denied
// networks, as apiguard would, so the denial path of the counters is
// exercised end to end.
type fakeGateway struct {
	pub, adm         *http.Server
	pubURL, admURL   string
	mu               sync.Mutex
	latencies        []time.Duration
	clientIPs        map[string]bool // first X-Forwarded-For entry of each request
	withoutForwarded int
}

func (g *fakeGateway) PublicURL() string { return g.pubURL }
func (g *fakeGateway) AdminURL() string  { return g.admURL }

func (g *fakeGateway) Stats() GatewayStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := slices.Clone(g.latencies)
	slices.Sort(l)
	st := GatewayStats{Requests: int64(len(l))}
	if len(l) > 0 {
		st.P50 = l[len(l)*50/100]
		st.P99 = l[min(len(l)-1, len(l)*99/100)]
	}
	return st
}

func (g *fakeGateway) Shutdown(ctx context.Context) error {
	return errors.Join(g.pub.Shutdown(ctx), g.adm.Shutdown(ctx))
}

func fakeStart(denyGlobal bool, got **fakeGateway) StartFunc {
	return func(_ context.Context, cfg *config.Config) (Gateway, error) {
		target, err := url.Parse(cfg.Upstreams["shop"].Targets[0])
		if err != nil {
			return nil, err
		}
		var deny []netip.Prefix
		if denyGlobal && cfg.Checks.IPList != nil {
			for _, s := range cfg.Checks.IPList.Deny {
				deny = append(deny, netip.MustParsePrefix(s))
			}
		}
		g := &fakeGateway{clientIPs: map[string]bool{}}
		proxy := httputil.NewSingleHostReverseProxy(target)
		pub := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			defer func() {
				g.mu.Lock()
				g.latencies = append(g.latencies, time.Since(start))
				g.mu.Unlock()
			}()
			if strings.HasPrefix(r.URL.Path, "/.apiguard/attest/") {
				fakeAttest(w, r)
				return
			}
			first, _, _ := strings.Cut(r.Header.Get("X-Forwarded-For"), ",")
			g.mu.Lock()
			if first == "" {
				g.withoutForwarded++
			}
			g.clientIPs[first] = true
			g.mu.Unlock()
			if ip, err := netip.ParseAddr(strings.TrimSpace(first)); err == nil {
				for _, p := range deny {
					if p.Contains(ip) {
						problem.Write(w, problem.New(http.StatusForbidden, "ip-denied", "denied", ""), nil)
						return
					}
				}
			}
			proxy.ServeHTTP(w, r)
		})
		adm := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
		for _, l := range []struct {
			addr string
			h    http.Handler
			srv  **http.Server
			url  *string
		}{{cfg.Listen, pub, &g.pub, &g.pubURL}, {cfg.Admin.Listen, adm, &g.adm, &g.admURL}} {
			ln, err := net.Listen("tcp", l.addr)
			if err != nil {
				return nil, err
			}
			*l.srv = &http.Server{Handler: l.h, ReadHeaderTimeout: 5 * time.Second}
			*l.url = "http://" + ln.Addr().String()
			go func() { _ = (*l.srv).Serve(ln) }()
		}
		*got = g
		return g, nil
	}
}

// fakeAttest stands in for the attestation service: it hands out a
// challenge and accepts any answer, as the fake denies nothing.
func fakeAttest(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	var resp map[string]any
	switch r.URL.Path {
	case "/.apiguard/attest/challenge":
		var req struct {
			AppID    string `json:"app_id"`
			Provider string `json:"provider"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		resp = map[string]any{
			"challenge": base64.RawURLEncoding.EncodeToString([]byte(rand.Text())), "app_id": req.AppID,
			"provider": req.Provider, "expires_in": 60,
			"integrity": map[string]any{"salt": "c2FsdA", "ranges": []map[string]int{{"offset": 0, "length": 4096}}},
		}
	default:
		resp = map[string]any{"token": "fake." + rand.Text(), "expires_in": 300}
	}
	_ = json.NewEncoder(w).Encode(resp)
}

func testOptions(t *testing.T, out io.Writer, logs *testutil.SyncBuffer, start StartFunc) Options {
	return Options{
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", DataDir: t.TempDir(),
		Duration: 2 * time.Second, Traffic: true,
		Out: out, Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Start: start,
	}
}

func TestRunJSON(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	logs := &testutil.SyncBuffer{}
	var gw *fakeGateway
	o := testOptions(t, &out, logs, fakeStart(false, &gw))
	o.JSON = true
	if err := Run(t.Context(), o); err != nil {
		t.Fatal(err)
	}

	// Exactly one JSON object on stdout.
	dec := json.NewDecoder(bytes.NewReader(out.Bytes()))
	var sum map[string]any
	if err := dec.Decode(&sum); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out.String())
	}
	if rest, _ := io.ReadAll(dec.Buffered()); strings.TrimSpace(string(rest)) != "" || dec.More() {
		t.Fatalf("stdout has more than one JSON object:\n%s", out.String())
	}
	t.Logf("summary:\n%s", out.String())

	var got Summary
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	var names []string
	var total int64
	for _, sc := range DefaultScenarios() {
		names = append(names, sc.Name)
	}
	if len(got.Scenarios) != len(names) {
		t.Fatalf("%d scenarios, want %v", len(got.Scenarios), names)
	}
	for i, sc := range got.Scenarios {
		if sc.Name != names[i] {
			t.Errorf("scenario %d is %q, want %q", i, sc.Name, names[i])
		}
		if sc.Kind != Genuine && sc.Kind != Attack {
			t.Errorf("%s: kind %q", sc.Name, sc.Kind)
		}
		if sc.Requests <= 0 {
			t.Errorf("%s: no requests", sc.Name)
		}
		// Nothing but apiguard denies, and the fake denies nothing.
		if sc.Denied != 0 || sc.Allowed != sc.Requests || sc.FirstDeniedAfterS != nil || sc.DeniedBy == nil {
			t.Errorf("%s: %+v", sc.Name, sc)
		}
		if sc.Errors != 0 {
			t.Errorf("%s: %d transport errors", sc.Name, sc.Errors)
		}
		total += sc.Requests
	}
	// The raw keys the contract names are there, with null for "never denied".
	first := sum["scenarios"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "kind", "requests", "allowed", "denied", "denied_by", "first_denied_after_s"} {
		if _, ok := first[k]; !ok {
			t.Errorf("scenario object lacks %q", k)
		}
	}
	gwObj, _ := sum["gateway"].(map[string]any)
	for _, k := range []string{"requests", "p50_ms", "p99_ms"} {
		if _, ok := gwObj[k]; !ok {
			t.Errorf("gateway object lacks %q", k)
		}
	}
	if got.Gateway.Requests < total || got.Gateway.P99Ms < got.Gateway.P50Ms || got.Gateway.P50Ms <= 0 {
		t.Errorf("gateway %+v for %d scenario requests", got.Gateway, total)
	}

	// Every simulated client declared its address.
	gw.mu.Lock()
	defer gw.mu.Unlock()
	if gw.withoutForwarded > 0 {
		t.Errorf("%d requests without X-Forwarded-For", gw.withoutForwarded)
	}
	for _, ip := range []string{officeIP, adminProbeIP, heftyIP, sharedNATIP, denylistedAttackers[0].ip, shopperProfiles[1].ip} {
		if !gw.clientIPs[ip] {
			t.Errorf("no request from %s", ip)
		}
	}

	// The URLs and the token went to the log, not stdout.
	if l := logs.String(); !strings.Contains(l, "gateway_url="+gw.pubURL) || !strings.Contains(l, "admin_token=") {
		t.Errorf("banner not logged:\n%s", l)
	}
}

func TestRunTableWithDenials(t *testing.T) {
	t.Parallel()
	var out testutil.SyncBuffer
	var gw *fakeGateway
	o := testOptions(t, &out, &testutil.SyncBuffer{}, fakeStart(true, &gw))
	o.Duration = 1500 * time.Millisecond
	if err := Run(t.Context(), o); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	t.Logf("output:\n%s", text)
	for _, want := range []string{gw.pubURL + "/api/products", gw.admURL, "SCENARIO", "genuine:", "attack:", "gateway:"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	var row string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "denylisted-network ") {
			row = line
		}
	}
	if !strings.Contains(row, "ip-denied") || !strings.Contains(row, "attack") {
		t.Errorf("denylisted-network row: %q", row)
	}
}

func TestRunDenialCounters(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	var gw *fakeGateway
	o := testOptions(t, &out, &testutil.SyncBuffer{}, fakeStart(true, &gw))
	o.JSON = true
	o.Duration = 1500 * time.Millisecond
	if err := Run(t.Context(), o); err != nil {
		t.Fatal(err)
	}
	var got Summary
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, sc := range got.Scenarios {
		switch sc.Name {
		case "denylisted-network":
			if sc.Requests == 0 || sc.Denied != sc.Requests || sc.DeniedBy["ip-denied"] != sc.Requests ||
				sc.FirstDeniedAfterS == nil || *sc.FirstDeniedAfterS > 1.5 {
				t.Errorf("%s: %+v", sc.Name, sc)
			}
		default:
			if sc.Denied != 0 || sc.FirstDeniedAfterS != nil {
				t.Errorf("%s denied: %+v", sc.Name, sc)
			}
		}
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	t.Parallel()
	var out testutil.SyncBuffer
	var gw *fakeGateway
	ctx, cancel := context.WithCancel(t.Context())
	o := testOptions(t, &out, &testutil.SyncBuffer{}, func(ctx context.Context, cfg *config.Config) (Gateway, error) {
		g, err := fakeStart(false, &gw)(ctx, cfg)
		if err == nil {
			go func() { // a user tries the demo, then presses Ctrl-C
				defer cancel()
				resp, err := http.Get(g.PublicURL() + "/api/products")
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("status %d", resp.StatusCode)
				}
			}()
		}
		return g, err
	})
	o.Traffic = false
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
	if !strings.Contains(out.String(), "Serving until interrupted") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	if err := Run(t.Context(), Options{Out: io.Discard}); err == nil {
		t.Error("Run without Start succeeded")
	}
	boom := errors.New("boom")
	err := Run(t.Context(), Options{Out: io.Discard, DataDir: t.TempDir(), Start: func(context.Context, *config.Config) (Gateway, error) { return nil, boom }})
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
	err = Run(t.Context(), Options{Out: io.Discard, DataDir: t.TempDir(), Listen: "nonsense", Start: func(context.Context, *config.Config) (Gateway, error) {
		t.Error("Start called with an invalid config")
		return nil, boom
	}})
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("err = %v, want a config error about listen", err)
	}
}
