package bot

import (
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/decision"
	"github.com/apiguard/apiguard/internal/detect"
	"github.com/apiguard/apiguard/internal/events"
	"github.com/apiguard/apiguard/internal/geo"
	"github.com/apiguard/apiguard/internal/geo/geotest"
	"github.com/apiguard/apiguard/internal/goodbot"
	"github.com/apiguard/apiguard/internal/state"
	"github.com/apiguard/apiguard/internal/testutil"
)

// harness is one Service over an in-memory backend and decision store,
// with its log captured.
type harness struct {
	svc   *Service
	store *decision.Store
	logs  *testutil.SyncBuffer
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	mem := state.NewMemory(state.MemoryOptions{})
	t.Cleanup(func() { _ = mem.Close() })
	store, err := decision.NewStore(mem, decision.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.SyncBuffer{}
	s, err := New(cfg, Options{State: mem, Decisions: store, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &harness{svc: s, store: store, logs: logs}
}

// decisions returns the store's decisions by key.
func (h *harness) decisions(t *testing.T) map[string][]decision.Decision {
	t.Helper()
	list, err := h.store.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]decision.Decision{}
	for _, d := range list {
		out[d.Key] = append(out[d.Key], d)
	}
	return out
}

func (h *harness) add(t *testing.T, d decision.Decision) decision.Decision {
	t.Helper()
	d, err := h.store.Add(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// only returns a detectors config with just the named detector on: the
// synthetic traffic of these tests is perfectly periodic, which the timing
// detector would score too.
func only(name string) detect.Config {
	off := func() *bool { b := false; return &b }
	c := detect.Config{}
	c.Rate.Enabled, c.Timing.Enabled, c.Scrape.Enabled, c.Enum.Enabled = off(), off(), off(), off()
	c.Probe.Enabled, c.Login.Enabled, c.Flow.Enabled = off(), off(), off()
	switch name {
	case detect.DetectorProbe:
		c.Probe.Enabled = nil
	case detect.DetectorLogin:
		c.Login.Enabled = nil
	}
	return c
}

// probes returns n requests of one client for missing paths, 1 ms apart
// from now on (the risk decays by the wall clock: the findings must be
// fresh).
func probes(n int, base events.Event) []*events.Event {
	now := time.Now()
	out := make([]*events.Event, n)
	for i := range out {
		ev := base
		ev.Time = now.Add(time.Duration(i) * time.Millisecond)
		ev.Kind = events.KindRequest
		ev.Route, ev.Method, ev.Path, ev.Status = "api", "GET", "/missing/"+strconv.Itoa(i), 404
		out[i] = &ev
	}
	return out
}

func observeAll(t *testing.T, s *Service, evs []*events.Event) {
	t.Helper()
	for _, ev := range evs {
		s.Observe(t.Context(), ev)
	}
}

func errPaths(errs *field.Errors) []string {
	var out []string
	for _, e := range errs.List {
		out = append(out, e.Path)
	}
	slices.Sort(out)
	return out
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		cfg  Config
		want []string // error paths
	}{
		{"zero value", Config{}, nil},
		{"complete and valid", Config{
			Logins: []Login{
				{Route: "login", Username: "json:/user/name", Success: []int{200, 302}},
				{Route: "form-login", Username: "form:user"},
				{Route: "q", Username: "query:u"},
			},
			Block:     Escalation{Score: 90, TTL: "1h"},
			Challenge: Escalation{Score: 1, TTL: "1s"},
			GeoIP:     &geo.Files{Country: "/x/country.mmdb"},
			GoodBots:  &goodbot.Config{Timeout: "500ms"},
		}, nil},
		{"max ttl", Config{Block: Escalation{TTL: (366 * 24 * time.Hour).String()}}, nil},
		{"login without route", Config{Logins: []Login{{Username: "json:u"}}}, []string{"bot.logins[0].route"}},
		{"unknown source kind", Config{Logins: []Login{{Route: "l", Username: "xml:user"}}}, []string{"bot.logins[0].username"}},
		{"source without name", Config{Logins: []Login{{Route: "l", Username: "form:"}}}, []string{"bot.logins[0].username"}},
		{"source without kind", Config{Logins: []Login{{Route: "l", Username: "username"}}}, []string{"bot.logins[0].username"}},
		{"empty source", Config{Logins: []Login{{Route: "l"}}}, []string{"bot.logins[0].username"}},
		{"bad statuses", Config{Logins: []Login{{Route: "l", Username: "json:u"}, {Route: "m", Username: "json:u", Success: []int{200, 99, 600, 599, 100}}}},
			[]string{"bot.logins[1].success[1]", "bot.logins[1].success[2]"}},
		{"negative block score", Config{Block: Escalation{Score: -1}}, []string{"bot.block.score"}},
		{"challenge score over 100", Config{Challenge: Escalation{Score: 101}}, []string{"bot.challenge.score"}},
		{"scores at the bounds", Config{Block: Escalation{Score: 100}, Challenge: Escalation{Score: 0}}, nil},
		{"unparsable ttl", Config{Block: Escalation{TTL: "soon"}}, []string{"bot.block.ttl"}},
		{"ttl under a second", Config{Challenge: Escalation{TTL: "500ms"}}, []string{"bot.challenge.ttl"}},
		{"negative ttl", Config{Block: Escalation{TTL: "-1m"}}, []string{"bot.block.ttl"}},
		{"ttl over the decision maximum", Config{Block: Escalation{TTL: "8785h"}}, []string{"bot.block.ttl"}},
		{"geoip without files", Config{GeoIP: &geo.Files{}}, []string{"bot.geoip"}},
		{"geoip with blank files", Config{GeoIP: &geo.Files{Country: " ", ASN: "  "}}, []string{"bot.geoip"}},
		{"bad detectors", Config{Detectors: detect.Config{Fingerprint: "md5"}}, []string{"bot.detectors.fingerprint"}},
		{"bad good bots", Config{GoodBots: &goodbot.Config{Timeout: "forever"}}, []string{"bot.good_bots.timeout"}},
		{"everything at once", Config{
			Logins:    []Login{{Username: "json"}},
			Block:     Escalation{Score: 200, TTL: "0s"},
			Challenge: Escalation{Score: -5, TTL: "x"},
			GeoIP:     &geo.Files{},
		}, []string{"bot.block.score", "bot.block.ttl", "bot.challenge.score", "bot.challenge.ttl", "bot.geoip", "bot.logins[0].route", "bot.logins[0].username"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			var errs field.Errors
			tc.cfg.Validate("bot", &errs)
			if got := errPaths(&errs); !slices.Equal(got, tc.want) {
				t.Errorf("error paths %q, want %q (errors: %v)", got, tc.want, errs.Err())
			}
		})
	}
}

func TestParseSource(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, kind, name string
		ok             bool
	}{
		{"json:/user/name", "json", "/user/name", true},
		{"json:username", "json", "/username", true},
		{"json:user/name", "json", "/user/name", true},
		{"json:/", "json", "/", true},
		{"json:/a~1b", "json", "/a~1b", true},
		{"form:user", "form", "user", true},
		{"form:/user", "form", "/user", true}, // a form field may start with a slash
		{"query:u", "query", "u", true},
		{"query:a:b", "query", "a:b", true},
		{"", "", "", false},
		{"json", "", "", false},
		{"json:", "", "", false},
		{"form:", "", "", false},
		{":user", "", "", false},
		{"xml:user", "", "", false},
		{"JSON:user", "", "", false},
		{"header:X-User", "", "", false},
		{"json:/a~2b", "", "", false}, // ~ must be ~0 or ~1
		{"json:/a~", "", "", false},
	}
	for _, tc := range tests {
		kind, name, err := parseSource(tc.in)
		if (err == nil) != tc.ok || kind != tc.kind || name != tc.name {
			t.Errorf("parseSource(%q) = %q, %q, %v; want %q, %q, ok %v", tc.in, kind, name, err, tc.kind, tc.name, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), strconv.Quote(tc.in)) {
			t.Errorf("parseSource(%q): error %q does not quote the input", tc.in, err)
		}
	}
}

func TestLoginOf(t *testing.T) {
	t.Parallel()
	s, err := New(Config{Logins: []Login{
		{Route: "top", Username: "json:username"},
		{Route: "nested", Username: "json:/user/name"},
		{Route: "escaped", Username: "json:/a~1b/c~0d"},
		{Route: "tilde-one", Username: "json:/~01"},
		{Route: "array", Username: "json:/users/1/name"},
		{Route: "root-member", Username: "json:/"},
		{Route: "form", Username: "form:user"},
		{Route: "query", Username: "query:u"},
		{Route: "listed", Username: "json:username", Success: []int{200, 302}},
	}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 300)
	huge := `{"username":"alice","pad":"` + strings.Repeat("x", 64<<10) + `"}`
	tests := []struct {
		desc, route, body string
		query, form       map[string]string
		status            int
		want              *events.Login
	}{
		{"top-level member", "top", `{"username":"alice","password":"x"}`, nil, nil, 200, &events.Login{Username: "alice", Success: true}},
		{"not a login route", "api", `{"username":"alice"}`, nil, nil, 200, nil},
		{"nested pointer", "nested", `{"user":{"name":"bob","pw":"x"}}`, nil, nil, 401, &events.Login{Username: "bob"}},
		{"nested pointer through a string", "nested", `{"user":"bob"}`, nil, nil, 200, nil},
		{"nested pointer, member missing", "nested", `{"user":{"mail":"bob@x"}}`, nil, nil, 200, nil},
		{"escaped ~1 and ~0", "escaped", `{"a/b":{"c~d":"carol"},"a":{"b":{"c~d":"wrong"}}}`, nil, nil, 200, &events.Login{Username: "carol", Success: true}},
		{"~01 is ~1, not /", "tilde-one", `{"~1":"dave","/":"wrong"}`, nil, nil, 200, &events.Login{Username: "dave", Success: true}},
		{"array index", "array", `{"users":[{"name":"x"},{"name":"erin"}]}`, nil, nil, 200, &events.Login{Username: "erin", Success: true}},
		{"array index out of range", "array", `{"users":[{"name":"x"}]}`, nil, nil, 200, nil},
		{"array index not a number", "array", `{"users":{"1":{"name":"frank"}}}`, nil, nil, 200, &events.Login{Username: "frank", Success: true}},
		{"empty member name", "root-member", `{"":"gina"}`, nil, nil, 200, &events.Login{Username: "gina", Success: true}},
		{"number, not a string", "top", `{"username":42}`, nil, nil, 200, nil},
		{"null", "top", `{"username":null}`, nil, nil, 200, nil},
		{"empty string", "top", `{"username":""}`, nil, nil, 200, nil},
		{"missing username", "top", `{"user":"alice"}`, nil, nil, 200, nil},
		{"not JSON", "top", `username=alice`, nil, nil, 200, nil},
		{"truncated JSON", "top", `{"username":"alice"`, nil, nil, 200, nil},
		{"empty body", "top", ``, nil, nil, 200, nil},
		{"top-level array", "top", `["alice"]`, nil, nil, 200, nil},
		{"body over 64 KiB", "top", huge, nil, nil, 200, nil},
		{"oversize username truncated", "top", `{"username":"` + long + `"}`, nil, nil, 200, &events.Login{Username: long[:256], Success: true}},
		{"form", "form", ``, nil, map[string]string{"user": "hank"}, 200, &events.Login{Username: "hank", Success: true}},
		{"form, missing", "form", `{"user":"hank"}`, map[string]string{"user": "q"}, map[string]string{}, 200, nil},
		{"query", "query", ``, map[string]string{"u": "ivy"}, nil, 403, &events.Login{Username: "ivy"}},
		{"query, missing", "query", ``, map[string]string{"user": "ivy"}, map[string]string{"u": "f"}, 200, nil},
		{"oversize form username truncated", "form", ``, nil, map[string]string{"user": long}, 200, &events.Login{Username: long[:256], Success: true}},
		{"2xx default: 200", "top", `{"username":"a"}`, nil, nil, 200, &events.Login{Username: "a", Success: true}},
		{"2xx default: 204", "top", `{"username":"a"}`, nil, nil, 204, &events.Login{Username: "a", Success: true}},
		{"2xx default: 299", "top", `{"username":"a"}`, nil, nil, 299, &events.Login{Username: "a", Success: true}},
		{"2xx default: 302", "top", `{"username":"a"}`, nil, nil, 302, &events.Login{Username: "a"}},
		{"2xx default: 199", "top", `{"username":"a"}`, nil, nil, 199, &events.Login{Username: "a"}},
		{"2xx default: 401", "top", `{"username":"a"}`, nil, nil, 401, &events.Login{Username: "a"}},
		{"2xx default: unknown status", "top", `{"username":"a"}`, nil, nil, 0, &events.Login{Username: "a"}},
		{"success list: 302", "listed", `{"username":"a"}`, nil, nil, 302, &events.Login{Username: "a", Success: true}},
		{"success list: 200", "listed", `{"username":"a"}`, nil, nil, 200, &events.Login{Username: "a", Success: true}},
		{"success list: 201 is not listed", "listed", `{"username":"a"}`, nil, nil, 201, &events.Login{Username: "a"}},
		{"success list: 401", "listed", `{"username":"a"}`, nil, nil, 401, &events.Login{Username: "a"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			lookup := func(m map[string]string) func(string) string {
				return func(name string) string { return m[name] }
			}
			got := s.LoginOf(tc.route, []byte(tc.body), lookup(tc.query), lookup(tc.form), tc.status)
			switch {
			case got == nil && tc.want == nil:
			case got == nil || tc.want == nil || *got != *tc.want:
				t.Errorf("LoginOf = %+v, want %+v", got, tc.want)
			}
		})
	}
	if !s.IsLogin("top") || !s.IsLogin("query") || s.IsLogin("api") || s.IsLogin("") {
		t.Error("IsLogin does not match the configured login routes")
	}
}

// TestObserveProberDecisions: 20 not-found answers out of 20 requests make
// a probing finding (score 50) on every key kind the detector watches; at
// a block score of 50 the client keys are blocked for the block TTL and the
// shared ones (fingerprint, network) only challenged for the challenge TTL.
func TestObserveProberDecisions(t *testing.T) {
	t.Parallel()
	det := only(detect.DetectorProbe)
	det.Probe.Keys = []string{"ip", "net", "fp", "key", "sub", "dev"}
	h := newHarness(t, Config{
		Detectors: det,
		Block:     Escalation{Score: 50, TTL: "2m"},
		Challenge: Escalation{Score: 40, TTL: "1m"},
	})
	const ja4 = "t13d1516h2_8daaf6152771_b186095e22b6"
	evs := probes(25, events.Event{ClientIP: "198.51.100.7", JA4: ja4, APIKey: "partner", Subject: "mallory", Device: "dev-1"})
	observeAll(t, h.svc, evs[:19])
	if got := h.decisions(t); len(got) != 0 {
		t.Fatalf("decisions before the probing threshold: %v", got)
	}
	observeAll(t, h.svc, evs[19:])

	fpKey := detect.FingerprintKey(ja4, "")
	want := map[string]struct {
		action decision.Action
		ttl    time.Duration
	}{
		"ip:198.51.100.7":     {decision.Block, 2 * time.Minute},
		"net:198.51.100.0/24": {decision.Challenge, time.Minute},
		fpKey:                 {decision.Challenge, time.Minute},
		"key:partner":         {decision.Block, 2 * time.Minute},
		"sub:mallory":         {decision.Challenge, time.Minute}, // an account may be stolen: its owner attests
		"dev:dev-1":           {decision.Block, 2 * time.Minute},
	}
	got := h.decisions(t)
	if len(got) != len(want) {
		t.Errorf("decisions on %d keys, want %d: %v", len(got), len(want), got)
	}
	for key, w := range want {
		ds := got[key]
		if len(ds) != 1 {
			t.Errorf("%s: %d decisions, want 1: %+v", key, len(ds), ds)
			continue
		}
		d := ds[0]
		if d.Action != w.action || d.Source != detect.DetectorProbe || d.Reason != "probing/not_found" {
			t.Errorf("%s: %s by %q (%q), want %s by probing (probing/not_found)", key, d.Action, d.Source, d.Reason, w.action)
		}
		if ttl := d.Expires.Sub(d.Created); ttl < w.ttl-time.Second || ttl > w.ttl+time.Second {
			t.Errorf("%s: TTL %v, want %v", key, ttl, w.ttl)
		}
		for k, v := range map[string]string{"score": "50", "reason.0": "probing/not_found +50", "not_found": "20.00", "requests": "20.00", "ratio": "1.00"} {
			if d.Evidence[k] != v {
				t.Errorf("%s: evidence %s = %q, want %q (all: %v)", key, k, d.Evidence[k], v, d.Evidence)
			}
		}
		for k, v := range map[string]string{"block_score": "50", "challenge_score": "40", "min_not_found": "20.00", "min_ratio": "0.50"} {
			if d.Thresholds[k] != v {
				t.Errorf("%s: threshold %s = %q, want %q (all: %v)", key, k, d.Thresholds[k], v, d.Thresholds)
			}
		}
	}
	if strings.Contains(h.logs.String(), "not stored") {
		t.Errorf("a decision failed: %s", h.logs.String())
	}
}

// TestObserveDefaults: with the default thresholds (challenge 50, block
// 80, 15m) one probing finding of 50 only challenges the address.
func TestObserveDefaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{Detectors: only(detect.DetectorProbe)})
	observeAll(t, h.svc, probes(20, events.Event{ClientIP: "2001:db8::7"}))
	got := h.decisions(t)
	d := got["ip:2001:db8::7"]
	if len(got) != 1 || len(d) != 1 || d[0].Action != decision.Challenge {
		t.Fatalf("decisions %v, want one challenge on ip:2001:db8::7", got)
	}
	if ttl := d[0].Expires.Sub(d[0].Created); ttl < 15*time.Minute-time.Second || ttl > 15*time.Minute+time.Second {
		t.Errorf("TTL %v, want the default 15m", ttl)
	}
	if d[0].Thresholds["block_score"] != "80" || d[0].Thresholds["challenge_score"] != "50" {
		t.Errorf("thresholds %v, want the default scores", d[0].Thresholds)
	}
}

// TestObserveCredentialStuffing drives ten usernames from one address
// through LoginOf and Observe: the address is blocked (stuffing and brute
// force together), its /24 only challenged, no account key escalated.
func TestObserveCredentialStuffing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{
		Detectors: only(detect.DetectorLogin),
		Logins:    []Login{{Route: "login", Username: "json:username"}},
	})
	now := time.Now()
	for i := range 10 {
		body := []byte(`{"username":"user` + strconv.Itoa(i) + `","password":"guess"}`)
		ev := &events.Event{Time: now.Add(time.Duration(i) * time.Millisecond), Kind: events.KindRequest, ClientIP: "198.51.100.21",
			Route: "login", Method: "POST", Path: "/login", Status: 401}
		ev.Login = h.svc.LoginOf("login", body, nil, nil, ev.Status)
		if ev.Login == nil || ev.Login.Success || ev.Login.Username != "user"+strconv.Itoa(i) {
			t.Fatalf("LoginOf = %+v", ev.Login)
		}
		h.svc.Observe(t.Context(), ev)
	}
	got := h.decisions(t)
	ip, net := got["ip:198.51.100.21"], got["net:198.51.100.0/24"]
	if len(ip) == 0 || ip[0].Action != decision.Block || !strings.HasPrefix(ip[0].Reason, "login/") || ip[0].Source != "login" {
		t.Errorf("ip decisions %+v, want a login block", ip)
	}
	if len(net) == 0 || net[0].Action != decision.Challenge {
		t.Errorf("net decisions %+v, want a challenge", net)
	}
	for key, ds := range got {
		if !strings.HasPrefix(key, "ip:") && !strings.HasPrefix(key, "net:") {
			t.Errorf("unexpected decision on %s: %+v", key, ds)
		}
		for _, d := range ds {
			if d.Action == decision.Block && strings.HasPrefix(key, "net:") {
				t.Errorf("a network was blocked: %+v", d)
			}
			if d.Evidence["score"] == "" || d.Evidence["reason.0"] == "" || d.Thresholds["block_score"] != "80" {
				t.Errorf("%s: evidence %v thresholds %v", key, d.Evidence, d.Thresholds)
			}
		}
	}
	if d := ip[0]; d.Reason == "login/stuffing" && (d.Evidence["usernames"] == "" || d.Thresholds["min_usernames"] != "8.00") {
		t.Errorf("stuffing evidence %v thresholds %v", d.Evidence, d.Thresholds)
	}
}

