package decision

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiguard/apiguard/internal/state"
)

// Options tune a Store. Zero values take the defaults.
type Options struct {
	// Clock is wall time (default time.Now). Expiry compares it with the
	// absolute Expires of each decision, so instances agree on when a
	// decision ends as well as their clocks agree.
	Clock state.Clock
	// Prefix starts every backend key and the change feed's channel
	// (default "decisions/"); stores with different prefixes are
	// independent.
	Prefix string
	// ResyncInterval is how often the snapshot is reconciled with the
	// backend (default 1s): the longest a decision can go unseen when its
	// change-feed message was lost.
	ResyncInterval time.Duration
	// MaxDecisions bounds the decisions an instance keeps (default
	// 100000); see the package doc.
	MaxDecisions int
	Logger       *slog.Logger
}

const (
	defaultPrefix       = "decisions/"
	defaultResync       = time.Second
	defaultMaxDecisions = 100_000
	// The snapshot is split in nShards so that a change copies 1/nShards
	// of it: it is copy-on-write, and copying all of 100k decisions for
	// every Add would cost milliseconds.
	shardBits = 6
	nShards   = 1 << shardBits
	// feedBatch bounds the feed messages applied in one snapshot update.
	feedBatch = 256
)

// Store is the decision set of one gateway instance, kept in sync with the
// shared backend. Match and MatchIP are safe for concurrent use with
// everything and never block; writers serialise on an internal mutex.
type Store struct {
	b        state.Backend
	clock    state.Clock
	prefix   string
	channel  string
	interval time.Duration
	max      int
	log      *slog.Logger
	origin   string // this Store's id on the change feed

	// The snapshot read by Match: immutable shards and network index,
	// replaced whole by writers.
	shards [nShards]atomic.Pointer[shard]
	nets   atomic.Pointer[netIndex]
	seed   uint64 // address shard hash seed
	hseed  maphash.Seed
	count  atomic.Int64
	// skipped counts backend entries that did not decode or validate,
	// since the last log.
	skipped atomic.Int64

	mu  sync.Mutex        // serialises writers; guards the fields below
	all map[string]*entry // by ID: the writers' view of the snapshot
	// replay records the changes applied while a resync Scan runs, so
	// that the reconciliation, which starts from the Scan, replays them.
	replay    *[]change
	dropped   int // decisions not kept because of the cap, since the last log
	lastWarn  time.Time
	syncedAt  time.Time
	syncErr   error
	started   bool
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// entry is a decision in the snapshot.
type entry struct {
	d    Decision
	exp  int64 // d.Expires in Unix nanoseconds
	rank int8
}

// shard holds the decisions of the keys that hash to it. Lists are sorted
// best first (see better) and never modified once published.
type shard struct {
	keys  map[string][]*entry // every key but ip and net
	addrs map[akey][]*entry   // ip keys
}

// akey is an address as two integers, IPv4 in its IPv4-mapped form: it is
// cheaper to hash than a netip.Addr or netip.Prefix (which carry a zone
// handle), and masking it is two integer operations.
type akey [2]uint64

func keyOf(a netip.Addr) akey {
	b := a.As16()
	return akey{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// mask keeps the first bits (0..128) of the address hi, lo. It works on
// two scalars rather than an akey so the hot loop stays in registers.
func mask(hi, lo uint64, bits int) (uint64, uint64) {
	switch {
	case bits >= 128:
		return hi, lo
	case bits >= 64:
		return hi, lo &^ (^uint64(0) >> (bits - 64))
	}
	return hi &^ (^uint64(0) >> bits), 0
}

// netIndex holds the net decisions in one level per prefix length present,
// longest first, IPv4 and IPv6 apart: MatchIP masks the address once per
// level and probes its map. Levels are immutable once published.
type netIndex struct {
	v4, v6 []*level
}

// level is the networks of one prefix length, keyed by masked address.
// bits counts in the 128-bit space (an IPv4 /24 is 120). filter has the
// bit filterIndex(k) set for every key k of m: most addresses are in no
// blocked network, and testing one bit per level is several times cheaper
// than a map probe, so a miss costs a few nanoseconds per level.
type level struct {
	bits   int
	m      map[akey][]*entry
	filter *[1 << filterBits / 64]uint64
}

// filterBits sizes a level's filter: 8 KiB, under 5% false positives up
// to ~3000 networks of one length.
const filterBits = 16

func filterIndex(hi, lo uint64) uint32 {
	return uint32((hi*0x9E3779B97F4A7C15 ^ lo*0xC2B2AE3D27D4EB4F ^ lo>>29) >> (64 - filterBits))
}

func (l *level) mayContain(hi, lo uint64) bool {
	i := filterIndex(hi, lo)
	return l.filter[i/64]&(1<<(i%64)) != 0
}

func (n *netIndex) find(v4 bool, bits int) *level {
	ls := n.v6
	if v4 {
		ls = n.v4
	}
	for _, l := range ls {
		if l.bits == bits {
			return l
		}
	}
	return nil
}

// change is one put (d != nil) or delete of the decision set.
type change struct {
	id string
	d  *Decision
}

// message is the change feed's wire format.
type message struct {
	Op       string    `json:"op"` // "put" or "del"
	From     string    `json:"from"`
	Decision *Decision `json:"decision,omitempty"`
	IDs      []string  `json:"ids,omitempty"`
}

// NewStore returns a Store over b. Call Start to follow the other
// instances; without it the Store sees only its own changes.
func NewStore(b state.Backend, o Options) (*Store, error) {
	if b == nil {
		return nil, errors.New("decision: nil backend")
	}
	if o.ResyncInterval < 0 || o.MaxDecisions < 0 {
		return nil, errors.New("decision: negative ResyncInterval or MaxDecisions")
	}
	if o.Prefix == "" {
		o.Prefix = defaultPrefix
	}
	if o.ResyncInterval == 0 {
		o.ResyncInterval = defaultResync
	}
	if o.MaxDecisions == 0 {
		o.MaxDecisions = defaultMaxDecisions
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var rnd [16]byte
	_, _ = rand.Read(rnd[:])
	s := &Store{
		b:        b,
		clock:    o.Clock,
		prefix:   o.Prefix,
		channel:  o.Prefix + "feed",
		interval: o.ResyncInterval,
		max:      o.MaxDecisions,
		log:      o.Logger,
		origin:   hex.EncodeToString(rnd[:8]),
		seed:     binary.LittleEndian.Uint64(rnd[8:]) | 1,
		hseed:    maphash.MakeSeed(),
		all:      make(map[string]*entry),
	}
	for i := range s.shards {
		s.shards[i].Store(&shard{keys: map[string][]*entry{}, addrs: map[akey][]*entry{}})
	}
	s.nets.Store(&netIndex{})
	return s, nil
}

// Start subscribes to the change feed, loads every decision and keeps the
// snapshot in sync until ctx ends or Close is called. A backend that is
// down does not fail Start: the Store keeps resyncing, and Synced reports
// the error meanwhile.
func (s *Store) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("decision: store already started")
	}
	s.started = true
	ctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	// Held until the goroutines are running, so a concurrent Close waits
	// for them.
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	// Subscribe before the first Scan so no change falls between them.
	feed, err := s.b.Subscribe(ctx, s.channel)
	if err != nil {
		cancel()
		return fmt.Errorf("decision: subscribe: %w", err)
	}
	if err := s.resync(ctx); err != nil {
		s.log.Warn("decision: initial sync failed; retrying", "error", err, "every", s.interval)
	}
	s.wg.Add(2)
	go s.follow(ctx, feed)
	go s.resyncLoop(ctx)
	return nil
}

// Close stops the goroutines of Start and waits for them. The snapshot
// stays readable.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		cancel := s.cancel
		s.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		s.wg.Wait()
	})
	return nil
}

