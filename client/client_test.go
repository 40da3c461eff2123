package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNewValidates(t *testing.T) {
	ok := Config{BaseURL: "https://api.example.com", AppID: "a", Provider: ProofOfWork{}}
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"ok", func(*Config) {}, true},
		{"no base URL", func(c *Config) { c.BaseURL = "" }, false},
		{"not http", func(c *Config) { c.BaseURL = "ftp://x" }, false},
		{"no app", func(c *Config) { c.AppID = "" }, false},
		{"no provider", func(c *Config) { c.Provider = nil }, false},
		{"installation id ok", func(c *Config) { c.InstallationID = "abc_DEF-123" }, true},
		{"installation id with a dot", func(c *Config) { c.InstallationID = "a.b" }, false},
		{"installation id too long", func(c *Config) { c.InstallationID = strings.Repeat("a", 65) }, false},
	}
	for _, tt := range tests {
		cfg := ok
		tt.mod(&cfg)
		if _, err := New(cfg); (err == nil) != tt.ok {
			t.Errorf("%s: err = %v", tt.name, err)
		}
	}
	c1, _ := New(ok)
	c2, _ := New(ok)
	if !validInstallationID(c1.InstallationID()) || c1.InstallationID() == c2.InstallationID() {
		t.Errorf("default installation ids %q, %q", c1.InstallationID(), c2.InstallationID())
	}
}

func TestAttestIntegrityEndToEnd(t *testing.T) {
	s := newFakeService(t)
	s.releaseFile, _ = writeTemp(t, 5000)
	c, _ := newTestClient(t, s, func(c *Config) { c.Provider = &Integrity{Path: s.releaseFile}; c.InstallationID = "inst-1" })
	tok, err := c.Token(context.Background(), "Bearer abc")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := ParseTokenUnverified(tok)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Subject != "shop-cli" || cl.Provider != "integrity" || cl.Level != "software" || cl.DeviceID != "inst-1" ||
		cl.Binding != BindDigest("Bearer abc") || cl.Issuer != testIssuer || cl.ID == "" ||
		cl.ExpiresAt.Sub(cl.IssuedAt) != 5*time.Minute {
		t.Errorf("claims = %+v", cl)
	}
	// A different binary: the service refuses the release.
	other, _ := writeTemp(t, 5000)
	c2, _ := newTestClient(t, s, func(c *Config) { c.Provider = &Integrity{Path: other} })
	_, err = c2.Token(context.Background(), "")
	var p *ProblemError
	if !errors.As(err, &p) || p.Status != 403 || p.Slug() != "attestation-release-unknown" {
		t.Errorf("err = %v", err)
	}
}

func TestBindDigest(t *testing.T) {
	// SHA-256("abc"), base64url without padding.
	if got := BindDigest("abc"); got != "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0" {
		t.Errorf("BindDigest = %s", got)
	}
}

