package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// TokenHeader is the request header that carries the attestation token.
const TokenHeader = "Apiguard-Token"

// Paths of the attestation service, relative to Config.BaseURL.
const (
	ChallengePath = "/.apiguard/attest/challenge"
	VerifyPath    = "/.apiguard/attest/" // + provider name
	PinsPath      = "/.apiguard/attest/pins"
	SecretsPath   = "/.apiguard/attest/secrets"
	JWKSPath      = "/.well-known/apiguard/jwks.json"
)

const (
	defaultRefreshBefore = 30 * time.Second
	defaultMaxBackoff    = 30 * time.Second
	initialBackoff       = 200 * time.Millisecond
	maxCachedTokens      = 16
	maxResponseBytes     = 1 << 20
)

// Config configures a Client. BaseURL, AppID and Provider are required.
type Config struct {
	// BaseURL is the gateway's public listener, e.g. "https://api.example.com".
	BaseURL string
	// AppID is the app's registered id.
	AppID string
	// Provider produces the evidence: &Integrity{}, ProofOfWork{} or a
	// platform provider.
	Provider Provider
	// HTTPClient makes the client's own requests (attestation, pins,
	// JWKS, secrets); default: a client with a 30 s timeout. Do not give it
	// the Transport of this Client (that would need a token to get a token);
	// do give it PinnedTLSConfig to pin the attestation service itself.
	HTTPClient *http.Client
	// InstallationID identifies this installation (1–64 of [A-Za-z0-9_-]).
	// Persist one across runs to keep the same device id; default: random,
	// generated once per Client.
	InstallationID string
	// RefreshBefore is how long before its expiry a cached token is
	// replaced (default 30 s; at most half the token's lifetime is used).
	RefreshBefore time.Duration
	// MaxBackoff caps the wait between retries (default 30 s). Retries
	// happen on network errors, 5xx and 429 for as long as the context
	// allows, so give calls a context with a deadline.
	MaxBackoff time.Duration
	// TrustedKeys are the service's public keys, provisioned in the app.
	// When nil the JWK Set is fetched from /.well-known/apiguard/jwks.json
	// and cached: over the same connection, that is trust on first use,
	// unless the connection itself is authenticated (TLS with a trusted CA).
	TrustedKeys jwk.Set
	// Issuer, when set, is the iss a pin set must carry; when empty any
	// non-empty iss is accepted.
	Issuer string
}

// Client attests the app to an apiguard gateway and caches the tokens. It is
// safe for concurrent use.
type Client struct {
	base          string
	appID         string
	provider      Provider
	hc            *http.Client
	installID     string
	refreshBefore time.Duration
	maxBackoff    time.Duration
	issuer        string

	// hooks for tests
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	mu       sync.Mutex
	cache    map[string]cachedToken // by bind value
	inflight map[string]*call       // by bind value

	keys keyStore
	pins pinStore
	tls  atomic.Pointer[PinSet] // the pin set PinnedTLSConfig enforces
}

type cachedToken struct {
	token     string
	refreshAt time.Time // serve until then
	expires   time.Time
}

type call struct {
	done  chan struct{}
	token string
	err   error
}

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("apiguard: BaseURL %q is not an http(s) URL", cfg.BaseURL)
	}
	if cfg.AppID == "" {
		return nil, errors.New("apiguard: AppID is required")
	}
	if cfg.Provider == nil {
		return nil, errors.New("apiguard: Provider is required")
	}
	c := &Client{
		base:          strings.TrimRight(cfg.BaseURL, "/"),
		appID:         cfg.AppID,
		provider:      cfg.Provider,
		hc:            cfg.HTTPClient,
		installID:     cfg.InstallationID,
		refreshBefore: cfg.RefreshBefore,
		maxBackoff:    cfg.MaxBackoff,
		issuer:        cfg.Issuer,
		now:           time.Now,
		sleep:         sleepCtx,
		cache:         make(map[string]cachedToken),
		inflight:      make(map[string]*call),
	}
	c.keys.trusted = cfg.TrustedKeys
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 30 * time.Second}
	}
	if c.refreshBefore <= 0 {
		c.refreshBefore = defaultRefreshBefore
	}
	if c.maxBackoff <= 0 {
		c.maxBackoff = defaultMaxBackoff
	}
	if c.installID == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b) // never fails
		c.installID = base64.RawURLEncoding.EncodeToString(b)
	} else if !validInstallationID(c.installID) {
		return nil, errors.New("apiguard: InstallationID must be 1-64 of [A-Za-z0-9_-]")
	}
	return c, nil
}