// Synced returns when the last resync succeeded and the error of the last
// attempt (nil when it succeeded), for readiness checks.
func (s *Store) Synced() (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncedAt, s.syncErr
}

// Len is the number of decisions in the snapshot, expired ones not yet
// swept included.
func (s *Store) Len() int { return int(s.count.Load()) }

// Add stores d with a TTL up to d.Expires, applies it to this instance at
// once and announces it on the change feed. It returns d as stored:
// canonical key, ID, times in UTC milliseconds. Re-adding a decision with
// the same ID replaces it. A failed announcement is only logged: the
// other instances' resync picks the decision up.
func (s *Store) Add(ctx context.Context, d Decision) (Decision, error) {
	now := s.clock()
	if err := d.normalize(now); err != nil {
		return Decision{}, err
	}
	s.mu.Lock()
	_, exists := s.all[d.ID]
	full := !exists && len(s.all) >= s.max && !s.outranksWorst(&d)
	s.mu.Unlock()
	if full {
		return Decision{}, fmt.Errorf("%w: %d kept (MaxDecisions), none ranked below this one", ErrFull, s.max)
	}
	val, err := json.Marshal(&d)
	if err != nil {
		return Decision{}, fmt.Errorf("decision: encode: %w", err)
	}
	if err := s.b.Put(ctx, s.prefix+d.ID, val, d.Expires.Sub(now)); err != nil {
		return Decision{}, fmt.Errorf("decision: store %s: %w", d.ID, err)
	}
	c := d
	s.apply([]change{{id: d.ID, d: &c}})
	s.bumpVersion(ctx)
	s.publish(ctx, message{Op: "put", Decision: &d})
	// The snapshot holds c's maps: hand the caller its own.
	d.Evidence, d.Thresholds = cloneMap(d.Evidence), cloneMap(d.Thresholds)
	return d, nil
}

