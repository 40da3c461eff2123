package goodbot

import (
	"container/list"
	"context"
	"errors"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
)

// Resolver is the DNS a Verifier uses; *net.Resolver implements it.
type Resolver interface {
	// LookupAddr returns the PTR names of addr (an address literal).
	LookupAddr(ctx context.Context, addr string) ([]string, error)
	// LookupNetIP returns the addresses of host; network is "ip".
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ Resolver = (*net.Resolver)(nil)

// Reasons of a Result: stable codes for events and metrics. Only
// ReasonNoPTR, ReasonPTRMismatch and ReasonForwardMismatch are conclusive
// evidence that the claim is false; the others mean "could not tell".
const (
	ReasonVerified        = "goodbot.verified"
	ReasonNoPTR           = "goodbot.no-ptr"           // the address has no reverse DNS name
	ReasonPTRMismatch     = "goodbot.ptr-mismatch"     // its names are outside the bot's domains
	ReasonForwardMismatch = "goodbot.forward-mismatch" // a name is inside, but does not resolve back (spoofed PTR)
	ReasonDNSError        = "goodbot.dns-error"        // DNS failed (SERVFAIL, refused, network)
	ReasonTimeout         = "goodbot.timeout"          // DNS or the wait took longer than the timeout
	ReasonBusy            = "goodbot.busy"             // too many verifications in flight
	ReasonInvalidIP       = "goodbot.invalid-ip"
)

// Result of one verification. The zero Result means the User-Agent claims
// no known bot.
type Result struct {
	Claimed  string // the bot the User-Agent claims to be, "" for none
	Verified bool
	Reason   string // one of the Reason constants; "" when nothing is claimed
	Host     string // the forward-confirmed PTR name when Verified
}

// Conclusive reports whether the Result is a verdict on the claim (verified
// or proven false) rather than a failure to find out.
func (r Result) Conclusive() bool {
	switch r.Reason {
	case ReasonVerified, ReasonNoPTR, ReasonPTRMismatch, ReasonForwardMismatch:
		return true
	}
	return false
}

// Stats counts cache behaviour since New, for metrics and tests.
type Stats struct {
	Hits      uint64 // answered from the cache
	Misses    uint64 // started a DNS verification
	Coalesced uint64 // waited for a verification another request started
	Busy      uint64 // refused because MaxInFlight verifications were running
	Evictions uint64 // live entries dropped because the cache was full
}

// Verifier checks bot claims. It is safe for concurrent use.
type Verifier struct {
	bots    []bot
	byFirst [256][]pattern // User-Agent substrings by first byte
	// pairs[a] has bit b set when a pattern starts with the bytes a, b
	// (every b for a one-byte pattern): most bytes of a browser's
	// User-Agent are rejected by one bit test.
	pairs                      [256][4]uint64
	resolver                   Resolver
	positive, negative, errTTL time.Duration
	timeout                    time.Duration
	size, maxInFlight          int
	now                        func() time.Time // injectable for tests
	mu                         sync.Mutex
	entries                    map[cacheKey]*list.Element // of *entry
	lru                        list.List                  // front = most recently used
	inflight                   map[cacheKey]*call
	stats                      Stats
}

type bot struct {
	name     string
	re       *regexp.Regexp
	suffixes []string // lower case, no leading or trailing dot
}

type cacheKey struct {
	ip  netip.Addr
	bot int
}

type entry struct {
	key cacheKey
	res Result
	exp time.Time
}

// call is one verification in flight; res is written before done closes.
type call struct {
	done chan struct{}
	res  Result
}

// New builds a Verifier. r nil means net.DefaultResolver.
func New(cfg Config, r Resolver) (*Verifier, error) {
	var errs field.Errors
	cfg.Validate("", &errs)
	if err := errs.Err(); err != nil {
		return nil, errors.Join(errors.New("goodbot: invalid config"), err)
	}
	if r == nil {
		r = net.DefaultResolver
	}
	bots := cfg.Bots
	if len(bots) == 0 {
		bots = DefaultBots()
	}
	v := &Verifier{
		resolver:    r,
		size:        cfg.CacheSize,
		maxInFlight: cfg.MaxInFlight,
		now:         time.Now,
		entries:     make(map[cacheKey]*list.Element),
		inflight:    make(map[cacheKey]*call),
	}
	// Validated above.
	v.positive, _ = durationOr(cfg.PositiveTTL, DefaultPositiveTTL)
	v.negative, _ = durationOr(cfg.NegativeTTL, DefaultNegativeTTL)
	v.errTTL, _ = durationOr(cfg.ErrorTTL, DefaultErrorTTL)
	v.timeout, _ = durationOr(cfg.Timeout, DefaultTimeout)
	if v.size == 0 {
		v.size = DefaultCacheSize
	}
	if v.maxInFlight == 0 {
		v.maxInFlight = DefaultMaxInFlight
	}
	for _, bc := range bots {
		b := bot{name: bc.Name}
		for _, ua := range bc.UserAgents {
			l := strings.ToLower(ua)
			v.byFirst[l[0]] = append(v.byFirst[l[0]], pattern{s: l, bot: len(v.bots)})
			if len(l) == 1 {
				v.pairs[l[0]] = [4]uint64{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}
			} else {
				v.pairs[l[0]][l[1]/64] |= 1 << (l[1] % 64)
			}
		}
		if bc.UserAgentRegex != "" {
			b.re = regexp.MustCompile(bc.UserAgentRegex) // validated
		}
		for _, s := range bc.Suffixes {
			b.suffixes = append(b.suffixes, normDomain(s))
		}
		v.bots = append(v.bots, b)
	}
	return v, nil
}

// maxUA bounds how much of a User-Agent is searched for claims: crawler
// tokens come early, and an attacker's 8 KiB header must not cost more.
const maxUA = 1024

// Claim returns the name of the bot userAgent claims to be, or "". It is
// cheap (no DNS, no allocation) for callers that only want the claim.
func (v *Verifier) Claim(userAgent string) string {
	if i := v.claim(userAgent); i >= 0 {
		return v.bots[i].name
	}
	return ""
}

func (v *Verifier) claim(ua string) int {
	if len(ua) > maxUA {
		ua = ua[:maxUA]
	}
	best := len(v.bots)
	// One pass over the User-Agent, trying only the patterns that start
	// with the byte at hand: a browser's User-Agent costs one table probe
	// per byte instead of one scan per pattern.
	for i := 0; i < len(ua) && best > 0; i++ {
		c := toLower(ua[i])
		var next byte
		if i+1 < len(ua) {
			next = toLower(ua[i+1])
		}
		if v.pairs[c][next/64]&(1<<(next%64)) == 0 {
			continue // no pattern starts with these two bytes
		}
		for _, p := range v.byFirst[c] {
			if p.bot < best && hasPrefixFold(ua[i:], p.s) {
				best = p.bot
			}
		}
	}
	for i := 0; i < best; i++ {
		if re := v.bots[i].re; re != nil && re.MatchString(ua) {
			return i
		}
	}
	if best == len(v.bots) {
		return -1
	}
	return best
}

// pattern is a lower-case User-Agent substring of bot index bot.
type pattern struct {
	s   string
	bot int
}

// hasPrefixFold reports whether s starts with lower (already lower case),
// ignoring ASCII case.
func hasPrefixFold(s, lower string) bool {
	if len(s) < len(lower) {
		return false
	}
	for j := 0; j < len(lower); j++ {
		if toLower(s[j]) != lower[j] {
			return false
		}
	}
	return true
}

func toLower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// Verify checks whether the client at ip is the bot its userAgent claims
// to be. It waits at most the configured timeout (less if ctx ends first);
// requests for the same address and bot share one DNS verification.
func (v *Verifier) Verify(ctx context.Context, ip netip.Addr, userAgent string) Result {
	bi := v.claim(userAgent)
	if bi < 0 {
		return Result{}
	}
	name := v.bots[bi].name
	if !ip.IsValid() {
		return Result{Claimed: name, Reason: ReasonInvalidIP}
	}
	key := cacheKey{ip: ip.Unmap().WithZone(""), bot: bi}
	now := v.now()

	v.mu.Lock()
	if el, ok := v.entries[key]; ok {
		e := el.Value.(*entry)
		if now.Before(e.exp) {
			v.lru.MoveToFront(el)
			v.stats.Hits++
			v.mu.Unlock()
			return e.res
		}
		v.lru.Remove(el)
		delete(v.entries, key)
	}
	c, ok := v.inflight[key]
	switch {
	case ok:
		v.stats.Coalesced++
	case len(v.inflight) >= v.maxInFlight:
		v.stats.Busy++
		v.mu.Unlock()
		return Result{Claimed: name, Reason: ReasonBusy}
	default:
		c = &call{done: make(chan struct{})}
		v.inflight[key] = c
		v.stats.Misses++
		// Detached from ctx: the request that starts a verification may
		// go away, but the others waiting for it, and the cache, still
		// want the answer.
		go v.run(key, c)
	}
	v.mu.Unlock()

	// The timer also guards against a Resolver that ignores its context.
	t := time.NewTimer(v.timeout)
	defer t.Stop()
	select {
	case <-c.done:
		return c.res
	case <-ctx.Done():
	case <-t.C:
	}
	return Result{Claimed: name, Reason: ReasonTimeout}
}

func (v *Verifier) run(key cacheKey, c *call) {
	ctx, cancel := context.WithTimeout(context.Background(), v.timeout)
	res := v.check(ctx, key.ip, &v.bots[key.bot])
	cancel()
	ttl := v.negative
	switch {
	case res.Verified:
		ttl = v.positive
	case !res.Conclusive():
		ttl = v.errTTL
	}
	v.mu.Lock()
	delete(v.inflight, key)
	v.store(key, res, v.now().Add(ttl))
	v.mu.Unlock()
	c.res = res
	close(c.done)
}

// store caches res; v.mu must be held.
func (v *Verifier) store(key cacheKey, res Result, exp time.Time) {
	if el, ok := v.entries[key]; ok {
		e := el.Value.(*entry)
		e.res, e.exp = res, exp
		v.lru.MoveToFront(el)
		return
	}
	for v.lru.Len() >= v.size {
		last := v.lru.Back()
		e := last.Value.(*entry)
		if v.now().Before(e.exp) {
			v.stats.Evictions++
		}
		v.lru.Remove(last)
		delete(v.entries, e.key)
	}
	v.entries[key] = v.lru.PushFront(&entry{key: key, res: res, exp: exp})
}

// maxNames bounds the PTR names examined (and so forward lookups made)
// per verification; real crawler addresses have one.
const maxNames = 4

// check runs the FCrDNS verification of ip for b.
func (v *Verifier) check(ctx context.Context, ip netip.Addr, b *bot) Result {
	res := Result{Claimed: b.name}
	names, err := v.resolver.LookupAddr(ctx, ip.String())
	if len(names) == 0 {
		// Go's resolver may return valid names along with an error
		// about invalid ones; with no names, the error decides.
		res.Reason = dnsReason(ctx, err, ReasonNoPTR)
		return res
	}
	res.Reason = ReasonPTRMismatch
	tried := 0
	for _, n := range names {
		host := strings.ToLower(strings.TrimSuffix(n, "."))
		if !b.inDomain(host) {
			continue
		}
		if tried++; tried > maxNames {
			break
		}
		addrs, err := v.resolver.LookupNetIP(ctx, "ip", host)
		for _, a := range addrs {
			if a.Unmap().WithZone("") == ip {
				return Result{Claimed: b.name, Verified: true, Reason: ReasonVerified, Host: host}
			}
		}
		// A forward mismatch is conclusive only if no other name of
		// ours was left undecided by a DNS error.
		if r := dnsReason(ctx, err, ReasonForwardMismatch); res.Reason != ReasonDNSError && res.Reason != ReasonTimeout {
			res.Reason = r
		}
	}
	return res
}

// dnsReason maps a lookup error to a reason: no error or "no such host"
// is the conclusive ifNone, anything else is inconclusive.
func dnsReason(ctx context.Context, err error, ifNone string) string {
	var de *net.DNSError
	switch {
	case err == nil:
		return ifNone
	case errors.As(err, &de) && de.IsNotFound:
		return ifNone
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &de) && de.IsTimeout:
		return ReasonTimeout
	}
	return ReasonDNSError
}

// inDomain reports whether host is one of b's domains or below one. The
// dot before the suffix is what stops evilgooglebot.com, and matching at
// the end what stops googlebot.com.evil.net.
func (b *bot) inDomain(host string) bool {
	for _, s := range b.suffixes {
		if host == s || len(host) > len(s) && strings.HasSuffix(host, s) && host[len(host)-len(s)-1] == '.' {
			return true
		}
	}
	return false
}

// Stats returns the counters so far.
func (v *Verifier) Stats() Stats {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.stats
}

// Bots returns the names of the configured bots, in matching order.
func (v *Verifier) Bots() []string {
	out := make([]string, len(v.bots))
	for i := range v.bots {
		out[i] = v.bots[i].name
	}
	return out
}
