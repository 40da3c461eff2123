package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/decision"
	"github.com/apiguard/apiguard/internal/events"
)

// newShopUpstream answers /missing/* with 404, POST /login with 401 unless
// the password is "right", and everything else with the echo.
func newShopUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	echoSrv := newEchoUpstream(t, "shop")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/missing/"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":"not found"}`)
		case r.URL.Path == "/login":
			var body struct{ Username, Password string }
			_ = json.NewDecoder(r.Body).Decode(&body)
			w.Header().Set("Content-Type", "application/json")
			if body.Password != "right" {
				w.WriteHeader(http.StatusUnauthorized)
			}
			_, _ = io.WriteString(w, `{}`)
		default:
			resp, err := http.Get(echoSrv.URL + r.URL.RequestURI())
			if err != nil {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			w.Header().Set("Content-Type", "application/json")
			b, _ := io.ReadAll(resp.Body)
			// the echo saw the shop's request, not the gateway's: echo
			// the gateway's headers instead
			var e echo
			_ = json.Unmarshal(b, &e)
			e.Header = r.Header
			_ = json.NewEncoder(w).Encode(e)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

const botYAML = `trusted_proxies: [127.0.0.1/32]
upstreams: {shop: {targets: [$UPSTREAM_0]}}
routes:
  - {name: login, path_prefix: /login, upstream: shop}
  - {name: api, path_prefix: /, upstream: shop}
checks:
  bot: {}
bot:
  logins: [{route: login, username: json:username}]
  block: {score: 50, ttl: 1m}