// Delete removes the decision with ID idOrKey or, when idOrKey is a key
// (it contains ':'), every decision for that key. ErrNotFound when none
// exists.
func (s *Store) Delete(ctx context.Context, idOrKey string) error {
	var ids []string
	if strings.Contains(idOrKey, ":") {
		key, err := ParseKey(idOrKey)
		if err != nil {
			return err
		}
		// The backend is the authority: a decision made elsewhere a
		// moment ago may not be in the snapshot yet.
		all, err := s.scan(ctx)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, d := range all {
			if d.Key == key && !seen[d.ID] {
				ids, seen[d.ID] = append(ids, d.ID), true
			}
		}
		s.mu.Lock()
		for id, e := range s.all {
			if e.d.Key == key && !seen[id] {
				ids, seen[id] = append(ids, id), true
			}
		}
		s.mu.Unlock()
	} else {
		if !validID(idOrKey) {
			return fmt.Errorf("%w: %q is neither an id nor a key", ErrInvalid, idOrKey)
		}
		_, found, err := s.b.Get(ctx, s.prefix+idOrKey)
		if err != nil {
			return fmt.Errorf("decision: get %s: %w", idOrKey, err)
		}
		s.mu.Lock()
		_, local := s.all[idOrKey]
		s.mu.Unlock()
		if found || local {
			ids = []string{idOrKey}
		}
	}
	if len(ids) == 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, idOrKey)
	}
	slices.Sort(ids)
	changes := make([]change, len(ids))
	for i, id := range ids {
		if err := s.b.Delete(ctx, s.prefix+id); err != nil {
			return fmt.Errorf("decision: delete %s: %w", id, err)
		}
		changes[i] = change{id: id}
	}
	s.apply(changes)
	s.bumpVersion(ctx)
	s.publish(ctx, message{Op: "del", IDs: ids})
	return nil
}

