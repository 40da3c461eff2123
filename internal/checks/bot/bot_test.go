package bot

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	svc "github.com/apiguard/apiguard/internal/bot"
	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/decision"
	"github.com/apiguard/apiguard/internal/detect"
	"github.com/apiguard/apiguard/internal/fingerprint"
	"github.com/apiguard/apiguard/internal/geo"
	"github.com/apiguard/apiguard/internal/goodbot"
	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/apiguard/apiguard/internal/state"
)

const (
	chromeUA    = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
	googlebotUA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		cfg  Config
		want []string // error paths
	}{
		{"zero value", Config{}, nil},
		{"complete and valid", Config{
			Options:  pipeline.Options{Mode: pipeline.ModeMonitor, OnError: pipeline.OnErrorAllow},
			Allow:    Lists{CIDRs: []string{"10.0.0.0/8", "2001:db8::/32", "192.0.2.1"}, Fingerprints: []string{"t13d1516h2_8daaf6152771_b186095e22b6"}, APIKeys: []string{"partner"}, Countries: []string{"de", "AT"}},
			Deny:     Lists{CIDRs: []string{"203.0.113.7/24"}, Countries: []string{"KP"}},
			Geo:      &geo.FenceConfig{Allow: []string{"DE", "AT"}, Unknown: "allow"},
			GoodBots: "off", UAMismatch: "challenge",
			Actions:  []Action{{1, "forward"}, {40, "throttle"}, {60, "challenge"}, {100, "block"}},
			Throttle: "30/m",
		}, nil},
		{"every enum value", Config{GoodBots: "verify", UAMismatch: "deny", Throttle: "100/h"}, nil},
		{"ua_mismatch flag and off", Config{UAMismatch: "off", Throttle: "1/s"}, nil},
		{"bad CIDRs", Config{Allow: Lists{CIDRs: []string{"10.0.0.0/8", "10.0.0.0/33"}}, Deny: Lists{CIDRs: []string{"nope", "2001:db8::/129", "300.1.1.1"}}},
			[]string{"checks.bot.allow.cidrs[1]", "checks.bot.deny.cidrs[0]", "checks.bot.deny.cidrs[1]", "checks.bot.deny.cidrs[2]"}},
		{"bad countries", Config{Allow: Lists{Countries: []string{"Germany", "de"}}, Deny: Lists{Countries: []string{"UK", "", "XX"}}},
			[]string{"checks.bot.allow.countries[0]", "checks.bot.deny.countries[0]", "checks.bot.deny.countries[1]", "checks.bot.deny.countries[2]"}},
		{"bad fingerprints", Config{Deny: Lists{Fingerprints: []string{"ok", "", strings.Repeat("f", 257)}}},
			[]string{"checks.bot.deny.fingerprints[1]", "checks.bot.deny.fingerprints[2]"}},
		{"bad fence", Config{Geo: &geo.FenceConfig{Allow: []string{"DE"}, Deny: []string{"US"}}}, []string{"checks.bot.geo"}},
		{"bad fence country", Config{Geo: &geo.FenceConfig{Deny: []string{"Narnia"}}}, []string{"checks.bot.geo.deny[0]"}},
		{"bad good_bots", Config{GoodBots: "yes"}, []string{"checks.bot.good_bots"}},
		{"bad ua_mismatch", Config{UAMismatch: "block"}, []string{"checks.bot.ua_mismatch"}},
		{"bad action scores", Config{Actions: []Action{{0, "forward"}, {101, "block"}, {-3, "challenge"}}},
			[]string{"checks.bot.actions[0].score", "checks.bot.actions[1].score", "checks.bot.actions[2].score"}},
		{"bad action names", Config{Actions: []Action{{50, "drop"}, {60, ""}, {70, "allow"}}},
			[]string{"checks.bot.actions[0].action", "checks.bot.actions[1].action", "checks.bot.actions[2].action"}},
		{"bad mode and on_error", Config{Options: pipeline.Options{Mode: "strict", OnError: "ignore"}},
			[]string{"checks.bot.mode", "checks.bot.on_error"}},
	}
	for _, rate := range []string{"fast", "0/s", "-1/s", "1/d", "1", "1/", "/s", "1.5/s", "1/s/x", "1/S"} {
		tests = append(tests, struct {
			desc string
			cfg  Config
			want []string
		}{"throttle " + rate, Config{Throttle: rate}, []string{"checks.bot.throttle"}})
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			var errs field.Errors
			tc.cfg.Validate("checks.bot", &errs)
			var got []string
			for _, e := range errs.List {
				got = append(got, e.Path)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("error paths %q, want %q (errors: %v)", got, tc.want, errs.Err())
			}
		})
	}
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]state.Limit{
		"1/s":   {Count: 1, Period: time.Second, Burst: 1},
		"30/m":  {Count: 30, Period: time.Minute, Burst: 30},
		"100/h": {Count: 100, Period: time.Hour, Burst: 100},
	} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	plain := newEnv(t, envOptions{})
	withGeo := newEnv(t, envOptions{geo: true})
	tests := []struct {
		desc string
		cfg  Config
		env  *env
		want string // error substring; "" for success
	}{
		{"defaults", Config{}, plain, ""},
		{"allow countries without a geo database", Config{Allow: Lists{Countries: []string{"DE"}}}, plain, "geo database"},
		{"deny countries without a geo database", Config{Deny: Lists{Countries: []string{"KP"}}}, plain, "geo database"},
		{"a fence without a geo database", Config{Geo: &geo.FenceConfig{Allow: []string{"DE"}}}, plain, "geo database"},
		{"countries with a geo database", Config{Deny: Lists{Countries: []string{"KP"}}, Geo: &geo.FenceConfig{Allow: []string{"DE"}}}, withGeo, ""},
		{"an invalid fence", Config{Geo: &geo.FenceConfig{}}, withGeo, "invalid fence"},
		{"an invalid throttle", Config{Throttle: "lots"}, plain, "rate like 1/s"},
		{"no service", Config{}, nil, "not configured"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			var s *svc.Service
			if tc.env != nil {
				s = tc.env.svc
			}
			c, err := New(tc.cfg, s, state.NewMemory(state.MemoryOptions{}))
			switch {
			case tc.want == "" && (err != nil || c == nil):
				t.Fatalf("New: %v", err)
			case tc.want != "" && (err == nil || c != nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("New = %v, %v; want an error containing %q", c, err, tc.want)
			}
		})
	}
}

