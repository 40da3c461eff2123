package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/checks/apikey"
	"github.com/apiguard/apiguard/internal/decision"
	"github.com/apiguard/apiguard/internal/problem"
	"github.com/apiguard/apiguard/internal/state"
	"github.com/apiguard/apiguard/internal/testutil"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Millisecond)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newStore returns a store over b, or over a fresh memory backend when b
// is nil; now may be nil for wall time.
func newStore(t *testing.T, b state.Backend, now state.Clock) *decision.Store {
	t.Helper()
	if b == nil {
		mem := state.NewMemory(state.MemoryOptions{Clock: now})
		t.Cleanup(func() { _ = mem.Close() })
		b = mem
	}
	s, err := decision.NewStore(b, decision.Options{Clock: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newServer mounts the handler the way the gateway does: on a ServeMux,
// under DecisionsPath and DecisionsPath+"/", next to a catch-all.
func newServer(t *testing.T, s *decision.Store, o Options) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	h := Decisions(s, o)
	mux.Handle(DecisionsPath, h)
	mux.Handle(DecisionsPath+"/", h)
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeProblem(w, http.StatusNotFound, "not-found", "no such admin endpoint", nil)
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) problem(t *testing.T) problem.Details {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("Content-Type %q, want %q (status %d, body %s)", ct, problem.ContentType, r.status, r.body)
	}
	var p problem.Details
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %s: %v", r.body, err)
	}
	if p.Status != r.status || !strings.HasPrefix(p.Type, problem.TypePrefix) || p.Title == "" {
		t.Fatalf("bad problem %+v for status %d", p, r.status)
	}
	return p
}

// do sends a request without following redirects.
func do(t *testing.T, srv *httptest.Server, method, path, contentType, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func post(t *testing.T, srv *httptest.Server, body string) response {
	t.Helper()
	return do(t, srv, http.MethodPost, DecisionsPath, "application/json", body)
}

func list(t *testing.T, srv *httptest.Server, query string) []decision.Decision {
	t.Helper()
	r := do(t, srv, http.MethodGet, DecisionsPath+query, "", "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %d %s %s", query, r.status, r.header.Get("Content-Type"), r.body)
	}
	var lr ListResponse
	if err := json.Unmarshal(r.body, &lr); err != nil {
		t.Fatalf("list body %s: %v", r.body, err)
	}
	if lr.Decisions == nil {
		t.Fatalf("decisions is null, want []: %s", r.body)
	}
	return lr.Decisions
}