// TestObserveNeverEscalatesAccounts: an account attacked from many
// addresses gets findings on its user: key (the victim), never a decision.
func TestObserveNeverEscalatesAccounts(t *testing.T) {
	t.Parallel()
	det := only(detect.DetectorLogin)
	det.Login.User.MaxFailures = 3
	det.Login.User.MaxClients = 2
	h := newHarness(t, Config{Detectors: det, Challenge: Escalation{Score: 10}, Block: Escalation{Score: 20}})
	now := time.Now()
	for i := range 6 {
		h.svc.Observe(t.Context(), &events.Event{Time: now.Add(time.Duration(i) * time.Millisecond), Kind: events.KindRequest,
			ClientIP: "192.0.2." + strconv.Itoa(10+i), Route: "login", Status: 401, Login: &events.Login{Username: "Victim"}})
	}
	if score, _ := h.svc.Engine.Score("user:victim"); score < 70 {
		t.Fatalf("user:victim scores %d: the account rules did not fire", score)
	}
	if got := h.decisions(t); len(got) != 0 {
		t.Errorf("decisions %v, want none", got)
	}
	if l := h.logs.String(); strings.Contains(l, "not stored") || strings.Contains(l, "user:") {
		t.Errorf("an account key was escalated: %s", l)
	}
}