// TestEarlyLists: the allow list wins over the deny list and over every
// decision; the deny list refuses by CIDR, fingerprint and country.
func TestEarlyLists(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{geo: true})
	c := e.check(t, Config{
		Allow: Lists{CIDRs: []string{"203.0.113.0/28", "2001:db8:1::/48"}, Fingerprints: []string{"ja4-partner"}, Countries: []string{"us"}},
		Deny:  Lists{CIDRs: []string{"203.0.113.0/24", "2001:db8::/32", "100.64.9.9"}, Fingerprints: []string{"ja4-bad"}, Countries: []string{"KP"}},
	})
	e.decide(t, "ip:203.0.113.5", decision.Block, decision.SourceManual)
	e.decide(t, "ip:198.51.100.77", decision.Block, decision.SourceManual)
	e.decide(t, "country:US", decision.Block, decision.SourceManual)
	tests := []struct {
		desc string
		req  *pipeline.Request
		want verdictWant
	}{
		{"allowed CIDR inside a denied one, with a block decision", request("203.0.113.5"), allowed},
		{"allowed IPv6 network inside a denied one", request("2001:db8:1::1"), allowed},
		{"allowed fingerprint from a denied CIDR", request("203.0.113.100", withJA4("ja4-partner")), allowed},
		{"allowed country, with a block decision on it and on the address", request("198.51.100.77", withJA4("ja4-bad")), allowed},
		{"denied CIDR", request("203.0.113.100"), denied("client-denied", map[string]string{"list": "deny.cidr"})},
		{"denied CIDR, IPv4-mapped address", request("::ffff:203.0.113.100"), denied("client-denied", map[string]string{"list": "deny.cidr"})},
		{"denied single address", request("100.64.9.9"), denied("client-denied", map[string]string{"list": "deny.cidr"})},
		{"denied IPv6 network", request("2001:db8:2::1"), denied("client-denied", map[string]string{"list": "deny.cidr"})},
		{"denied fingerprint", request(ipUnknown, withJA4("ja4-bad")), denied("client-denied", map[string]string{"list": "deny.fingerprint"})},
		{"denied country", request(ipKP), denied("client-denied", map[string]string{"list": "deny.country"})},
		{"listed nowhere", request(ipUnknown, withJA4("ja4-other")), allowed},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			v, err := c.Early().Check(t.Context(), tc.req)
			checkVerdict(t, v, err, tc.want)
		})
	}
}