func validInstallationID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// InstallationID returns the installation id the client sends.
func (c *Client) InstallationID() string { return c.installID }

// Token returns a token bound to bind, the value of the header the route
// binds (e.g. the whole Authorization value; "" for an unbound token). It
// serves a cached token until RefreshBefore its expiry; concurrent callers
// for the same bind share one attestation. Attestation failures are
// *ProblemError (errors.As).
func (c *Client) Token(ctx context.Context, bind string) (string, error) {
	for {
		c.mu.Lock()
		if t, ok := c.cache[bind]; ok && c.now().Before(t.refreshAt) {
			c.mu.Unlock()
			return t.token, nil
		}
		if cl, ok := c.inflight[bind]; ok {
			c.mu.Unlock()
			select {
			case <-cl.done:
			case <-ctx.Done():
				return "", fmt.Errorf("apiguard: %w", ctx.Err())
			}
			if cl.err != nil && isContextErr(cl.err) && ctx.Err() == nil {
				continue // the leader gave up on its own context; try ourselves
			}
			return cl.token, cl.err
		}
		cl := &call{done: make(chan struct{})}
		c.inflight[bind] = cl
		c.mu.Unlock()

		tok, err := c.attest(ctx, bind)
		c.mu.Lock()
		delete(c.inflight, bind)
		if err == nil {
			c.store(bind, tok)
		}
		c.mu.Unlock()
		cl.token, cl.err = tok.token, err
		close(cl.done)
		return tok.token, err
	}
}

// FreshToken attests anew and returns a token bound to bind that has not
// been used; it neither reads nor fills the cache. Use it for single-use
// routes.
func (c *Client) FreshToken(ctx context.Context, bind string) (string, error) {
	t, err := c.attest(ctx, bind)
	return t.token, err
}

// invalidate drops the cached token for bind if it is token.
func (c *Client) invalidate(bind, token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.cache[bind]; ok && t.token == token {
		delete(c.cache, bind)
	}
}