func TestDecisionsAddListDelete(t *testing.T) {
	t.Parallel()
	var logs testutil.SyncBuffer
	clk := newClock()
	store := newStore(t, nil, clk.Now)
	srv := newServer(t, store, Options{Logger: slogTo(&logs), Clock: clk.Now})

	if got := do(t, srv, http.MethodGet, DecisionsPath, "", ""); string(got.body) != "{\"decisions\":[]}\n" {
		t.Fatalf("empty list body %q", got.body)
	}

	r := post(t, srv, `{"key":"ip:203.0.113.7","action":"block","ttl":"1h","reason":"manual: abuse report #123"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	// The stable encoding, fields in order.
	shape := regexp.MustCompile(`^\{"id":"[0-9a-f]{24}","key":"ip:203\.0\.113\.7","action":"block","reason":"manual: abuse report #123","source":"manual","created":"[^"]+Z","expires":"[^"]+Z"\}\n$`)
	if !shape.Match(r.body) {
		t.Fatalf("POST body %s does not match %s", r.body, shape)
	}
	var d decision.Decision
	if err := json.Unmarshal(r.body, &d); err != nil {
		t.Fatal(err)
	}
	if ttl := d.Expires.Sub(d.Created); ttl != time.Hour {
		t.Errorf("expires - created = %s, want 1h", ttl)
	}
	if !d.Created.Equal(clk.Now()) {
		t.Errorf("created %s, want %s", d.Created, clk.Now())
	}
	if loc := r.header.Get("Location"); loc != DecisionsPath+"/"+d.ID {
		t.Errorf("Location %q", loc)
	}
	if m, ok := store.Match("ip:203.0.113.7"); !ok || m.ID != d.ID {
		t.Errorf("store does not enforce the decision: %+v %v", m, ok)
	}

	// Re-adding the same key, action and source refreshes the decision.
	clk.Advance(time.Second)
	r = post(t, srv, `{"key":"ip:203.0.113.7","action":"block","ttl":"2h"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("re-POST: %d %s", r.status, r.body)
	}
	clk.Advance(time.Second)
	r = post(t, srv, `{"key":"net:10.0.0.0/24","action":"challenge","ttl":"7d","reason":"scraping"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("POST net: %d %s", r.status, r.body)
	}

	ds := list(t, srv, "")
	if len(ds) != 2 || ds[0].Key != "net:10.0.0.0/24" || ds[1].ID != d.ID || ds[1].Reason != "" {
		t.Fatalf("list (newest first) = %+v", ds)
	}
	if got := ds[0].Expires.Sub(ds[0].Created); got != 7*24*time.Hour {
		t.Errorf("7d ttl = %s", got)
	}

	r = do(t, srv, http.MethodDelete, DecisionsPath+"/"+d.ID, "", "")
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	if _, ok := store.Match("ip:203.0.113.7"); ok {
		t.Error("deleted decision still enforced")
	}
	r = do(t, srv, http.MethodDelete, DecisionsPath+"/"+d.ID, "", "")
	if r.status != http.StatusNotFound {
		t.Fatalf("second DELETE: %d %s", r.status, r.body)
	}
	if p := r.problem(t); p.Title != "Decision not found" || !strings.Contains(p.Detail, d.ID) {
		t.Errorf("404 problem %+v", p)
	}
	if ds := list(t, srv, ""); len(ds) != 1 {
		t.Fatalf("after delete: %+v", ds)
	}
	for _, want := range []string{`"admin: decision added"`, `"admin: decision deleted"`, `"reason":"manual: abuse report #123"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("audit log lacks %s:\n%s", want, logs.String())
		}
	}
}

