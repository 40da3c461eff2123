// Package bot is the behavioural layer's service: it feeds every finished
// request to the detectors (internal/detect) on the asynchronous observe
// path, turns a client whose risk crosses a threshold into a decision
// every instance enforces (internal/decision), and holds what the per-route
// bot check reads on the request path: the decisions, the detectors' risk
// scores, the geo database and the good-bot verifier.
//
// A slow detector never slows a request: Observe runs in the event bus's
// sink goroutine, and the request path only reads in-memory snapshots.
package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/decision"
	"github.com/apiguard/apiguard/internal/detect"
	"github.com/apiguard/apiguard/internal/events"
	"github.com/apiguard/apiguard/internal/geo"
	"github.com/apiguard/apiguard/internal/goodbot"
	"github.com/apiguard/apiguard/internal/lenient"
	"github.com/apiguard/apiguard/internal/state"
)

// Config is the top-level `bot:` section.
type Config struct {
	// Detectors tune the observe-path detectors (docs/bot.md).
	Detectors detect.Config `yaml:"detectors,omitempty"`
	// Logins name the login routes and where their username is, for the
	// credential-stuffing detectors.
	Logins []Login `yaml:"logins,omitempty"`
	// Block: a client key whose risk reaches Score is blocked on every
	// instance for TTL (default 80 and 15m). Fingerprint, network and
	// account (sub:) keys, which genuine clients share with attackers, get
	// a challenge instead.
	Block Escalation `yaml:"block,omitempty"`
	// Challenge: a client key whose risk reaches Score must prove it is a
	// genuine app (attestation or proof-of-work) for TTL (default 50, 15m).
	Challenge Escalation `yaml:"challenge,omitempty"`
	// GeoIP names MaxMind-format databases for country checks.
	GeoIP *geo.Files `yaml:"geoip,omitempty"`
	// GoodBots verifies crawlers by reverse and forward DNS (defaults: the
	// major search engines).
	GoodBots *goodbot.Config `yaml:"good_bots,omitempty"`
}

// Login is one login route.
type Login struct {
	Route string `yaml:"route"`
	// Username is where the username is: json:/pointer, json:name
	// (top-level member), form:name or query:name.
	Username string `yaml:"username"`
	// Success lists the statuses of a successful login (default: 2xx).
	Success []int `yaml:"success,omitempty"`
}

// Escalation is a risk score and how long the decision it makes lasts.
type Escalation struct {
	Score int    `yaml:"score,omitempty"`
	TTL   string `yaml:"ttl,omitempty"`
}

const (
	defaultBlockScore     = 80
	defaultChallengeScore = 50
	defaultTTL            = 15 * time.Minute
)

// Validate reports invalid fields under path.
func (c *Config) Validate(path string, errs *field.Errors) {
	c.Detectors.Validate(field.Join(path, "detectors"), errs)
	for i, l := range c.Logins {
		p := field.Index(field.Join(path, "logins"), i)
		if l.Route == "" {
			errs.Add(field.Join(p, "route"), "required: the name of the login route")
		}
		if _, _, err := parseSource(l.Username); err != nil {
			errs.Add(field.Join(p, "username"), "%v", err)
		}
		for j, s := range l.Success {
			if s < 100 || s > 599 {
				errs.Add(field.Index(field.Join(p, "success"), j), "must be an HTTP status, not %d", s)
			}
		}
	}
	for name, e := range map[string]Escalation{"block": c.Block, "challenge": c.Challenge} {
		p := field.Join(path, name)
		if e.Score < 0 || e.Score > 100 {
			errs.Add(field.Join(p, "score"), "must be 0..100 (0: default), not %d", e.Score)
		}
		if e.TTL != "" {
			if d, err := time.ParseDuration(e.TTL); err != nil || d < time.Second || d > decision.MaxTTL {
				errs.Add(field.Join(p, "ttl"), "must be a duration between 1s and %s, not %q", decision.MaxTTL, e.TTL)
			}
		}
	}
	if c.GeoIP != nil {
		c.GeoIP.Validate(field.Join(path, "geoip"), errs)
	}
	if c.GoodBots != nil {
		c.GoodBots.Validate(field.Join(path, "good_bots"), errs)
	}
}