// store caches t under bind, evicting the entry that expires first when
// the cache is full. c.mu is held.
func (c *Client) store(bind string, t cachedToken) {
	if _, ok := c.cache[bind]; !ok && len(c.cache) >= maxCachedTokens {
		victim, first := "", true
		for k, v := range c.cache {
			if first || v.expires.Before(c.cache[victim].expires) {
				victim, first = k, false
			}
		}
		delete(c.cache, victim)
	}
	c.cache[bind] = t
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// BindDigest returns the "bind" member for a header value:
// base64url(SHA-256(value)). The token's "pay" claim carries it.
func BindDigest(value string) string {
	sum := sha256.Sum256([]byte(value))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

type verifyResponse struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
	ExpiresIn int64  `json:"expires_in"`
	Pins      string `json:"pins"`
}

// attest runs challenge and verify, retrying the pair on retryable errors.
func (c *Client) attest(ctx context.Context, bind string) (cachedToken, error) {
	var out cachedToken
	err := c.retry(ctx, func() error {
		t, err := c.attestOnce(ctx, bind)
		out = t
		return err
	})
	return out, err
}

func (c *Client) attestOnce(ctx context.Context, bind string) (cachedToken, error) {
	req := map[string]any{}
	extra, err := c.provider.ChallengeRequest(ctx)
	if err != nil {
		return cachedToken{}, err
	}
	for k, v := range extra {
		req[k] = v
	}
	req["app_id"] = c.appID
	req["provider"] = c.provider.Name()
	start := c.now()
	body, err := c.do(ctx, http.MethodPost, ChallengePath, nil, req)
	if err != nil {
		return cachedToken{}, err
	}
	ch, err := decodeChallenge(body, start)
	if err != nil {
		return cachedToken{}, err
	}
	if (ch.AppID != "" && ch.AppID != c.appID) || (ch.Provider != "" && ch.Provider != c.provider.Name()) {
		return cachedToken{}, fmt.Errorf("apiguard: challenge made for app %q provider %q", ch.AppID, ch.Provider)
	}
	ev, err := c.provider.Evidence(ctx, ch)
	if err != nil {
		return cachedToken{}, err
	}
	vreq := map[string]any{}
	for k, v := range ev {
		vreq[k] = v
	}
	vreq["challenge"] = ch.Challenge
	vreq["installation_id"] = c.installID
	if bind != "" {
		vreq["bind"] = BindDigest(bind)
	}
	start = c.now()
	body, err = c.do(ctx, http.MethodPost, VerifyPath+url.PathEscape(c.provider.Name()), nil, vreq)
	if err != nil {
		return cachedToken{}, err
	}
	var vr verifyResponse
	if err := json.Unmarshal(body, &vr); err != nil || vr.Token == "" {
		return cachedToken{}, errors.New("apiguard: malformed verify response")
	}
	if vr.Pins != "" {
		c.offerPins(vr.Pins)
	}
	return c.timing(vr, start), nil
}

// timing decides when a token expires on the local clock: start plus its
// lifetime (expires_in, else exp-iat of the token), so that a skewed local
// clock does not matter; expires_at is the last resort.
func (c *Client) timing(vr verifyResponse, start time.Time) cachedToken {
	var life time.Duration
	switch {
	case vr.ExpiresIn > 0 && vr.ExpiresIn < 1<<31:
		life = time.Duration(vr.ExpiresIn) * time.Second
	default:
		if cl, err := ParseTokenUnverified(vr.Token); err == nil && cl.ExpiresAt.After(cl.IssuedAt) && !cl.IssuedAt.IsZero() {
			life = cl.ExpiresAt.Sub(cl.IssuedAt)
		} else if t, err := time.Parse(time.RFC3339, vr.ExpiresAt); err == nil {
			life = t.Sub(start)
		}
	}
	before := min(c.refreshBefore, life/2)
	return cachedToken{token: vr.Token, expires: start.Add(life), refreshAt: start.Add(life - before)}
}

// retryable marks an error worth another attempt, after at least after.
type retryable struct {
	err   error
	after time.Duration
}

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// retry runs op until it succeeds, fails with an error that is not
// retryable, or ctx would end before the next attempt. Waits grow
// exponentially with jitter up to maxBackoff; a Retry-After is honoured.
func (c *Client) retry(ctx context.Context, op func() error) error {
	for attempt := 0; ; attempt++ {
		err := op()
		var r *retryable
		if err == nil || !errors.As(err, &r) {
			return err
		}
		wait := r.after
		if wait <= 0 {
			wait = c.backoff(attempt)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return fmt.Errorf("apiguard: %w before the next attempt: %w", context.DeadlineExceeded, r.err)
		}
		if err := c.sleep(ctx, wait); err != nil {
			return fmt.Errorf("apiguard: %w: %w", err, r.err)
		}
	}
}

func (c *Client) backoff(attempt int) time.Duration {
	d := c.maxBackoff
	if attempt < 30 && initialBackoff<<attempt < d {
		d = initialBackoff << attempt
	}
	return d/2 + mrand.N(d/2+1) // jitter in [d/2, d]
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// do makes one request to the service and returns the body of a 2xx
// answer. Network errors, 5xx and 429 come back as *retryable; other
// non-2xx answers as *ProblemError.
func (c *Client) do(ctx context.Context, method, path string, hdr http.Header, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("apiguard: encoding request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("apiguard: %w", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("apiguard: %w", ctx.Err())
		}
		return nil, &retryable{err: fmt.Errorf("apiguard: %s %s: %w", method, path, err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("apiguard: %w", ctx.Err())
		}
		return nil, &retryable{err: fmt.Errorf("apiguard: %s %s: reading response: %w", method, path, err)}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return b, nil
	}
	p := parseProblem(resp.StatusCode, resp.Header.Get("Content-Type"), b)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		return nil, &retryable{err: p, after: parseRetryAfter(resp.Header.Get("Retry-After"), c.now())}
	}
	return nil, p
}

// parseRetryAfter reads delay-seconds or an HTTP-date; 0 when absent or
// malformed.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 || n > 1<<31 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
