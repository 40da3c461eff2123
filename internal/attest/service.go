// Package attest is the attestation service: challenges, the app registry,
// verification of each provider's evidence, and signed attestation tokens,
// pin sets and runtime secrets. docs/attestation.md is its wire protocol.
package attest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apiguard/apiguard/internal/problem"
	"github.com/apiguard/apiguard/internal/state"
)

// Paths served by the service on the public listener.
const (
	PathPrefix = "/.apiguard/attest/"
	JWKSPath   = "/.well-known/apiguard/jwks.json"
	// TokenHeader carries the attestation token on API requests.
	TokenHeader = "Apiguard-Token"
)

// maxBody bounds every request body of the service.
const maxBody = 64 << 10

// Options are the service's collaborators.
type Options struct {
	State    state.Backend
	Registry *Registry
	// Prev is the service this one replaces on reload: keys removed from
	// the config keep verifying until their tokens expire.
	Prev *Service
	// ListenerCerts are the public listener's certificate chain (DER), for
	// pinning.
	ListenerCerts [][]byte
	Log           *slog.Logger
	Now           func() time.Time
	LookupEnv     func(string) (string, bool)
}

// Service answers /.apiguard/attest/ and the JWKS.
type Service struct {
	cfg          Config
	issuer       string
	tokenTTL     time.Duration
	challengeTTL time.Duration
	appAttestTTL time.Duration
	secretsAge   time.Duration
	rate         []state.Limit
	difficulty   int
	keys         *Keyring
	reg          *Registry
	st           state.Backend
	log          *slog.Logger
	now          func() time.Time
	providers    map[string]verifier
	pins         *pinSigner
}

// verifier checks one provider's evidence.
type verifier interface {
	// prepare adds the provider's parameters to a new challenge.
	prepare(ctx context.Context, s *Service, app *App, rels []*Release, req *challengeRequest, ch *challengeRecord) *Failure
	// verify checks the evidence and says who the device is.
	verify(ctx context.Context, s *Service, app *App, rels []*Release, ch *challengeRecord, nonce []byte, req *verifyRequest) (attested, *Failure)
}

// attested is what a provider established.
type attested struct {
	device  string
	level   string
	release string
}

// Failure is a refusal with its problem type and, for evidence that did
// not verify, the provider's reason.
type Failure struct {
	Status int
	Slug   string
	Reason string
	Detail string
}

func fail(status int, slug, reason, detail string) *Failure {
	return &Failure{Status: status, Slug: slug, Reason: reason, Detail: detail}
}