func TestParseTokenUnverified(t *testing.T) {
	s := newFakeService(t)
	tok := signJWS(t, s.priv, "k1", TokenTyp, map[string]any{"iss": "i", "sub": "app", "did": "d", "iat": 1700000000, "exp": 1700000300.5,
		"jti": "j", "prv": "pow", "lvl": "work", "rel": "r", "pay": "p"})
	got, err := ParseTokenUnverified(tok)
	if err != nil {
		t.Fatal(err)
	}
	want := Claims{Issuer: "i", Subject: "app", DeviceID: "d", IssuedAt: time.Unix(1700000000, 0).UTC(),
		ExpiresAt: time.Unix(1700000300, 5e8).UTC(), ID: "j", Provider: "pow", Level: "work", Release: "r", Binding: "p"}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{"", "abc", "a.b.c", strings.SplitN(tok, ".", 2)[0] + ".bm90IGpzb24.AAAA",
		signJWS(t, s.priv, "k1", TokenTyp, map[string]any{"exp": "tomorrow"})} {
		if _, err := ParseTokenUnverified(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestTokenCacheRefresh(t *testing.T) {
	s := newFakeService(t)
	c, _ := newTestClient(t, s, nil) // RefreshBefore 30 s, tokens live 5 min
	now := time.Now()
	c.now = func() time.Time { return now }
	ctx := context.Background()
	steps := []struct {
		at        time.Duration
		bind      string
		wantCalls int32
	}{
		{0, "", 1},
		{time.Minute, "", 1},                    // cached
		{4*time.Minute + 29*time.Second, "", 1}, // 31 s before exp: cached
		{4*time.Minute + 31*time.Second, "", 2}, // 29 s before exp: refreshed
		{4*time.Minute + 32*time.Second, "", 2},
		{4*time.Minute + 32*time.Second, "Bearer a", 3}, // another binding
		{4*time.Minute + 33*time.Second, "Bearer b", 4},
		{4*time.Minute + 34*time.Second, "Bearer a", 4},
	}
	tokens := map[string]string{}
	for i, st := range steps {
		now = time.Now().Add(st.at) // the fake clock; the service uses the real one
		c.now = func() time.Time { return now }
		tok, err := c.Token(ctx, st.bind)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.nVerify.Load(); got != st.wantCalls {
			t.Fatalf("step %d (%v, %q): %d attestations, want %d", i, st.at, st.bind, got, st.wantCalls)
		}
		cl, _ := ParseTokenUnverified(tok)
		if wantPay := map[bool]string{true: "", false: BindDigest(st.bind)}[st.bind == ""]; cl.Binding != wantPay {
			t.Errorf("step %d: pay %q, want %q", i, cl.Binding, wantPay)
		}
		tokens[st.bind] = tok
	}
	if tokens["Bearer a"] == tokens["Bearer b"] || tokens[""] == tokens["Bearer a"] {
		t.Error("bindings share a token")
	}
}

func TestTokenRefreshShortLifetime(t *testing.T) {
	// A token that lives 40 s is refreshed after half its life, not
	// 30 s before its end only.
	s := newFakeService(t)
	s.lifetime = 40 * time.Second
	c, _ := newTestClient(t, s, nil)
	start := time.Now()
	c.now = func() time.Time { return start }
	c.Token(context.Background(), "")
	c.now = func() time.Time { return start.Add(19 * time.Second) }
	c.Token(context.Background(), "")
	c.now = func() time.Time { return start.Add(21 * time.Second) }
	c.Token(context.Background(), "")
	if got := s.nVerify.Load(); got != 2 {
		t.Errorf("%d attestations, want 2", got)
	}
}

func TestTokenCacheBounded(t *testing.T) {
	s := newFakeService(t)
	s.difficulty = 0
	c, _ := newTestClient(t, s, nil)
	for i := range 40 {
		if _, err := c.Token(context.Background(), fmt.Sprint("Bearer ", i)); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Lock()
	n := len(c.cache)
	c.mu.Unlock()
	if n > maxCachedTokens {
		t.Errorf("%d cached tokens, max %d", n, maxCachedTokens)
	}
}

func TestTokenConcurrentCallersShareOneAttestation(t *testing.T) {
	s := newFakeService(t)
	gate := make(chan struct{})
	s.gate = gate
	c, _ := newTestClient(t, s, nil)
	const n = 20
	var wg sync.WaitGroup
	toks := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks[i], errs[i] = c.Token(context.Background(), "Bearer x")
		}()
	}
	time.Sleep(200 * time.Millisecond) // let every caller queue up
	close(gate)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || toks[i] != toks[0] {
			t.Fatalf("caller %d: %v, token differs: %v", i, errs[i], toks[i] != toks[0])
		}
	}
	if ch, v := s.nChallenge.Load(), s.nVerify.Load(); ch != 1 || v != 1 {
		t.Errorf("%d challenges and %d verifies, want 1 and 1", ch, v)
	}
}

func TestWaiterSurvivesLeaderCancel(t *testing.T) {
	s := newFakeService(t)
	gate := make(chan struct{})
	s.gate = gate
	c, _ := newTestClient(t, s, nil)
	leaderCtx, cancel := context.WithCancel(context.Background())
	leaderDone := make(chan error)
	go func() { _, err := c.Token(leaderCtx, ""); leaderDone <- err }()
	for s.nVerify.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	waiterDone := make(chan error)
	go func() { _, err := c.Token(context.Background(), ""); waiterDone <- err }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-leaderDone; !errors.Is(err, context.Canceled) {
		t.Errorf("leader err = %v", err)
	}
	close(gate)
	if err := <-waiterDone; err != nil {
		t.Errorf("waiter err = %v, want a token of its own", err)
	}
}

func TestFreshTokenAlwaysAttests(t *testing.T) {
	s := newFakeService(t)
	c, _ := newTestClient(t, s, nil)
	a, err1 := c.FreshToken(context.Background(), "")
	b, err2 := c.FreshToken(context.Background(), "")
	if err1 != nil || err2 != nil || a == b || s.nVerify.Load() != 2 {
		t.Errorf("errs %v %v, same %v, verifies %d", err1, err2, a == b, s.nVerify.Load())
	}
}

// failFirst makes the first n requests to path answer status with hdr.
func failFirst(s *fakeService, path string, n int, status int, hdr map[string]string) {
	var mu sync.Mutex
	left := n
	s.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != path || left == 0 {
			return false
		}
		left--
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		writeProblem(w, status, map[int]string{429: "rate-limited", 503: "service-unavailable"}[status], "")
		return true
	})
}