// TestObserveExistingDecisions: what is already decided about a key
// decides whether a finding adds or refreshes a decision.
func TestObserveExistingDecisions(t *testing.T) {
	t.Parallel()
	const ip = "198.51.100.9"
	// dec is a decision on a key, by a source, expiring ttl from now.
	type dec struct {
		key    string
		action decision.Action
		source string
		ttl    time.Duration
	}
	probingBlock := func(ttl time.Duration) dec { return dec{"ip:" + ip, decision.Block, detect.DetectorProbe, ttl} }
	manual := func(key string, a decision.Action, ttl time.Duration) dec {
		return dec{key, a, decision.SourceManual, ttl}
	}
	tests := []struct {
		desc     string
		existing []dec
		want     []dec // the decisions on ip:<ip> afterwards
	}{
		{"nothing decided", nil, []dec{probingBlock(time.Minute)}},
		{"manual allow on the address",
			[]dec{manual("ip:"+ip, decision.Allow, time.Hour)},
			[]dec{manual("ip:"+ip, decision.Allow, time.Hour)}},
		{"manual allow on its network",
			[]dec{manual("net:198.51.100.0/24", decision.Allow, time.Hour)},
			nil},
		{"a detector's allow does not stop a block",
			[]dec{{"ip:" + ip, decision.Allow, "reputation", time.Hour}},
			[]dec{probingBlock(time.Minute), {"ip:" + ip, decision.Allow, "reputation", time.Hour}}},
		{"manual block for longer",
			[]dec{manual("ip:"+ip, decision.Block, time.Hour)},
			[]dec{manual("ip:"+ip, decision.Block, time.Hour)}},
		{"manual block on its network",
			[]dec{manual("net:198.51.100.0/24", decision.Block, time.Hour)},
			nil},
		{"challenge escalates to block",
			[]dec{manual("ip:"+ip, decision.Challenge, time.Hour)},
			[]dec{probingBlock(time.Minute), manual("ip:"+ip, decision.Challenge, time.Hour)}},
		{"throttle escalates to block",
			[]dec{manual("ip:"+ip, decision.Throttle, time.Hour)},
			[]dec{probingBlock(time.Minute), manual("ip:"+ip, decision.Throttle, time.Hour)}},
		{"own block with more than half its TTL left is kept",
			[]dec{probingBlock(40 * time.Second)},
			[]dec{probingBlock(40 * time.Second)}},
		{"own block with less than half its TTL left is refreshed",
			[]dec{probingBlock(20 * time.Second)},
			[]dec{probingBlock(time.Minute)}},
		{"another block about to expire is joined by the detector's",
			[]dec{manual("ip:"+ip, decision.Block, 10*time.Second)},
			[]dec{probingBlock(time.Minute), manual("ip:"+ip, decision.Block, 10*time.Second)}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Config{Detectors: only(detect.DetectorProbe), Block: Escalation{Score: 50, TTL: "1m"}})
			for _, d := range tc.existing {
				h.add(t, decision.Decision{Key: d.key, Action: d.action, Source: d.source, Expires: time.Now().Add(d.ttl)})
			}
			observeAll(t, h.svc, probes(20, events.Event{ClientIP: ip}))
			var got []dec
			for _, d := range h.decisions(t)["ip:"+ip] {
				got = append(got, dec{d.Key, d.Action, d.Source, time.Until(d.Expires)})
			}
			bySource := func(a, b dec) int { return strings.Compare(a.source, b.source) }
			slices.SortFunc(got, bySource)
			slices.SortFunc(tc.want, bySource)
			ok := len(got) == len(tc.want)
			for i := 0; ok && i < len(got); i++ {
				g, w := got[i], tc.want[i]
				ok = g.key == w.key && g.action == w.action && g.source == w.source && g.ttl > w.ttl-2*time.Second && g.ttl <= w.ttl
			}
			if !ok {
				t.Errorf("decisions on ip:%s\n got %v\nwant %v", ip, got, tc.want)
			}
		})
	}
}