// TestEarlyRemovesRiskHeader: only the gateway sets Apiguard-Risk,
// whatever the early check decides.
func TestEarlyRemovesRiskHeader(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.check(t, Config{Allow: Lists{CIDRs: []string{"192.0.2.0/24"}}, Deny: Lists{CIDRs: []string{"198.51.100.0/24"}}})
	for _, ip := range []string{"192.0.2.1", "198.51.100.1", ipUnknown} {
		req := request(ip, withHeader(RiskHeader, "0"))
		req.HTTP.Header.Add(RiskHeader, "1")
		if _, err := c.Early().Check(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		if h := req.HTTP.Header.Values(RiskHeader); len(h) != 0 {
			t.Errorf("%s: %s still %q", ip, RiskHeader, h)
		}
	}
	if c.Early().Name() != "bot" || c.Late().Name() != "bot" {
		t.Error("the checks are not named bot")
	}
}

func TestEarlyGeoFence(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{geo: true})
	notAllowed := denied("country-not-allowed", map[string]string{"country": "US"})
	tests := []struct {
		desc  string
		cfg   Config
		ip    string
		want  verdictWant
		extra map[string]string
	}{
		{"allow-list: listed", Config{Geo: &geo.FenceConfig{Allow: []string{"de"}}}, ipDE, allowed, nil},
		{"allow-list: not listed", Config{Geo: &geo.FenceConfig{Allow: []string{"DE"}}}, ipUS, notAllowed, nil},
		{"allow-list: unknown denied by default", Config{Geo: &geo.FenceConfig{Allow: []string{"DE"}}}, ipUnknown,
			denied("country-unknown", map[string]string{"country": ""}), nil},
		{"allow-list: unknown allowed", Config{Geo: &geo.FenceConfig{Allow: []string{"DE"}, Unknown: "allow"}}, ipUnknown, allowed, nil},
		{"deny-list: listed", Config{Geo: &geo.FenceConfig{Deny: []string{"US"}}}, ipUS, denied("country-denied", map[string]string{"country": "US"}), nil},
		{"deny-list: not listed", Config{Geo: &geo.FenceConfig{Deny: []string{"US"}}}, ipDE, allowed, nil},
		{"deny-list: unknown allowed by default", Config{Geo: &geo.FenceConfig{Deny: []string{"US"}}}, ipUnknown, allowed, nil},
		{"deny-list: unknown denied", Config{Geo: &geo.FenceConfig{Deny: []string{"US"}, Unknown: "deny"}}, ipUnknown, denied("country-unknown", nil), nil},
		{"the allow list beats the fence", Config{Geo: &geo.FenceConfig{Allow: []string{"DE"}}, Allow: Lists{CIDRs: []string{ipUS}}}, ipUS, allowed, nil},
		{"no fence", Config{}, ipKP, allowed, nil},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			v, err := e.check(t, tc.cfg).Early().Check(t.Context(), request(tc.ip))
			checkVerdict(t, v, err, tc.want)
		})
	}
}