func TestDecisionsListFilters(t *testing.T) {
	t.Parallel()
	store := newStore(t, nil, nil)
	srv := newServer(t, store, Options{})
	exp := time.Now().Add(time.Hour)
	for _, d := range []decision.Decision{
		{Key: "ip:203.0.113.7", Action: decision.Block, Source: decision.SourceManual, Expires: exp},
		{Key: "ip:203.0.113.7", Action: decision.Throttle, Source: "credential-stuffing", Expires: exp},
		{Key: "key:partner", Action: decision.Allow, Source: decision.SourceManual, Expires: exp},
		{Key: "country:KP", Action: decision.Challenge, Source: "geo", Expires: exp},
	} {
		if _, err := store.Add(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		query string
		want  []string // keys/actions
	}{
		{"", []string{"ip:203.0.113.7/block", "ip:203.0.113.7/throttle", "key:partner/allow", "country:KP/challenge"}},
		// Keys are compared in canonical form.
		{"?key=ip:::ffff:203.0.113.7", []string{"ip:203.0.113.7/block", "ip:203.0.113.7/throttle"}},
		{"?key=country:kp", []string{"country:KP/challenge"}},
		{"?action=allow", []string{"key:partner/allow"}},
		{"?source=manual", []string{"ip:203.0.113.7/block", "key:partner/allow"}},
		{"?source=geo&action=challenge", []string{"country:KP/challenge"}},
		{"?key=ip:203.0.113.7&action=throttle&source=credential-stuffing", []string{"ip:203.0.113.7/throttle"}},
		{"?key=ip:198.51.100.1", nil},
		{"?key=", []string{"ip:203.0.113.7/block", "ip:203.0.113.7/throttle", "key:partner/allow", "country:KP/challenge"}},
	}
	for _, tc := range cases {
		var got []string
		for _, d := range list(t, srv, tc.query) {
			got = append(got, d.Key+"/"+d.Action.String())
		}
		if strings.Join(sorted(got), " ") != strings.Join(sorted(tc.want), " ") {
			t.Errorf("GET %s = %v, want %v", tc.query, got, tc.want)
		}
	}
	for query, detail := range map[string]string{
		"?action=nuke":               "query parameter action: unknown action",
		"?key=host:x":                "query parameter key:",
		"?key=ip:300.1.1.1":          "query parameter key:",
		"?kind=ip":                   `unknown query parameter "kind"`,
		"?action=block&action=allow": "action: give it at most once",
	} {
		r := do(t, srv, http.MethodGet, DecisionsPath+query, "", "")
		if r.status != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", query, r.status)
			continue
		}
		if p := r.problem(t); !strings.Contains(p.Detail, detail) {
			t.Errorf("GET %s: detail %q lacks %q", query, p.Detail, detail)
		}
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// Keys hold ':' and may hold '/': the path takes them raw (the rest of the
// path is the key) or escaped.
func TestDecisionsDeleteByKeyPaths(t *testing.T) {
	t.Parallel()
	store := newStore(t, nil, nil)
	srv := newServer(t, store, Options{})
	cases := []struct {
		key, path string
	}{
		{"net:10.0.0.0/24", "net:10.0.0.0/24"},
		{"net:10.0.0.0/24", "net:10.0.0.0%2F24"},
		{"net:10.0.0.0/24", "net%3A10.0.0.0%2F24"},
		{"net:2001:db8::/32", "net:2001:db8::/32"},
		{"net:2001:db8::/32", "net:2001:db8::%2F32"},
		{"ip:203.0.113.7", "ip:203.0.113.7"},
		{"country:KP", "country:kp"}, // canonicalised
		// A raw "//" would be cleaned (and redirected) by the ServeMux:
		// escaped, it is not.
		{"sub:https://idp.example/u/1", "sub:https:%2F%2Fidp.example%2Fu%2F1"},
		{"key:a b", "key:a%20b"},
	}
	for _, tc := range cases {
		// Two decisions for the key: deleting by key removes both.
		for _, a := range []string{"block", "throttle"} {
			body, _ := json.Marshal(AddRequest{Key: tc.key, Action: a, TTL: "1h"})
			if r := post(t, srv, string(body)); r.status != http.StatusCreated {
				t.Fatalf("POST %s: %d %s", body, r.status, r.body)
			}
		}
		r := do(t, srv, http.MethodDelete, DecisionsPath+"/"+tc.path, "", "")
		if r.status != http.StatusNoContent {
			t.Fatalf("DELETE %s: %d %s", tc.path, r.status, r.body)
		}
		if ds := list(t, srv, ""); len(ds) != 0 {
			t.Fatalf("DELETE %s left %+v", tc.path, ds)
		}
	}
	// Not found, by key and by ID; invalid.
	for path, want := range map[string]int{
		"net:10.0.0.0/24":          http.StatusNotFound,
		"net:192.0.2.0%2F24":       http.StatusNotFound,
		"0123456789abcdef01234567": http.StatusNotFound,
		"net:10.0.0.0/99":          http.StatusBadRequest,
		"nope:x":                   http.StatusBadRequest,
		"bad%20id":                 http.StatusBadRequest,
		"":                         http.StatusBadRequest,
	} {
		r := do(t, srv, http.MethodDelete, DecisionsPath+"/"+path, "", "")
		if r.status != want {
			t.Errorf("DELETE %q: %d, want %d (%s)", path, r.status, want, r.body)
			continue
		}
		r.problem(t)
	}
}

func TestDecisionsAddErrors(t *testing.T) {
	t.Parallel()
	store := newStore(t, nil, nil)
	srv := newServer(t, store, Options{})
	secret, _ := apikey.Generate("partner", nil, 0, time.Now())
	cases := []struct {
		name, contentType, body string
		status                  int
		slug, detail            string
	}{
		{"no content type", "", `{}`, 415, "unsupported-media-type", "application/json"},
		{"form", "application/x-www-form-urlencoded", `key=ip:1.2.3.4`, 415, "unsupported-media-type", ""},
		{"latin1", "application/json; charset=latin1", `{}`, 415, "unsupported-media-type", ""},
		{"empty", "application/json", ``, 400, "invalid-json", "empty"},
		{"syntax", "application/json", `{"key":`, 400, "invalid-json", "ends early"},
		{"syntax2", "application/json", `{"key" "x"}`, 400, "invalid-json", "invalid JSON at byte"},
		{"trailing", "application/json", `{"key":"ip:1.2.3.4","action":"block","ttl":"1h"} {}`, 400, "invalid-json", "nothing after it"},
		{"array", "application/json", `[]`, 400, "invalid-json", "must be a JSON object"},
		{"unknown field", "application/json", `{"key":"ip:1.2.3.4","action":"block","ttl":"1h","source":"bruteforce"}`, 400, "invalid-json", `unknown field "source"`},
		{"wrong type", "application/json", `{"key":"ip:1.2.3.4","action":"block","ttl":3600}`, 400, "invalid-json", "field ttl: must be a string"},
		{"no key", "application/json", `{"action":"block","ttl":"1h"}`, 400, "invalid-decision", "key is required"},
		{"bad key", "application/json", `{"key":"203.0.113.7","action":"block","ttl":"1h"}`, 400, "invalid-decision", "key: key \"203.0.113.7\" is not kind:value"},
		{"bad ip", "application/json", `{"key":"ip:203.0.113.700","action":"block","ttl":"1h"}`, 400, "invalid-decision", "key: "},
		{"no action", "application/json", `{"key":"ip:1.2.3.4","ttl":"1h"}`, 400, "invalid-decision", "action is required"},
		{"bad action", "application/json", `{"key":"ip:1.2.3.4","action":"ban","ttl":"1h"}`, 400, "invalid-decision", `action: unknown action "ban"`},
		{"no ttl", "application/json", `{"key":"ip:1.2.3.4","action":"block"}`, 400, "invalid-decision", "ttl is required"},
		{"bad ttl", "application/json", `{"key":"ip:1.2.3.4","action":"block","ttl":"forever"}`, 400, "invalid-decision", `ttl: invalid duration "forever"`},
		{"negative ttl", "application/json", `{"key":"ip:1.2.3.4","action":"block","ttl":"-1h"}`, 400, "invalid-decision", "ttl: \"-1h\" is not a positive duration"},
		{"long ttl", "application/json", `{"key":"ip:1.2.3.4","action":"block","ttl":"367d"}`, 400, "invalid-decision", "ttl: \"367d\" is more than the maximum of 8784h0m0s (366d)"},
		{"long reason", "application/json", `{"key":"ip:1.2.3.4","action":"block","ttl":"1h","reason":"` + strings.Repeat("x", 513) + `"}`, 400, "invalid-decision", "reason must be at most 512"},
		{"control reason", "application/json", `{"key":"ip:1.2.3.4","action":"block","ttl":"1h","reason":"a\u001b[2Jb"}`, 400, "invalid-decision", "reason must be at most 512 printable"},
		{"api key secret", "application/json", `{"key":"key:` + secret + `","action":"block","ttl":"1h"}`, 400, "invalid-decision", "not the key itself"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, srv, http.MethodPost, DecisionsPath, tc.contentType, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			p := r.problem(t)
			if p.Type != problem.TypePrefix+tc.slug || !strings.Contains(p.Detail, tc.detail) {
				t.Fatalf("problem %+v, want type %s and detail with %q", p, tc.slug, tc.detail)
			}
			if bytes.Contains(r.body, []byte(secret)) {
				t.Fatalf("the API key secret is echoed: %s", r.body)
			}
			if tc.status == 415 && r.header.Get("Accept") != "application/json" {
				t.Errorf("415 without Accept: application/json")
			}
		})
	}
	// Over the network, a refused large body costs the server's
	// half-second lingering close: use a recorder.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, DecisionsPath, strings.NewReader(`{"key":"ip:1.2.3.4","action":"block","ttl":"1h","reason":"`+strings.Repeat("x", MaxBodyBytes)+`"}`))
	req.Header.Set("Content-Type", "application/json")
	Decisions(store, Options{}).ServeHTTP(rec, req)
	if p := (response{rec.Code, rec.Header(), rec.Body.Bytes()}).problem(t); p.Status != 413 || p.Type != problem.TypePrefix+"body-too-large" || !strings.Contains(p.Detail, "65536 bytes") {
		t.Errorf("large body: %+v", p)
	}
	if ds := list(t, srv, ""); len(ds) != 0 {
		t.Fatalf("a refused POST stored %+v", ds)
	}
	// charset=utf-8 is fine.
	if r := do(t, srv, http.MethodPost, DecisionsPath, "application/json; charset=UTF-8", `{"key":"ip:1.2.3.4","action":"block","ttl":"1h"}`); r.status != http.StatusCreated {
		t.Fatalf("charset=UTF-8: %d %s", r.status, r.body)
	}
}

func TestDecisionsRouting(t *testing.T) {
	t.Parallel()
	srv := newServer(t, newStore(t, nil, nil), Options{})
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodPut, DecisionsPath, 405, "GET, HEAD, POST"},
		{http.MethodDelete, DecisionsPath, 405, "GET, HEAD, POST"},
		{http.MethodGet, DecisionsPath + "/abc", 405, "DELETE"},
		{http.MethodPost, DecisionsPath + "/abc", 405, "DELETE"},
	} {
		r := do(t, srv, tc.method, tc.path, "", "")
		if r.status != tc.status || r.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q, want %d %q", tc.method, tc.path, r.status, r.header.Get("Allow"), tc.status, tc.allow)
			continue
		}
		r.problem(t)
	}
	if r := do(t, srv, http.MethodHead, DecisionsPath, "", ""); r.status != http.StatusOK {
		t.Errorf("HEAD: %d", r.status)
	}
	// Outside its paths the handler answers 404 (when mounted wider).
	rec := httptest.NewRecorder()
	Decisions(newStore(t, nil, nil), Options{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/other", nil))
	if rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != problem.ContentType {
		t.Errorf("other path: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
}

// failingBackend fails every Scan and Put, with an error naming an
// internal address that must not reach the client.
type failingBackend struct{ state.Backend }

var errBackend = errors.New("dial tcp 10.1.2.3:6379: connection refused")

func (failingBackend) Scan(context.Context, string, int) ([]state.Entry, error) {
	return nil, errBackend
}

func (failingBackend) Put(context.Context, string, []byte, time.Duration) error { return errBackend }

func TestDecisionsStoreDown(t *testing.T) {
	t.Parallel()
	mem := state.NewMemory(state.MemoryOptions{})
	t.Cleanup(func() { _ = mem.Close() })
	var logs testutil.SyncBuffer
	srv := newServer(t, newStore(t, failingBackend{mem}, nil), Options{Logger: slogTo(&logs)})
	for _, r := range []response{
		do(t, srv, http.MethodGet, DecisionsPath, "", ""),
		post(t, srv, `{"key":"ip:1.2.3.4","action":"block","ttl":"1h"}`),
		do(t, srv, http.MethodDelete, DecisionsPath+"/ip:1.2.3.4", "", ""),
	} {
		if r.status != http.StatusServiceUnavailable {
			t.Errorf("status %d, want 503: %s", r.status, r.body)
			continue
		}
		if p := r.problem(t); strings.Contains(string(r.body), "10.1.2.3") || !strings.Contains(p.Detail, "unavailable") {
			t.Errorf("problem %s", r.body)
		}
	}
	if !strings.Contains(logs.String(), "10.1.2.3:6379") {
		t.Errorf("the store error is not logged:\n%s", logs.String())
	}
}

func TestDecisionsParseTTL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"1h": time.Hour, "90s": 90 * time.Second, "1h30m": 90 * time.Minute, "7d": 7 * 24 * time.Hour,
		"1d12h": 36 * time.Hour, "366d": decision.MaxTTL, "0d1m": time.Minute, "1d0s": 24 * time.Hour,
	} {
		if got, err := ParseTTL(in); err != nil || got != want {
			t.Errorf("ParseTTL(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "0s", "-1h", "d", "1dd", "+1d", "-1d", "1d-1h", "1d+1h", "x1d", "99999d", "366d1s", "1w", "1.5d", "forever"} {
		if got, err := ParseTTL(in); err == nil {
			t.Errorf("ParseTTL(%q) = %s, want an error", in, got)
		}
	}
}

// The secret check must follow the API key format.
func TestDecisionsAPIKeyPrefix(t *testing.T) {
	if apiKeyPrefix != apikey.Prefix {
		t.Fatalf("apiKeyPrefix %q, apikey.Prefix %q", apiKeyPrefix, apikey.Prefix)
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }
