package state

import (
	"bytes"
	"context"
	"hash/maphash"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryOptions tune a Memory backend. Zero values take the defaults.
type MemoryOptions struct {
	// MaxKeys bounds rate-limit, counter and concurrency keys together
	// (default 1<<20). Each limit of a RateLimit call is one key.
	MaxKeys int
	// MaxKVKeys bounds the key-value store (Put/PutNX) separately (default
	// 1<<18), so a flood of rate-limited clients cannot evict revocations
	// or nonces, and the reverse.
	MaxKVKeys int
	// Shards is the number of independently locked shards, rounded up to a
	// power of two (default 256). It is lowered when MaxKeys is smaller so
	// every shard holds at least one key.
	Shards int
	Clock  Clock
}

const (
	defaultMaxKeys   = 1 << 20
	defaultMaxKVKeys = 1 << 18
	defaultShards    = 256
	// evictSample is how many entries are examined to pick a victim when a
	// full shard holds no expired entry. 8 makes the victim expire sooner
	// than ~89% of the shard's entries, at the cost of 8 slot visits.
	evictSample = 8
	// minSweep keeps tiny shards from sweeping on every insert.
	minSweep = 16
	// subBuffer is each in-process subscriber's channel capacity.
	subBuffer = 256
)

// Memory is the in-process Backend. Numeric state (GCRA tat, counters,
// concurrency slots) lives in shards, each a mutex and an open-addressing
// table of 24-byte slots keyed by a 64-bit hash of the key. There is no
// global lock on the hot path, every limit of one key is in one shard (one
// lock makes a multi-limit decision atomic), and the tables hold no
// pointers, so the garbage collector never scans them. A RateLimit with one
// limit costs one maphash, one monotonic clock read, one lock and one probe
// sequence, and allocates nothing.
//
// Hashing instead of storing key strings saves the string (typically 20-60
// bytes plus its header) per key: 1M keys take ~50 MB (the table at load
// 3/8..3/4 plus growth slack; TestMemoryPerMillionKeys measures it). The
// hash is hash/maphash keyed with a random per-process seed: two distinct
// live keys share a slot with probability ~n²/2^65 (for n = 1M keys, 2.7e-8
// for the whole table), and since the seed is secret an attacker cannot
// aim for a collision. A collision would only make two clients share one
// bucket, erring on the side of limiting. The KV store keeps full keys,
// since a collision there would return another key's value.
//
// Bounds: MaxKeys numeric keys and MaxKVKeys entries, split evenly over the
// shards. A shard that is full evicts expired keys first, else the key that
// expires soonest among a small random sample (see shard.evict); expired
// keys are also swept lazily as new keys arrive.
//
// Time is the monotonic clock (time.Since of a base time), so wall-clock
// steps (NTP, manual changes) do not move the buckets at all. An injected
// Clock is used as given; see RateLimit for clock steps.
type Memory struct {
	// Read by every decision and never written after NewMemory (closed
	// only once, by Close).
	seed   maphash.Seed
	mask   uint64
	shards []shard
	kv     []kvShard
	base   time.Time
	clock  Clock
	closed atomic.Bool
	// Keeps the pub/sub fields, written by Publish's RLock, off the cache
	// line above, so a busy change feed does not slow every decision.
	_       [64]byte
	subsMu  sync.RWMutex
	subs    map[string]map[*memSub]struct{}
	closeMu sync.Mutex
	done    chan struct{} // closed by Close; ends subscription goroutines
}

// slot is one numeric key of a shard's open-addressing table. For GCRA v
// is tat and exp == tat: once now >= tat the bucket is full, exactly as if
// the key were absent, so the slot may be dropped then. For counters and
// concurrency slots v is the count and exp its expiry. k == 0 marks an empty
// slot (hashes of 0 are stored as 1).
type slot struct {
	k   uint64
	v   int64
	exp int64
}

// shard is one lock's worth of numeric keys: a linear-probing hash table of
// slot. It is hand-written rather than a Go map because a lookup and an
// in-place update cost one probe sequence here against two full map
// operations, which was most of the 100 ns budget; it also lets eviction
// sample from a random position without iterator set-up.
type shard struct {
	mu    sync.Mutex
	slots []slot // len is a power of two; load factor <= 3/4
	n     int    // occupied slots
	// max bounds n; maxSlots is the table size at which max keys still
	// leave the load factor <= 3/4, so a full shard never grows further.
	max, maxSlots int
	// inserts counts new keys since the last sweep (see set and evict).
	inserts int
	// minExp is a lower bound of every exp in the shard, exact right after a
	// sweep: while now < minExp nothing has expired and no sweep is needed.
	minExp int64
	_      [128 - 8 - 24 - 8*5]byte // hot shards on separate cache lines (and prefetch pairs)
}

const minSlots = 16

func (s *shard) init(max int) {
	s.max = max
	s.maxSlots = minSlots
	for s.maxSlots*3/4 < max {
		s.maxSlots *= 2
	}
	s.slots = make([]slot, minSlots)
	s.minExp = never
}

// find returns the index of k, or -1.
func (s *shard) find(k uint64) int {
	mask := uint64(len(s.slots) - 1)
	for i := k & mask; ; i = (i + 1) & mask {
		switch s.slots[i].k {
		case k:
			return int(i)
		case 0:
			return -1
		}
	}
}

// set stores v/exp under k, inserting it if needed. s.mu must be held. Expired keys are swept lazily: every
// max(n/2, minSweep) inserts, which is O(1) amortised per insert; a full
// shard makes room with evict.
func (s *shard) set(k uint64, v, exp, now int64) {
	if exp < s.minExp {
		s.minExp = exp
	}
	if i := s.find(k); i >= 0 {
		s.slots[i].v, s.slots[i].exp = v, exp
		return
	}
	s.inserts++
	if s.n >= s.max {
		s.evict(k, now)
	} else if s.inserts >= max(s.n/2, minSweep) {
		s.sweep(now)
	}
	if (s.n+1)*4 > len(s.slots)*3 && len(s.slots) < s.maxSlots {
		s.grow()
	}
	mask := uint64(len(s.slots) - 1)
	i := k & mask
	for s.slots[i].k != 0 {
		i = (i + 1) & mask
	}
	s.slots[i] = slot{k: k, v: v, exp: exp}
	s.n++
}

func (s *shard) grow() {
	old := s.slots
	s.slots = make([]slot, len(old)*2)
	mask := uint64(len(s.slots) - 1)
	for _, e := range old {
		if e.k == 0 {
			continue
		}
		i := e.k & mask
		for s.slots[i].k != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = e
	}
}

// deleteAt empties slot i by backward-shift deletion, so the table needs
// no tombstones and lookups never slow down with churn.
func (s *shard) deleteAt(i int) {
	mask := len(s.slots) - 1
	j := i
	for {
		j = (j + 1) & mask
		e := s.slots[j]
		if e.k == 0 {
			break
		}
		// e may fill the hole at i unless its home lies cyclically in (i, j].
		if (j-int(e.k&uint64(mask)))&mask >= (j-i)&mask {
			s.slots[i] = e
			i = j
		}
	}
	s.slots[i] = slot{}
	s.n--
}

// sweep deletes every expired key and makes minExp exact. Entries shifted
// back by deleteAt land at the current index or later, so each is examined
// (some twice, harmlessly).
func (s *shard) sweep(now int64) {
	s.inserts = 0
	s.minExp = never
	for i := 0; i < len(s.slots); i++ {
		for s.slots[i].k != 0 && s.slots[i].exp <= now {
			s.deleteAt(i)
		}
		if e := &s.slots[i]; e.k != 0 && e.exp < s.minExp {
			s.minExp = e.exp
		}
	}
}

// evict frees one key of a full shard, expired keys first: when one may
// exist (now >= minExp) a full sweep frees all of them, at most once per
// max(n/16, 1) inserts so a full shard under churn pays O(16) slot visits
// per insert rather than O(n). Otherwise it evicts an expired key found in a
// sample of evictSample keys, else the sampled key expiring soonest. The
// sample starts at a random position (bits of the inserted key's hash, which
// is uniform and, with the secret seed, unpredictable). For GCRA the
// soonest-expiring bucket is the one closest to full, so evicting it (which
// makes it full) changes the least.
func (s *shard) evict(r uint64, now int64) {
	if now >= s.minExp && s.inserts >= max(s.n/16, 1) {
		s.sweep(now)
		if s.n < s.max {
			return
		}
	}
	mask := len(s.slots) - 1
	victim, seen := -1, 0
	for i, c := int(r>>7)&mask, 0; c <= mask && seen < evictSample; i, c = (i+1)&mask, c+1 {
		e := &s.slots[i]
		if e.k == 0 {
			continue
		}
		if e.exp <= now {
			victim = i
			break
		}
		if victim < 0 || e.exp < s.slots[victim].exp {
			victim = i
		}
		seen++
	}
	if victim >= 0 {
		s.deleteAt(victim)
	}
}

type kvEntry struct {
	val []byte
	exp int64
}

type kvShard struct {
	mu      sync.Mutex
	m       map[string]kvEntry
	max     int
	inserts int
	minExp  int64
	_       [64 - 8 - 8 - 8 - 8 - 8]byte
}

type memSub struct {
	ch     chan []byte
	closed bool // guarded by Memory.subsMu (write lock)
}

// Key namespaces of the numeric table: limit i of a RateLimit key uses
// index i, counters and concurrency slots use tags no limit index reaches.
const (
	tagCounter = ^uint64(0)
	tagSlots   = ^uint64(1)
)

// NewMemory returns an in-process backend.
func NewMemory(o MemoryOptions) *Memory {
	if o.MaxKeys <= 0 {
		o.MaxKeys = defaultMaxKeys
	}
	if o.MaxKVKeys <= 0 {
		o.MaxKVKeys = defaultMaxKVKeys
	}
	if o.Shards <= 0 {
		o.Shards = defaultShards
	}
	n := 1 << bits.Len(uint(o.Shards-1)) // round up to a power of two
	for n > 1 && n > o.MaxKeys {
		n >>= 1
	}
	m := &Memory{
		seed:   maphash.MakeSeed(),
		mask:   uint64(n - 1),
		shards: make([]shard, n),
		kv:     make([]kvShard, n),
		base:   time.Now(),
		clock:  o.Clock,
		subs:   make(map[string]map[*memSub]struct{}),
		done:   make(chan struct{}),
	}
	if m.clock != nil {
		m.base = m.clock()
	}
	for i := range m.shards {
		// Spread the remainder so the bound is exactly MaxKeys.
		m.shards[i].init(split(o.MaxKeys, n, i))
		m.kv[i].max = max(split(o.MaxKVKeys, n, i), 1)
		m.kv[i].m = make(map[string]kvEntry)
		m.kv[i].minExp = never
	}
	return m
}

func split(total, n, i int) int {
	v := total / n
	if i < total%n {
		v++
	}
	return v
}

// now returns nanoseconds since m.base. With the default clock this reads
// the monotonic clock only (time.Since has a fast path for that).
func (m *Memory) now() int64 {
	if m.clock == nil {
		return int64(time.Since(m.base))
	}
	return int64(m.clock().Sub(m.base))
}

// shardOf picks the shard from the top bits of the key hash; every key
// derived from one key hash (all limits of a decision) is in one shard, so
// one lock makes the multi-limit decision atomic.
func (m *Memory) shardOf(h uint64) *shard {
	return &m.shards[(h>>32)&m.mask]
}

// RateLimit implements Backend. It takes one shard lock, does no allocation
// when res has room, and is exact under concurrency.
//
// Clock steps (injected clocks; the default monotonic clock never steps):
// tat only ever grows (tat' = max(tat, now) + cost*T), so when now goes
// backwards tat-now grows and the key gets fewer units, never more than
// Burst, and RetryAfter stays truthful in the new clock. This is equivalent
// to clamping now to the last now seen for the key, without storing it.
// When now jumps forward the bucket is simply full: at most Burst units.
func (m *Memory) RateLimit(_ context.Context, key string, limits []Limit, cost int64, res []Result) (Decision, error) {
	if len(limits) == 1 && cap(res) >= 1 {
		return m.gcra1(key, &limits[0], cost, res[:1], false)
	}
	return m.gcra(key, limits, cost, res, false)
}

// Charge implements Backend.
func (m *Memory) Charge(_ context.Context, key string, limits []Limit, cost int64, res []Result) (Decision, error) {
	return m.gcra(key, limits, cost, res, true)
}

func (m *Memory) gcra(key string, limits []Limit, cost int64, res []Result, charge bool) (Decision, error) {
	res = results(res, len(limits))
	if len(limits) == 1 {
		return m.gcra1(key, &limits[0], cost, res, charge)
	}
	switch {
	case m.closed.Load():
		return Decision{}, ErrClosed
	case key == "":
		return Decision{}, ErrEmptyKey
	case cost < 0:
		return Decision{}, ErrInvalidCost
	}
	// Validate and compute T once per limit, kept in res[i].Remaining (the
	// fields of res are scratch until they are filled in pass 2), so the
	// hot path does one division per limit here and one for Remaining.
	for i := range limits {
		t, ok := emissionOf(&limits[i])
		if !ok {
			return Decision{}, limitError(i, limits[i])
		}
		res[i].Remaining = t
	}
	h := maphash.String(m.seed, key)
	s := m.shardOf(h)
	now := m.now() // outside the lock: a slightly old now only makes the decision stricter

	s.mu.Lock()
	// Pass 1: d = max(tat-now, 0) per limit, kept in ResetAfter, the slot
	// index kept in RetryAfter, and whether every limit admits.
	ok := true
	for i := range limits {
		t := res[i].Remaining
		idx := s.find(tableKey(h, uint64(i)))
		var d int64
		if idx >= 0 && s.slots[idx].v > now {
			d = s.slots[idx].v - now
		}
		res[i].ResetAfter = time.Duration(d)
		res[i].RetryAfter = time.Duration(idx)
		if addSat(d, mulSat(cost, t)) > t*limits[i].Burst {
			ok = false
		}
	}
	// Pass 2: charge (all or nothing) and report.
	write := (ok || charge) && cost > 0
	moved := false // an insert may move slots, invalidating pass 1's indexes
	for i := range limits {
		t := res[i].Remaining
		tau := t * limits[i].Burst
		d := int64(res[i].ResetAfter)
		need := addSat(d, mulSat(cost, t))
		if write {
			tat := addSat(now, need)
			if idx := int(res[i].RetryAfter); idx >= 0 && !moved {
				s.slots[idx].v, s.slots[idx].exp = tat, tat
				s.minExp = min(s.minExp, tat)
			} else {
				s.set(tableKey(h, uint64(i)), tat, tat, now)
				moved = true
			}
			d = need
		}
		if charge {
			resultFor(&res[i], t, tau, d, d, d > tau)
		} else {
			resultFor(&res[i], t, tau, d, need, !ok)
		}
	}
	s.mu.Unlock()
	if charge {
		ok = true
		for i := range res {
			if res[i].RetryAfter > 0 {
				ok = false
			}
		}
	}
	return Decision{Allowed: ok, Results: res}, nil
}

// gcra1 is gcra for the common single limit, with everything in registers.
// It must compute exactly what gcra computes for one limit.
func (m *Memory) gcra1(key string, l *Limit, cost int64, res []Result, charge bool) (Decision, error) {
	switch {
	case m.closed.Load():
		return Decision{}, ErrClosed
	case key == "":
		return Decision{}, ErrEmptyKey
	case cost < 0:
		return Decision{}, ErrInvalidCost
	}
	t, valid := emissionOf(l)
	if !valid {
		return Decision{}, limitError(0, *l)
	}
	tau := t * l.Burst
	h := maphash.String(m.seed, key)
	k := tableKey(h, 0)
	s := m.shardOf(h)
	now := m.now()

	s.mu.Lock()
	idx := s.find(k)
	var d int64
	if idx >= 0 && s.slots[idx].v > now {
		d = s.slots[idx].v - now
	}
	need := addSat(d, mulSat(cost, t))
	ok := need <= tau
	if (ok || charge) && cost > 0 {
		tat := addSat(now, need)
		if idx >= 0 {
			s.slots[idx].v, s.slots[idx].exp = tat, tat
			s.minExp = min(s.minExp, tat)
		} else {
			s.set(k, tat, tat, now)
		}
		d = need
	}
	s.mu.Unlock()

	if charge {
		ok = d <= tau
		resultFor(&res[0], t, tau, d, d, !ok)
	} else {
		resultFor(&res[0], t, tau, d, need, !ok)
	}
	return Decision{Allowed: ok, Results: res}, nil
}

// tableKey is the table key of namespace tag (a limit index, tagCounter
// or tagSlots) of the key whose maphash is h: h itself for limit 0 (the hot
// path), h xor a distinct odd multiple of the golden ratio otherwise. For
// each tag this is a bijection of h, so two keys collide only with the
// probability of a maphash collision, and a key's tags never collide with
// each other. 0 marks empty slots, so it is remapped to 1.
func tableKey(h, tag uint64) uint64 {
	if k := h ^ (tag * 0x9e3779b97f4a7c15); k != 0 {
		return k
	}
	return 1
}

// Acquire implements Backend. The count of key expires ttl after the last
// Acquire (ttl <= 0: never), which is what bounds leaked slots: Release
// carries no slot identity, so the leak cannot be pinned on one slot.
func (m *Memory) Acquire(_ context.Context, key string, max int64, ttl time.Duration) (bool, error) {
	if m.closed.Load() {
		return false, ErrClosed
	}
	if key == "" {
		return false, ErrEmptyKey
	}
	h := maphash.String(m.seed, key)
	k := tableKey(h, tagSlots)
	s := m.shardOf(h)
	now := m.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var cur int64
	if i := s.find(k); i >= 0 && s.slots[i].exp > now {
		cur = s.slots[i].v
	}
	if cur >= max {
		return false, nil
	}
	s.set(k, cur+1, expiry(now, ttl), now)
	return true, nil
}

// Release implements Backend. Releasing more than was acquired is a no-op.
func (m *Memory) Release(_ context.Context, key string) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if key == "" {
		return ErrEmptyKey
	}
	h := maphash.String(m.seed, key)
	s := m.shardOf(h)
	now := m.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(tableKey(h, tagSlots))
	switch {
	case i < 0:
	case s.slots[i].exp <= now || s.slots[i].v <= 1:
		s.deleteAt(i)
	default:
		s.slots[i].v--
	}
	return nil
}