func TestRetry(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		fails      int
		hdr        map[string]string
		maxBackoff time.Duration
		check      func(t *testing.T, sleeps []time.Duration)
	}{
		{"429 honours Retry-After", 429, 2, map[string]string{"Retry-After": "7"}, 0, func(t *testing.T, d []time.Duration) {
			if len(d) != 2 || d[0] != 7*time.Second || d[1] != 7*time.Second {
				t.Errorf("sleeps %v, want [7s 7s]", d)
			}
		}},
		{"503 backs off exponentially with jitter", 503, 4, nil, 0, func(t *testing.T, d []time.Duration) {
			if len(d) != 4 {
				t.Fatalf("sleeps %v", d)
			}
			for i, s := range d {
				hi := initialBackoff << i
				if s < hi/2 || s > hi {
					t.Errorf("sleep %d = %v, want in [%v, %v]", i, s, hi/2, hi)
				}
			}
		}},
		{"MaxBackoff caps the waits", 503, 6, nil, 300 * time.Millisecond, func(t *testing.T, d []time.Duration) {
			if len(d) != 6 {
				t.Fatalf("sleeps %v", d)
			}
			for _, s := range d {
				if s > 300*time.Millisecond {
					t.Errorf("sleep %v above MaxBackoff", s)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFakeService(t)
			failFirst(s, ChallengePath, tt.fails, tt.status, tt.hdr)
			c, sl := newTestClient(t, s, func(c *Config) { c.MaxBackoff = tt.maxBackoff })
			if _, err := c.Token(context.Background(), ""); err != nil {
				t.Fatal(err)
			}
			if got := s.nVerify.Load(); got != 1 {
				t.Errorf("%d verifies", got)
			}
			tt.check(t, sl.get())
		})
	}
}

func TestRetryNetworkError(t *testing.T) {
	s := newFakeService(t)
	var mu sync.Mutex
	left := 2
	s.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if left == 0 {
			return false
		}
		left--
		panic(http.ErrAbortHandler) // drops the connection
	})
	c, sl := newTestClient(t, s, nil)
	if _, err := c.Token(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if n := len(sl.get()); n != 2 {
		t.Errorf("%d retries, want 2", n)
	}
}

func TestRetryRespectsContext(t *testing.T) {
	s := newFakeService(t)
	failFirst(s, ChallengePath, 1000, 429, map[string]string{"Retry-After": "5"})
	c, _ := newTestClient(t, s, nil)
	c.sleep = sleepCtx

	// A deadline before the Retry-After: give up at once.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Token(ctx, "")
	var p *ProblemError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &p) || p.Status != 429 {
		t.Errorf("err = %v, want deadline exceeded with the 429 problem", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v", el)
	}

	// Cancelled while waiting.
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel2)
	start = time.Now()
	if _, err := c.Token(ctx2, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want canceled", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v", el)
	}
}

func TestProblemsAreNotRetried(t *testing.T) {
	tests := []struct {
		name   string
		mod    func(*Config)
		status int
		slug   string
	}{
		{"unknown app", func(c *Config) { c.AppID = "nope" }, 403, "attestation-app-unknown"},
		{"provider not allowed", func(c *Config) { c.Provider = fakeProvider{} }, 403, "attestation-provider-not-allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFakeService(t)
			c, sl := newTestClient(t, s, tt.mod)
			_, err := c.Token(context.Background(), "")
			var p *ProblemError
			if !errors.As(err, &p) || p.Status != tt.status || p.Slug() != tt.slug {
				t.Fatalf("err = %v", err)
			}
			if len(sl.get()) != 0 || s.nChallenge.Load() != 1 {
				t.Errorf("retried: sleeps %v, challenges %d", sl.get(), s.nChallenge.Load())
			}
		})
	}
	// A failed verify carries its reason.
	s := newFakeService(t)
	c, _ := newTestClient(t, s, func(c *Config) { c.Provider = lazyPoW{} })
	_, err := c.Token(context.Background(), "")
	var p *ProblemError
	if !errors.As(err, &p) || p.Slug() != "attestation-failed" || p.Reason != "insufficient_work" || s.nVerify.Load() != 1 {
		t.Errorf("err = %v", err)
	}
}

