package gateway

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/events"
	"github.com/apiguard/apiguard/internal/testutil"
)

// TestRedisSharedLimitAccuracy: three gateway instances share one real
// Redis; many clients hammer one key through all of them; the total they
// admit is the configured limit within ±1%.
func TestRedisSharedLimitAccuracy(t *testing.T) {
	t.Parallel()
	addr := testutil.Redis(t)
	app := newEchoUpstream(t, "app")
	prefix := fmt.Sprintf("t%d:", time.Now().UnixNano())
	cfg := fmt.Sprintf(`
trusted_proxies: [127.0.0.1/32]
state: {backend: redis, redis: {addrs: [%s], key_prefix: "%s"}}
upstreams: {app: {targets: [$UPSTREAM_0]}}
checks:
  ratelimit:
    policies:
      - {name: shared, key: [ip], limits: [{rate: 1000/h}]}
routes: [{name: r, upstream: app}]
`, addr, prefix)
	var gws []*testGateway
	for range 3 {
		gws = append(gws, startGateway(t, cfg, app.URL))
	}
	const limit = 1000
	var allowed, limited, other atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var wg sync.WaitGroup
	for w := range 48 {
		wg.Go(func() {
			url := gws[w%3].url + "/x"
			for range 75 { // 3600 requests in all: 3.6x the limit
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("X-Forwarded-For", "192.0.2.77")
				resp, err := client.Do(req)
				if err != nil {
					other.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					allowed.Add(1)
				case 429:
					limited.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	// The limit refills at 1000/h: well under one request during the test.
	got := allowed.Load()
	t.Logf("allowed %d, limited %d, other %d across 3 instances", got, limited.Load(), other.Load())
	if other.Load() != 0 {
		t.Fatalf("%d requests neither allowed nor limited", other.Load())
	}
	if got < limit*99/100 || got > limit*101/100 {
		t.Fatalf("admitted %d, want %d ±1%%", got, limit)
	}
}

// TestRedisOutage kills the gateway's Redis mid-test: a fail-closed policy
// refuses with 503, a fail-open one lets requests through, readiness says
// degraded, events record the fault; after a restart the limiter works again
// within 2 s.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	redis := testutil.StartRedisServer(t)
	app := newEchoUpstream(t, "app")
	g := startGateway(t, fmt.Sprintf(`
state: {backend: redis, redis: {addrs: [%s], read_timeout: 200ms, write_timeout: 200ms, dial_timeout: 200ms}}
upstreams: {app: {targets: [$UPSTREAM_0]}}
routes:
  - name: closed
    path_prefix: /closed
    upstream: app
    checks: {ratelimit: {policies: [{name: strict, key: [ip], limits: [{rate: 1000/s}], on_error: deny}]}}
  - name: open
    path_prefix: /open
    upstream: app
    checks: {ratelimit: {policies: [{name: lenient, key: [ip], limits: [{rate: 1000/s}]}]}}
`, redis.Addr), app.URL)

	if r := get(t, g.url+"/closed"); r.status != 200 {
		t.Fatalf("before the outage: %d", r.status)
	}
	redis.Kill()
	r := get(t, g.url+"/closed")
	wantProblem(t, r, http.StatusServiceUnavailable, "rate-limit-unavailable")
	if r := get(t, g.url+"/open"); r.status != 200 {
		t.Fatalf("fail-open route during the outage: %d", r.status)
	}
	g.events.waitFor(t, func(e events.Event) bool { return e.Kind == events.KindSystem && e.Reason == "state-backend-down" })
	if r := get(t, g.admin+"/readyz"); r.status != 200 || !containsAll(string(r.body), `"status":"degraded"`, `"up":false`) {
		t.Fatalf("readyz during the outage: %d %s", r.status, r.body)
	}

	redis.Start()
	restarted := time.Now()
	for {
		if r := get(t, g.url+"/closed"); r.status == 200 {
			break
		}
		if time.Since(restarted) > 2*time.Second {
			t.Fatalf("limiter did not recover within 2s of the restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("recovered %v after the restart", time.Since(restarted).Round(time.Millisecond))
	g.events.waitFor(t, func(e events.Event) bool { return e.Kind == events.KindSystem && e.Reason == "state-backend-recovered" })
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !contains(s, sub) {
			return false
		}
	}
	return true
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub)))
}
