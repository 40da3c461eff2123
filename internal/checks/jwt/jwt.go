// Package jwt authenticates requests by JSON Web Token (RFC 7519): it picks
// the issuer by the token's iss, enforces that issuer's algorithm allowlist
// from the token header before any signature work, verifies the signature
// with the issuer's keys (static PEM/JWK, or a JWKS URL refreshed in the
// background), validates exp, nbf, iat, aud and required claims, and sets
// the request identity. Verified tokens are cached by SHA-256.
//
// Signatures are verified with lestrrat-go/jwx/v3 (jws.VerifyCompactFast,
// which also cross-checks the header alg, refuses crit and b64 headers and
// key/algorithm mismatches); keys are parsed with jwx's jwk package. The
// JWKS fetcher is our own, on top of jwk.Parse, rather than jwk.Cache: it
// needs a per-issuer floor on fetches triggered by unknown key ids,
// keep-last-good on garbage, fetch counting, and the gateway's http.Client.
package jwt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Problem slugs (Verdict.Reason) of the check's 401 answers.
const (
	ReasonUnauthorized = "unauthorized"
	ReasonMalformed    = "token-malformed"
	ReasonAlgorithm    = "token-algorithm"
	ReasonSignature    = "token-signature"
	ReasonUnknownKey   = "token-invalid" // no configured key has the token's kid
	ReasonExpired      = "token-expired"
	ReasonNotYetValid  = "token-not-yet-valid"
	ReasonIssuer       = "token-issuer"
	ReasonAudience     = "token-audience"
	ReasonClaims       = "token-claims"
)

var details = map[string]string{
	ReasonUnauthorized: "A bearer token is required.",
	ReasonMalformed:    "The token is not a well-formed JWT.",
	ReasonAlgorithm:    "The token's signing algorithm is not accepted.",
	ReasonSignature:    "The token's signature is not valid.",
	ReasonUnknownKey:   "The token was not signed by a known key.",
	ReasonExpired:      "The token has expired.",
	ReasonNotYetValid:  "The token is not valid yet.",
	ReasonIssuer:       "The token's issuer is not accepted.",
	ReasonAudience:     "The token is not intended for this API.",
	ReasonClaims:       "The token lacks a required claim or has an invalid one.",
}

// Check is the built jwt check. It implements pipeline.Check and io.Closer.
type Check struct {
	required   bool
	header     string // canonical header name, "" = none
	bearer     bool
	cookie     string
	skew       time.Duration
	forward    []forwardClaim
	issuers    map[string]*issuer
	anyAlg     map[string]bool // union of the allowlists
	cache      *cache
	verdicts   map[string]pipeline.Verdict
	now        func() time.Time
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	closeOnce  sync.Once
	maxHeader  int
	issuerList []*issuer
}

type forwardClaim struct {
	claim  string
	header string // canonical
}

var _ pipeline.Check = (*Check)(nil)

// New validates cfg and builds the check. client fetches JWKS (nil: a
// client with a 10s timeout); log may be nil. Each JWKS is fetched once
// before New returns (a failure is logged, not fatal: tokens with unknown
// keys trigger rate-limited refetches) and then refreshed in the
// background until Close.
func New(cfg Config, client *http.Client, log *slog.Logger) (*Check, error) {
	var errs field.Errors
	cfg.Validate("jwt", &errs)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{Timeout: fetchTimeout}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Check{
		required: cfg.Required == nil || *cfg.Required,
		cookie:   cfg.Token.Cookie,
		issuers:  map[string]*issuer{},
		anyAlg:   map[string]bool{},
		now:      time.Now,
	}
	c.skew, _ = durationOr(cfg.Skew, defaultSkew)
	switch {
	case cfg.Token.Header != "":
		c.header = http.CanonicalHeaderKey(cfg.Token.Header)
	case cfg.Token.Cookie == "":
		c.header = defaultTokenHeader
	}
	c.bearer = c.header == defaultTokenHeader
	c.maxHeader = maxTokenLen + len("Bearer ") + 64
	for _, claim := range slices.Sorted(mapKeys(cfg.ForwardClaims)) {
		c.forward = append(c.forward, forwardClaim{claim: claim, header: http.CanonicalHeaderKey(cfg.ForwardClaims[claim])})
	}
	switch {
	case cfg.CacheSize == 0:
		c.cache = newCache(defaultCacheSize)
	case cfg.CacheSize > 0:
		c.cache = newCache(cfg.CacheSize)
	}
	c.verdicts = make(map[string]pipeline.Verdict, len(details))
	for reason, d := range details {
		h := http.Header{"Www-Authenticate": {`Bearer realm="apiguard", error="invalid_token"`}}
		if reason == ReasonUnauthorized {
			h = http.Header{"Www-Authenticate": {`Bearer realm="apiguard"`}}
		}
		c.verdicts[reason] = pipeline.Verdict{Action: pipeline.Deny, Status: http.StatusUnauthorized, Reason: reason, Detail: d, Headers: h}
	}

	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	for _, ic := range cfg.Issuers {
		is := &issuer{
			name:      ic.Issuer,
			audiences: slices.Clone(ic.Audiences),
			algs:      map[string]jwa.SignatureAlgorithm{},
			required:  slices.Clone(ic.RequiredClaims),
			jwksURL:   ic.JWKSURL,
			client:    client,
			log:       log,
		}
		is.refresh, _ = durationOr(ic.RefreshInterval, defaultRefresh)
		is.minRefresh, _ = durationOr(ic.MinRefreshInterval, defaultMinRefresh)
		for _, a := range ic.Algorithms {
			ja, ok := jwa.LookupSignatureAlgorithm(a)
			if !ok {
				cancel()
				return nil, fmt.Errorf("jwt: issuer %s: algorithm %s unknown to jwx", ic.Issuer, a)
			}
			is.algs[a] = ja
			c.anyAlg[a] = true
		}
		for _, f := range ic.KeyFiles {
			ks, err := readKeyFile(f)
			if err != nil {
				cancel()
				return nil, fmt.Errorf("jwt: issuer %s: key file %s: %w", ic.Issuer, f, err)
			}
			is.static = append(is.static, ks...)
		}
		for i, k := range ic.Keys {
			ks, err := parseKeys([]byte(k))
			if err != nil {
				cancel()
				return nil, fmt.Errorf("jwt: issuer %s: keys[%d]: %w", ic.Issuer, i, err)
			}
			is.static = append(is.static, ks...)
		}
		is.keys.Store(newKeySet(is.static))
		c.issuers[is.name] = is
		c.issuerList = append(c.issuerList, is)
	}
	// Initial fetches run concurrently so one slow issuer does not stall
	// the others.
	var init sync.WaitGroup
	for _, is := range c.issuerList {
		if is.jwksURL == "" {
			continue
		}
		init.Add(1)
		go func() {
			defer init.Done()
			is.fetchMu.Lock()
			err := is.fetch(ctx)
			is.fetchMu.Unlock()
			if err != nil {
				log.Warn("jwt: initial JWKS fetch failed; will retry", "issuer", is.name, "url", is.jwksURL, "err", err)
			}
		}()
	}
	init.Wait()
	for _, is := range c.issuerList {
		if is.jwksURL != "" {
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				is.background(ctx)
			}()
		}
	}
	return c, nil
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Close stops the background JWKS refreshes.
func (c *Check) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		c.wg.Wait()
	})
	return nil
}

// Name implements pipeline.Check.
func (*Check) Name() string { return "jwt" }

// Check implements pipeline.Check. On success it sets req.Identity's
// Subject, Claims and Scopes; Claims and Scopes are shared with the
// token cache and must not be modified.
func (c *Check) Check(ctx context.Context, req *pipeline.Request) (pipeline.Verdict, error) {
	h := req.HTTP.Header
	for i := range c.forward {
		delete(h, c.forward[i].header)
	}
	tok, st := c.extract(req.HTTP)
	switch st {
	case tokenNone:
		if c.required {
			return c.deny(ReasonUnauthorized), nil
		}
		return pipeline.Allowed, nil
	case tokenBad:
		return c.deny(ReasonMalformed), nil
	}
	now := c.now()
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(tok), len(tok)))
	// A cache hit is a token verified before, so its characters were
	// checked then; the character check runs on misses only.
	if c.cache != nil {
		if e := c.cache.get(&sum); e != nil && now.UnixNano() < e.validUntil && e.gen == e.iss.gen.Load() {
			c.apply(req, e)
			return pipeline.Allowed, nil
		}
	}
	if !validChars(tok) {
		return c.deny(ReasonMalformed), nil
	}
	e, reason, err := c.verify(ctx, tok, now)
	if reason != "" {
		return c.deny(reason), err
	}
	if c.cache != nil {
		c.cache.put(&sum, e)
	}
	c.apply(req, e)
	return pipeline.Allowed, nil
}