// Incr implements Backend.
func (m *Memory) Incr(_ context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if m.closed.Load() {
		return 0, ErrClosed
	}
	if key == "" {
		return 0, ErrEmptyKey
	}
	h := maphash.String(m.seed, key)
	k := tableKey(h, tagCounter)
	s := m.shardOf(h)
	now := m.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.find(k); i >= 0 && s.slots[i].exp > now {
		s.slots[i].v += delta
		return s.slots[i].v, nil
	}
	s.set(k, delta, expiry(now, ttl), now)
	return delta, nil
}

func expiry(now int64, ttl time.Duration) int64 {
	if ttl <= 0 || int64(ttl) > never-now {
		return never
	}
	return now + int64(ttl)
}

func (m *Memory) kvShardOf(key string) *kvShard {
	return &m.kv[maphash.String(m.seed, key)&m.mask]
}

// Put implements Backend. The value is copied.
func (m *Memory) Put(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if key == "" {
		return ErrEmptyKey
	}
	s := m.kvShardOf(key)
	now := m.now()
	e := kvEntry{val: bytes.Clone(value), exp: expiry(now, ttl)}
	if e.val == nil {
		e.val = []byte{}
	}
	s.mu.Lock()
	s.put(key, e, now)
	s.mu.Unlock()
	return nil
}

