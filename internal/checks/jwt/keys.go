package jwt

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// key is one verification key, exported from its JWK to a Go crypto key
// once, so verification does no key conversion.
type key struct {
	kid string
	alg string // the JWK's alg, "" when unset
	fam family
	raw any // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or []byte
	// thumb identifies the key (RFC 7638 thumbprint) to detect removals.
	thumb string
}

// fits reports whether k may verify a token signed with alg: same family,
// same curve for EC, the JWK's own alg if it names one, and a symmetric
// key at least as long as the hash.
func (k *key) fits(alg string) bool {
	if algFamily[alg] != k.fam || (k.alg != "" && k.alg != alg) {
		return false
	}
	switch k.fam {
	case famEC:
		pub := k.raw.(*ecdsa.PublicKey)
		switch alg {
		case "ES256":
			return pub.Curve == elliptic.P256()
		case "ES384":
			return pub.Curve == elliptic.P384()
		case "ES512":
			return pub.Curve == elliptic.P521()
		}
		return false
	case famHMAC:
		n := len(k.raw.([]byte))
		switch alg {
		case "HS256":
			return n >= 32
		case "HS384":
			return n >= 48
		case "HS512":
			return n >= 64
		}
		return false
	}
	return true
}

// parseKeys parses PEM (one or more public keys or certificates) or JWK /
// JWKS JSON into verification keys. Unusable keys (encryption keys, small
// RSA keys, unsupported types) are errors here; fetched sets skip them.
func parseKeys(b []byte) ([]*key, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, errors.New("empty key")
	}
	var set jwk.Set
	var err error
	if bytes.HasPrefix(b, []byte("-----BEGIN")) {
		set, err = jwk.Parse(b, jwk.WithPEM(true))
	} else {
		set, err = jwk.Parse(b)
	}
	if err != nil {
		return nil, fmt.Errorf("not a PEM key or JWK/JWKS: %v", err)
	}
	keys, skipped := convertSet(set)
	if len(skipped) > 0 {
		return nil, skipped[0]
	}
	if len(keys) == 0 {
		return nil, errors.New("no keys found")
	}
	return keys, nil
}

// convertSet converts the usable keys of set and explains the others.
func convertSet(set jwk.Set) (keys []*key, skipped []error) {
	for i := 0; i < set.Len(); i++ {
		jk, _ := set.Key(i)
		k, err := convertKey(jk)
		if err != nil {
			kid, _ := jk.KeyID()
			skipped = append(skipped, fmt.Errorf("key %d (kid %q): %v", i, kid, err))
			continue
		}
		keys = append(keys, k)
	}
	return keys, skipped
}

func convertKey(jk jwk.Key) (*key, error) {
	if use, ok := jk.KeyUsage(); ok && use != "sig" {
		return nil, fmt.Errorf("use %q is not sig", use)
	}
	k := &key{}
	k.kid, _ = jk.KeyID()
	if a, ok := jk.Algorithm(); ok {
		k.alg = a.String()
		if _, known := algFamily[k.alg]; !known {
			return nil, fmt.Errorf("unsupported alg %q", k.alg)
		}
	}
	if jk.KeyType() != jwa.OctetSeq() {
		pub, err := jk.PublicKey() // never keep private material
		if err != nil {
			return nil, err
		}
		jk = pub
	}
	var raw any
	if err := jwk.Export(jk, &raw); err != nil {
		return nil, err
	}
	switch r := raw.(type) {
	case *rsa.PublicKey:
		if r.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits is too small (minimum %d)", r.N.BitLen(), minRSABits)
		}
		k.fam = famRSA
	case *ecdsa.PublicKey:
		switch r.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return nil, errors.New("unsupported EC curve")
		}
		k.fam = famEC
	case ed25519.PublicKey:
		k.fam = famEd25519
	case []byte:
		if len(r) == 0 {
			return nil, errors.New("empty symmetric key")
		}
		k.fam = famHMAC
	default:
		return nil, fmt.Errorf("unsupported key type %T", raw)
	}
	if k.alg != "" && algFamily[k.alg] != k.fam {
		return nil, fmt.Errorf("alg %q does not fit a %s key", k.alg, k.fam)
	}
	k.raw = raw
	if tp, err := jk.Thumbprint(crypto.SHA256); err == nil {
		k.thumb = string(tp)
	}
	return k, nil
}