// deny returns the 401 verdict for reason with its own header map, so
// callers may change it.
func (c *Check) deny(reason string) pipeline.Verdict {
	v := c.verdicts[reason]
	v.Headers = v.Headers.Clone()
	return v
}

func (c *Check) apply(req *pipeline.Request, e *entry) {
	req.Identity.Subject = e.subject
	req.Identity.Claims = e.claims
	req.Identity.Scopes = e.scopes
	for i, v := range e.forward {
		if v != "" {
			req.HTTP.Header[c.forward[i].header] = []string{v}
		}
	}
}

type tokenState uint8

const (
	tokenOK tokenState = iota
	tokenNone
	tokenBad
)

// extract finds the token. A request with no token (or with another
// Authorization scheme) has none; an oversized, repeated or non-base64url
// token, or control characters in the header, make it bad.
func (c *Check) extract(r *http.Request) (string, tokenState) {
	if c.header != "" {
		if vals := r.Header[c.header]; len(vals) > 0 {
			if len(vals) > 1 {
				return "", tokenBad
			}
			v := vals[0]
			if len(v) > c.maxHeader {
				return "", tokenBad
			}
			if !c.bearer {
				return checkLen(strings.Trim(v, " "))
			}
			v = strings.TrimLeft(v, " ")
			if len(v) >= 6 && strings.EqualFold(v[:6], "Bearer") && (len(v) == 6 || v[6] == ' ') {
				// The token charset, checked later, excludes every
				// control character.
				return checkLen(strings.Trim(v[6:], " "))
			}
			if hasCTL(v) {
				return "", tokenBad
			}
			// Another scheme (Basic, DPoP...): no bearer token here.
		}
	}
	if c.cookie != "" {
		ck, err := r.Cookie(c.cookie)
		if err != nil {
			return "", tokenNone
		}
		return checkLen(ck.Value)
	}
	return "", tokenNone
}

func checkLen(t string) (string, tokenState) {
	if t == "" || len(t) > maxTokenLen {
		return "", tokenBad
	}
	return t, tokenOK
}

func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// badChar is 1 for every byte outside the base64url alphabet and the dot.
var badChar = func() (t [256]byte) {
	for i := range t {
		t[i] = 1
	}
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_." {
		t[c] = 0
	}
	return t
}()

// validChars reports whether t is only base64url characters and dots.
func validChars(t string) bool {
	var bad byte
	for i := 0; i < len(t); i++ {
		bad |= badChar[t[i]]
	}
	return bad == 0
}

type header struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
	B64  json.RawMessage `json:"b64"`
}

// verify fully checks a token. It returns the cache entry, or the reason
// it refuses the token (and an error when it could not fetch keys).
func (c *Check) verify(ctx context.Context, tok string, now time.Time) (*entry, string, error) {
	hSeg, rest, ok1 := strings.Cut(tok, ".")
	pSeg, sSeg, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || hSeg == "" || pSeg == "" || strings.IndexByte(sSeg, '.') >= 0 {
		return nil, ReasonMalformed, nil
	}
	hb, err := base64.RawURLEncoding.DecodeString(hSeg)
	if err != nil {
		return nil, ReasonMalformed, nil
	}
	var hdr header
	if err := json.Unmarshal(hb, &hdr); err != nil || hdr.Alg == "" {
		return nil, ReasonMalformed, nil
	}
	if hdr.Crit != nil || hdr.B64 != nil {
		return nil, ReasonMalformed, nil
	}
	if !c.anyAlg[hdr.Alg] { // includes "none", which config never allows
		return nil, ReasonAlgorithm, nil
	}
	pb, err := base64.RawURLEncoding.DecodeString(pSeg)
	if err != nil {
		return nil, ReasonMalformed, nil
	}
	var claims map[string]any
	if err := json.Unmarshal(pb, &claims); err != nil || claims == nil {
		return nil, ReasonMalformed, nil
	}
	issName, _ := claims["iss"].(string)
	is := c.issuers[issName]
	if is == nil {
		return nil, ReasonIssuer, nil
	}
	alg, ok := is.algs[hdr.Alg]
	if !ok {
		return nil, ReasonAlgorithm, nil
	}
	if sSeg == "" {
		return nil, ReasonSignature, nil
	}

	gen := is.gen.Load() // before the keys: a withdrawal during verification invalidates the entry
	var buf [4]*key
	cands := is.keys.Load().candidates(hdr.Kid, hdr.Alg, buf[:0])
	var fetchErr error
	if len(cands) == 0 {
		var fetched bool
		fetched, fetchErr = is.refreshForMiss(ctx, now)
		if fetched && fetchErr == nil {
			cands = is.keys.Load().candidates(hdr.Kid, hdr.Alg, buf[:0])
		}
		if len(cands) == 0 {
			if fetchErr != nil {
				fetchErr = fmt.Errorf("jwt: issuer %s: fetching keys: %w", is.name, fetchErr)
			}
			return nil, ReasonUnknownKey, fetchErr
		}
	}
	var payload []byte
	verified := false
	tb := []byte(tok)
	for _, k := range cands {
		p, err := jws.VerifyCompactFast(k.raw, tb, alg)
		if err == nil {
			payload, verified = p, true
			break
		}
	}
	// The claims we checked must be exactly the payload jwx verified.
	if !verified || !bytes.Equal(payload, pb) {
		return nil, ReasonSignature, nil
	}

	e := &entry{claims: claims, iss: is, gen: gen}
	if reason := c.validateClaims(is, claims, now, e); reason != "" {
		return nil, reason, nil
	}
	return e, "", nil
}

