package goodbot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
)

const (
	googlebotUA = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; +http://www.google.com/bot.html) Chrome/126.0.6478.126 Safari/537.36"
	bingbotUA   = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
	browserUA   = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
)

var errServFail = &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}

func nxdomain(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// fakeDNS is a table resolver. Unlisted names are NXDOMAIN. With gate
// set, lookups wait for it to close (or ctx to end).
type fakeDNS struct {
	ptr      map[string][]string
	ptrErr   map[string]error
	fwd      map[string][]string
	fwdErr   map[string]error
	gate     chan struct{}
	ptrCalls atomic.Int64
	fwdCalls atomic.Int64
}

func (f *fakeDNS) wait(ctx context.Context) error {
	if f.gate == nil {
		return nil
	}
	select {
	case <-f.gate:
		return nil
	case <-ctx.Done():
		return &net.DNSError{Err: "i/o timeout", IsTimeout: true}
	}
}

func (f *fakeDNS) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	f.ptrCalls.Add(1)
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	if err := f.ptrErr[addr]; err != nil {
		return nil, err
	}
	if names, ok := f.ptr[addr]; ok {
		return names, nil
	}
	return nil, nxdomain(addr)
}

func (f *fakeDNS) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	f.fwdCalls.Add(1)
	if network != "ip" {
		return nil, fmt.Errorf("unexpected network %q", network)
	}
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	if err := f.fwdErr[host]; err != nil {
		return nil, err
	}
	addrs, ok := f.fwd[strings.TrimSuffix(host, ".")]
	if !ok {
		return nil, nxdomain(host)
	}
	var out []netip.Addr
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

// world is the DNS of the tests.
func world() *fakeDNS {
	return &fakeDNS{
		ptr: map[string][]string{
			"66.249.66.1":          {"crawl-66-249-66-1.googlebot.com."},
			"66.249.90.77":         {"rate-limited-proxy-66-249-90-77.google.com."},
			"2001:4860:4801:10::1": {"crawl-2001-4860-4801-10--1.googlebot.com."},
			"157.55.39.1":          {"msnbot-157-55-39-1.search.msn.com."},
			"93.184.1.2":           {"p5dd4a1b2.dip0.t-ipconnect.de."},              // residential
			"203.0.113.5":          {"crawl-66-249-66-1.googlebot.com."},            // spoofed PTR: forward says 66.249.66.1
			"203.0.113.6":          {"crawl-203-0-113-6.googlebot.com."},            // spoofed PTR: forward NXDOMAIN
			"203.0.113.7":          {"crawl.googlebot.com.evil.net."},               // suffix trick, forward-confirmed
			"203.0.113.8":          {"evilgooglebot.com."},                          // suffix trick, forward-confirmed
			"203.0.113.9":          {"ok.googlebot.com.", "crawl-x.googlebot.com."}, // second name confirms
			"34.1.2.3":             {"3.2.1.34.bc.googleusercontent.com."},          // a Google Cloud VM
			"198.51.100.1":         {"fwd-servfail.googlebot.com."},                 // forward DNS fails
			"198.51.100.2":         {"CRAWL-198-51-100-2.GoogleBot.COM."},           // case differs
		},
		ptrErr: map[string]error{"198.51.100.3": errServFail},
		fwd: map[string][]string{
			"crawl-66-249-66-1.googlebot.com":            {"66.249.66.1"},
			"rate-limited-proxy-66-249-90-77.google.com": {"66.249.90.77"},
			"crawl-2001-4860-4801-10--1.googlebot.com":   {"2001:4860:4801:10::1"},
			"msnbot-157-55-39-1.search.msn.com":          {"157.55.39.1"},
			"p5dd4a1b2.dip0.t-ipconnect.de":              {"93.184.1.2"},
			"crawl.googlebot.com.evil.net":               {"203.0.113.7"},
			"evilgooglebot.com":                          {"203.0.113.8"},
			"ok.googlebot.com":                           {"192.0.2.1"},
			"crawl-x.googlebot.com":                      {"192.0.2.2", "203.0.113.9"},
			"3.2.1.34.bc.googleusercontent.com":          {"34.1.2.3"},
			"crawl-198-51-100-2.googlebot.com":           {"198.51.100.2"},
		},
		fwdErr: map[string]error{"fwd-servfail.googlebot.com": errServFail},
	}
}

func newVerifier(t *testing.T, cfg Config, r Resolver) *Verifier {
	t.Helper()
	v, err := New(cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc  string
		ip    string
		ua    string
		want  Result
		calls int64 // DNS queries made
	}{
		{"genuine googlebot", "66.249.66.1", googlebotUA,
			Result{Claimed: "googlebot", Verified: true, Reason: ReasonVerified, Host: "crawl-66-249-66-1.googlebot.com"}, 2},
		{"genuine googlebot on google.com", "66.249.90.77", "AdsBot-Google (+http://www.google.com/adsbot.html)",
			Result{Claimed: "googlebot", Verified: true, Reason: ReasonVerified, Host: "rate-limited-proxy-66-249-90-77.google.com"}, 2},
		{"genuine googlebot over ipv6", "2001:4860:4801:10::1", googlebotUA,
			Result{Claimed: "googlebot", Verified: true, Reason: ReasonVerified, Host: "crawl-2001-4860-4801-10--1.googlebot.com"}, 2},
		{"ipv4-mapped client address", "::ffff:66.249.66.1", googlebotUA,
			Result{Claimed: "googlebot", Verified: true, Reason: ReasonVerified, Host: "crawl-66-249-66-1.googlebot.com"}, 2},
		{"genuine bingbot", "157.55.39.1", bingbotUA,
			Result{Claimed: "bingbot", Verified: true, Reason: ReasonVerified, Host: "msnbot-157-55-39-1.search.msn.com"}, 2},
		{"ptr and forward differ in case", "198.51.100.2", googlebotUA,
			Result{Claimed: "googlebot", Verified: true, Reason: ReasonVerified, Host: "crawl-198-51-100-2.googlebot.com"}, 2},
		{"second ptr name confirms", "203.0.113.9", googlebotUA,
			Result{Claimed: "googlebot", Verified: true, Reason: ReasonVerified, Host: "crawl-x.googlebot.com"}, 3},
		{"browser is no claim", "93.184.1.2", browserUA, Result{}, 0},
		{"spoofed UA from residential address", "93.184.1.2", googlebotUA,
			Result{Claimed: "googlebot", Reason: ReasonPTRMismatch}, 1},
		{"bingbot UA from a google address", "66.249.66.1", bingbotUA,
			Result{Claimed: "bingbot", Reason: ReasonPTRMismatch}, 1},
		{"no ptr", "192.0.2.99", googlebotUA, Result{Claimed: "googlebot", Reason: ReasonNoPTR}, 1},
		{"spoofed ptr, forward is another address", "203.0.113.5", googlebotUA,
			Result{Claimed: "googlebot", Reason: ReasonForwardMismatch}, 2},
		{"spoofed ptr, forward nxdomain", "203.0.113.6", googlebotUA,
			Result{Claimed: "googlebot", Reason: ReasonForwardMismatch}, 2},
		{"suffix trick googlebot.com.evil.net", "203.0.113.7", googlebotUA,
			Result{Claimed: "googlebot", Reason: ReasonPTRMismatch}, 1},
		{"suffix trick evilgooglebot.com", "203.0.113.8", googlebotUA,
			Result{Claimed: "googlebot", Reason: ReasonPTRMismatch}, 1},
		{"google cloud vm is not googlebot", "34.1.2.3", googlebotUA,
			Result{Claimed: "googlebot", Reason: ReasonPTRMismatch}, 1},
		{"reverse servfail", "198.51.100.3", googlebotUA, Result{Claimed: "googlebot", Reason: ReasonDNSError}, 1},
		{"forward servfail", "198.51.100.1", googlebotUA, Result{Claimed: "googlebot", Reason: ReasonDNSError}, 2},
		{"invalid address", "", googlebotUA, Result{Claimed: "googlebot", Reason: ReasonInvalidIP}, 0},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			dns := world()
			v := newVerifier(t, Config{}, dns)
			var ip netip.Addr
			if tc.ip != "" {
				ip = netip.MustParseAddr(tc.ip)
			}
			got := v.Verify(t.Context(), ip, tc.ua)
			if got != tc.want {
				t.Fatalf("Verify(%s) = %+v, want %+v", tc.ip, got, tc.want)
			}
			if n := dns.ptrCalls.Load() + dns.fwdCalls.Load(); n != tc.calls {
				t.Fatalf("%d DNS queries, want %d", n, tc.calls)
			}
			wantConclusive := tc.want.Reason != ReasonDNSError && tc.want.Reason != ReasonInvalidIP && tc.want.Reason != ""
			if got.Conclusive() != wantConclusive {
				t.Fatalf("Conclusive() = %v", got.Conclusive())
			}
		})
	}
}

// A custom bot whose domain includes googleusercontent.com accepts the VM,
// showing the default's exclusion is what refuses it above.
func TestCustomBotsAndRegex(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, Config{Bots: []BotConfig{
		{Name: "google-fetcher", UserAgentRegex: `(?i)google-site-verification/\d`, Suffixes: []string{".GoogleUserContent.com."}},
	}}, world())
	got := v.Verify(t.Context(), netip.MustParseAddr("34.1.2.3"), "Mozilla/5.0 (compatible; Google-Site-Verification/1.0)")
	if !got.Verified || got.Claimed != "google-fetcher" {
		t.Fatalf("got %+v", got)
	}
	if c := v.Claim(googlebotUA); c != "" {
		t.Fatalf("defaults still active: claim %q", c)
	}
	// A regex bot listed first wins over a substring bot listed later.
	v = newVerifier(t, Config{Bots: []BotConfig{
		{Name: "first", UserAgentRegex: `zz\d`, Suffixes: []string{"a.example"}},
		{Name: "second", UserAgents: []string{"yy"}, Suffixes: []string{"b.example"}},
	}}, world())
	for ua, want := range map[string]string{"yy zz1": "first", "yy zz": "second", "zz9": "first", "YY": "second", "z": ""} {
		if got := v.Claim(ua); got != want {
			t.Errorf("Claim(%q) = %q, want %q", ua, got, want)
		}
	}
}

