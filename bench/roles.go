package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apiguard/apiguard/bench/corazaproxy"
)

// The upstream and the bare proxy run as child processes of the harness (it
// re-executes itself with -role=...), so the load generator's GC and
// scheduling stay out of the processes under test. A child announces its
// address with one line "LISTENING host:port" on stdout and exits when its
// stdin reaches EOF, i.e. when the harness closes the pipe or dies.

const listeningPrefix = "LISTENING "

// makeJSON returns a valid JSON object of exactly n bytes (or the minimal
// object when n is smaller than it), padded with a description string.
func makeJSON(n int) []byte {
	const head = `{"id":42,"name":"item-42","price":1999,"currency":"EUR","in_stock":true,"tags":["bench","apiguard"],"description":"`
	const tail = `"}`
	pad := max(0, n-len(head)-len(tail))
	var b strings.Builder
	b.Grow(len(head) + pad + len(tail))
	b.WriteString(head)
	for i := range pad {
		b.WriteByte('a' + byte(i%26))
	}
	b.WriteString(tail)
	return []byte(b.String())
}

// upstreamHandler answers every request with the same small JSON body after
// reading the request body completely.
func upstreamHandler(respBytes int) http.Handler {
	body := makeJSON(respBytes)
	clen := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", clen)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})
}

// bareProxy is the baseline: net/http/httputil.ReverseProxy with Rewrite +
// SetURL (+ SetXForwarded, which any real gateway does too) over a transport
// whose idle pool is large enough for the benchmark's concurrency. With
// pool, copy buffers come from a sync.Pool; without one ReverseProxy
// allocates a 32 KiB buffer per response, a well-known cost any tuned proxy
// (apiguard included) avoids, and which would make the baseline look slow.
func bareProxy(target *url.URL, maxIdle int, pool bool) http.Handler {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = maxIdle
	tr.IdleConnTimeout = 90 * time.Second
	tr.DisableCompression = true
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport: tr,
	}
	if pool {
		rp.BufferPool = &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
	}
	return rp
}

// corazaProxy is the WAF baseline, bench/corazaproxy: a plain
// httputil.ReverseProxy (NewSingleHostReverseProxy) wrapped in Coraza's
// txhttp.WrapHandler with the OWASP CRS at paranoia level 1, built once
// before the child announces its address. The proxy uses
// http.DefaultTransport, whose idle pool keeps 2 connections per host; the
// child is a process of its own, so the transport is tuned here the way
// the bare proxy's is (idle pool sized for the concurrency, no
// environment proxy, no compression), or the baseline would spend its time
// opening connections. It has no BufferPool (a 32 KiB buffer per
// response, ~50 µs: noise next to the CRS's milliseconds). The CRS's @rx
// operator is RE2, as in apiguard, unless built with -tags waf_goregexp
// (see corazaRx).
func corazaProxy(target *url.URL, maxIdle int) (http.Handler, error) {
	if tr, ok := http.DefaultTransport.(*http.Transport); ok {
		tr.Proxy = nil
		tr.MaxIdleConns = 0
		tr.MaxIdleConnsPerHost = maxIdle
		tr.IdleConnTimeout = 90 * time.Second
		tr.DisableCompression = true
	}
	return corazaproxy.New(target)
}

// bufferPool is an httputil.BufferPool over a sync.Pool.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(x []byte) { b.p.Put(&x) }

func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
}

// runRole is the body of a child process started with -role.
func runRole(o *options) int {
	var h http.Handler
	switch o.role {
	case "upstream":
		h = upstreamHandler(o.respBytes)
	case "bare", "coraza":
		u, err := url.Parse(o.target)
		if err != nil || u.Host == "" {
			fmt.Fprintf(os.Stderr, "bench: -role=%s needs -target=http://host:port, got %q\n", o.role, o.target)
			return 2
		}
		if o.role == "bare" {
			h = bareProxy(u, o.maxIdle, o.barePool)
			break
		}
		if h, err = corazaProxy(u, o.maxIdle); err != nil {
			fmt.Fprintf(os.Stderr, "bench: -role=coraza: %v\n", err)
			return 1
		}
	default:
		fmt.Fprintf(os.Stderr, "bench: unknown -role %q (upstream, bare, coraza)\n", o.role)
		return 2
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %s: %v\n", o.role, err)
		return 1
	}
	// Die with the harness: its end of our stdin closes when it exits.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	fmt.Printf("%s%s\n", listeningPrefix, ln.Addr())
	if err := newServer(h).Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "bench: %s: %v\n", o.role, err)
		return 1
	}
	return 0
}