func numericDate(v any) (float64, bool) {
	f, ok := v.(float64)
	return f, ok
}

// validateClaims checks exp (required), nbf, iat, aud and the issuer's
// required claims, and fills the entry.
func (c *Check) validateClaims(is *issuer, claims map[string]any, now time.Time, e *entry) string {
	skew := c.skew.Seconds()
	nowS := float64(now.UnixNano()) / 1e9
	expV, has := claims["exp"]
	if !has {
		return ReasonClaims
	}
	exp, ok := numericDate(expV)
	if !ok {
		return ReasonClaims
	}
	if nowS > exp+skew {
		return ReasonExpired
	}
	if v, has := claims["nbf"]; has {
		nbf, ok := numericDate(v)
		if !ok {
			return ReasonClaims
		}
		if nowS+skew < nbf {
			return ReasonNotYetValid
		}
	}
	if v, has := claims["iat"]; has {
		iat, ok := numericDate(v)
		if !ok {
			return ReasonClaims
		}
		if iat > nowS+skew {
			return ReasonNotYetValid
		}
	}
	if !audienceOK(claims["aud"], is.audiences) {
		return ReasonAudience
	}
	for _, rc := range is.required {
		if v, has := claims[rc]; !has || v == nil {
			return ReasonClaims
		}
	}
	if v, has := claims["sub"]; has {
		s, ok := v.(string)
		if !ok {
			return ReasonClaims
		}
		e.subject = s
	}
	switch v := claims["scope"].(type) {
	case string:
		e.scopes = strings.Fields(v)
	case nil:
		switch s := claims["scp"].(type) {
		case string:
			e.scopes = strings.Fields(s)
		case []any:
			for _, x := range s {
				if str, ok := x.(string); ok && str != "" {
					e.scopes = append(e.scopes, str)
				}
			}
		}
	}
	if len(c.forward) > 0 {
		e.forward = make([]string, len(c.forward))
		for i, f := range c.forward {
			e.forward[i] = headerValue(claims[f.claim])
		}
	}
	until := now.Add(cacheMaxLifetime).UnixNano()
	expNS := (exp + skew) * 1e9
	if expNS < float64(until) {
		until = int64(expNS)
	}
	e.validUntil = until
	return ""
}

func audienceOK(aud any, want []string) bool {
	switch a := aud.(type) {
	case string:
		return slices.Contains(want, a)
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok && slices.Contains(want, s) {
				return true
			}
		}
	}
	return false
}

// headerValue renders a claim for an upstream header; "" when absent or
// not representable (control characters, objects too large).
func headerValue(v any) string {
	var s string
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		s = x
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		s = strconv.FormatBool(x)
	case []any:
		parts := make([]string, 0, len(x))
		for _, p := range x {
			ps := headerValue(p)
			if ps == "" || strings.Contains(ps, ",") {
				return ""
			}
			parts = append(parts, ps)
		}
		s = strings.Join(parts, ",")
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return ""
		}
		s = string(b)
	}
	if len(s) > 4096 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 && b != '\t' || b == 0x7f {
			return ""
		}
	}
	return s
}

func readKeyFile(path string) ([]*key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseKeys(b)
}