// parseSource splits "json:/user/name", "json:username", "form:user" or
// "query:user".
func parseSource(s string) (kind, name string, err error) {
	kind, name, ok := strings.Cut(s, ":")
	if !ok || name == "" || (kind != "json" && kind != "form" && kind != "query") {
		return "", "", fmt.Errorf("must be json:/pointer, json:name, form:name or query:name, not %q", s)
	}
	if kind == "json" {
		if !strings.HasPrefix(name, "/") {
			name = "/" + name
		}
		if _, ok := lenient.SplitPointer(name); !ok {
			return "", "", fmt.Errorf("%q does not name a JSON pointer (RFC 6901: escape ~ as ~0 and / as ~1)", s)
		}
	}
	return kind, name, nil
}

// Service is the running behavioural layer. Build it with New; it is safe
// for concurrent use.
type Service struct {
	cfg       Config
	Engine    *detect.Engine
	Decisions *decision.Store
	Geo       *geo.DB           // nil without geoip
	GoodBots  *goodbot.Verifier // nil when not configured
	logins    map[string]login
	block     escalation
	challenge escalation
	log       *slog.Logger
}

type login struct {
	kind, name string
	pointer    []string // json: the name's reference tokens
	success    []int
}

type escalation struct {
	score int
	ttl   time.Duration
}

// Options are the services a Service shares with the gateway.
type Options struct {
	State     state.Backend
	Decisions *decision.Store // shared by every Service of the process
	Logger    *slog.Logger
	Resolver  goodbot.Resolver // nil: the system resolver
	// Previous is the Service of the config being replaced: its detectors
	// (and their learned baselines) are kept when their config is
	// unchanged.
	Previous *Service
}

// New builds the service. The geo databases are opened here, so a missing
// file is a config error.
func New(cfg Config, o Options) (*Service, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, Decisions: o.Decisions, log: o.Logger, logins: map[string]login{},
		block:     escalation{score: or(cfg.Block.Score, defaultBlockScore), ttl: durOr(cfg.Block.TTL, defaultTTL)},
		challenge: escalation{score: or(cfg.Challenge.Score, defaultChallengeScore), ttl: durOr(cfg.Challenge.TTL, defaultTTL)},
	}
	for _, l := range cfg.Logins {
		kind, name, err := parseSource(l.Username)
		if err != nil {
			return nil, err
		}
		ptr, _ := lenient.SplitPointer(name) // json: validated by parseSource
		s.logins[l.Route] = login{kind: kind, name: name, pointer: ptr, success: l.Success}
	}
	if p := o.Previous; p != nil && reflect.DeepEqual(p.cfg.Detectors, cfg.Detectors) {
		s.Engine = p.Engine
	} else {
		e, err := detect.New(cfg.Detectors, detect.Options{Backend: o.State, Logger: o.Logger})
		if err != nil {
			return nil, err
		}
		s.Engine = e
	}
	if cfg.GeoIP != nil {
		db, err := geo.OpenFiles(*cfg.GeoIP)
		if err != nil {
			return nil, err
		}
		s.Geo = db
	}
	if cfg.GoodBots != nil {
		v, err := goodbot.New(*cfg.GoodBots, o.Resolver)
		if err != nil {
			return nil, err
		}
		s.GoodBots = v
	}
	return s, nil
}

// Close releases the geo databases. The detectors keep their state in the
// gateway's state backend and in memory; a replaced engine is simply
// dropped.
func (s *Service) Close() error {
	if s.Geo != nil {
		return s.Geo.Close()
	}
	return nil
}

// IsLogin reports whether route is a configured login route.
func (s *Service) IsLogin(route string) bool {
	_, ok := s.logins[route]
	return ok
}

// LoginOf extracts the login attempt of a request to a login route from
// its buffered body or query; nil when route is not a login route or the
// username cannot be found.
func (s *Service) LoginOf(route string, body []byte, query func(string) string, form func(string) string, status int) *events.Login {
	l, ok := s.logins[route]
	if !ok {
		return nil
	}
	var user string
	switch l.kind {
	case "json":
		user = jsonString(body, l.pointer)
	case "form":
		user = form(l.name)
	case "query":
		user = query(l.name)
	}
	if user == "" {
		return nil
	}
	if len(user) > 256 {
		user = user[:256]
	}
	success := status >= 200 && status < 300
	if len(l.success) > 0 {
		success = false
		for _, st := range l.success {
			success = success || st == status
		}
	}
	return &events.Login{Username: user, Success: success}
}

// jsonString returns the string at the pointer's tokens in body, or "".
func jsonString(body []byte, pointer []string) string {
	if len(body) == 0 || len(body) > 64<<10 {
		return ""
	}
	var v any
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	for _, tok := range pointer {
		switch x := v.(type) {
		case map[string]any:
			v = x[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return ""
			}
			v = x[i]
		default:
			return ""
		}
	}
	str, _ := v.(string)
	return str
}