func TestClaim(t *testing.T) {
	v := newVerifier(t, Config{}, world())
	for ua, want := range map[string]string{
		googlebotUA:                  "googlebot",
		"GOOGLEBOT-IMAGE/1.0":        "googlebot",
		bingbotUA:                    "bingbot",
		"Mozilla/5.0 (Applebot/0.1)": "applebot",
		"DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)": "duckduckbot",
		browserUA:                                "",
		"":                                       "",
		"Googlebo":                               "",
		strings.Repeat("x", maxUA) + "Googlebot": "", // beyond the searched prefix
		strings.Repeat("x", maxUA-9) + "Googlebot": "googlebot",
	} {
		if got := v.Claim(ua); got != want {
			t.Errorf("Claim(%.40q...) = %q, want %q", ua, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { v.Claim(googlebotUA) }); n != 0 {
		t.Errorf("Claim allocates %v times", n)
	}
}

func TestCacheHitsAndTTLs(t *testing.T) {
	t.Parallel()
	dns := world()
	v := newVerifier(t, Config{PositiveTTL: "1h", NegativeTTL: "10m", ErrorTTL: "1m"}, dns)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	good, bad, flaky := netip.MustParseAddr("66.249.66.1"), netip.MustParseAddr("93.184.1.2"), netip.MustParseAddr("198.51.100.3")
	verify := func(ip netip.Addr) Result { return v.Verify(t.Context(), ip, googlebotUA) }
	ptrCalls := func() int64 { return dns.ptrCalls.Load() }

	for range 5 {
		if r := verify(good); !r.Verified {
			t.Fatalf("good: %+v", r)
		}
		verify(bad)
		verify(flaky)
	}
	if got, want := v.Stats(), (Stats{Hits: 12, Misses: 3}); got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
	if n := ptrCalls(); n != 3 {
		t.Fatalf("%d PTR lookups for 15 verifications of 3 addresses, want 3", n)
	}
	// The same address claiming another bot is another question.
	verify2 := v.Verify(t.Context(), good, bingbotUA)
	if verify2.Verified || ptrCalls() != 4 {
		t.Fatalf("bingbot claim from a google address: %+v after %d lookups", verify2, ptrCalls())
	}

	advance(61 * time.Second) // past ErrorTTL only
	verify(good)
	verify(bad)
	verify(flaky)
	if n := ptrCalls(); n != 5 {
		t.Fatalf("after ErrorTTL: %d lookups, want 5 (only the inconclusive one redone)", n)
	}
	advance(10 * time.Minute) // past NegativeTTL
	verify(good)
	verify(bad)
	if n := ptrCalls(); n != 6 {
		t.Fatalf("after NegativeTTL: %d lookups, want 6", n)
	}
	advance(time.Hour) // past PositiveTTL
	verify(good)
	if n := ptrCalls(); n != 7 {
		t.Fatalf("after PositiveTTL: %d lookups, want 7", n)
	}
}

func TestCacheIsBounded(t *testing.T) {
	t.Parallel()
	dns := world()
	v := newVerifier(t, Config{CacheSize: 2}, dns)
	a, b, c := netip.MustParseAddr("66.249.66.1"), netip.MustParseAddr("157.55.39.1"), netip.MustParseAddr("93.184.1.2")
	for _, ip := range []netip.Addr{a, b, a, c} { // c evicts b, the least recently used
		v.Verify(t.Context(), ip, googlebotUA)
	}
	before := dns.ptrCalls.Load()
	v.Verify(t.Context(), a, googlebotUA)
	if dns.ptrCalls.Load() != before {
		t.Fatal("a was evicted, but it was used more recently than b")
	}
	v.Verify(t.Context(), b, googlebotUA)
	if dns.ptrCalls.Load() != before+1 {
		t.Fatal("b was not evicted")
	}
	if s := v.Stats(); s.Evictions != 2 || len(v.entries) != 2 || v.lru.Len() != 2 {
		t.Fatalf("stats %+v, %d entries", s, len(v.entries))
	}
}

// Concurrent verifications of one address share one lookup.
func TestCoalescing(t *testing.T) {
	t.Parallel()
	dns := world()
	dns.gate = make(chan struct{})
	v := newVerifier(t, Config{Timeout: "10s"}, dns)
	ip := netip.MustParseAddr("66.249.66.1")
	const n = 20
	results := make(chan Result, n)
	for range n {
		go func() { results <- v.Verify(t.Context(), ip, googlebotUA) }()
	}
	deadline := time.Now().Add(5 * time.Second)
	for s := v.Stats(); s.Misses+s.Coalesced < n; s = v.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", s)
		}
		time.Sleep(time.Millisecond)
	}
	close(dns.gate)
	for range n {
		if r := <-results; !r.Verified {
			t.Fatalf("got %+v", r)
		}
	}
	if got := dns.ptrCalls.Load(); got != 1 {
		t.Fatalf("%d PTR lookups, want 1", got)
	}
	if s := v.Stats(); s.Misses != 1 || s.Coalesced != n-1 {
		t.Fatalf("stats %+v", s)
	}
}