// PutNX implements Backend.
func (m *Memory) PutNX(_ context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if m.closed.Load() {
		return false, ErrClosed
	}
	if key == "" {
		return false, ErrEmptyKey
	}
	s := m.kvShardOf(key)
	now := m.now()
	val := bytes.Clone(value)
	if val == nil {
		val = []byte{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, found := s.m[key]; found && e.exp > now {
		return false, nil
	}
	s.put(key, kvEntry{val: val, exp: expiry(now, ttl)}, now)
	return true, nil
}

// Get implements Backend. The value returned is a copy.
func (m *Memory) Get(_ context.Context, key string) ([]byte, bool, error) {
	if m.closed.Load() {
		return nil, false, ErrClosed
	}
	s := m.kvShardOf(key)
	now := m.now()
	s.mu.Lock()
	e, found := s.m[key]
	s.mu.Unlock()
	if !found || e.exp <= now {
		return nil, false, nil
	}
	return bytes.Clone(e.val), true, nil
}

// Delete implements Backend.
func (m *Memory) Delete(_ context.Context, key string) error {
	if m.closed.Load() {
		return ErrClosed
	}
	s := m.kvShardOf(key)
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
	return nil
}

// Scan implements Backend. It holds one shard lock at a time, so it is not
// a snapshot across shards.
func (m *Memory) Scan(_ context.Context, prefix string, limit int) ([]Entry, error) {
	if m.closed.Load() {
		return nil, ErrClosed
	}
	if limit <= 0 {
		limit = DefaultScanLimit
	}
	now := m.now()
	var out []Entry
	for i := range m.kv {
		s := &m.kv[i]
		s.mu.Lock()
		for k, e := range s.m {
			if e.exp > now && strings.HasPrefix(k, prefix) {
				out = append(out, Entry{Key: k, Value: bytes.Clone(e.val), ExpiresAt: m.timeAt(e.exp)})
				if len(out) >= limit {
					s.mu.Unlock()
					return out, nil
				}
			}
		}
		s.mu.Unlock()
	}
	return out, nil
}

func (m *Memory) timeAt(ns int64) time.Time {
	if ns == never {
		return time.Time{}
	}
	return m.base.Add(time.Duration(ns))
}

func (s *kvShard) put(k string, e kvEntry, now int64) {
	s.minExp = min(s.minExp, e.exp)
	if _, found := s.m[k]; found {
		s.m[k] = e
		return
	}
	s.inserts++
	if len(s.m) >= s.max {
		s.evict(now)
	} else if s.inserts >= max(len(s.m)/2, minSweep) {
		s.sweep(now)
	}
	s.m[k] = e
}

func (s *kvShard) sweep(now int64) {
	s.inserts = 0
	s.minExp = never
	for k, e := range s.m {
		if e.exp <= now {
			delete(s.m, k)
		} else {
			s.minExp = min(s.minExp, e.exp)
		}
	}
}

// evict mirrors shard.evict. Evicting a live nonce or revocation is a
// security trade-off: the soonest-expiring one of the sample goes, the one
// whose protection was about to end anyway. Size MaxKVKeys so it never
// happens in normal operation.
func (s *kvShard) evict(now int64) {
	if now >= s.minExp && s.inserts >= max(len(s.m)/16, 1) {
		s.sweep(now)
		if len(s.m) < s.max {
			return
		}
	}
	var victim string
	soonest := int64(never)
	n := 0
	for k, e := range s.m { // Go starts map iteration at a random position
		if e.exp <= now {
			delete(s.m, k)
			return
		}
		if n == 0 || e.exp < soonest {
			victim, soonest = k, e.exp
		}
		if n++; n >= evictSample {
			break
		}
	}
	delete(s.m, victim)
}

// Publish implements Backend: in-process fan-out. A subscriber whose buffer
// (256 messages) is full misses the message rather than stalling the
// publisher, the same at-most-once contract as Redis pub/sub.
func (m *Memory) Publish(_ context.Context, channel string, msg []byte) error {
	if m.closed.Load() {
		return ErrClosed
	}
	m.subsMu.RLock()
	defer m.subsMu.RUnlock()
	for sub := range m.subs[channel] {
		select {
		case sub.ch <- bytes.Clone(msg):
		default:
		}
	}
	return nil
}

// Subscribe implements Backend.
func (m *Memory) Subscribe(ctx context.Context, channel string) (<-chan []byte, error) {
	if m.closed.Load() {
		return nil, ErrClosed
	}
	sub := &memSub{ch: make(chan []byte, subBuffer)}
	m.subsMu.Lock()
	set := m.subs[channel]
	if set == nil {
		set = make(map[*memSub]struct{})
		m.subs[channel] = set
	}
	set[sub] = struct{}{}
	m.subsMu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-m.done:
		}
		m.subsMu.Lock()
		defer m.subsMu.Unlock()
		if set := m.subs[channel]; set != nil {
			delete(set, sub)
			if len(set) == 0 {
				delete(m.subs, channel)
			}
		}
		if !sub.closed {
			sub.closed = true
			close(sub.ch)
		}
	}()
	return sub.ch, nil
}

// Ping implements Backend.
func (m *Memory) Ping(context.Context) error {
	if m.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Name implements Backend.
func (m *Memory) Name() string { return "memory" }

// Close implements Backend: later calls fail with ErrClosed and every
// subscription channel is closed.
func (m *Memory) Close() error {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.closed.Swap(true) {
		return nil
	}
	close(m.done)
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	for _, set := range m.subs {
		for sub := range set {
			if !sub.closed {
				sub.closed = true
				close(sub.ch)
			}
		}
	}
	m.subs = make(map[string]map[*memSub]struct{})
	return nil
}

// len reports the number of numeric and KV keys held, expired ones included
// (tests use it to check the bounds).
func (m *Memory) len() (keys, kv int) {
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		keys += s.n
		s.mu.Unlock()
		k := &m.kv[i]
		k.mu.Lock()
		kv += len(k.m)
		k.mu.Unlock()
	}
	return keys, kv
}
