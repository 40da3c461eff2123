package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Typ header values of the service's JWS.
const (
	TokenTyp = "apiguard-attest+jwt"
	PinsTyp  = "apiguard-pins+jwt"
)

// jwksRefetchInterval is how often an unknown kid may trigger a new fetch
// of the JWK Set (key rotation).
const jwksRefetchInterval = 30 * time.Second

// PinSet is a verified pin set: the hosts it covers and the SHA-256 digests
// of the SubjectPublicKeyInfos a connection to them must present.
type PinSet struct {
	Issuer   string
	Hosts    []string // exact names, or "*.example.com" (one label)
	Pins     [][]byte // SHA-256 of a DER SubjectPublicKeyInfo, 32 bytes each
	IssuedAt time.Time
	Expires  time.Time
}

// Covers reports whether host (a name or IP, with or without port) is one
// of the set's hosts. A pattern "*.example.com" matches exactly one label:
// "api.example.com" but neither "example.com" nor "a.b.example.com".
func (p *PinSet) Covers(host string) bool {
	host = normHost(host)
	if host == "" {
		return false
	}
	for _, pat := range p.Hosts {
		pat = normHost(pat)
		if rest, ok := strings.CutPrefix(pat, "*."); ok {
			label, parent, found := strings.Cut(host, ".")
			if found && label != "" && parent == rest {
				return true
			}
		} else if pat == host {
			return true
		}
	}
	return false
}

// Matches reports whether the set, unexpired, covers host and some
// certificate of chain has a pinned SubjectPublicKeyInfo.
func (p *PinSet) Matches(host string, chain []*x509.Certificate) bool {
	return time.Now().Before(p.Expires) && p.Covers(host) && p.pinned(chain)
}

func (p *PinSet) pinned(chain []*x509.Certificate) bool {
	for _, cert := range chain {
		if cert == nil {
			continue
		}
		sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
		for _, pin := range p.Pins {
			if bytes.Equal(pin, sum[:]) {
				return true
			}
		}
	}
	return false
}

func normHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
}

// PinnedTLSConfig returns a clone of base (nil: an empty config) whose
// VerifyConnection refuses a connection to a host the current pin set
// covers unless some certificate of the presented chain has a pinned SPKI.
// Normal chain verification still happens (and base's own VerifyConnection
// runs first). Hosts no set covers, and every host before the first set was
// accepted (see Pins), are not pinned. For an IP address, which TLS does not
// send as a server name, the IP addresses of the leaf certificate stand for
// the host (chain verification has checked them against the dialed one). An expired set keeps being enforced
// until a newer one replaces it.
func (c *Client) PinnedTLSConfig(base *tls.Config) *tls.Config {
	var cfg *tls.Config
	if base != nil {
		cfg = base.Clone()
	} else {
		cfg = &tls.Config{}
	}
	prev := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if prev != nil {
			if err := prev(cs); err != nil {
				return err
			}
		}
		ps := c.tls.Load()
		if ps == nil || ps.pinned(cs.PeerCertificates) {
			return nil
		}
		for _, h := range connHosts(cs) {
			if ps.Covers(h) {
				return fmt.Errorf("apiguard: no certificate presented by %s matches the pin set", h)
			}
		}
		return nil
	}
	return cfg
}

// connHosts names the host a connection went to: its server name, or, for
// an IP address (which TLS does not send as a server name), the IP
// addresses the verified leaf certificate is valid for.
func connHosts(cs tls.ConnectionState) []string {
	if cs.ServerName != "" {
		return []string{cs.ServerName}
	}
	var hosts []string
	if len(cs.PeerCertificates) > 0 {
		for _, ip := range cs.PeerCertificates[0].IPAddresses {
			hosts = append(hosts, ip.String())
		}
	}
	return hosts
}

// pinStore holds the current pin set and one not yet verified (from a
// verify answer, when no keys were at hand).
type pinStore struct {
	fetch   sync.Mutex // serializes Pins
	mu      sync.Mutex // guards pending
	pending string
}

// Pins returns the current pin set: the newest valid set seen, from a
// verify answer or from GET /.apiguard/attest/pins, fetching one when
// there is none or it expired. The set is a JWS checked against the
// service's keys (Config.TrustedKeys, else the fetched JWK Set) with typ
// apiguard-pins+jwt, an issuer and an unexpired exp. Once a set is
// accepted, PinnedTLSConfig enforces it.
func (c *Client) Pins(ctx context.Context) (*PinSet, error) {
	c.pins.fetch.Lock()
	defer c.pins.fetch.Unlock()
	c.pins.mu.Lock()
	raw := c.pins.pending
	c.pins.pending = ""
	c.pins.mu.Unlock()
	if raw != "" {
		if ps, err := c.verifyPins(ctx, raw); err == nil {
			c.adoptPins(ps)
		}
	}
	if ps := c.tls.Load(); ps != nil && c.now().Before(ps.Expires) {
		return ps, nil
	}
	err := c.retry(ctx, func() error {
		b, err := c.do(ctx, http.MethodGet, PinsPath, nil, nil)
		if err != nil {
			return err
		}
		var w struct {
			Pins string `json:"pins"`
		}
		if err := json.Unmarshal(b, &w); err != nil || w.Pins == "" {
			return errors.New("apiguard: malformed pins response")
		}
		raw = w.Pins
		return nil
	})
	if err != nil {
		return nil, err
	}
	ps, err := c.verifyPins(ctx, raw)
	if err != nil {
		return nil, err
	}
	c.adoptPins(ps)
	return c.tls.Load(), nil
}

// adoptPins makes ps current unless the current set is newer.
func (c *Client) adoptPins(ps *PinSet) {
	for {
		cur := c.tls.Load()
		if cur != nil && cur.IssuedAt.After(ps.IssuedAt) {
			return
		}
		if c.tls.CompareAndSwap(cur, ps) {
			return
		}
	}
}

// offerPins takes the pin set of a verify answer: verified at once when
// the keys are at hand, else kept for the next Pins call.
func (c *Client) offerPins(raw string) {
	if set := c.keys.cached(); set != nil {
		if ps, err := c.checkPins(set, raw); err == nil {
			c.adoptPins(ps)
			return
		}
	}
	c.pins.mu.Lock()
	c.pins.pending = raw
	c.pins.mu.Unlock()
}

// verifyPins verifies raw, fetching the JWK Set if needed.
func (c *Client) verifyPins(ctx context.Context, raw string) (*PinSet, error) {
	set, err := c.keys.get(ctx, c, false)
	if err != nil {
		return nil, err
	}
	ps, err := c.checkPins(set, raw)
	if errors.Is(err, errUnknownKey) && c.keys.trusted == nil {
		if set, err = c.keys.get(ctx, c, true); err != nil {
			return nil, err
		}
		ps, err = c.checkPins(set, raw)
	}
	return ps, err
}

func (c *Client) checkPins(set jwk.Set, raw string) (*PinSet, error) {
	payload, err := verifyJWS(set, []byte(raw), PinsTyp)
	if err != nil {
		return nil, err
	}
	var w struct {
		Iss   string      `json:"iss"`
		Iat   json.Number `json:"iat"`
		Exp   json.Number `json:"exp"`
		Hosts []string    `json:"hosts"`
		Pins  []string    `json:"pins"`
	}
	if err := json.Unmarshal(payload, &w); err != nil {
		return nil, fmt.Errorf("apiguard: pin set: malformed claims: %w", err)
	}
	ps := &PinSet{Issuer: w.Iss, Hosts: w.Hosts}
	switch {
	case w.Iss == "":
		return nil, errors.New("apiguard: pin set: no iss")
	case c.issuer != "" && w.Iss != c.issuer:
		return nil, fmt.Errorf("apiguard: pin set: issuer %q, want %q", w.Iss, c.issuer)
	}
	if ps.IssuedAt, err = numericDate(w.Iat); err != nil {
		return nil, fmt.Errorf("apiguard: pin set: iat: %w", err)
	}
	if ps.Expires, err = numericDate(w.Exp); err != nil || ps.Expires.IsZero() {
		return nil, errors.New("apiguard: pin set: exp missing or malformed")
	}
	if !c.now().Before(ps.Expires) {
		return nil, fmt.Errorf("apiguard: pin set expired at %s", ps.Expires.Format(time.RFC3339))
	}
	if len(w.Pins) == 0 {
		return nil, errors.New("apiguard: pin set: no pins")
	}
	for _, p := range w.Pins {
		b, err := base64.StdEncoding.DecodeString(p)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("apiguard: pin set: pin %q is not a base64 SHA-256", p)
		}
		ps.Pins = append(ps.Pins, b)
	}
	return ps, nil
}

var errUnknownKey = errors.New("apiguard: JWS signed by an unknown key")

// verifyJWS verifies a compact JWS of type typ signed with EdDSA or ES256
// by the key of set named by its kid, and returns the payload.
func verifyJWS(set jwk.Set, raw []byte, typ string) ([]byte, error) {
	msg, err := jws.Parse(raw, jws.WithCompact())
	if err != nil {
		return nil, fmt.Errorf("apiguard: malformed JWS: %w", err)
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 {
		return nil, errors.New("apiguard: JWS must have exactly one signature")
	}
	h := sigs[0].ProtectedHeaders()
	alg, _ := h.Algorithm()
	if alg != jwa.EdDSA() && alg != jwa.ES256() {
		return nil, fmt.Errorf("apiguard: JWS algorithm %q not allowed", alg.String())
	}
	if t, _ := h.Type(); t != typ {
		return nil, fmt.Errorf("apiguard: JWS typ %q, want %q", t, typ)
	}
	kid, _ := h.KeyID()
	if kid == "" {
		return nil, errors.New("apiguard: JWS has no kid")
	}
	key, ok := set.LookupKeyID(kid)
	if !ok {
		return nil, fmt.Errorf("%w %q", errUnknownKey, kid)
	}
	if ka, ok := key.Algorithm(); ok && ka.String() != alg.String() {
		return nil, fmt.Errorf("apiguard: JWS alg %s does not match key %q (%s)", alg, kid, ka)
	}
	payload, err := jws.Verify(raw, jws.WithKey(alg, key), jws.WithCompact())
	if err != nil {
		return nil, fmt.Errorf("apiguard: JWS signature: %w", err)
	}
	return payload, nil
}

// keyStore caches the service's JWK Set.
type keyStore struct {
	trusted jwk.Set
	mu      sync.Mutex
	set     jwk.Set
	fetched time.Time
}

func (k *keyStore) cached() jwk.Set {
	if k.trusted != nil {
		return k.trusted
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.set
}

// get returns the keys, fetching them when none are cached or, with
// refresh, when the last fetch is old enough.
func (k *keyStore) get(ctx context.Context, c *Client, refresh bool) (jwk.Set, error) {
	if k.trusted != nil {
		return k.trusted, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.set != nil && (!refresh || c.now().Sub(k.fetched) < jwksRefetchInterval) {
		return k.set, nil
	}
	var set jwk.Set
	err := c.retry(ctx, func() error {
		b, err := c.do(ctx, http.MethodGet, JWKSPath, nil, nil)
		if err != nil {
			return err
		}
		if set, err = jwk.Parse(b); err != nil {
			return fmt.Errorf("apiguard: malformed JWK Set: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	k.set, k.fetched = set, c.now()
	return set, nil
}
