// Package bot is the per-route check of the behavioural layer: allow and
// deny lists (CIDR, fingerprint, API key, country), geo-fencing, verified
// good bots, User-Agent/TLS consistency, the decisions every instance
// shares (block, challenge, throttle) and actions by the client's risk
// score (forward Apiguard-Risk to the upstream, challenge, throttle,
// block). The detectors that produce scores and decisions run on the
// observe path (internal/bot); this check only reads their snapshots.
//
// One config builds two checks: Early runs before authentication, so a
// blocked address or fingerprint is refused before any expensive check;
// Late runs last, when the subject, API key and attested app are known.
package bot

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	svc "github.com/apiguard/apiguard/internal/bot"
	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/decision"
	"github.com/apiguard/apiguard/internal/detect"
	"github.com/apiguard/apiguard/internal/fingerprint"
	"github.com/apiguard/apiguard/internal/geo"
	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/apiguard/apiguard/internal/state"
)

// RiskHeader carries the client's risk score to the upstream; a client
// cannot set it (the check removes any it sends).
const RiskHeader = "Apiguard-Risk"

// Config is checks.bot.
type Config struct {
	pipeline.Options `yaml:",inline"`
	// Allow lists clients the check never refuses (partners, monitoring).
	Allow Lists `yaml:"allow,omitempty"`
	// Deny lists clients always refused.
	Deny Lists `yaml:"deny,omitempty"`
	// Geo fences the route by the client's country (needs bot.geoip).
	Geo *geo.FenceConfig `yaml:"geo,omitempty"`
	// GoodBots: verify (default) refuses a User-Agent claiming a known
	// crawler from an address that is not the crawler's; off.
	GoodBots string `yaml:"good_bots,omitempty"`
	// UAMismatch is what a browser User-Agent over a library's TLS stack
	// gets: flag (default: +score), challenge, deny or off.
	UAMismatch string `yaml:"ua_mismatch,omitempty"`
	// Actions by the client's risk score, highest matching wins (default:
	// forward from 1, challenge from 50, block from 80).
	Actions []Action `yaml:"actions,omitempty"`
	// Throttle is the rate a throttled client keeps (default 1/s).
	Throttle string `yaml:"throttle,omitempty"`
}

// Lists name clients.
type Lists struct {
	CIDRs        []string `yaml:"cidrs,omitempty"`
	Fingerprints []string `yaml:"fingerprints,omitempty"` // JA4 values
	APIKeys      []string `yaml:"api_keys,omitempty"`     // key names
	Countries    []string `yaml:"countries,omitempty"`    // ISO 3166-1 alpha-2
}

// Action is what a score from Score up gets.
type Action struct {
	Score  int    `yaml:"score"`
	Action string `yaml:"action"` // forward, challenge, throttle or block
}

var defaultActions = []Action{{1, "forward"}, {50, "challenge"}, {80, "block"}}

