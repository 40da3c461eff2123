package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apiguard/apiguard/internal/config"
)

// upstream balances requests over its targets round robin and skips a
// target for fail_timeout after it refused a connection (passive health).
type upstream struct {
	name        string
	targets     []*target
	next        atomic.Uint64
	transport   *http.Transport
	failTimeout time.Duration
}

type target struct {
	url       *url.URL
	downUntil atomic.Int64 // unix nanos; 0 = healthy
}

func newUpstream(name string, cfg *config.Upstream) (*upstream, error) {
	u := &upstream{name: name, failTimeout: cfg.FailTimeout.Std()}
	for _, t := range cfg.Targets {
		tu, err := url.Parse(t)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", name, err)
		}
		tu.Path = strings.TrimSuffix(tu.Path, "/")
		u.targets = append(u.targets, &target{url: tu})
	}
	dialer := &net.Dialer{Timeout: cfg.DialTimeout.Std(), KeepAlive: 30 * time.Second}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: ca_file: %w", name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream %s: ca_file %s: no PEM certificates", name, cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	// Tuned for a gateway: many idle connections per host (the default of 2
	// forces a new connection for most concurrent requests), HTTP/2 to TLS
	// upstreams, and no transparent decompression (bodies pass as sent).
	u.transport = &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           cfg.MaxIdleConns * max(1, len(u.targets)),
		MaxIdleConnsPerHost:    cfg.MaxIdleConns,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		ResponseHeaderTimeout:  cfg.Timeout.Std(),
		DisableCompression:     true,
		TLSClientConfig:        tlsCfg,
		MaxResponseHeaderBytes: 1 << 20,
	}
	return u, nil
}

// pick returns the next healthy target, or the next one at all when every
// target is marked down (better to try than to refuse outright).
func (u *upstream) pick(now int64) *target {
	n := uint64(len(u.targets))
	first := u.next.Add(1)
	// Each skip takes its own turn of the counter, so a down target's share
	// spreads over the others instead of all going to its neighbour.
	for i, idx := uint64(0), first; i < n; i, idx = i+1, u.next.Add(1) {
		if t := u.targets[idx%n]; t.downUntil.Load() <= now {
			return t
		}
	}
	return u.targets[first%n]
}

// RoundTrip sends to a target; a refused connection marks the target down and
// the request goes to the next target, as long as none of its body was read.
func (u *upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	basePath, rawBase := req.URL.Path, req.URL.RawPath
	body := req.Body
	var tracked *trackedBody
	if body != nil && body != http.NoBody {
		tracked = &trackedBody{ReadCloser: body}
		req.Body = tracked
	}
	tries := len(u.targets)
	var lastErr error
	for attempt := 0; attempt < tries; attempt++ {
		t := u.pick(time.Now().UnixNano())
		req.URL.Scheme = t.url.Scheme
		req.URL.Host = t.url.Host
		req.URL.Path = t.url.Path + basePath
		if rawBase != "" {
			req.URL.RawPath = t.url.Path + rawBase
		}
		resp, err := u.transport.RoundTrip(req)
		if err == nil {
			return resp, nil
		}
		lastErr = err
		if !isRefused(err) {
			break
		}
		t.downUntil.Store(time.Now().Add(u.failTimeout).UnixNano())
		if tracked != nil && tracked.read.Load() {
			break
		}
	}
	if tracked != nil {
		_ = tracked.ReadCloser.Close()
	}
	return nil, lastErr
}

// trackedBody lets a retry know whether the body was consumed, and keeps the
// transport's Close of a failed attempt from closing the client's body.
type trackedBody struct {
	io.ReadCloser
	read atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		// The client's side failed (gone, stalled, over the limit), not
		// the upstream's: mark it so the error handler can tell.
		err = &clientBodyError{err}
	}
	return n, err
}

// clientBodyError is a failure reading the client's request body.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "client request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

func (b *trackedBody) Close() error { return nil }

func isRefused(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func (u *upstream) close() { u.transport.CloseIdleConnections() }
