package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/events"
	"github.com/apiguard/apiguard/internal/gateway"
)

// eventRecorder is an extra event sink that keeps what the gateway emits.
type eventRecorder struct {
	mu  sync.Mutex
	evs []events.Event
}

func (r *eventRecorder) Name() string { return "test" }

func (r *eventRecorder) Write(_ context.Context, batch []events.Event) error {
	r.mu.Lock()
	r.evs = append(r.evs, batch...)
	r.mu.Unlock()
	return nil
}

func (r *eventRecorder) find(f func(events.Event) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.evs, f)
}

// demoGateway starts the shop and the real gateway with the demo config.
func startDemo(t *testing.T) (*Shop, string, *eventRecorder) {
	t.Helper()
	shop, err := NewShop()
	if err != nil {
		t.Fatal(err)
	}
	fetched := make(chan string, 100)
	shop.fetch = func(u string) { fetched <- u }
	up := httptest.NewServer(shop)
	t.Cleanup(up.Close)
	vars := testConfigVars(t)
	vars.ShopURL = up.URL
	cfg, err := LoadConfig(vars)
	if err != nil {
		t.Fatal(err)
	}
	rec := &eventRecorder{}
	srv, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ExtraSinks: []events.Sink{rec}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		close(fetched)
		for u := range fetched {
			if !strings.HasPrefix(u, "https://images.shopcdn.example/") {
				t.Errorf("the shop downloaded %s: the gateway let an SSRF through", u)
			}
		}
	})
	return shop, "http://" + srv.Addr("public"), rec
}

type demoCall struct {
	method, path, user, ip string
	body                   any // marshalled unless []byte
}

func (c demoCall) do(t *testing.T, shop *Shop, base string) (int, string) {
	t.Helper()
	var body io.Reader
	switch b := c.body.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(b)
	case string:
		body = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(j)
	}
	req, err := http.NewRequest(c.method, base+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Forwarded-For", c.ip)
	req.Header.Set("User-Agent", uaFirefoxWin)
	if c.user != "" {
		tok, err := shop.Token(c.user)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_, reason := denial(resp.Header.Get("Content-Type"), b)
	return resp.StatusCode, reason
}

// TestInspectionGenuine sends every search, review and profile change the
// genuine shoppers make through the real gateway with the demo config:
// none may be refused (the false positives a WAF in front of JSON makes).
func TestInspectionGenuine(t *testing.T) {
	shop, base, _ := startDemo(t)
	var calls []demoCall
	for i, q := range searchQueries {
		v := url.Values{"q": {q}}
		if i%2 == 0 {
			v.Set("sort", "-price")
			v.Set("max_price", "80")
		}
		calls = append(calls, demoCall{method: "GET", path: "/api/products?" + v.Encode()})
	}
	for i, r := range genuineReviews {
		calls = append(calls, demoCall{method: "POST", path: "/api/products/" + string(rune('1'+i%8)) + "/reviews", user: "alice", body: r})
	}
	calls = append(calls,
		demoCall{method: "GET", path: "/api/products/3/reviews"},
		demoCall{method: "PATCH", path: "/api/users/alice", user: "alice", body: map[string]any{"avatar_url": "https://images.shopcdn.example/avatars/alice/7.jpg"}},
		demoCall{method: "PATCH", path: "/api/users/bob", user: "bob", body: map[string]any{"phone": "+31 20 555 0199", "full_name": "Bob Janssen"}},
		demoCall{method: "GET", path: "/api/users/alice", user: "alice"},
	)
	for _, c := range calls {
		c.ip = "84.17.40.23"
		if st, reason := c.do(t, shop, base); st >= 300 {
			t.Errorf("%s %s %v: %d %s", c.method, c.path, c.body, st, reason)
		}
	}
}

// TestInspectionAttacks sends each inspection scenario's payloads and
// checks the reason the gateway gives.
func TestInspectionAttacks(t *testing.T) {
	shop, base, rec := startDemo(t)
	var calls []struct {
		demoCall
		reasons []string
	}
	add := func(c demoCall, reasons ...string) {
		calls = append(calls, struct {
			demoCall
			reasons []string
		}{c, reasons})
	}
	for _, p := range sqlProbes {
		var body any
		if p.body != "" {
			body = []byte(p.body)
		}
		add(demoCall{method: p.method, path: p.path, ip: sqlInjectionIP, body: body}, "injection-detected", "request-invalid", "nosql-injection")
	}
	for i, r := range xssReviews {
		add(demoCall{method: "POST", path: "/api/products/" + string(rune('1'+i)) + "/reviews", user: "bob", ip: xssIP, body: r}, "injection-detected")
	}
	for _, m := range massAssignments {
		add(demoCall{method: m.method, path: m.path, user: "bob", ip: massAssignIP, body: m.body}, "request-invalid")
	}
	for _, p := range shadowPaths {
		add(demoCall{method: "GET", path: p, ip: shadowIP}, "undeclared-operation")
	}
	add(demoCall{method: "GET", path: "/api/v1/users/alice", ip: zombieIP}, "deprecated-operation")
	for _, u := range ssrfTargets {
		add(demoCall{method: "PATCH", path: "/api/users/bob", user: "bob", ip: ssrfIP, body: map[string]any{"avatar_url": u}}, "ssrf-blocked", "request-invalid")
	}
	for _, c := range calls {
		st, reason := c.do(t, shop, base)
		if !slices.Contains(c.reasons, reason) {
			t.Errorf("%s %s %v: %d %q, want one of %v", c.method, c.path, c.body, st, reason, c.reasons)
		}
	}
	// bob is still a customer: the mass assignment did not reach the shop.
	if p, _ := shop.profile("bob"); p.Role != "customer" || p.AvatarURL != "" {
		t.Errorf("bob's profile changed: %+v", p)
	}
	// The refused shadow endpoint is still recorded, for the inventory.
	deadline := time.Now().Add(5 * time.Second)
	for !rec.find(func(e events.Event) bool { return e.Path == "/api/debug/vars" && e.Reason == "undeclared-operation" }) {
		if time.Now().After(deadline) {
			t.Fatal("no event records the refused GET /api/debug/vars")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