// Observe feeds one request event to the detectors and escalates the
// clients whose risk crossed a threshold. It runs on the observe path.
func (s *Service) Observe(ctx context.Context, ev *events.Event) {
	o := observation(ev)
	findings := s.Engine.Observe(o)
	if len(findings) == 0 {
		return
	}
	for _, f := range findings {
		s.escalate(ctx, f)
	}
}

// observation converts a request event.
func observation(ev *events.Event) detect.Observation {
	ip, _ := netip.ParseAddr(ev.ClientIP)
	o := detect.Observation{
		Time: ev.Time, IP: ip, JA4: ev.JA4, JA4H: ev.JA4H, APIKey: ev.APIKey, Subject: ev.Subject,
		Device: ev.Device, Route: ev.Route, Method: ev.Method, Path: ev.Path, Template: ev.Template,
		Undeclared: ev.Undeclared, PathParams: ev.PathParams, Status: ev.Status,
	}
	if ev.Login != nil {
		o.Login = &detect.LoginAttempt{Username: ev.Login.Username, Success: ev.Login.Success}
	}
	return o
}

// SharedKey reports whether genuine clients may share key with an
// attacker: a fingerprint (every user of one browser build), a network
// prefix (a carrier's or an office's customers) or an account (sub:) a
// thief drives with a stolen token. Risk on such keys only ever
// challenges, which the genuine holder's attested app passes; blocking
// and throttling take risk on the client's own address, API key or device.
func SharedKey(key string) bool {
	return strings.HasPrefix(key, "fp:") || strings.HasPrefix(key, "net:") || strings.HasPrefix(key, "sub:")
}

// escalate turns a finding's key into a decision when the key's risk
// (all findings on it, decayed) reaches a threshold. Account keys (user:)
// name the victim, not the attacker, and are never escalated.
func (s *Service) escalate(ctx context.Context, f detect.Finding) {
	if s.Decisions == nil || strings.HasPrefix(f.Key, "user:") {
		return
	}
	score, reasons := s.Engine.Score(f.Key)
	var action decision.Action
	var ttl time.Duration
	shared := SharedKey(f.Key)
	switch {
	case score >= s.block.score && !shared:
		action, ttl = decision.Block, s.block.ttl
	case score >= s.challenge.score:
		// A fingerprint is shared by every client of one build of a
		// browser or app, a network prefix by a carrier's or an office's
		// customers: genuine ones pass a challenge, scripts do not.
		action, ttl = decision.Challenge, s.challenge.ttl
	default:
		return
	}
	if d, ok := s.Decisions.Match(f.Key); ok && covers(d, action) && time.Until(d.Expires) > ttl/2 {
		return // already decided; refresh only when half the TTL has passed
	}
	ev := map[string]string{"score": strconv.Itoa(score)}
	for i, r := range reasons {
		if i == 4 {
			break
		}
		ev["reason."+strconv.Itoa(i)] = r.Detector + "/" + r.Rule + " +" + strconv.Itoa(r.Contribution)
	}
	for k, v := range f.Evidence {
		ev[k] = v
	}
	th := map[string]string{"block_score": strconv.Itoa(s.block.score), "challenge_score": strconv.Itoa(s.challenge.score)}
	for k, v := range f.Thresholds {
		th[k] = v
	}
	_, err := s.Decisions.Add(ctx, decision.Decision{
		Key: f.Key, Action: action, Source: f.Detector, Reason: f.Detector + "/" + f.Rule,
		Evidence: ev, Thresholds: th, Expires: time.Now().Add(ttl),
	})
	if err != nil {
		s.log.Warn("bot: decision not stored", "key", f.Key, "error", err)
		return
	}
	s.log.Info("bot: decision", "key", f.Key, "action", action.String(), "detector", f.Detector, "rule", f.Rule, "score", score, "ttl", ttl)
}

// covers reports whether the live decision d makes a new decision with
// action unnecessary: a restriction at least as severe, or an operator's
// allow (which would outrank it anyway). A detector's allow is only a hint
// that overrides nothing (see package decision), so it must not keep
// another detector's finding from escalating.
func covers(d decision.Decision, action decision.Action) bool {
	if d.Action == decision.Allow {
		return d.Source == decision.SourceManual
	}
	return d.Action >= action
}

func or(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func durOr(s string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d
	}
	return def
}