// NewService builds the service from a validated config.
func NewService(cfg Config, o Options) (*Service, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	keys, err := LoadKeyring(cfg.SigningKeys, o.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("attestation: %w", err)
	}
	s := &Service{
		cfg:          cfg,
		issuer:       cmpOr(cfg.Issuer, "apiguard"),
		tokenTTL:     durationOr(cfg.TokenTTL, defaultTokenTTL),
		challengeTTL: durationOr(cfg.ChallengeTTL, defaultChallengeTTL),
		appAttestTTL: durationOr(cfg.AppAttestKeyTTL, defaultAppAttestTTL),
		secretsAge:   durationOr(cfg.SecretsMaxTokenAge, defaultSecretsAge),
		difficulty:   defaultPoWDifficulty,
		reg:          o.Registry,
		st:           o.State,
		log:          o.Log,
		now:          o.Now,
	}
	if cfg.PoWDifficulty > 0 {
		s.difficulty = cfg.PoWDifficulty
	}
	perMin := int64(cmpOr(cfg.ChallengesPerMinute, defaultChallengeRate))
	s.rate = []state.Limit{{Count: perMin, Period: time.Minute, Burst: perMin}}
	s.keys = keys
	if o.Prev != nil {
		// The grace is the longest any token of the old keys can live.
		s.keys = keys.Carry(o.Prev.keys, s.now(), max(s.tokenTTL, o.Prev.tokenTTL))
	}
	s.providers = map[string]verifier{
		ProviderIntegrity: integrityProvider{},
		ProviderPoW:       powProvider{},
	}
	if err := s.addPlatformProviders(cfg); err != nil {
		return nil, err
	}
	if cfg.Pinning != nil {
		if s.pins, err = newPinSigner(cfg.Pinning, o.ListenerCerts); err != nil {
			return nil, fmt.Errorf("attestation.pinning: %w", err)
		}
	}
	return s, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Keyring returns the token keys (the gateway's check verifies with them).
func (s *Service) Keyring() *Keyring { return s.keys }

// Issuer is the tokens' iss.
func (s *Service) Issuer() string { return s.issuer }

// Handles reports whether the service answers path.
func Handles(path string) bool {
	return strings.HasPrefix(path, PathPrefix) || path == JWKSPath
}

// Outcome tells the gateway what a service request did, for its events.
type Outcome struct {
	App, Device, Provider string
	Failure               *Failure
}

// Serve answers one request to the service. clientIP is the client's
// address as the gateway resolved it (forwarded headers of trusted proxies).
func (s *Service) Serve(w http.ResponseWriter, r *http.Request, clientIP netip.Addr, requestID string) Outcome {
	var out Outcome
	path := r.URL.Path
	if path == JWKSPath {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			out.Failure = fail(http.StatusMethodNotAllowed, "method-not-allowed", "", "use GET")
			s.writeFailure(w, out.Failure, requestID, "GET")
			return out
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(s.keys.JWKS())
		return out
	}
	name := strings.TrimPrefix(path, PathPrefix)
	allow := "POST"
	if name == "pins" {
		allow = "GET"
	}
	switch {
	case name != "challenge" && name != "pins" && name != "secrets" && s.providers[name] == nil:
		out.Failure = fail(http.StatusNotFound, "not-found", "", "no attestation endpoint at this path")
	case r.Method != allow:
		out.Failure = fail(http.StatusMethodNotAllowed, "method-not-allowed", "", "use "+allow)
	}
	if out.Failure != nil {
		s.writeFailure(w, out.Failure, requestID, allow)
		return out
	}
	ctx := r.Context()
	var body any
	switch name {
	case "challenge":
		body, out = s.challenge(ctx, r, clientIP)
	case "pins":
		if s.pins == nil {
			out.Failure = fail(http.StatusNotFound, "not-found", "", "certificate pinning is not configured")
			break
		}
		var set string
		if set, out.Failure = s.pinSet(); out.Failure == nil {
			body = map[string]string{"pins": set}
		}
	case "secrets":
		body, out = s.secrets(r)
	default:
		body, out = s.verify(ctx, r, name)
	}
	if out.Failure != nil {
		s.writeFailure(w, out.Failure, requestID, allow)
		return out
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return out
}

func (s *Service) writeFailure(w http.ResponseWriter, f *Failure, requestID, allow string) {
	d := problem.New(f.Status, f.Slug, f.Detail, requestID)
	if f.Reason != "" {
		d.Extra = map[string]any{"reason": f.Reason}
	}
	h := http.Header{}
	switch f.Status {
	case http.StatusMethodNotAllowed:
		h.Set("Allow", allow)
	case http.StatusTooManyRequests:
		h.Set("Retry-After", "2")
	}
	problem.Write(w, d, h)
}

// decode reads a JSON body of at most maxBody bytes.
func decode(r *http.Request, v any) *Failure {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return fail(http.StatusUnsupportedMediaType, "unsupported-media-type", "", "send application/json")
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return fail(http.StatusBadRequest, "bad-request", "", "could not read the request body")
	}
	if len(b) > maxBody {
		return fail(http.StatusRequestEntityTooLarge, "body-too-large", "", "attestation requests are limited to 64 KiB")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fail(http.StatusBadRequest, "bad-request", "", "the body is not the JSON object the protocol defines")
	}
	return nil
}

var safeID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// challengeRequest is the body of POST /.apiguard/attest/challenge.
type challengeRequest struct {
	AppID    string `json:"app_id"`
	Provider string `json:"provider"`
	Release  string `json:"release"`
}

// challengeRecord is what the state backend keeps for a challenge.
type challengeRecord struct {
	App        string            `json:"a"`
	Provider   string            `json:"p"`
	Release    string            `json:"r,omitempty"`
	Salt       []byte            `json:"s,omitempty"`
	Ranges     []rangeJSON       `json:"g,omitempty"`
	Difficulty int               `json:"d,omitempty"`
	Extra      map[string]string `json:"x,omitempty"`
}

type rangeJSON struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

const (
	challengePrefix = "attest:ch:"
	usedPrefix      = "attest:chu:"
	ratePrefix      = "attest:rl:"
)

func (s *Service) challenge(ctx context.Context, r *http.Request, clientIP netip.Addr) (any, Outcome) {
	var out Outcome
	var req challengeRequest
	if out.Failure = decode(r, &req); out.Failure != nil {
		return nil, out
	}
	out.App, out.Provider = req.AppID, req.Provider
	if !safeID.MatchString(req.AppID) || s.providers[req.Provider] == nil {
		out.App = ""
		out.Failure = fail(http.StatusBadRequest, "bad-request", "", "app_id and a known provider ("+strings.Join(Providers, ", ")+") are required")
		return nil, out
	}
	// Rate limit before touching the registry or storing anything, so a
	// challenge flood costs one GCRA decision per request.
	if dec, err := s.st.RateLimit(ctx, ratePrefix+clientIP.String(), s.rate, 1, nil); err != nil {
		out.Failure = fail(http.StatusServiceUnavailable, "service-unavailable", "", "attestation is unavailable, retry later")
		return nil, out
	} else if !dec.Allowed {
		out.Failure = fail(http.StatusTooManyRequests, "rate-limited", "", "too many challenges from this client")
		return nil, out
	}
	app, rels, f := s.lookup(ctx, req.AppID, req.Provider)
	if f != nil {
		out.Failure = f
		return nil, out
	}
	ch := challengeRecord{App: app.ID, Provider: req.Provider}
	if f := s.providers[req.Provider].prepare(ctx, s, app, rels, &req, &ch); f != nil {
		out.Failure = f
		return nil, out
	}
	nonce := make([]byte, 32)
	_, _ = rand.Read(nonce)
	id := base64.RawURLEncoding.EncodeToString(nonce)
	rec, _ := json.Marshal(ch)
	if err := s.st.Put(ctx, challengePrefix+id, rec, s.challengeTTL); err != nil {
		out.Failure = fail(http.StatusServiceUnavailable, "service-unavailable", "", "attestation is unavailable, retry later")
		return nil, out
	}
	exp := s.now().Add(s.challengeTTL).UTC()
	resp := map[string]any{
		"challenge": id, "app_id": app.ID, "provider": req.Provider,
		"expires_at": exp.Format(time.RFC3339), "expires_in": int(s.challengeTTL / time.Second),
	}
	switch req.Provider {
	case ProviderIntegrity:
		resp["integrity"] = map[string]any{"salt": base64.RawURLEncoding.EncodeToString(ch.Salt), "ranges": ch.Ranges}
	case ProviderPoW:
		resp["pow"] = map[string]any{"algorithm": "sha256", "difficulty": ch.Difficulty}
	}
	return resp, out
}

// lookup finds the app and checks that it may use provider.
func (s *Service) lookup(ctx context.Context, appID, provider string) (*App, []*Release, *Failure) {
	if s.reg == nil {
		return nil, nil, fail(http.StatusServiceUnavailable, "service-unavailable", "", "the app registry is not available")
	}
	app, rels, err := s.reg.Lookup(ctx, appID)
	if errors.Is(err, ErrNoApp) {
		return nil, nil, fail(http.StatusForbidden, "attestation-app-unknown", "", "this app is not registered")
	}
	if err != nil {
		s.log.Error("attestation registry", "error", err.Error())
		return nil, nil, fail(http.StatusServiceUnavailable, "service-unavailable", "", "attestation is unavailable, retry later")
	}
	if !app.Allows(provider) {
		return nil, nil, fail(http.StatusForbidden, "attestation-provider-not-allowed", "", "this app may not attest with "+provider)
	}
	return app, rels, nil
}

// verifyRequest holds every provider's members; each reads its own.
type verifyRequest struct {
	Challenge      string   `json:"challenge"`
	Bind           string   `json:"bind"`
	InstallationID string   `json:"installation_id"`
	KeyID          string   `json:"key_id"`
	Attestation    string   `json:"attestation"`
	Assertion      string   `json:"assertion"`
	Chain          []string `json:"chain"`
	MAC            string   `json:"mac"`
	Counter        *uint64  `json:"counter"`
}

var installationID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// takeChallenge consumes a challenge: it is valid once, for its provider.
func (s *Service) takeChallenge(ctx context.Context, id, provider string) (*challengeRecord, []byte, *Failure) {
	nonce, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(nonce) != 32 {
		return nil, nil, fail(http.StatusForbidden, "attestation-challenge-invalid", "unknown", "the challenge is not one of ours")
	}
	raw, ok, err := s.st.Get(ctx, challengePrefix+id)
	if err != nil {
		return nil, nil, fail(http.StatusServiceUnavailable, "service-unavailable", "", "attestation is unavailable, retry later")
	}
	if !ok {
		return nil, nil, fail(http.StatusForbidden, "attestation-challenge-invalid", "unknown", "the challenge is unknown or expired; request a new one")
	}
	// PutNX is atomic on both backends: of two concurrent answers to one
	// challenge, exactly one wins.
	first, err := s.st.PutNX(ctx, usedPrefix+id, []byte{1}, s.challengeTTL)
	if err != nil {
		return nil, nil, fail(http.StatusServiceUnavailable, "service-unavailable", "", "attestation is unavailable, retry later")
	}
	if !first {
		return nil, nil, fail(http.StatusForbidden, "attestation-challenge-invalid", "used", "the challenge was already answered; request a new one")
	}
	// The record stays until its TTL: a replay then finds it and is told
	// "used" rather than "unknown".
	var ch challengeRecord
	if json.Unmarshal(raw, &ch) != nil {
		return nil, nil, fail(http.StatusForbidden, "attestation-challenge-invalid", "unknown", "the challenge is not one of ours")
	}
	if ch.Provider != provider {
		return nil, nil, fail(http.StatusForbidden, "attestation-challenge-invalid", "foreign", "the challenge was made for another provider")
	}
	return &ch, nonce, nil
}

func (s *Service) verify(ctx context.Context, r *http.Request, provider string) (any, Outcome) {
	out := Outcome{Provider: provider}
	var req verifyRequest
	if out.Failure = decode(r, &req); out.Failure != nil {
		return nil, out
	}
	if req.Bind != "" {
		if b, err := base64.RawURLEncoding.DecodeString(req.Bind); err != nil || len(b) != sha256.Size {
			out.Failure = fail(http.StatusBadRequest, "bad-request", "", "bind must be base64url(SHA-256(header value))")
			return nil, out
		}
	}
	if req.InstallationID != "" && !installationID.MatchString(req.InstallationID) {
		out.Failure = fail(http.StatusBadRequest, "bad-request", "", "installation_id must be 1-64 of [A-Za-z0-9_-]")
		return nil, out
	}
	ch, nonce, f := s.takeChallenge(ctx, req.Challenge, provider)
	if f != nil {
		out.Failure = f
		return nil, out
	}
	out.App = ch.App
	app, rels, f := s.lookup(ctx, ch.App, provider)
	if f != nil {
		out.Failure = f
		return nil, out
	}
	got, f := s.providers[provider].verify(ctx, s, app, rels, ch, nonce, &req)
	if f != nil {
		out.Failure = f
		return nil, out
	}
	out.Device = got.device
	now := s.now()
	claims := Claims{
		Issuer: s.issuer, Subject: app.ID, Device: got.device, IssuedAt: now.Unix(), Expiry: now.Add(s.tokenTTL).Unix(),
		Provider: provider, Level: got.level, Release: got.release, Binding: req.Bind,
	}
	tok, err := s.keys.Issue(&claims)
	if err != nil {
		s.log.Error("attestation: signing a token", "error", err.Error())
		out.Failure = fail(http.StatusServiceUnavailable, "service-unavailable", "", "attestation is unavailable, retry later")
		return nil, out
	}
	resp := map[string]any{
		"token": tok, "expires_at": time.Unix(claims.Expiry, 0).UTC().Format(time.RFC3339), "expires_in": int(s.tokenTTL / time.Second),
		"app_id": app.ID, "device_id": got.device, "provider": provider, "level": got.level,
	}
	if s.pins != nil {
		if set, f := s.pinSet(); f == nil {
			resp["pins"] = set
		}
	}
	return resp, out
}

// deviceOr returns the installation id, or a random id when the client
// sent none (each token then names its own device).
func deviceOr(req *verifyRequest) string {
	if req.InstallationID != "" {
		return req.InstallationID
	}
	return "anon-" + newID()[:16]
}

// secrets answers POST /.apiguard/attest/secrets.
func (s *Service) secrets(r *http.Request) (any, Outcome) {
	var out Outcome
	tok := r.Header.Get(TokenHeader)
	if tok == "" {
		out.Failure = fail(http.StatusUnauthorized, "attestation-missing", "", "send a fresh attestation token in "+TokenHeader)
		return nil, out
	}
	now := s.now()
	c, err := s.keys.VerifyToken(tok, s.issuer, now)
	switch {
	case errors.Is(err, ErrExpired):
		out.Failure = fail(http.StatusUnauthorized, "attestation-expired", "", "the attestation token expired")
	case err != nil:
		out.Failure = fail(http.StatusUnauthorized, "attestation-invalid", "", "the attestation token is not valid")
	case now.Sub(time.Unix(c.IssuedAt, 0)) > s.secretsAge:
		out.Failure = fail(http.StatusUnauthorized, "attestation-expired", "stale", "secrets need a token attested in the last "+s.secretsAge.String())
	}
	if out.Failure != nil {
		return nil, out
	}
	out.App, out.Device, out.Provider = c.Subject, c.Device, c.Provider
	got := map[string]string{}
	for _, sec := range s.cfg.Secrets {
		if len(sec.Apps) > 0 && !slices.Contains(sec.Apps, c.Subject) {
			continue
		}
		if LevelRank(c.Level) < LevelRank(cmpOr(sec.MinLevel, LevelSoftware)) {
			continue
		}
		got[sec.Name] = sec.Value
	}
	return map[string]any{"secrets": got}, out
}

// pinSigner keeps a signed pin set, re-signed when half its life passed.
type pinSigner struct {
	hosts []string
	pins  []string
	ttl   time.Duration
	mu    sync.Mutex
	set   string
	until time.Time
}

// PinSet is the payload of a signed pin set.
type PinSet struct {
	Issuer   string   `json:"iss"`
	IssuedAt int64    `json:"iat"`
	Expiry   int64    `json:"exp"`
	Hosts    []string `json:"hosts"`
	Pins     []string `json:"pins"`
}

func (s *Service) pinSet() (string, *Failure) {
	p := s.pins
	now := s.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.set != "" && now.Before(p.until) {
		return p.set, nil
	}
	set, err := s.keys.Sign(PinSet{Issuer: s.issuer, IssuedAt: now.Unix(), Expiry: now.Add(p.ttl).Unix(), Hosts: p.hosts, Pins: p.pins}, PinsType)
	if err != nil {
		return "", fail(http.StatusServiceUnavailable, "service-unavailable", "", "pins are unavailable, retry later")
	}
	p.set, p.until = set, now.Add(p.ttl/2)
	return set, nil
}

// ctEqual compares secrets in constant time.
func ctEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