// keySet is an immutable snapshot of an issuer's keys.
type keySet struct {
	byKid map[string][]*key
	noKid []*key
	all   []*key
}

func newKeySet(groups ...[]*key) *keySet {
	ks := &keySet{byKid: map[string][]*key{}}
	for _, g := range groups {
		for _, k := range g {
			ks.all = append(ks.all, k)
			if k.kid == "" {
				ks.noKid = append(ks.noKid, k)
			} else {
				ks.byKid[k.kid] = append(ks.byKid[k.kid], k)
			}
		}
	}
	return ks
}

// candidates returns the keys that may verify a token with kid and alg:
// keys with that kid, else keys without a kid; a token without a kid may
// use any key that fits.
func (ks *keySet) candidates(kid, alg string, dst []*key) []*key {
	add := func(list []*key) {
		for _, k := range list {
			if len(dst) < maxKeysPerIssuerScan && k.fits(alg) {
				dst = append(dst, k)
			}
		}
	}
	if kid != "" {
		add(ks.byKid[kid])
		if len(dst) == 0 {
			add(ks.noKid)
		}
		return dst
	}
	add(ks.all)
	return dst
}

// issuer is one configured issuer at run time.
type issuer struct {
	name       string
	audiences  []string
	algs       map[string]jwa.SignatureAlgorithm
	required   []string
	static     []*key
	jwksURL    string
	refresh    time.Duration
	minRefresh time.Duration

	keys atomic.Pointer[keySet]
	// gen changes when a key disappears, invalidating cached tokens.
	gen atomic.Uint64

	client *http.Client
	log    *slog.Logger

	// fetchMu serialises fetches; lastMiss (under it) is the time of the
	// last fetch triggered by an unknown key id.
	fetchMu  sync.Mutex
	lastMiss time.Time
	fetches  atomic.Int64 // fetch attempts, for tests
}

// fetch loads the JWKS and swaps it in. On any failure the cached keys
// stay in use.
func (is *issuer) fetch(ctx context.Context) error {
	is.fetches.Add(1)
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, is.jwksURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := is.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("JWKS answered %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("reading JWKS: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("JWKS larger than %d bytes", maxJWKSBytes)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return fmt.Errorf("parsing JWKS: %w", err)
	}
	keys, skipped := convertSet(set)
	for _, e := range skipped {
		is.log.Warn("jwt: skipping JWKS key", "issuer", is.name, "url", is.jwksURL, "err", e)
	}
	if len(keys) == 0 {
		return errors.New("JWKS has no usable signing keys")
	}
	is.swap(keys)
	return nil
}

func (is *issuer) swap(fetched []*key) {
	next := newKeySet(is.static, fetched)
	old := is.keys.Swap(next)
	if old == nil {
		return
	}
	have := make(map[string]bool, len(next.all))
	for _, k := range next.all {
		have[k.kid+"\x00"+k.thumb] = true
	}
	for _, k := range old.all {
		if !have[k.kid+"\x00"+k.thumb] {
			is.gen.Add(1) // a key was withdrawn: drop tokens it verified
			return
		}
	}
}

// refreshForMiss fetches the JWKS because a token named an unknown key, at
// most once per minRefresh. It reports whether a fetch happened and its
// error.
func (is *issuer) refreshForMiss(ctx context.Context, now time.Time) (bool, error) {
	if is.jwksURL == "" {
		return false, nil
	}
	is.fetchMu.Lock()
	defer is.fetchMu.Unlock()
	if !is.lastMiss.IsZero() && now.Sub(is.lastMiss) < is.minRefresh {
		return false, nil
	}
	is.lastMiss = now
	err := is.fetch(ctx)
	if err != nil {
		is.log.Warn("jwt: JWKS refresh for an unknown key failed; keeping cached keys", "issuer", is.name, "url", is.jwksURL, "err", err)
	}
	return true, err
}

// background refreshes the JWKS every refresh interval until ctx ends.
func (is *issuer) background(ctx context.Context) {
	t := time.NewTicker(is.refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			is.fetchMu.Lock()
			err := is.fetch(ctx)
			is.fetchMu.Unlock()
			if err != nil && ctx.Err() == nil {
				is.log.Warn("jwt: JWKS refresh failed; keeping cached keys", "issuer", is.name, "url", is.jwksURL, "err", err)
			}
		}
	}
}
