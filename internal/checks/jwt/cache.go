package jwt

import "sync"

// entry is a verified token's result. It is shared by every request that
// presents the token, so its maps and slices are read-only.
type entry struct {
	subject    string
	claims     map[string]any
	scopes     []string
	forward    []string // value per Check.forward header, "" = not set
	validUntil int64    // unix ns: min(exp+skew, verified+5m)
	iss        *issuer
	gen        uint64 // iss.gen when verified
}

const cacheShards = 16

// cache is a bounded map of verified tokens keyed by SHA-256 of the token,
// sharded to keep lock contention low. Each shard evicts its oldest entry
// (insertion order) when full.
type cache struct {
	shards []cacheShard
	mask   byte
}

type cacheShard struct {
	mu   sync.RWMutex
	m    map[[32]byte]*entry
	ring [][32]byte // insertion order; every map key is here exactly once
	pos  int
	cap  int
}

func newCache(size int) *cache {
	n := cacheShards
	if size < n {
		n = 1
	}
	c := &cache{shards: make([]cacheShard, n), mask: byte(n - 1)}
	for i := range c.shards {
		c.shards[i].cap = size / n
		c.shards[i].m = make(map[[32]byte]*entry)
	}
	return c
}

func (c *cache) get(sum *[32]byte) *entry {
	s := &c.shards[sum[0]&c.mask]
	s.mu.RLock()
	e := s.m[*sum]
	s.mu.RUnlock()
	return e
}

func (c *cache) put(sum *[32]byte, e *entry) {
	s := &c.shards[sum[0]&c.mask]
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[*sum]; ok {
		s.m[*sum] = e
		return
	}
	if len(s.ring) < s.cap {
		s.ring = append(s.ring, *sum)
	} else {
		delete(s.m, s.ring[s.pos])
		s.ring[s.pos] = *sum
		s.pos = (s.pos + 1) % s.cap
	}
	s.m[*sum] = e
}

func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