// TestEarlyDecisions: the early check refuses a block decision on the
// address, a network containing it, its JA4 or its country, and leaves
// every other decision to the late check.
func TestEarlyDecisions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{geo: true})
	c := e.check(t, Config{})
	d := e.decide(t, "ip:100.64.0.9", decision.Block, "login")
	e.decide(t, "net:100.65.0.0/16", decision.Block, decision.SourceManual)
	e.decide(t, "fp:ja4-blocked", decision.Block, decision.SourceManual)
	e.decide(t, "country:KP", decision.Block, decision.SourceManual)
	e.decide(t, "ip:100.64.0.10", decision.Challenge, decision.SourceManual)
	e.decide(t, "ip:100.64.0.11", decision.Throttle, decision.SourceManual)
	e.decide(t, "ip:100.64.0.12", decision.Block, decision.SourceManual)
	e.decide(t, "ip:100.64.0.12", decision.Allow, decision.SourceManual)
	e.decide(t, "sub:mallory", decision.Block, decision.SourceManual)
	blocked := func(key string) verdictWant {
		return denied("blocked", map[string]string{"key": key, "reason": "test block", "evidence.failures": "31", "threshold.min_failures": "10"})
	}
	tests := []struct {
		desc string
		req  *pipeline.Request
		want verdictWant
	}{
		{"the address", request("100.64.0.9"), denied("blocked", map[string]string{
			"decision": d.ID, "key": "ip:100.64.0.9", "source": "login", "reason": "test block",
			"expires": d.Expires.UTC().Format(time.RFC3339), "evidence.failures": "31", "threshold.min_failures": "10"})},
		{"the address, IPv4-mapped", request("::ffff:100.64.0.9"), blocked("ip:100.64.0.9")},
		{"a network containing it", request("100.65.200.1"), blocked("net:100.65.0.0/16")},
		{"its JA4", request(ipUnknown, withJA4("ja4-blocked")), blocked("fp:ja4-blocked")},
		{"its country", request(ipKP), blocked("country:KP")},
		{"a challenge is the late check's", request("100.64.0.10"), allowed},
		{"a throttle is the late check's", request("100.64.0.11"), allowed},
		{"a manual allow beats a block", request("100.64.0.12"), allowed},
		{"a subject is not known yet", request(ipUnknown, withSub("mallory")), allowed},
		{"another address", request("100.64.0.8"), allowed},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			v, err := c.Early().Check(t.Context(), tc.req)
			checkVerdict(t, v, err, tc.want)
			if tc.want.reason == "blocked" {
				ra := v.Headers.Get("Retry-After")
				if n, _ := time.ParseDuration(ra + "s"); n < 59*time.Minute || n > time.Hour {
					t.Errorf("Retry-After %q, want about an hour", ra)
				}
			}
		})
	}
}

// TestEarlyGoodBots: a User-Agent claiming a crawler from an address
// whose DNS is not the crawler's is refused; a verified crawler, an
// undecided one (DNS failure) and a browser pass.
func TestEarlyGoodBots(t *testing.T) {
	t.Parallel()
	dns := &fakeDNS{
		ptr: map[string][]string{
			"66.249.66.1":  {"crawl-66-249-66-1.googlebot.com."},
			"203.0.113.50": {"p5dd4a1b2.dip0.example.net."},
			"203.0.113.52": {"crawl-66-249-66-1.googlebot.com."}, // spoofed PTR
		},
		fwd:    map[string][]string{"crawl-66-249-66-1.googlebot.com": {"66.249.66.1"}, "p5dd4a1b2.dip0.example.net": {"203.0.113.50"}},
		ptrErr: map[string]error{"203.0.113.53": &net.DNSError{Err: "server misbehaving", IsTemporary: true}},
	}
	e := newEnv(t, envOptions{goodBots: true, resolver: dns})
	verify, off := e.check(t, Config{}), e.check(t, Config{GoodBots: "off"})
	impostor := func(reason string) verdictWant {
		return denied("bot-impersonation", map[string]string{"claimed": "googlebot", "reason": reason})
	}
	tests := []struct {
		desc string
		c    *Check
		req  *pipeline.Request
		want verdictWant
	}{
		{"verified Googlebot", verify, request("66.249.66.1", withUA(googlebotUA)), allowed},
		{"Googlebot from a residential address", verify, request("203.0.113.50", withUA(googlebotUA)), impostor(goodbot.ReasonPTRMismatch)},
		{"Googlebot from an address without PTR", verify, request("203.0.113.51", withUA(googlebotUA)), impostor(goodbot.ReasonNoPTR)},
		{"Googlebot with a spoofed PTR", verify, request("203.0.113.52", withUA(googlebotUA)), impostor(goodbot.ReasonForwardMismatch)},
		{"Googlebot when DNS fails: not conclusive", verify, request("203.0.113.53", withUA(googlebotUA)), allowed},
		{"a browser claims no crawler", verify, request("203.0.113.50", withUA(chromeUA)), allowed},
		{"good_bots off", off, request("203.0.113.50", withUA(googlebotUA)), allowed},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			v, err := tc.c.Early().Check(t.Context(), tc.req)
			checkVerdict(t, v, err, tc.want)
		})
	}
	// Without bot.good_bots the check has no verifier and verifies nothing.
	plain := newEnv(t, envOptions{})
	v, err := plain.check(t, Config{GoodBots: "verify"}).Early().Check(t.Context(), request("203.0.113.50", withUA(googlebotUA)))
	checkVerdict(t, v, err, allowed)
}