type fakeProvider struct{}

func (fakeProvider) Name() string                                             { return "appattest" }
func (fakeProvider) ChallengeRequest(context.Context) (map[string]any, error) { return nil, nil }
func (fakeProvider) Evidence(context.Context, *Challenge) (map[string]any, error) {
	return map[string]any{"key_id": "k", "assertion": "a"}, nil
}

// lazyPoW answers a counter that (almost surely) does not solve.
type lazyPoW struct{ ProofOfWork }

func (lazyPoW) Evidence(context.Context, *Challenge) (map[string]any, error) {
	return map[string]any{"counter": uint64(1) << 63}, nil
}

func TestTransport(t *testing.T) {
	type call struct {
		method, body string
		replayable   bool
		authz        string
	}
	tests := []struct {
		name       string
		api        func(n int) (status int, slug string) // answer to the nth (0-based) API request
		single     bool
		call       call
		wantStatus int
		wantAPI    int32 // API requests
		wantVerify int32
	}{
		{"ok", func(int) (int, string) { return 200, "" }, false, call{method: "GET"}, 200, 1, 1},
		{"expired: new token, once", func(n int) (int, string) { return 401, "attestation-expired" }, false, call{method: "GET"}, 401, 2, 2},
		{"expired then ok", func(n int) (int, string) { return map[bool]int{true: 401, false: 200}[n == 0], "attestation-expired" }, false, call{method: "GET"}, 200, 2, 2},
		{"replayed, replayable body", func(n int) (int, string) { return map[bool]int{true: 401, false: 200}[n == 0], "attestation-replayed" }, false,
			call{method: "POST", body: `{"amount":1}`, replayable: true}, 200, 2, 2},
		{"invalid, body not replayable", func(n int) (int, string) { return 401, "attestation-invalid" }, false,
			call{method: "POST", body: `{"amount":1}`}, 401, 1, 1},
		{"unbound is not retried", func(n int) (int, string) { return 401, "attestation-unbound" }, false, call{method: "GET"}, 401, 1, 1},
		{"forbidden is not retried", func(n int) (int, string) { return 403, "attestation-app-not-allowed" }, false, call{method: "GET"}, 403, 1, 1},
		{"bound to the Authorization value", func(int) (int, string) { return 200, "" }, false, call{method: "GET", authz: "Bearer alice"}, 200, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFakeService(t)
			var mu sync.Mutex
			n := 0
			s.api = func(w http.ResponseWriter, r *http.Request, tok string, claims map[string]any) {
				mu.Lock()
				i := n
				n++
				mu.Unlock()
				if pay, _ := claims["pay"].(string); (tt.call.authz == "" && pay != "") || (tt.call.authz != "" && pay != BindDigest(tt.call.authz)) {
					writeProblem(w, 401, "attestation-unbound", "")
					return
				}
				st, slug := tt.api(i)
				if st != 200 {
					writeProblem(w, st, slug, "")
					return
				}
				writeJSON(w, 200, map[string]string{"ok": "yes"})
			}
			c, _ := newTestClient(t, s, nil)
			hc := &http.Client{Transport: c.Transport(s.srv.Client().Transport, TransportOptions{BindHeader: "Authorization",
				SingleUse: func(*http.Request) bool { return tt.single }})}
			var body io.Reader
			if tt.call.body != "" {
				if tt.call.replayable {
					body = strings.NewReader(tt.call.body)
				} else {
					body = io.MultiReader(strings.NewReader(tt.call.body)) // no GetBody
				}
			}
			req, _ := http.NewRequest(tt.call.method, s.srv.URL+"/api/thing", body)
			if tt.call.authz != "" {
				req.Header.Set("Authorization", tt.call.authz)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d (%s)", resp.StatusCode, tt.wantStatus, b)
			}
			if resp.StatusCode != 200 && !bytes.Contains(b, []byte(ProblemTypePrefix)) {
				t.Errorf("problem body lost: %q", b)
			}
			if got := s.nAPI.Load(); got != tt.wantAPI {
				t.Errorf("%d API requests, want %d", got, tt.wantAPI)
			}
			if got := s.nVerify.Load(); got != tt.wantVerify {
				t.Errorf("%d attestations, want %d", got, tt.wantVerify)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			for i, tok := range s.apiTokens {
				if tok == "" {
					t.Errorf("request %d without token", i)
				}
				if i > 0 && tok == s.apiTokens[i-1] {
					t.Errorf("retry %d reused the token", i)
				}
				if s.apiBodies[i] != tt.call.body {
					t.Errorf("request %d body %q, want %q", i, s.apiBodies[i], tt.call.body)
				}
			}
			if req.Header.Get(TokenHeader) != "" {
				t.Error("the caller's request was modified")
			}
		})
	}
}

