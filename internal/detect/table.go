package detect

import (
	"strings"
	"sync"
	"sync/atomic"
)

// table is a bounded map with LRU eviction and idle expiry, split into
// independently locked shards. Nodes live in one slice per shard linked by
// int32 indexes, so a tracked key costs its key, its value and 16 bytes of
// links, and a removed node's value (with its buffers) is reused by the
// next key instead of being garbage.
//
// Use: s := t.lock(k); v, fresh := t.upsert(s, k, now); ...; s.mu.Unlock().
// fresh means v belongs to no live key (new, evicted or idle longer than
// ttl): the caller resets it, keeping any buffers it wants to reuse. v is
// only valid until the unlock.
type table[K comparable, V any] struct {
	shards  []shard[K, V]
	hash    func(K) uint64
	clone   func(K) K
	ttl     int64 // ns idle after which a key is forgotten
	evicted atomic.Uint64
}

type shard[K comparable, V any] struct {
	mu               sync.Mutex
	idx              map[K]int32
	nodes            []node[K, V]
	head, tail, free int32 // head is the most recently used; -1: none
	max              int
}

type node[K comparable, V any] struct {
	key        K
	seen       int64
	prev, next int32
	val        V
}

// tableShards splits tables of at least minShardedKeys keys, so a few
// observer goroutines rarely wait for one another.
const (
	tableShards    = 16
	minShardedKeys = 1024
)

func newTable[K comparable, V any](maxKeys int, ttl int64, hash func(K) uint64, clone func(K) K) *table[K, V] {
	maxKeys = max(maxKeys, 1)
	n := 1
	if maxKeys >= minShardedKeys {
		n = tableShards
	}
	per := (maxKeys + n - 1) / n
	t := &table[K, V]{shards: make([]shard[K, V], n), hash: hash, clone: clone, ttl: max(ttl, 1)}
	for i := range t.shards {
		s := &t.shards[i]
		s.idx = make(map[K]int32)
		s.head, s.tail, s.free = -1, -1, -1
		s.max = per
	}
	return t
}

// lock locks and returns the shard of k.
func (t *table[K, V]) lock(k K) *shard[K, V] {
	s := &t.shards[0]
	if len(t.shards) > 1 {
		s = &t.shards[t.hash(k)&uint64(len(t.shards)-1)]
	}
	s.mu.Lock()
	return s
}

// upsert returns k's value, creating it if needed (see table).
func (t *table[K, V]) upsert(s *shard[K, V], k K, now int64) (*V, bool) {
	if i, ok := s.idx[k]; ok {
		n := &s.nodes[i]
		fresh := now-n.seen > t.ttl
		if fresh || now > n.seen {
			n.seen = now
		}
		s.toFront(i)
		return &n.val, fresh
	}
	// Forget up to two idle keys per insert: old keys leave without a
	// sweeper goroutine, and faster than new ones arrive.
	for j := 0; j < 2 && s.tail >= 0 && now-s.nodes[s.tail].seen > t.ttl; j++ {
		s.remove(s.tail)
	}
	var i int32
	switch {
	case len(s.idx) >= s.max:
		i = s.tail
		s.unlink(i)
		delete(s.idx, s.nodes[i].key)
		t.evicted.Add(1)
	case s.free >= 0:
		i = s.free
		s.free = s.nodes[i].next
	default:
		s.nodes = append(s.nodes, node[K, V]{})
		i = int32(len(s.nodes) - 1)
	}
	n := &s.nodes[i]
	n.key = t.clone(k)
	n.seen = now
	s.pushFront(i)
	s.idx[n.key] = i
	return &n.val, true
}

// get returns k's live value without creating or touching it.
func (t *table[K, V]) get(s *shard[K, V], k K, now int64) *V {
	i, ok := s.idx[k]
	if !ok || now-s.nodes[i].seen > t.ttl {
		return nil
	}
	return &s.nodes[i].val
}

// len is the number of keys held (live or idle, not yet removed).
func (t *table[K, V]) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.idx)
		s.mu.Unlock()
	}
	return n
}

func (s *shard[K, V]) remove(i int32) {
	s.unlink(i)
	var zero K
	delete(s.idx, s.nodes[i].key)
	s.nodes[i].key = zero // do not retain the key string
	s.nodes[i].next = s.free
	s.free = i
}

func (s *shard[K, V]) unlink(i int32) {
	n := &s.nodes[i]
	if n.prev >= 0 {
		s.nodes[n.prev].next = n.next
	} else {
		s.head = n.next
	}
	if n.next >= 0 {
		s.nodes[n.next].prev = n.prev
	} else {
		s.tail = n.prev
	}
	n.prev, n.next = -1, -1
}

func (s *shard[K, V]) pushFront(i int32) {
	n := &s.nodes[i]
	n.prev, n.next = -1, s.head
	if s.head >= 0 {
		s.nodes[s.head].prev = i
	}
	s.head = i
	if s.tail < 0 {
		s.tail = i
	}
}

func (s *shard[K, V]) toFront(i int32) {
	if s.head == i {
		return
	}
	s.unlink(i)
	s.pushFront(i)
}

// cloneString copies a key on insert: keys are substrings of one
// per-observation string, which must not stay alive through the table.
func cloneString(s string) string { return strings.Clone(s) }