// A resolver that hangs holds a request for the timeout, not longer; the
// inconclusive answer is cached briefly so the next request is immediate.
func TestResolverTimeout(t *testing.T) {
	t.Parallel()
	dns := world()
	dns.gate = make(chan struct{}) // never opens
	v := newVerifier(t, Config{Timeout: "50ms"}, dns)
	ip := netip.MustParseAddr("66.249.66.1")
	start := time.Now()
	r := v.Verify(t.Context(), ip, googlebotUA)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("held the request %v", took)
	}
	if r.Verified || r.Reason != ReasonTimeout || r.Claimed != "googlebot" || r.Conclusive() {
		t.Fatalf("got %+v", r)
	}
	// Once the background lookup has given up, its result is cached.
	deadline := time.Now().Add(5 * time.Second)
	for {
		v.mu.Lock()
		_, cached := v.entries[cacheKey{ip: ip, bot: 0}]
		v.mu.Unlock()
		if cached {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("timeout result never cached")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start = time.Now()
	if r := v.Verify(t.Context(), ip, googlebotUA); r.Reason != ReasonTimeout || time.Since(start) > 20*time.Millisecond {
		t.Fatalf("second verification: %+v after %v", r, time.Since(start))
	}
	if n := dns.ptrCalls.Load(); n != 1 {
		t.Fatalf("%d lookups", n)
	}
}

// A resolver that ignores its context still cannot hold a request.
type stuckDNS struct{ release chan struct{} }

func (s stuckDNS) LookupAddr(context.Context, string) ([]string, error) {
	<-s.release
	return nil, errors.New("released")
}

func (s stuckDNS) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return nil, errors.New("unreachable")
}

func TestResolverIgnoringContext(t *testing.T) {
	t.Parallel()
	s := stuckDNS{release: make(chan struct{})}
	defer close(s.release)
	v := newVerifier(t, Config{Timeout: "30ms"}, s)
	start := time.Now()
	r := v.Verify(t.Context(), netip.MustParseAddr("66.249.66.1"), googlebotUA)
	if r.Reason != ReasonTimeout || time.Since(start) > 2*time.Second {
		t.Fatalf("got %+v after %v", r, time.Since(start))
	}
}

func TestCallerContextCanceled(t *testing.T) {
	t.Parallel()
	dns := world()
	dns.gate = make(chan struct{})
	v := newVerifier(t, Config{Timeout: "10s"}, dns)
	ip := netip.MustParseAddr("66.249.66.1")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if r := v.Verify(ctx, ip, googlebotUA); r.Reason != ReasonTimeout {
		t.Fatalf("got %+v", r)
	}
	// The verification goes on for the next request.
	close(dns.gate)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r := v.Verify(t.Context(), ip, googlebotUA); r.Verified {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never verified")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := dns.ptrCalls.Load(); n != 1 {
		t.Fatalf("%d lookups, want 1", n)
	}
}