// TestEarlyUAMismatch: a Chrome User-Agent over Go's TLS ClientHello is
// flagged, challenged, denied or ignored as configured; over Chromium's,
// or without TLS, it passes.
func TestEarlyUAMismatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	goHello, chromium := withHello(t, "go_client.hello"), withHello(t, "chromium.hello")
	mismatch := map[string]string{"confidence": "0.90"}
	flagged := verdictWant{action: pipeline.Flag, reason: "client-inconsistent", evidence: mismatch}
	tests := []struct {
		mode string
		opts []reqOpt
		want verdictWant
	}{
		{"", []reqOpt{goHello}, flagged},
		{"flag", []reqOpt{goHello}, flagged},
		{"challenge", []reqOpt{goHello}, challenged(mismatch)},
		{"challenge", []reqOpt{goHello, withApp("com.example.app")}, allowed},
		{"deny", []reqOpt{goHello}, denied("client-inconsistent", mismatch)},
		{"off", []reqOpt{goHello}, allowed},
		{"", []reqOpt{chromium}, allowed},
		{"deny", []reqOpt{chromium}, allowed},
		{"deny", nil, allowed}, // plain HTTP: no fingerprint to compare
		{"deny", []reqOpt{goHello, withUA("Go-http-client/2.0")}, allowed},
	}
	for _, tc := range tests {
		name := tc.mode
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			req := request(ipUnknown, append([]reqOpt{withUA(chromeUA)}, tc.opts...)...)
			v, err := e.check(t, Config{UAMismatch: tc.mode}).Early().Check(t.Context(), req)
			checkVerdict(t, v, err, tc.want)
			if tc.want.action != pipeline.Allow && !strings.Contains(v.Evidence["reason"], "go") {
				t.Errorf("evidence reason %q does not name the TLS stack", v.Evidence["reason"])
			}
			if tc.want.action == pipeline.Flag && v.Score != 45 {
				t.Errorf("flag score %d, want 45 (confidence 0.9 of 50)", v.Score)
			}
		})
	}
}

// TestLateDecisions: the late check enforces the decisions on every key of
// the client, now that its subject, API key and device are known.
func TestLateDecisions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{geo: true})
	c := e.check(t, Config{})
	const ja4 = "t13d1516h2_8daaf6152771_b186095e22b6"
	ch := e.decide(t, "ip:100.64.0.20", decision.Challenge, decision.SourceManual)
	e.decide(t, "fp:"+ja4, decision.Challenge, decision.SourceManual)
	e.decide(t, "sub:mallory", decision.Challenge, "login")
	e.decide(t, "key:leaky", decision.Challenge, decision.SourceManual)
	e.decide(t, "dev:dev-9", decision.Challenge, decision.SourceManual)
	e.decide(t, "country:KP", decision.Challenge, decision.SourceManual)
	e.decide(t, "sub:eve", decision.Block, decision.SourceManual)
	e.decide(t, "ip:100.64.0.21", decision.Block, decision.SourceManual)
	e.decide(t, "sub:eve2", decision.Block, decision.SourceManual)
	e.decide(t, "sub:eve2", decision.Allow, decision.SourceManual)
	// The detectors' fingerprint key: JA4 and the stable part of JA4H.
	plain := request(ipUnknown)
	ja4h, _ := fingerprint.JA4H(plain.HTTP)
	e.decide(t, detect.FingerprintKey("ja4-other", ja4h), decision.Challenge, "login")
	tests := []struct {
		desc string
		req  *pipeline.Request
		want verdictWant
	}{
		{"challenge without attestation", request("100.64.0.20"), challenged(map[string]string{"decision": ch.ID, "key": "ip:100.64.0.20", "reason": "test challenge"})},
		{"challenge passed by an attested app", request("100.64.0.20", withApp("com.example.app")), allowed},
		{"challenge on its JA4", request(ipUnknown, withJA4(ja4)), challenged(map[string]string{"key": "fp:" + ja4})},
		{"challenge on its JA4, attested", request(ipUnknown, withJA4(ja4), withApp("app")), allowed},
		{"challenge on the detectors' fingerprint key", request(ipUnknown, withJA4("ja4-other")), challenged(map[string]string{"key": detect.FingerprintKey("ja4-other", ja4h)})},
		{"challenge on its subject", request(ipUnknown, withSub("mallory")), challenged(map[string]string{"key": "sub:mallory"})},
		{"challenge on its API key", request(ipUnknown, withKey("leaky")), challenged(map[string]string{"key": "key:leaky"})},
		{"challenge on its device", request(ipUnknown, withDev("dev-9")), challenged(map[string]string{"key": "dev:dev-9"})},
		{"challenge on its country", request(ipKP), challenged(map[string]string{"key": "country:KP"})},
		{"block on its subject", request(ipUnknown, withSub("eve")), denied("blocked", map[string]string{"key": "sub:eve"})},
		{"block on its subject, attested", request(ipUnknown, withSub("eve"), withApp("app")), denied("blocked", map[string]string{"key": "sub:eve"})},
		{"block on its address", request("100.64.0.21"), denied("blocked", map[string]string{"key": "ip:100.64.0.21"})},
		{"a manual allow beats a block", request(ipUnknown, withSub("eve2")), allowed},
		{"nothing decided", request(ipUnknown, withSub("alice"), withKey("good"), withJA4("ja4-third")), allowed},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			v, err := c.Late().Check(t.Context(), tc.req)
			checkVerdict(t, v, err, tc.want)
		})
	}
}

// TestLateThrottle: a throttle decision holds the client to the route's
// throttle rate and answers 429 with Retry-After beyond it.
func TestLateThrottle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rate       string
		passes     int
		retryAfter string
	}{
		{"", 1, "1"}, // default 1/s
		{"1/m", 1, "60"},
		{"3/h", 3, "1200"},
	}
	for _, tc := range tests {
		t.Run("rate "+tc.rate, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{})
			now := time.Unix(1_700_000_000, 0)
			var mu sync.Mutex
			st := state.NewMemory(state.MemoryOptions{Clock: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
			c := e.checkWith(t, Config{Throttle: tc.rate}, st)
			e.decide(t, "sub:greedy", decision.Throttle, decision.SourceManual)
			for i := range tc.passes {
				v, err := c.Late().Check(t.Context(), request(ipUnknown, withSub("greedy")))
				if checkVerdict(t, v, err, allowed); t.Failed() {
					t.Fatalf("request %d refused", i)
				}
			}
			v, err := c.Late().Check(t.Context(), request(ipUnknown, withSub("greedy")))
			checkVerdict(t, v, err, verdictWant{pipeline.Deny, 429, "throttled", map[string]string{"key": "sub:greedy"}, map[string]string{"Retry-After": tc.retryAfter}})
			// Another client is not throttled.
			v, err = c.Late().Check(t.Context(), request(ipUnknown, withSub("modest")))
			checkVerdict(t, v, err, allowed)
			// Once the period has passed, the throttled client gets on.
			mu.Lock()
			now = now.Add(time.Hour)
			mu.Unlock()
			v, err = c.Late().Check(t.Context(), request(ipUnknown, withSub("greedy")))
			checkVerdict(t, v, err, allowed)
		})
	}
}