`

func from(ip string) []string { return []string{"X-Forwarded-For", ip} }

// TestBotDecisionBlocks: a decision added on the store is enforced before
// any other check, names itself in the problem and the event, and other
// clients pass.
func TestBotDecisionBlocks(t *testing.T) {
	t.Parallel()
	g := startGateway(t, botYAML, newShopUpstream(t).URL)
	d, err := g.srv.engine.decisions.Add(t.Context(), decision.Decision{
		Key: "ip:203.0.113.9", Action: decision.Block, Source: decision.SourceManual, Reason: "abuse report",
		Expires: time.Now().Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := get(t, g.url+"/items/1", from("203.0.113.9")...)
	wantProblem(t, r, http.StatusForbidden, "blocked")
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After = %q", ra)
	}
	if r := get(t, g.url+"/items/1", from("203.0.113.10")...); r.status != http.StatusOK {
		t.Fatalf("another client: %d %s", r.status, r.body)
	}
	ev := g.events.waitFor(t, func(e events.Event) bool { return e.Kind == events.KindVerdict && e.Reason == "blocked" })
	if ev.Attrs["decision"] != d.ID || ev.Attrs["reason"] != "abuse report" || ev.Attrs["source"] != "manual" {
		t.Errorf("event attrs %v", ev.Attrs)
	}
	// A challenge decision: an unattested client is asked to attest.
	if _, err := g.srv.engine.decisions.Add(t.Context(), decision.Decision{
		Key: "ip:203.0.113.11", Action: decision.Challenge, Source: decision.SourceManual, Reason: "suspicious",
		Expires: time.Now().Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	r = get(t, g.url+"/items/1", from("203.0.113.11")...)
	wantProblem(t, r, http.StatusUnauthorized, "challenge-required")
	if !strings.Contains(r.header.Get("WWW-Authenticate"), "Apiguard-Attest") {
		t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
	}
}

// TestBotDetectorsDecide drives a prober and a credential stuffer through
// the real gateway: the observe path detects each, stores a block decision
// for its address, and the gateway then refuses it; a client behaving
// normally is never refused and carries no risk.
func TestBotDetectorsDecide(t *testing.T) {
	t.Parallel()
	g := startGateway(t, botYAML, newShopUpstream(t).URL)

	untilBlocked := func(name, ip string, send func(i int) result) int {
		t.Helper()
		for i := range 200 {
			r := send(i)
			if r.problem != nil && r.problem.Type == "urn:apiguard:problem:blocked" {
				return i
			}
			time.Sleep(5 * time.Millisecond) // the observe path is asynchronous
		}
		t.Fatalf("%s (%s) never blocked", name, ip)
		return 0
	}
	n := untilBlocked("prober", "198.51.100.20", func(i int) result {
		return get(t, fmt.Sprintf("%s/missing/%d", g.url, i), from("198.51.100.20")...)
	})
	t.Logf("prober blocked after %d requests", n)
	if n < 20 {
		t.Errorf("prober blocked after %d requests: before the probing threshold (20 not-found)", n)
	}
	n = untilBlocked("stuffer", "198.51.100.21", func(i int) result {
		return send(t, "POST", g.url+"/login", "application/json", fmt.Sprintf(`{"username":"user%d","password":"guess"}`, i), from("198.51.100.21")...)
	})
	t.Logf("stuffer blocked after %d attempts", n)
	ev := g.events.waitFor(t, func(e events.Event) bool {
		return e.Kind == events.KindVerdict && e.Reason == "blocked" && e.ClientIP == "198.51.100.21"
	})
	if !strings.HasPrefix(ev.Attrs["reason"], "login/") || ev.Attrs["evidence.score"] == "" || ev.Attrs["threshold.block_score"] != "50" {
		t.Errorf("stuffer's block event attrs %v", ev.Attrs)
	}
	// The stuffer's address is blocked; its /24, which it may share with
	// genuine customers, only challenged.
	list, err := g.srv.engine.decisions.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]decision.Action{}
	for _, d := range list {
		got[d.Key] = d.Action
	}
	if got["ip:198.51.100.20"] != decision.Block || got["ip:198.51.100.21"] != decision.Block || got["net:198.51.100.0/24"] != decision.Challenge {
		t.Errorf("decisions %v", got)
	}

	// A normal client: a few pages, one successful login, no refusal; the
	// upstream sees no risk header, even one the client forged.
	for i := range 10 {
		r := get(t, fmt.Sprintf("%s/items/%d", g.url, i), append(from("192.0.2.50"), "Apiguard-Risk", "0")...)
		if r.status != http.StatusOK || r.echo == nil {
			t.Fatalf("genuine request %d: %d %s", i, r.status, r.body)
		}
		if h := r.echo.Header.Get("Apiguard-Risk"); h != "" {
			t.Fatalf("upstream saw Apiguard-Risk %q for a client without risk", h)
		}
	}
	if r := send(t, "POST", g.url+"/login", "application/json", `{"username":"alice","password":"right"}`, from("192.0.2.50")...); r.status != http.StatusOK {
		t.Fatalf("genuine login: %d %s", r.status, r.body)
	}
}

// TestBotRiskForwarded: a client with some risk below every refusal is
// let through and the upstream learns its score and why.
func TestBotRiskForwarded(t *testing.T) {
	t.Parallel()
	yaml := strings.Replace(botYAML, "  bot: {}", "  bot: {actions: [{score: 1, action: forward}]}", 1)
	yaml = strings.Replace(yaml, "block: {score: 50, ttl: 1m}", "block: {score: 95}\n  challenge: {score: 95}", 1)
	g := startGateway(t, yaml, newShopUpstream(t).URL)
	for i := range 25 { // 20 not-found answers: a probing finding, score 50
		get(t, fmt.Sprintf("%s/missing/%d", g.url, i), from("198.51.100.30")...)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := get(t, g.url+"/items/1", append(from("198.51.100.30"), "Apiguard-Risk", "0")...)
		if r.status != http.StatusOK || r.echo == nil {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if h := r.echo.Header.Get("Apiguard-Risk"); h != "0" && h != "" {
			// probing (50), and timing when the test's requests came
			// evenly spaced: a score of at least 50 naming probing.
			score, reasons, _ := strings.Cut(h, "; ")
			if n, err := strconv.Atoi(score); err != nil || n < 50 || n > 100 ||
				!strings.HasPrefix(reasons, `reasons="`) || !strings.Contains(reasons, "probing") {
				t.Fatalf("Apiguard-Risk = %q", h)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the prober's risk never reached the upstream")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDecisionsAdminAPI: the admin listener manages decisions behind its
// token, and a decision added there is enforced on the public listener.
func TestDecisionsAdminAPI(t *testing.T) {
	t.Parallel()
	g := startGateway(t, botYAML, newShopUpstream(t).URL)
	add := func(token string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, g.admin+"/api/v1/decisions",
			strings.NewReader(`{"key":"ip:203.0.113.77","action":"block","ttl":"1h","reason":"abuse report 42"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := add("wrong-token"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without the token: %d", resp.StatusCode)
	}
	if resp := add(g.token); resp.StatusCode != http.StatusCreated {
		t.Fatalf("add: %d", resp.StatusCode)
	}
	wantProblem(t, get(t, g.url+"/items/1", from("203.0.113.77")...), http.StatusForbidden, "blocked")
	req, _ := http.NewRequest(http.MethodDelete, g.admin+"/api/v1/decisions/ip:203.0.113.77", nil)
	req.Header.Set("Authorization", "Bearer "+g.token)
	if r := do(t, req); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := get(t, g.url+"/items/1", from("203.0.113.77")...); r.status != http.StatusOK {
		t.Fatalf("after delete: %d %s", r.status, r.body)
	}
}