func TestMaxInFlight(t *testing.T) {
	t.Parallel()
	dns := world()
	dns.gate = make(chan struct{})
	v := newVerifier(t, Config{MaxInFlight: 1, Timeout: "10s"}, dns)
	done := make(chan Result)
	go func() { done <- v.Verify(t.Context(), netip.MustParseAddr("66.249.66.1"), googlebotUA) }()
	for v.Stats().Misses == 0 {
		time.Sleep(time.Millisecond)
	}
	if r := v.Verify(t.Context(), netip.MustParseAddr("157.55.39.1"), bingbotUA); r.Reason != ReasonBusy || r.Claimed != "bingbot" {
		t.Fatalf("got %+v", r)
	}
	close(dns.gate)
	if r := <-done; !r.Verified {
		t.Fatalf("got %+v", r)
	}
	if s := v.Stats(); s.Busy != 1 {
		t.Fatalf("stats %+v", s)
	}
	// Busy is not cached: the next claim is verified.
	if r := v.Verify(t.Context(), netip.MustParseAddr("157.55.39.1"), bingbotUA); !r.Verified {
		t.Fatalf("got %+v", r)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	bot := func(mod func(*BotConfig)) Config {
		b := BotConfig{Name: "x", UserAgents: []string{"XBot"}, Suffixes: []string{"x.example"}}
		mod(&b)
		return Config{Bots: []BotConfig{b}}
	}
	for _, tc := range []struct {
		desc string
		cfg  Config
		want []string
	}{
		{"defaults", Config{}, nil},
		{"explicit", Config{PositiveTTL: "12h", NegativeTTL: "30m", ErrorTTL: "10s", Timeout: "500ms", CacheSize: 10, MaxInFlight: 4}, nil},
		{"bad durations", Config{PositiveTTL: "forever", NegativeTTL: "-1s", Timeout: "1m"}, []string{
			`gb.positive_ttl: invalid duration "forever"`, "gb.negative_ttl: must be > 0", "gb.timeout: must be at most 10s",
		}},
		{"sizes", Config{CacheSize: -1, MaxInFlight: -1}, []string{"gb.cache_size", "gb.max_in_flight"}},
		{"no name", bot(func(b *BotConfig) { b.Name = "" }), []string{"gb.bots[0].name"}},
		{"no pattern", bot(func(b *BotConfig) { b.UserAgents = nil }), []string{"gb.bots[0]: set user_agents or user_agent_regex"}},
		{"empty pattern", bot(func(b *BotConfig) { b.UserAgents = []string{" "} }), []string{"gb.bots[0].user_agents[0]"}},
		{"bad regex", bot(func(b *BotConfig) { b.UserAgentRegex = "(" }), []string{"gb.bots[0].user_agent_regex: invalid regular expression"}},
		{"no suffixes", bot(func(b *BotConfig) { b.Suffixes = nil }), []string{"gb.bots[0].suffixes: list"}},
		{"tld suffix", bot(func(b *BotConfig) { b.Suffixes = []string{".com"} }), []string{`gb.bots[0].suffixes[0]: ".com" is a top-level domain`}},
		{"bad suffix", bot(func(b *BotConfig) { b.Suffixes = []string{"exa mple.com", "a..b", "*.google.com"} }), []string{
			"gb.bots[0].suffixes[0]", "gb.bots[0].suffixes[1]", "gb.bots[0].suffixes[2]",
		}},
		{"duplicate", Config{Bots: []BotConfig{
			{Name: "a", UserAgents: []string{"a"}, Suffixes: []string{"a.example"}},
			{Name: "A", UserAgents: []string{"b"}, Suffixes: []string{"b.example"}},
		}}, []string{`gb.bots[1].name: duplicate bot "A"`}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			var errs field.Errors
			tc.cfg.Validate("gb", &errs)
			if errs.Len() != len(tc.want) {
				t.Fatalf("got %d errors %v, want %d", errs.Len(), errs.Err(), len(tc.want))
			}
			for i, w := range tc.want {
				if got := errs.List[i].Error(); !strings.Contains(got, w) {
					t.Errorf("error %d = %q, want it to contain %q", i, got, w)
				}
			}
			if _, err := New(tc.cfg, world()); (err == nil) != (len(tc.want) == 0) {
				t.Fatalf("New: %v", err)
			}
		})
	}
}

func TestDefaultBotsAreValid(t *testing.T) {
	t.Parallel()
	var errs field.Errors
	(&Config{Bots: DefaultBots()}).Validate("", &errs)
	if err := errs.Err(); err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, Config{}, nil)
	if got := strings.Join(v.Bots(), ","); !strings.HasPrefix(got, "googlebot,bingbot,applebot,duckduckbot") {
		t.Fatalf("bots %s", got)
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	v, err := New(Config{}, world())
	if err != nil {
		b.Fatal(err)
	}
	ip := netip.MustParseAddr("66.249.66.1")
	ctx := context.Background()
	if !v.Verify(ctx, ip, googlebotUA).Verified {
		b.Fatal("not verified")
	}
	b.ReportAllocs()
	for b.Loop() {
		v.Verify(ctx, ip, googlebotUA)
	}
}

func BenchmarkVerifyNoClaim(b *testing.B) {
	v, err := New(Config{}, world())
	if err != nil {
		b.Fatal(err)
	}
	ip := netip.MustParseAddr("93.184.1.2")
	b.ReportAllocs()
	for b.Loop() {
		v.Verify(context.Background(), ip, browserUA)
	}
}
