package fingerprint

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync/atomic"

	"golang.org/x/net/http2"
)

// ConnInfo holds the signals of one client connection. ConnContext puts an
// empty one in the connection's context; the TLS handshake and the HTTP/2
// capture fill it; handlers read it through FromContext. Its fields are
// atomics, so reading while the handshake or the HTTP/2 reader goroutine
// writes is safe (the handshake finishes before the first request anyway).
type ConnInfo struct {
	tls atomic.Pointer[TLSFingerprint]
	h2  atomic.Pointer[h2Capture]
}

type connInfoKey struct{}

// ConnContext is an http.Server.ConnContext: it attaches a fresh ConnInfo
// to every accepted connection. Chain it when the server already has one.
func ConnContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connInfoKey{}, new(ConnInfo))
}

// FromContext returns the connection's ConnInfo, or nil when the server
// was not set up with ConnContext.
func FromContext(ctx context.Context) *ConnInfo {
	if ctx == nil {
		return nil
	}
	ci, _ := ctx.Value(connInfoKey{}).(*ConnInfo)
	return ci
}

// TLS returns the ClientHello fingerprint, or nil for plaintext
// connections and servers whose tls.Config was not wrapped.
func (ci *ConnInfo) TLS() *TLSFingerprint {
	if ci == nil {
		return nil
	}
	return ci.tls.Load()
}

// HTTP2 returns the connection's HTTP/2 fingerprint, or nil when the
// connection is not HTTP/2, EnableHTTP2 was not used, or the client's
// first HEADERS frame has not been seen (or did not fit the capture).
func (ci *ConnInfo) HTTP2() *HTTP2Fingerprint {
	if ci == nil {
		return nil
	}
	c := ci.h2.Load()
	if c == nil {
		return nil
	}
	return c.fingerprint()
}

// SetTLS records fp for the connection unless one is already recorded. It
// is for servers that compute fingerprints outside WrapTLSConfig.
func (ci *ConnInfo) SetTLS(fp *TLSFingerprint) {
	if ci != nil && fp != nil {
		ci.tls.CompareAndSwap(nil, fp)
	}
}

// WrapTLSConfig returns a copy of cfg (nil means an empty config) whose
// GetConfigForClient records the client's TLS fingerprint in the
// connection's ConnInfo before calling cfg's own GetConfigForClient, if
// any. net/http runs the handshake with the connection's context, which is
// how the hook finds the ConnInfo that ConnContext created.
//
// With Encrypted Client Hello keys configured, crypto/tls hands the hook
// the decrypted inner hello; JA4 then describes the inner hello, not the
// outer one a network observer sees.
func WrapTLSConfig(cfg *tls.Config) *tls.Config {
	var c *tls.Config
	if cfg == nil {
		c = &tls.Config{}
	} else {
		c = cfg.Clone()
	}
	next := c.GetConfigForClient
	c.GetConfigForClient = func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
		if ci := FromContext(chi.Context()); ci != nil && ci.tls.Load() == nil {
			ci.tls.CompareAndSwap(nil, NewTLSFingerprint(chi))
		}
		if next != nil {
			return next(chi)
		}
		return nil, nil
	}
	return c
}

// EnableHTTP2 serves HTTP/2 on srv through golang.org/x/net/http2 with the
// client's first bytes teed into the connection's ConnInfo, which is the
// only way to see HTTP/2 frames: net/http's built-in HTTP/2 server reads
// the *tls.Conn directly and offers no hook. The tee keeps at most the
// first 16 KiB the client sends, never blocks and never alters the stream.
// Call it before srv starts serving, after setting srv.TLSConfig.
func EnableHTTP2(srv *http.Server) error {
	if srv == nil {
		return errors.New("fingerprint: nil server")
	}
	h2s := &http2.Server{}
	//lint:ignore SA1019 x/net's HTTP/2 server is the only one that accepts a wrapped conn.
	if err := http2.ConfigureServer(srv, h2s); err != nil {
		return err
	}
	srv.TLSNextProto[http2.NextProtoTLS] = func(hs *http.Server, c *tls.Conn, h http.Handler) {
		ctx := context.Background()
		if bc, ok := h.(interface{ BaseContext() context.Context }); ok {
			ctx = bc.BaseContext()
		}
		var nc net.Conn = c
		if ci := FromContext(ctx); ci != nil {
			capture := newH2Capture()
			ci.h2.Store(capture)
			nc = &h2TeeConn{Conn: c, tc: c, cap: capture}
		}
		//lint:ignore SA1019 see above.
		h2s.ServeConn(nc, &http2.ServeConnOpts{Context: ctx, Handler: h, BaseConfig: hs})
	}
	return nil
}

// Install wires every capture into srv: it chains ConnContext into
// srv.ConnContext, wraps srv.TLSConfig with WrapTLSConfig and enables the
// HTTP/2 capture. Call it once, before serving.
func Install(srv *http.Server) error {
	if srv == nil {
		return errors.New("fingerprint: nil server")
	}
	prev := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if prev != nil {
			ctx = prev(ctx, c)
		}
		return ConnContext(ctx, c)
	}
	srv.TLSConfig = WrapTLSConfig(srv.TLSConfig)
	return EnableHTTP2(srv)
}

// h2TeeConn copies what the client sends into the capture on its way to
// the HTTP/2 server. ConnectionState keeps Request.TLS and HTTP/2's TLS
// checks working as with the bare *tls.Conn.
type h2TeeConn struct {
	net.Conn
	tc  *tls.Conn
	cap *h2Capture
}

func (c *h2TeeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.cap.write(p[:n])
	}
	return n, err
}

func (c *h2TeeConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }
