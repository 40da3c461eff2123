package httpsig

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// refetchFloor bounds fetches an unknown keyid can trigger, so requests
// naming random key ids cannot make the gateway hammer the JWKS endpoint.
const refetchFloor = 30 * time.Second

// jwksKeys holds the verifiers of a JWKS, refreshed in the background. A
// failed fetch keeps the last good set.
type jwksKeys struct {
	url    string
	client *http.Client
	keys   atomic.Pointer[map[string]*verifier]
	last   atomic.Int64 // unix nanos of the last fetch attempt
	kick   chan struct{}
	stop   context.CancelFunc
	done   sync.WaitGroup
}

func newJWKSKeys(url string, every time.Duration) *jwksKeys {
	j := &jwksKeys{url: url, client: &http.Client{Timeout: 10 * time.Second}, kick: make(chan struct{}, 1)}
	empty := map[string]*verifier{}
	j.keys.Store(&empty)
	ctx, cancel := context.WithCancel(context.Background())
	j.stop = cancel
	_ = j.fetch(ctx) // a JWKS that is down at start is retried on schedule
	j.done.Add(1)
	go func() {
		defer j.done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-j.kick:
			}
			_ = j.fetch(ctx)
		}
	}()
	return j
}

func (j *jwksKeys) get(kid string) (*verifier, bool) {
	v, ok := (*j.keys.Load())[kid]
	if !ok && time.Since(time.Unix(0, j.last.Load())) > refetchFloor {
		select { // ask the refresher; this request still fails
		case j.kick <- struct{}{}:
		default:
		}
	}
	return v, ok
}

func (j *jwksKeys) fetch(ctx context.Context) error {
	j.last.Store(time.Now().UnixNano())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return err
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("httpsig: jwks: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return fmt.Errorf("httpsig: jwks: %w", err)
	}
	m := map[string]*verifier{}
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		kid, ok := k.KeyID()
		if !ok || kid == "" {
			continue
		}
		if v := verifierFor(k); v != nil {
			m[kid] = v
		}
	}
	if len(m) > 0 || set.Len() == 0 {
		j.keys.Store(&m)
	}
	return nil
}

// verifierFor turns a public JWK into a verifier; other key types are
// skipped (RSA is not among the algorithms supported here).
func verifierFor(k jwk.Key) *verifier {
	var raw any
	if err := jwk.Export(k, &raw); err != nil {
		return nil
	}
	switch pk := raw.(type) {
	case ed25519.PublicKey:
		return &verifier{alg: AlgEd25519, ed: pk}
	case *ecdsa.PublicKey:
		if pk.Curve == elliptic.P256() {
			return &verifier{alg: AlgECDSAP256, ec: pk}
		}
	}
	return nil
}

func (j *jwksKeys) close() {
	j.stop()
	j.done.Wait()
}