func TestTransportSingleUseAndCache(t *testing.T) {
	s := newFakeService(t)
	c, _ := newTestClient(t, s, nil)
	single := false
	hc := &http.Client{Transport: c.Transport(s.srv.Client().Transport, TransportOptions{SingleUse: func(*http.Request) bool { return single }})}
	get := func() {
		resp, err := hc.Get(s.srv.URL + "/api/thing")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get()
	get()
	if s.nVerify.Load() != 1 {
		t.Errorf("%d attestations for two requests, want 1 (cached)", s.nVerify.Load())
	}
	single = true
	get()
	get()
	if s.nVerify.Load() != 3 {
		t.Errorf("%d attestations, want 3 (single-use requests attest each)", s.nVerify.Load())
	}
}

func TestTransportAttestationError(t *testing.T) {
	s := newFakeService(t)
	c, _ := newTestClient(t, s, func(c *Config) { c.AppID = "nope" })
	hc := &http.Client{Transport: c.Transport(s.srv.Client().Transport, TransportOptions{})}
	_, err := hc.Get(s.srv.URL + "/api/thing")
	var p *ProblemError
	if !errors.As(err, &p) || p.Slug() != "attestation-app-unknown" {
		t.Errorf("err = %v", err)
	}
	if s.nAPI.Load() != 0 {
		t.Error("request sent without a token")
	}
}

func TestSecrets(t *testing.T) {
	s := newFakeService(t)
	c, _ := newTestClient(t, s, nil)
	for i := range 2 {
		got, err := c.Secrets(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got["maps_api_key"] != "k-shop-cli" {
			t.Errorf("secrets = %v", got)
		}
		if s.nVerify.Load() != int32(i+1) {
			t.Errorf("call %d: %d attestations; each call needs a fresh token", i, s.nVerify.Load())
		}
	}
	// An old token is refused by the service: Secrets must not use the cache.
	s.now = func() time.Time { return time.Now().Add(-2 * time.Minute) }
	if _, err := c.Token(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	s.now = time.Now
	if _, err := c.Secrets(context.Background()); err != nil {
		t.Errorf("err = %v", err)
	}
	s.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == SecretsPath {
			writeProblem(w, 401, "attestation-missing", "")
			return true
		}
		return false
	})
	_, err := c.Secrets(context.Background())
	var p *ProblemError
	if !errors.As(err, &p) || p.Status != 401 || p.Slug() != "attestation-missing" {
		t.Errorf("err = %v", err)
	}
}

func TestTransportDropsRejectedTokenEvenWithoutRetry(t *testing.T) {
	s := newFakeService(t)
	var mu sync.Mutex
	first := true
	s.api = func(w http.ResponseWriter, r *http.Request, tok string, claims map[string]any) {
		mu.Lock()
		defer mu.Unlock()
		if first {
			first = false
			writeProblem(w, 401, "attestation-expired", "")
			return
		}
		writeJSON(w, 200, map[string]string{"ok": "yes"})
	}
	c, _ := newTestClient(t, s, nil)
	hc := &http.Client{Transport: c.Transport(s.srv.Client().Transport, TransportOptions{})}
	req, _ := http.NewRequest("POST", s.srv.URL+"/api/thing", io.MultiReader(strings.NewReader("x"))) // not replayable
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || s.nAPI.Load() != 1 {
		t.Fatalf("status %d after %d requests; want the 401, not retried", resp.StatusCode, s.nAPI.Load())
	}
	resp, err = hc.Get(s.srv.URL + "/api/thing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || s.nVerify.Load() != 2 {
		t.Errorf("status %d, %d attestations; want 200 with a new token", resp.StatusCode, s.nVerify.Load())
	}
}