// TestLateAPIKeys: allowed API keys pass whatever is decided; denied ones
// are refused.
func TestLateAPIKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.check(t, Config{
		Allow: Lists{APIKeys: []string{"partner"}, CIDRs: []string{"100.64.7.0/24"}},
		Deny:  Lists{APIKeys: []string{"leaked", "partner"}},
	})
	e.decide(t, "ip:100.64.0.30", decision.Block, decision.SourceManual)
	e.probe(t, "100.64.0.31")
	tests := []struct {
		desc string
		req  *pipeline.Request
		want verdictWant
	}{
		{"allowed key with a block decision", request("100.64.0.30", withKey("partner")), allowed},
		{"allowed key with risk", request("100.64.0.31", withKey("partner")), allowed},
		{"denied key", request(ipUnknown, withKey("leaked")), denied("client-denied", map[string]string{"list": "deny.api_key"})},
		{"denied key from an allowed network", request("100.64.7.1", withKey("leaked")), allowed},
		{"other key", request(ipUnknown, withKey("other")), allowed},
		{"other key, blocked address", request("100.64.0.30", withKey("other")), denied("blocked", nil)},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			v, err := c.Late().Check(t.Context(), tc.req)
			checkVerdict(t, v, err, tc.want)
		})
	}
}

// The clients of the risk tests, each in its own /24 so network keys do
// not mix their scores.
const (
	prober  = "100.64.1.1" // probing: 50
	stuffer = "100.64.2.1" // probing and credential stuffing: 95
	clean   = "100.64.3.1" // 0
	// probing 90 and credential stuffing 90: 99; the detector named last
	// has the first reason.
	bigProber = "100.64.4.1"
)

func riskEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, envOptions{})
	e.probe(t, prober)
	e.probe(t, stuffer)
	e.stuff(t, stuffer)
	e.probeN(t, bigProber, 100)
	e.stuff(t, bigProber)
	for ip, want := range map[string]int{prober: 50, stuffer: 95, clean: 0, bigProber: 99} {
		keys := e.svc.Engine.Keys(detect.Observation{IP: netip.MustParseAddr(ip)})
		if got, _ := e.svc.Engine.Score(keys...); got != want {
			t.Fatalf("%s scores %d, want %d", ip, got, want)
		}
	}
	return e
}