// TestObserveWithoutStore: a Service without a decision store scores but
// never decides (and does not crash).
func TestObserveWithoutStore(t *testing.T) {
	t.Parallel()
	s, err := New(Config{Detectors: only(detect.DetectorProbe)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	observeAll(t, s, probes(20, events.Event{ClientIP: "192.0.2.1"}))
	if score, reasons := s.Engine.Score("ip:192.0.2.1"); score != 50 || len(reasons) != 1 || reasons[0].Rule != "not_found" {
		t.Errorf("score %d %+v, want 50 for not_found", score, reasons)
	}
}

func TestNewPrevious(t *testing.T) {
	t.Parallel()
	base := Config{Detectors: only(detect.DetectorProbe), Block: Escalation{Score: 50}}
	prev, err := New(base, Options{})
	if err != nil {
		t.Fatal(err)
	}
	observeAll(t, prev, probes(20, events.Event{ClientIP: "192.0.2.1"}))
	changedDet := base
	changedDet.Detectors = only(detect.DetectorProbe)
	changedDet.Detectors.Probe.MinNotFound = 5
	otherThresholds := base
	otherThresholds.Block = Escalation{Score: 90, TTL: "1h"}
	otherThresholds.Logins = []Login{{Route: "login", Username: "form:user"}}
	tests := []struct {
		desc   string
		cfg    Config
		prev   *Service
		reused bool
	}{
		{"same detectors", base, prev, true},
		{"equal detectors parsed anew", Config{Detectors: only(detect.DetectorProbe), Block: Escalation{Score: 50}}, prev, true},
		{"same detectors, other thresholds and logins", otherThresholds, prev, true},
		{"changed detectors", changedDet, prev, false},
		{"no previous service", base, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			s, err := New(tc.cfg, Options{Previous: tc.prev})
			if err != nil {
				t.Fatal(err)
			}
			if (s.Engine == prev.Engine) != tc.reused {
				t.Fatalf("engine reused: %v, want %v", s.Engine == prev.Engine, tc.reused)
			}
			// The learned state goes with the engine.
			score, _ := s.Engine.Score("ip:192.0.2.1")
			if want := map[bool]int{true: 50, false: 0}[tc.reused]; score != want {
				t.Errorf("score of the earlier prober %d, want %d", score, want)
			}
			if s.IsLogin("login") != (len(tc.cfg.Logins) > 0) {
				t.Error("logins not taken from the new config")
			}
		})
	}
}

func TestNewGeoIP(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "GeoLite2-Country.mmdb")
	_, err := New(Config{GeoIP: &geo.Files{Country: missing}}, Options{})
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "no such file") || !strings.HasPrefix(err.Error(), "geo: ") {
		t.Errorf("New with a missing geoip file: %v, want a geo: error naming the missing file", err)
	}

	s, err := New(Config{GeoIP: &geo.Files{Country: geotest.WriteCountryDB(t, map[string]string{"203.0.113.0/24": "DE"})}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Geo == nil || s.Geo.Country(mustAddr("203.0.113.5")) != "DE" {
		t.Fatal("the geo database was not opened")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if cc := s.Geo.Country(mustAddr("203.0.113.5")); cc != "" {
		t.Errorf("lookup after Close found %q", cc)
	}
	if s, err := New(Config{}, Options{}); err != nil || s.Geo != nil || s.GoodBots != nil || s.Close() != nil {
		t.Errorf("New without geoip and good bots: %+v, %v", s, err)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestNewErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		cfg  Config
		want string
	}{
		{"bad login source", Config{Logins: []Login{{Route: "l", Username: "cookie:user"}}}, `"cookie:user"`},
		{"invalid detectors", Config{Detectors: detect.Config{Cooldown: "1ms"}}, "detect: invalid config"},
		{"invalid good bots", Config{GoodBots: &goodbot.Config{Timeout: "x"}}, "goodbot: invalid config"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			s, err := New(tc.cfg, Options{})
			if err == nil || s != nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, %v; want an error containing %q", s, err, tc.want)
			}
		})
	}
}
