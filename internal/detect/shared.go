package detect

import (
	"context"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/apiguard/apiguard/internal/state"
)

// shared keeps counters that every gateway instance must see through a
// state.Backend. A counter is two tumbling buckets of the window's width,
// keyed <prefix><name>:<bucket number> (bucket = unix time / width, so
// instances with NTP-synchronised clocks agree), each expiring two widths
// after its creation. Its value over the sliding window is estimated as
//
//	prev·(1 − elapsed/width) + cur
//
// (the usual sliding-window approximation: exact when the previous
// bucket's events were evenly spread). cur comes back from Incr; prev is
// read once per name and bucket (Incr by 0) and then cached, since a
// closed bucket no longer changes (reading an absent one creates it at 0
// with the same TTL, a few bytes). One update therefore costs one round
// trip, two for the first event of a name in a bucket.
//
// Distinct counts (IPs failing on a username or a fingerprint) add a mark
// per (name, IP) with PutNX and a TTL of one width, and count only marks
// that were new: each IP is counted once per width, by whichever instance
// saw it first.
type shared struct {
	be      state.Backend
	prefix  string
	timeout time.Duration
	prev    *table[prevKey, int64]
	errors  atomic.Uint64
	logged  atomic.Int64 // unix ns of the last error log
	logger  *slog.Logger
}

type prevKey struct {
	name string
	b    int64
}

var markValue = []byte{'1'}

// newShared: maxWidth is the widest counter window; a cached previous
// bucket is useless after two widths.
func newShared(be state.Backend, prefix string, timeout time.Duration, maxKeys int, maxWidth int64, seed maphash.Seed, logger *slog.Logger) *shared {
	return &shared{
		be: be, prefix: prefix, timeout: timeout, logger: logger,
		prev: newTable[prevKey, int64](maxKeys, 2*maxWidth,
			func(k prevKey) uint64 { return maphash.String(seed, k.name) },
			func(k prevKey) prevKey { k.name = cloneString(k.name); return k }),
	}
}

func (s *shared) bucketKey(name string, b int64) string {
	buf := make([]byte, 0, len(s.prefix)+len(name)+21)
	buf = append(buf, s.prefix...)
	buf = append(buf, name...)
	buf = append(buf, ':')
	return string(strconv.AppendInt(buf, b, 10))
}

// add adds delta (>= 0; 0 reads) to counter name at now and returns the
// sliding-window estimate.
func (s *shared) add(ctx context.Context, name string, now, width, delta int64) (float64, error) {
	b := bucketOf(now, width)
	ttl := time.Duration(2 * width)
	cur, err := s.be.Incr(ctx, s.bucketKey(name, b), delta, ttl)
	if err != nil {
		return 0, err
	}
	pk := prevKey{name, b - 1}
	sh := s.prev.lock(pk)
	v := s.prev.get(sh, pk, now)
	var prev int64
	if v != nil {
		prev = *v
	}
	sh.mu.Unlock()
	if v == nil {
		prev, err = s.be.Incr(ctx, s.bucketKey(name, b-1), 0, ttl)
		if err != nil {
			return 0, err
		}
		sh = s.prev.lock(pk)
		p, _ := s.prev.upsert(sh, pk, now)
		*p = prev
		sh.mu.Unlock()
	}
	frac := min(max(float64(now-b*width)/float64(width), 0), 1)
	return float64(prev)*(1-frac) + float64(cur), nil
}

// mark reports whether (name, member) had no mark within the last width,
// and marks it.
func (s *shared) mark(ctx context.Context, name, member string, width int64) (bool, error) {
	return s.be.PutNX(ctx, s.prefix+name+":"+member, markValue, time.Duration(width))
}

// fail counts a backend error and logs at most one every 10 seconds: an
// unreachable Redis must not flood the log from every login observation.
func (s *shared) fail(err error, now int64) {
	s.errors.Add(1)
	last := s.logged.Load()
	if now-last < int64(10*time.Second) && now >= last {
		return
	}
	if s.logged.CompareAndSwap(last, now) {
		s.logger.Warn("shared login counters unavailable; distributed rules skipped", "backend", s.be.Name(), "err", err, "errors", s.errors.Load())
	}
}