// List returns every live decision in the backend, newest first (then by
// ID), which is the order the admin API and CLI print.
func (s *Store) List(ctx context.Context) ([]Decision, error) {
	ds, err := s.scan(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ds, func(a, b Decision) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return ds, nil
}

// scan lists and decodes the live decisions of the backend, skipping
// entries that do not decode or validate (counted in s.skipped, logged by
// resync).
func (s *Store) scan(ctx context.Context) ([]Decision, error) {
	// Over the cap so the reconciliation can tell, and rank, an excess.
	entries, err := s.b.Scan(ctx, s.prefix, s.max+s.max/4+16)
	if err != nil {
		return nil, fmt.Errorf("decision: scan: %w", err)
	}
	now := s.clock()
	out := make([]Decision, 0, len(entries))
	for _, e := range entries {
		id := strings.TrimPrefix(e.Key, s.prefix)
		var d Decision
		err := json.Unmarshal(e.Value, &d)
		if err == nil && d.ID != id {
			err = fmt.Errorf("stored under id %q", id)
		}
		if err == nil {
			err = d.normalize(now)
		}
		if err != nil {
			if !d.Expires.IsZero() && !d.Expires.After(now) {
				continue // expired since the Scan: not an error
			}
			s.skipped.Add(1)
			s.log.Debug("decision: skipping invalid entry", "id", id, "error", err)
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

func (s *Store) publish(ctx context.Context, m message) {
	m.From = s.origin
	b, err := json.Marshal(&m)
	if err == nil {
		err = s.b.Publish(ctx, s.channel, b)
	}
	if err != nil {
		s.log.Warn("decision: change feed publish failed; other instances will see the change at their next resync", "op", m.Op, "error", err)
	}
}

// follow applies the change feed's messages from other instances, in
// batches of what has arrived, until the feed closes.
func (s *Store) follow(ctx context.Context, feed <-chan []byte) {
	defer s.wg.Done()
	var batch []change
	for {
		var msg []byte
		var ok bool
		select {
		case msg, ok = <-feed:
		case <-ctx.Done():
			return
		}
		if !ok {
			return
		}
		batch = s.decodeMessage(msg, batch[:0])
	drain:
		for len(batch) < feedBatch {
			select {
			case msg, ok = <-feed:
				if !ok {
					break drain
				}
				batch = s.decodeMessage(msg, batch)
			default:
				break drain
			}
		}
		if len(batch) > 0 {
			s.apply(batch)
		}
		if !ok {
			return
		}
	}
}

func (s *Store) decodeMessage(b []byte, batch []change) []change {
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		s.log.Warn("decision: undecodable change feed message", "error", err)
		return batch
	}
	if m.From == s.origin {
		return batch // applied when made
	}
	switch m.Op {
	case "put":
		if m.Decision == nil {
			return batch
		}
		d := *m.Decision
		if err := d.normalize(s.clock()); err != nil {
			// Expired in transit, or invalid: delete whatever we hold.
			if d.ID != "" {
				batch = append(batch, change{id: d.ID})
			}
			return batch
		}
		return append(batch, change{id: d.ID, d: &d})
	case "del":
		for _, id := range m.IDs {
			batch = append(batch, change{id: id})
		}
	}
	return batch
}

// fullResyncEvery is how many intervals may pass without a full Scan
// while the version counter says nothing changed: it bounds how long a
// decision written to the backend by something other than a Store (or
// whose counter increment was lost) stays unseen.
const fullResyncEvery = 30

// versionKey is the counter every Add and Delete increments. It sits
// outside the prefix, so Scans of the decisions never return it.
func (s *Store) versionKey() string { return strings.TrimSuffix(s.prefix, "/") + ".version" }

// bumpVersion tells the other instances' resync that something changed.
// A failure only costs them a later full Scan.
func (s *Store) bumpVersion(ctx context.Context) {
	if _, err := s.b.Incr(ctx, s.versionKey(), 1, 0); err != nil {
		s.log.Debug("decision: version counter not incremented", "error", err)
	}
}

// resyncLoop reconciles the snapshot every interval, but Scans the backend
// (which on Redis walks the whole keyspace) only when the version counter
// moved or fullResyncEvery intervals have passed; reading the counter is
// one round trip.
func (s *Store) resyncLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	var last int64 = -1
	idle := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			v, err := s.b.Incr(ctx, s.versionKey(), 0, 0)
			if err == nil && v == last && idle < fullResyncEvery {
				idle++
				continue
			}
			if s.resync(ctx) == nil && err == nil { // resync logs itself
				last, idle = v, 0
			}
		}
	}
}

// resync reconciles the snapshot with a Scan of the backend: decisions it
// missed are added, deleted ones removed, expired ones swept. Changes
// applied while the Scan runs are replayed on top of it, since the Scan
// may predate them.
func (s *Store) resync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(5*time.Second, 2*s.interval))
	defer cancel()
	s.mu.Lock()
	var rec []change
	s.replay = &rec
	s.mu.Unlock()

	ds, err := s.scan(ctx)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.replay = nil
	// Log transitions only: a backend that stays down must not write a
	// line every interval.
	switch {
	case err != nil && s.syncErr == nil && ctx.Err() == nil:
		s.log.Warn("decision: resync failed; enforcing the decisions already known", "error", err)
	case err == nil && s.syncErr != nil:
		s.log.Info("decision: resync recovered")
	}
	s.syncErr = err
	if err != nil {
		return err
	}
	s.syncedAt = s.clock()
	target := make(map[string]*Decision, len(ds))
	for i := range ds {
		target[ds[i].ID] = &ds[i]
	}
	for _, c := range rec {
		if c.d != nil {
			target[c.id] = c.d
		} else {
			delete(target, c.id)
		}
	}
	now := s.clock().UnixNano()
	var changes []change
	for id, e := range s.all {
		if d, ok := target[id]; !ok || e.exp <= now {
			changes = append(changes, change{id: id})
		} else if equal(&e.d, d) {
			delete(target, id) // unchanged
		}
	}
	for id, d := range target {
		if d.Expires.UnixNano() > now {
			changes = append(changes, change{id: id, d: d})
		}
	}
	s.applyLocked(changes)
	// At most one warning a minute for conditions that persist.
	if n := s.skipped.Load(); (s.dropped > 0 || n > 0) && time.Since(s.lastWarn) >= time.Minute {
		s.lastWarn = time.Now()
		if s.dropped > 0 {
			s.log.Warn("decision: more decisions than MaxDecisions; the lowest-ranked were not kept", "max", s.max, "dropped", s.dropped)
		}
		if n > 0 {
			s.log.Warn("decision: skipped backend entries that are not valid decisions", "prefix", s.prefix, "count", n)
		}
		s.dropped = 0
		s.skipped.Store(0)
	}
	return nil
}

func (s *Store) apply(changes []change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.replay != nil {
		*s.replay = append(*s.replay, changes...)
	}
	s.applyLocked(changes)
}

// applyLocked applies changes to s.all and publishes a new snapshot,
// copying only the shards and index the changes touch. s.mu is held.
func (s *Store) applyLocked(changes []change) {
	if len(changes) == 0 {
		return
	}
	tx := txn{s: s}
	for _, c := range changes {
		if old, ok := s.all[c.id]; ok {
			tx.remove(old)
			delete(s.all, c.id)
		}
		if c.d == nil {
			continue
		}
		if len(s.all) >= s.max && !s.makeRoom(&tx, c.d) {
			s.dropped++
			continue
		}
		e := &entry{d: *c.d, exp: c.d.Expires.UnixNano(), rank: rank(c.d)}
		s.all[c.id] = e
		tx.insert(e)
	}
	tx.commit()
	s.count.Store(int64(len(s.all)))
}

// worst returns the lowest-ranked decision kept (O(n): only when full).
func (s *Store) worst() *entry {
	var w *entry
	for _, e := range s.all {
		if w == nil || better(w, e) {
			w = e
		}
	}
	return w
}

// outranksWorst reports whether d would displace the lowest-ranked
// decision of a full store.
func (s *Store) outranksWorst(d *Decision) bool {
	w := s.worst()
	return w != nil && better(&entry{d: *d, exp: d.Expires.UnixNano(), rank: rank(d)}, w)
}

// makeRoom evicts the lowest-ranked decision if d outranks it.
func (s *Store) makeRoom(tx *txn, d *Decision) bool {
	if !s.outranksWorst(d) {
		return false
	}
	w := s.worst()
	tx.remove(w)
	delete(s.all, w.d.ID)
	s.dropped++
	return true
}

// better reports whether a wins over b: higher rank, then manual source,
// then later expiry, then smaller ID (for determinism).
func better(a, b *entry) bool {
	if a.rank != b.rank {
		return a.rank > b.rank
	}
	if am, bm := a.d.Source == SourceManual, b.d.Source == SourceManual; am != bm {
		return am
	}
	if a.exp != b.exp {
		return a.exp > b.exp
	}
	return a.d.ID < b.d.ID
}

// txn is a copy-on-write update of the snapshot: it copies each shard or
// network level it touches once, and commit publishes them.
type txn struct {
	s      *Store
	shards map[int]*shard
	levels map[levelID]*level // touched network levels, copied
}