// Validate reports invalid fields under path.
func (c *Config) Validate(path string, errs *field.Errors) {
	c.Options.Validate(path, errs)
	for name, l := range map[string]Lists{"allow": c.Allow, "deny": c.Deny} {
		p := field.Join(path, name)
		for i, s := range l.CIDRs {
			if _, err := parsePrefix(s); err != nil {
				errs.Add(field.Index(field.Join(p, "cidrs"), i), "not an address or CIDR: %q", s)
			}
		}
		for i, s := range l.Countries {
			if !geo.ValidCountry(strings.ToUpper(s)) {
				errs.Add(field.Index(field.Join(p, "countries"), i), "not an ISO 3166-1 alpha-2 country code: %q", s)
			}
		}
		for i, s := range l.Fingerprints {
			if s == "" || len(s) > 256 {
				errs.Add(field.Index(field.Join(p, "fingerprints"), i), "must be a JA4 fingerprint")
			}
		}
	}
	if c.Geo != nil {
		c.Geo.Validate(field.Join(path, "geo"), errs)
	}
	oneOf := func(name, v string, ok ...string) {
		if v != "" && !slices.Contains(ok, v) {
			errs.Add(field.Join(path, name), "must be one of %s, not %q", strings.Join(ok, ", "), v)
		}
	}
	oneOf("good_bots", c.GoodBots, "verify", "off")
	oneOf("ua_mismatch", c.UAMismatch, "flag", "challenge", "deny", "off")
	for i, a := range c.Actions {
		p := field.Index(field.Join(path, "actions"), i)
		if a.Score < 1 || a.Score > 100 {
			errs.Add(field.Join(p, "score"), "must be 1..100, not %d", a.Score)
		}
		if !slices.Contains([]string{"forward", "challenge", "throttle", "block"}, a.Action) {
			errs.Add(field.Join(p, "action"), "must be forward, challenge, throttle or block, not %q", a.Action)
		}
	}
	if c.Throttle != "" {
		if _, err := parseRate(c.Throttle); err != nil {
			errs.Add(field.Join(path, "throttle"), "%v", err)
		}
	}
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseRate reads "N/s", "N/m" or "N/h".
func parseRate(s string) (state.Limit, error) {
	n, per, ok := strings.Cut(s, "/")
	count, err := strconv.ParseInt(n, 10, 64)
	period := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[per]
	if !ok || err != nil || count < 1 || period == 0 {
		return state.Limit{}, fmt.Errorf("must be a rate like 1/s, 30/m or 100/h, not %q", s)
	}
	return state.Limit{Count: count, Period: period, Burst: count}, nil
}

type lists struct {
	prefixes  []netip.Prefix
	fps       map[string]bool
	keys      map[string]bool
	countries map[string]bool
}

func compile(l Lists) lists {
	out := lists{fps: map[string]bool{}, keys: map[string]bool{}, countries: map[string]bool{}}
	for _, s := range l.CIDRs {
		if p, err := parsePrefix(s); err == nil {
			out.prefixes = append(out.prefixes, p)
		}
	}
	for _, s := range l.Fingerprints {
		out.fps[s] = true
	}
	for _, s := range l.APIKeys {
		out.keys[s] = true
	}
	for _, s := range l.Countries {
		out.countries[strings.ToUpper(s)] = true
	}
	return out
}

// match reports which list entry matches, "" when none.
func (l *lists) match(ip netip.Addr, ja4, apiKey, country string) string {
	ip = ip.Unmap()
	for _, p := range l.prefixes {
		if p.Contains(ip) {
			return "cidr"
		}
	}
	switch {
	case ja4 != "" && l.fps[ja4]:
		return "fingerprint"
	case apiKey != "" && l.keys[apiKey]:
		return "api_key"
	case country != "" && l.countries[country]:
		return "country"
	}
	return ""
}

// Check holds what the two phases share.
type Check struct {
	svc        *svc.Service
	state      state.Backend
	allow      lists
	deny       lists
	fence      *geo.Fence
	goodBots   bool
	uaMismatch string
	actions    []Action // ascending by score
	throttle   []state.Limit
}

// New builds the check for one route.
func New(cfg Config, s *svc.Service, st state.Backend) (*Check, error) {
	if s == nil {
		return nil, fmt.Errorf("the bot service is not configured (top-level bot:)")
	}
	c := &Check{svc: s, state: st, allow: compile(cfg.Allow), deny: compile(cfg.Deny),
		goodBots: cfg.GoodBots != "off" && s.GoodBots != nil, uaMismatch: cfg.UAMismatch}
	if c.uaMismatch == "" {
		c.uaMismatch = "flag"
	}
	if cfg.Geo != nil || len(cfg.Allow.Countries)+len(cfg.Deny.Countries) > 0 {
		if s.Geo == nil {
			return nil, fmt.Errorf("countries need a geo database (bot.geoip)")
		}
	}
	if cfg.Geo != nil {
		f, err := geo.NewFence(*cfg.Geo)
		if err != nil {
			return nil, err
		}
		c.fence = f
	}
	c.actions = slices.Clone(cfg.Actions)
	if len(c.actions) == 0 {
		c.actions = defaultActions
	}
	slices.SortStableFunc(c.actions, func(a, b Action) int { return a.Score - b.Score })
	rate := cfg.Throttle
	if rate == "" {
		rate = "1/s"
	}
	l, err := parseRate(rate)
	if err != nil {
		return nil, err
	}
	c.throttle = []state.Limit{l}
	return c, nil
}

// Early is the check that runs before authentication.
func (c *Check) Early() pipeline.Check { return early{c} }

// Late is the check that runs after every other.
func (c *Check) Late() pipeline.Check { return late{c} }

type early struct{ c *Check }

func (early) Name() string { return "bot" }

func (e early) Check(ctx context.Context, req *pipeline.Request) (pipeline.Verdict, error) {
	c := e.c
	r := req.HTTP
	r.Header.Del(RiskHeader) // only the gateway sets it
	country := c.country(req.ClientIP)
	if c.allow.match(req.ClientIP, req.Identity.JA4, "", country) != "" {
		return pipeline.Allowed, nil
	}
	if m := c.deny.match(req.ClientIP, req.Identity.JA4, "", country); m != "" {
		return deny(http.StatusForbidden, "client-denied", "this client may not use the API", map[string]string{"list": "deny." + m}), nil
	}
	if c.fence != nil {
		if ok, reason := c.fence.Check(country); !ok {
			slug := strings.TrimPrefix(reason, "geo.")
			return deny(http.StatusForbidden, slug, "the API is not available from this location", map[string]string{"country": country}), nil
		}
	}
	if d, ok := c.svc.Decisions.MatchIP(req.ClientIP, c.fpKey(req), countryKey(country)); ok && d.Action == decision.Block {
		return blocked(d), nil
	}
	if c.goodBots {
		if res := c.svc.GoodBots.Verify(ctx, req.ClientIP, r.UserAgent()); res.Claimed != "" && !res.Verified && res.Conclusive() {
			return deny(http.StatusForbidden, "bot-impersonation", "the client claims to be a search engine crawler it is not",
				map[string]string{"claimed": res.Claimed, "reason": res.Reason}), nil
		}
	}
	if c.uaMismatch != "off" {
		ua := fingerprint.ParseUserAgent(r.UserAgent())
		if v := fingerprint.Consistency(ua, fingerprint.FromContext(r.Context())); v.Mismatch {
			ev := map[string]string{"reason": v.Reason, "confidence": strconv.FormatFloat(v.Confidence, 'f', 2, 64)}
			switch c.uaMismatch {
			case "deny":
				return deny(http.StatusForbidden, "client-inconsistent", "the client is not what its User-Agent says", ev), nil
			case "challenge":
				if req.Identity.App == "" {
					return challenge(ev), nil
				}
			default:
				return pipeline.Verdict{Action: pipeline.Flag, Reason: "client-inconsistent", Score: int(v.Confidence * 50),
					Detail: "the client is not what its User-Agent says", Evidence: ev}, nil
			}
		}
	}
	return pipeline.Allowed, nil
}

type late struct{ c *Check }

func (late) Name() string { return "bot" }

func (l late) Check(ctx context.Context, req *pipeline.Request) (pipeline.Verdict, error) {
	c := l.c
	r := req.HTTP
	id := &req.Identity
	country := c.country(req.ClientIP)
	if c.allow.match(req.ClientIP, id.JA4, id.APIKey, country) != "" {
		return pipeline.Allowed, nil
	}
	if id.APIKey != "" && c.deny.keys[id.APIKey] {
		return deny(http.StatusForbidden, "client-denied", "this client may not use the API", map[string]string{"list": "deny.api_key"}), nil
	}
	if id.JA4H == "" {
		id.JA4H, _ = fingerprint.JA4H(r)
	}
	keys := c.svc.Engine.Keys(detect.Observation{IP: req.ClientIP, JA4: id.JA4, JA4H: id.JA4H, APIKey: id.APIKey, Subject: id.Subject, Device: id.Device})
	// The detectors' fp: key joins JA4 and JA4H; an operator's decision
	// names the JA4 alone (fp:<ja4>, docs/decisions.md), so look up both.
	if d, ok := c.svc.Decisions.MatchIP(req.ClientIP, append(keys, c.fpKey(req), countryKey(country))...); ok {
		switch d.Action {
		case decision.Block:
			return blocked(d), nil
		case decision.Challenge:
			if id.App == "" {
				return challenge(map[string]string{"decision": d.ID, "key": d.Key, "reason": d.Reason}), nil
			}
		case decision.Throttle:
			if v, err := c.throttleKey(ctx, d.Key); v.Action != pipeline.Allow || err != nil {
				return v, err
			}
		case decision.Allow:
			// Only an operator's allow exempts the client; a detector's
			// is a hint that overrides nothing, not even the risk actions.
			if d.Source == decision.SourceManual {
				return pipeline.Allowed, nil
			}
		}
	}
	score, reasons := c.svc.Engine.Score(keys...)
	if score == 0 {
		return pipeline.Allowed, nil
	}
	act := c.action(score)
	if act == "block" || act == "throttle" {
		// Risk on keys shared with others only challenges (svc.SharedKey).
		var own []string
		for _, k := range keys {
			if !svc.SharedKey(k) {
				own = append(own, k)
			}
		}
		ownScore, _ := c.svc.Engine.Score(own...)
		if c.action(ownScore) != act && slices.ContainsFunc(c.actions, func(a Action) bool { return a.Action == "challenge" }) {
			act = "challenge"
		}
	}
	ev := map[string]string{"score": strconv.Itoa(score)}
	var names []string
	for i, rs := range reasons {
		if i < 4 {
			ev["reason."+strconv.Itoa(i)] = rs.Detector + "/" + rs.Rule + " on " + rs.Key + " +" + strconv.Itoa(rs.Contribution)
		}
		names = append(names, rs.Detector)
	}
	switch act {
	case "block":
		return deny(http.StatusForbidden, "risk-blocked", "this client's recent behaviour looks automated or abusive", ev), nil
	case "challenge":
		if id.App == "" {
			return challenge(ev), nil
		}
	case "throttle":
		if v, err := c.throttleKey(ctx, "ip:"+req.ClientIP.String()); v.Action != pipeline.Allow || err != nil {
			return v, err
		}
	}
	if act != "" {
		slices.Sort(names)
		r.Header.Set(RiskHeader, strconv.Itoa(score)+"; reasons=\""+strings.Join(slices.Compact(names), " ")+"\"")
	}
	return pipeline.Verdict{Action: pipeline.Flag, Reason: "risk", Score: score, Evidence: ev}, nil
}

// action is the route's action for score: the highest threshold it
// reaches, "" below all.
func (c *Check) action(score int) string {
	act := ""
	for _, a := range c.actions {
		if score >= a.Score {
			act = a.Action
		}
	}
	return act
}

func (c *Check) throttleKey(ctx context.Context, key string) (pipeline.Verdict, error) {
	d, err := c.state.RateLimit(ctx, "bot-throttle:"+key, c.throttle, 1, nil)
	if err != nil {
		return pipeline.Allowed, err
	}
	if d.Allowed {
		return pipeline.Allowed, nil
	}
	v := deny(http.StatusTooManyRequests, "throttled", "this client is throttled: slow down", map[string]string{"key": key})
	secs := max(1, int(d.Results[0].RetryAfter.Round(time.Second)/time.Second))
	v.Headers = http.Header{"Retry-After": {strconv.Itoa(secs)}}
	return v, nil
}

// fpKey is the request's fingerprint key as an operator names it in a
// decision, fp:<ja4> (JA4 only: the detectors' fp: keys also carry JA4H,
// which needs the headers the late phase reads).
func (c *Check) fpKey(req *pipeline.Request) string {
	if req.Identity.JA4 == "" {
		return ""
	}
	return "fp:" + req.Identity.JA4
}

func (c *Check) country(ip netip.Addr) string {
	if c.svc.Geo == nil {
		return ""
	}
	return c.svc.Geo.Country(ip)
}

func countryKey(cc string) string {
	if cc == "" {
		return ""
	}
	return decision.CountryKey(cc)
}

func deny(status int, reason, detail string, evidence map[string]string) pipeline.Verdict {
	return pipeline.Verdict{Action: pipeline.Deny, Status: status, Reason: reason, Detail: detail, Evidence: evidence}
}

func blocked(d decision.Decision) pipeline.Verdict {
	v := deny(http.StatusForbidden, "blocked", "this client is blocked", map[string]string{
		"decision": d.ID, "key": d.Key, "source": d.Source, "reason": d.Reason, "expires": d.Expires.UTC().Format(time.RFC3339)})
	for k, val := range d.Evidence {
		v.Evidence["evidence."+k] = val
	}
	for k, val := range d.Thresholds {
		v.Evidence["threshold."+k] = val
	}
	if s := int(time.Until(d.Expires) / time.Second); s > 0 {
		v.Headers = http.Header{"Retry-After": {strconv.Itoa(s)}}
	}
	return v
}

// challenge asks the client to prove it is a genuine app: an attestation
// token from /.apiguard/attest/ (a platform attestation or, for browsers,
// proof-of-work) lets it through.
func challenge(evidence map[string]string) pipeline.Verdict {
	return pipeline.Verdict{Action: pipeline.Challenge, Status: http.StatusUnauthorized, Reason: "challenge-required",
		Detail:   "prove this is a genuine client: attest at /.apiguard/attest/challenge and send the token in Apiguard-Token",
		Headers:  http.Header{"Www-Authenticate": {`Apiguard-Attest realm="apiguard"`}},
		Evidence: evidence}
}