// TestLateRiskActions: the highest action whose score the client reaches
// applies; Apiguard-Risk tells the upstream the score and the detectors.
func TestLateRiskActions(t *testing.T) {
	t.Parallel()
	e := riskEnv(t)
	flag := func(score string) verdictWant {
		return verdictWant{action: pipeline.Flag, reason: "risk", evidence: map[string]string{"score": score}}
	}
	riskBlocked := denied("risk-blocked", map[string]string{"score": "95", "reason.0": "login/stuffing on ip:" + stuffer + " +90"})
	tests := []struct {
		desc    string
		actions []Action
		req     *pipeline.Request
		want    verdictWant
		header  string // Apiguard-Risk afterwards
	}{
		{"default: 50 is challenged", nil, request(prober), challenged(map[string]string{"score": "50", "reason.0": "probing/not_found on ip:" + prober + " +50"}), ""},
		{"default: 50, attested, is forwarded", nil, request(prober, withApp("app")), flag("50"), `50; reasons="probing"`},
		{"default: 95 is blocked", nil, request(stuffer), riskBlocked, ""},
		{"default: 95, attested, is blocked", nil, request(stuffer, withApp("app")), riskBlocked, ""},
		{"default: no risk", nil, request(clean), allowed, ""},
		{"forward from 1", []Action{{1, "forward"}}, request(stuffer), flag("95"), `95; reasons="login probing"`},
		{"forward from 1: reasons sorted and unique", []Action{{1, "forward"}}, request(bigProber), flag("99"), `99; reasons="login probing"`},
		{"forward from 1: no risk", []Action{{1, "forward"}}, request(clean), allowed, ""},
		{"below every action: flagged, not forwarded", []Action{{60, "block"}}, request(prober), flag("50"), ""},
		{"the threshold is inclusive", []Action{{50, "block"}}, request(prober), denied("risk-blocked", map[string]string{"score": "50"}), ""},
		{"just below a block", []Action{{51, "block"}, {1, "forward"}}, request(prober), flag("50"), `50; reasons="probing"`},
		{"unsorted actions: highest reached wins", []Action{{80, "block"}, {1, "forward"}, {50, "challenge"}}, request(prober, withApp("app")), flag("50"), `50; reasons="probing"`},
		{"unsorted actions: block", []Action{{80, "block"}, {1, "forward"}, {50, "challenge"}}, request(stuffer), riskBlocked, ""},
		{"a lower action listed later", []Action{{90, "forward"}, {10, "block"}}, request(stuffer), flag("95"), `95; reasons="login probing"`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			c := e.check(t, Config{Actions: tc.actions})
			tc.req.HTTP.Header.Set(RiskHeader, "forged")
			if _, err := c.Early().Check(t.Context(), tc.req); err != nil {
				t.Fatal(err)
			}
			v, err := c.Late().Check(t.Context(), tc.req)
			checkVerdict(t, v, err, tc.want)
			if v.Action == pipeline.Flag && v.Score != atoi(tc.want.evidence["score"]) {
				t.Errorf("flag score %d, want %s", v.Score, tc.want.evidence["score"])
			}
			if h := tc.req.HTTP.Header.Values(RiskHeader); strings.Join(h, ",") != tc.header {
				t.Errorf("%s = %q, want %q", RiskHeader, h, tc.header)
			}
		})
	}
}

// TestLateRiskThrottle: the throttle action limits a risky client by its
// address to the route's throttle rate.
func TestLateRiskThrottle(t *testing.T) {
	t.Parallel()
	e := riskEnv(t)
	st := state.NewMemory(state.MemoryOptions{Clock: func() time.Time { return time.Unix(1_700_000_000, 0) }})
	c := e.checkWith(t, Config{Actions: []Action{{1, "forward"}, {40, "throttle"}}, Throttle: "2/m"}, st)
	for i := range 2 {
		req := request(prober)
		v, err := c.Late().Check(t.Context(), req)
		checkVerdict(t, v, err, verdictWant{action: pipeline.Flag, reason: "risk"})
		if h := req.HTTP.Header.Get(RiskHeader); h != `50; reasons="probing"` {
			t.Errorf("request %d: %s = %q", i, RiskHeader, h)
		}
	}
	v, err := c.Late().Check(t.Context(), request(prober))
	checkVerdict(t, v, err, verdictWant{pipeline.Deny, 429, "throttled", map[string]string{"key": "ip:" + prober}, map[string]string{"Retry-After": "30"}})
	// A client below the throttle score is only forwarded.
	for range 3 {
		v, err := c.Late().Check(t.Context(), request(clean))
		checkVerdict(t, v, err, allowed)
	}
}

// TestLateAllowDecisions: an operator's allow exempts the client from the
// risk actions; a detector's allow is a hint that overrides nothing.
func TestLateAllowDecisions(t *testing.T) {
	t.Parallel()
	e := riskEnv(t)
	c := e.check(t, Config{})
	e.decide(t, "ip:"+stuffer, decision.Allow, "reputation")
	v, err := c.Late().Check(t.Context(), request(stuffer))
	checkVerdict(t, v, err, denied("risk-blocked", map[string]string{"score": "95"}))
	e.decide(t, "ip:"+stuffer, decision.Allow, decision.SourceManual)
	v, err = c.Late().Check(t.Context(), request(stuffer))
	checkVerdict(t, v, err, allowed)
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