type levelID struct {
	v4   bool
	bits int
}

// keyClass splits a canonical key for indexing: kind 1 is an address,
// 2 a network (k masked, bits in the 128-bit space), 0 anything else.
func keyClass(key string) (k akey, v4 bool, bits int, kind int) {
	switch {
	case strings.HasPrefix(key, "ip:"):
		if a, err := netip.ParseAddr(key[3:]); err == nil {
			return keyOf(a), a.Is4(), 128, 1
		}
	case strings.HasPrefix(key, "net:"):
		if p, err := netip.ParsePrefix(key[4:]); err == nil {
			p = canonPrefix(p)
			bits := p.Bits()
			if p.Addr().Is4() {
				bits += 96
			}
			return keyOf(p.Addr()), p.Addr().Is4(), bits, 2
		}
	}
	return akey{}, false, 0, 0
}

func (t *txn) shard(i int) *shard {
	if t.shards == nil {
		t.shards = map[int]*shard{}
	}
	if sh, ok := t.shards[i]; ok {
		return sh
	}
	old := t.s.shards[i].Load()
	sh := &shard{keys: maps.Clone(old.keys), addrs: maps.Clone(old.addrs)}
	t.shards[i] = sh
	return sh
}

func (t *txn) level(v4 bool, bits int) *level {
	id := levelID{v4, bits}
	if t.levels == nil {
		t.levels = map[levelID]*level{}
	}
	if l, ok := t.levels[id]; ok {
		return l
	}
	l := &level{bits: bits, m: map[akey][]*entry{}}
	if old := t.s.nets.Load().find(v4, bits); old != nil {
		l.m = maps.Clone(old.m)
	}
	t.levels[id] = l
	return l
}

func (t *txn) insert(e *entry) {
	k, v4, bits, kind := keyClass(e.d.Key)
	switch kind {
	case 1:
		sh := t.shard(t.s.addrShard(k))
		sh.addrs[k] = withEntry(sh.addrs[k], e)
	case 2:
		l := t.level(v4, bits)
		l.m[k] = withEntry(l.m[k], e)
	default:
		sh := t.shard(t.s.keyShard(e.d.Key))
		sh.keys[e.d.Key] = withEntry(sh.keys[e.d.Key], e)
	}
}

func (t *txn) remove(e *entry) {
	k, v4, bits, kind := keyClass(e.d.Key)
	switch kind {
	case 1:
		sh := t.shard(t.s.addrShard(k))
		if l := withoutEntry(sh.addrs[k], e); l == nil {
			delete(sh.addrs, k)
		} else {
			sh.addrs[k] = l
		}
	case 2:
		lv := t.level(v4, bits)
		if l := withoutEntry(lv.m[k], e); l == nil {
			delete(lv.m, k)
		} else {
			lv.m[k] = l
		}
	default:
		sh := t.shard(t.s.keyShard(e.d.Key))
		if l := withoutEntry(sh.keys[e.d.Key], e); l == nil {
			delete(sh.keys, e.d.Key)
		} else {
			sh.keys[e.d.Key] = l
		}
	}
}

func (t *txn) commit() {
	for i, sh := range t.shards {
		t.s.shards[i].Store(sh)
	}
	if len(t.levels) == 0 {
		return
	}
	old := t.s.nets.Load()
	n := &netIndex{}
	for _, fam := range []struct {
		v4  bool
		old []*level
		out *[]*level
	}{{true, old.v4, &n.v4}, {false, old.v6, &n.v6}} {
		var ls []*level
		for _, l := range fam.old {
			if _, touched := t.levels[levelID{fam.v4, l.bits}]; !touched {
				ls = append(ls, l)
			}
		}
		for id, l := range t.levels {
			if id.v4 == fam.v4 && len(l.m) > 0 {
				l.filter = new([1 << filterBits / 64]uint64)
				for k := range l.m {
					i := filterIndex(k[0], k[1])
					l.filter[i/64] |= 1 << (i % 64)
				}
				ls = append(ls, l)
			}
		}
		slices.SortFunc(ls, func(a, b *level) int { return cmp.Compare(b.bits, a.bits) })
		*fam.out = ls
	}
	t.s.nets.Store(n)
}

// withEntry returns a new list with e inserted in rank order.
func withEntry(l []*entry, e *entry) []*entry {
	out := make([]*entry, 0, len(l)+1)
	out = append(out, l...)
	i, _ := slices.BinarySearchFunc(out, e, func(x, y *entry) int {
		if better(x, y) {
			return -1
		}
		return 1
	})
	return slices.Insert(out, i, e)
}

// withoutEntry returns a new list without e, nil when empty.
func withoutEntry(l []*entry, e *entry) []*entry {
	out := make([]*entry, 0, len(l))
	for _, x := range l {
		if x != e {
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Shard hashing with per-Store seeds. It only spreads the copy-on-write
// cost of changes, so the address hash is a cheap multiplicative mix.
func (s *Store) keyShard(k string) int {
	return int(maphash.String(s.hseed, k) >> (64 - shardBits))
}

func (s *Store) addrShard(k akey) int {
	h := (k[0]*0x9E3779B97F4A7C15 ^ k[1]) * (s.seed | 1)
	return int((h * 0x9E3779B97F4A7C15) >> (64 - shardBits))
}

// Match returns the winning live decision among those for keys (see the
// package doc for the order). Keys must be canonical (see ParseKey; the
// Key helpers build them); an ip key also matches the networks containing
// it, and a net key the networks containing it. Match reads only the
// in-memory snapshot, takes no lock and allocates nothing. The Evidence
// and Thresholds maps of the result are shared: do not modify them.
func (s *Store) Match(keys ...string) (Decision, bool) {
	m := matcher{s: s}
	for _, k := range keys {
		m.key(k)
	}
	return m.result()
}

// MatchIP is Match for the client address ip (its ip decisions and every
// net decision containing it) and otherKeys, without building the ip key.
func (s *Store) MatchIP(ip netip.Addr, otherKeys ...string) (Decision, bool) {
	m := matcher{s: s}
	m.addr(ip)
	for _, k := range otherKeys {
		m.key(k)
	}
	return m.result()
}

// matcher is the state of one Match. It reads the clock only once it has
// found a candidate, so the common miss costs no clock read.
type matcher struct {
	s    *Store
	now  int64
	best *entry
}

func (m *matcher) result() (Decision, bool) {
	if m.best == nil {
		return Decision{}, false
	}
	return m.best.d, true
}

// consider takes the first live entry of l (sorted best first) if it beats
// the best so far.
func (m *matcher) consider(l []*entry) {
	if len(l) == 0 {
		return
	}
	if m.now == 0 {
		m.now = m.s.clock().UnixNano()
	}
	for _, e := range l {
		if e.exp > m.now {
			if m.best == nil || better(e, m.best) {
				m.best = e
			}
			return
		}
	}
}

func (m *matcher) key(k string) {
	switch {
	case strings.HasPrefix(k, "ip:"):
		if a, err := netip.ParseAddr(k[3:]); err == nil {
			m.addr(a)
		}
		return
	case strings.HasPrefix(k, "net:"):
		if p, err := netip.ParsePrefix(k[4:]); err == nil {
			p = canonPrefix(p)
			bits := p.Bits()
			if p.Addr().Is4() {
				bits += 96
			}
			m.nets(keyOf(p.Addr()), p.Addr().Is4(), bits)
		}
		return
	}
	m.consider(m.s.shards[m.s.keyShard(k)].Load().keys[k])
}

func (m *matcher) addr(a netip.Addr) {
	if !a.IsValid() {
		return
	}
	a = a.Unmap()
	k := keyOf(a)
	m.consider(m.s.shards[m.s.addrShard(k)].Load().addrs[k])
	m.nets(k, a.Is4(), 128)
}

// nets considers the net decisions whose network contains k/bits.
func (m *matcher) nets(k akey, v4 bool, bits int) {
	n := m.s.nets.Load()
	ls := n.v6
	if v4 {
		ls = n.v4
	}
	for _, l := range ls {
		if l.bits <= bits {
			if hi, lo := mask(k[0], k[1], l.bits); l.mayContain(hi, lo) {
				m.consider(l.m[akey{hi, lo}])
			}
		}
	}
}
