package gateway

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiguard/apiguard/internal/problem"
)

// connLimiter closes connections from a peer address that already has max
// open connections (slow-loris and connection floods). Trusted proxies are
// exempt: all their clients share their address.
type connLimiter struct {
	net.Listener
	max      int
	trusted  func() trustedProxies // current config's, so reloads apply
	rejected prometheus.Counter
	shards   [64]connShard
}

type connShard struct {
	mu    sync.Mutex
	count map[netip.Addr]int
}

func newConnLimiter(ln net.Listener, max int, trusted func() trustedProxies, rejected prometheus.Counter) *connLimiter {
	l := &connLimiter{Listener: ln, max: max, trusted: trusted, rejected: rejected}
	for i := range l.shards {
		l.shards[i].count = map[netip.Addr]int{}
	}
	return l
}

func (l *connLimiter) shard(a netip.Addr) *connShard {
	b := a.As16()
	return &l.shards[(b[15]^b[13]^b[11])%64]
}

// Accept returns the next connection under the limit; refused ones are
// closed at once (the client sees a reset, which costs the gateway nothing).
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, perr := netip.ParseAddrPort(c.RemoteAddr().String())
		if perr != nil {
			return c, nil
		}
		a := ap.Addr().Unmap()
		if l.trusted().contains(a) {
			return c, nil
		}
		s := l.shard(a)
		s.mu.Lock()
		if s.count[a] >= l.max {
			s.mu.Unlock()
			l.rejected.Inc()
			_ = c.Close()
			continue
		}
		s.count[a]++
		s.mu.Unlock()
		return &limitedConn{Conn: c, release: func() { l.release(a) }}, nil
	}
}

func (l *connLimiter) release(a netip.Addr) {
	s := l.shard(a)
	s.mu.Lock()
	if s.count[a] <= 1 {
		delete(s.count, a)
	} else {
		s.count[a]--
	}
	s.mu.Unlock()
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, status int, slug, detail string) {
	problem.Write(w, problem.New(status, slug, detail, w.Header().Get("X-Request-Id")), nil)
}
