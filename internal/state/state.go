// Package state is apiguard's shared-state layer: GCRA rate limits, quotas,
// concurrency slots, counters, a TTL key-value store and a change feed.
//
// Two backends implement Backend: Memory (the default, zero setup, one
// process) and Redis (shared by every gateway instance). Both compute GCRA in
// integer nanoseconds, so their decisions agree exactly, and both charge
// every limit of a decision atomically: a request denied by any limit
// charges none.
//
// GCRA (generic cell rate algorithm) per limit: emission interval
// T = Period/Count, tolerance τ = T*Burst, and one stored number, the
// theoretical arrival time tat. A request of cost c at time now computes
// tat' = max(tat, now) + c*T and is admitted iff tat'-now <= τ. Unlike a
// fixed window it never admits 2×Count around a window edge, and unlike a
// sliding log it stores 8 bytes per key.
package state

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"
)

// Limit is one GCRA limit: Count cost units per Period, admitting bursts of
// up to Burst units.
type Limit struct {
	Count  int64
	Period time.Duration
	// Burst >= 1 is the bucket size. Burst == Count means "Count per
	// Period, all at once allowed".
	Burst int64
}

// Result of one limit for one decision.
type Result struct {
	Remaining  int64         // units still admissible right now after this decision
	ResetAfter time.Duration // until the bucket is full again (RateLimit header "t")
	RetryAfter time.Duration // > 0 when this limit denied: when cost will fit
}

// Decision is the outcome of RateLimit or Charge.
type Decision struct {
	Allowed bool
	// Results has one entry per limit, in the order of the limits. It is
	// the caller's res slice when that had room, so it is only valid until
	// res is reused.
	Results []Result
}

// Entry is one live key-value entry returned by Scan.
type Entry struct {
	Key       string
	Value     []byte
	ExpiresAt time.Time // zero when the entry does not expire
}

// Backend is the shared state used by the gateway. Implementations are safe
// for concurrent use.
type Backend interface {
	// RateLimit applies every limit to key atomically (GCRA): the request is
	// admitted only if ALL limits admit cost; then all are charged; a denied
	// request charges nothing. cost 0 only reports (Allowed is then false
	// only when a Charge pushed the key beyond a limit; Remaining tells
	// whether one more unit fits). Keys of the limits are key+":"+index.
	// res may be passed to avoid allocation (len(limits)).
	RateLimit(ctx context.Context, key string, limits []Limit, cost int64, res []Result) (Decision, error)
	// Charge always adds cost to every limit of key (response-based
	// counting: e.g. only 401 responses of a login route count), even
	// beyond the limit, and returns the state after. Allowed reports
	// whether the state after is within every limit; RetryAfter of a limit
	// that is exceeded is the time until it is back within it.
	Charge(ctx context.Context, key string, limits []Limit, cost int64, res []Result) (Decision, error)
	// Acquire takes one of max concurrent slots for key; ttl bounds a slot
	// whose Release never comes (crash): the slot count of key expires ttl
	// after the last Acquire. Release gives one back.
	Acquire(ctx context.Context, key string, max int64, ttl time.Duration) (bool, error)
	Release(ctx context.Context, key string) error
	// Incr adds delta to a counter that expires ttl after its creation
	// (ttl <= 0: never).
	Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error)
	// Key-value with TTL (decisions, revocations); ttl <= 0 means no
	// expiry. Put overwrites; PutNX stores only when absent and reports
	// whether it stored (single-use nonces, replay detection); Get, Delete;
	// Scan lists live entries whose key starts with prefix, at most limit of
	// them (limit <= 0: DefaultScanLimit), in no particular order.
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error
	PutNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Delete(ctx context.Context, key string) error
	Scan(ctx context.Context, prefix string, limit int) ([]Entry, error)
	// Change feed: instances learn of decisions through it. Delivery is at
	// most once (a subscriber that is disconnected or too slow misses
	// messages), so subscribers resynchronise with Scan after a gap.
	// Subscribe's channel closes when ctx ends; it survives reconnects.
	Publish(ctx context.Context, channel string, msg []byte) error
	Subscribe(ctx context.Context, channel string) (<-chan []byte, error)
	Ping(ctx context.Context) error
	Name() string // "memory" or "redis"
	Close() error
}

// Clock returns the current time; it is injectable for tests. nil means
// time.Now.
type Clock func() time.Time

// DefaultScanLimit bounds Scan when it is called with limit <= 0.
const DefaultScanLimit = 1000

// Errors returned by both backends.
var (
	ErrInvalidLimit = errors.New("state: invalid limit")
	ErrInvalidCost  = errors.New("state: cost must be >= 0")
	ErrEmptyKey     = errors.New("state: empty key")
	ErrClosed       = errors.New("state: backend closed")
)

// maxSpan bounds T and τ. Redis evaluates GCRA in Lua, whose numbers are
// float64: integers up to 2^53 ns (104 days) are exact there. Limits with a
// longer tolerance would silently lose nanoseconds in Redis and not in
// memory, so both backends refuse them and the two agree exactly.
const maxSpan = 1 << 53

// checkLimits validates a decision's arguments (used by Redis; Memory
// inlines the same checks into its single pass over the limits).
func checkLimits(key string, limits []Limit, cost int64) error {
	if key == "" {
		// An empty key would make the Redis hash tag "{}" empty, so Redis
		// Cluster would spread the limits of one decision over several slots.
		return ErrEmptyKey
	}
	if cost < 0 {
		return ErrInvalidCost
	}
	for i := range limits {
		if _, ok := emissionOf(&limits[i]); !ok {
			return limitError(i, limits[i])
		}
	}
	return nil
}

func limitError(i int, l Limit) error {
	return fmt.Errorf("%w: limit %d %+v (need Count >= 1, Burst >= 1, Period/Count >= 1ns, Period/Count*Burst <= 2^53ns)",
		ErrInvalidLimit, i, l)
}

// emissionOf returns T = Period/Count of a limit and whether the limit is
// valid; τ is then T*Burst, known not to overflow. T is truncated to whole
// nanoseconds, so when Period/Count is not whole the sustained rate is high
// by less than 1/T (T in ns): under one part per million for any rate up to
// 1000/s, far below what any client can observe through network jitter.
func emissionOf(l *Limit) (int64, bool) {
	if l.Count < 1 || l.Period <= 0 || l.Burst < 1 {
		return 0, false
	}
	t := int64(l.Period) / l.Count
	if t < 1 {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(t), uint64(l.Burst))
	return t, hi == 0 && lo <= maxSpan
}

// mulSat returns a*b for a, b >= 0, saturating at 2^62 (far beyond any
// tolerance) so huge costs can neither overflow nor be admitted.
func mulSat(a, b int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > 1<<62 {
		return 1 << 62
	}
	return int64(lo)
}

// addSat returns a+b for b >= 0, saturating just below never.
func addSat(a, b int64) int64 {
	if c := a + b; c >= a && c < never {
		return c
	}
	return never - 1
}

// resultFor fills r for one limit given d = max(tat-now, 0) after the
// decision (tat'-now when charged, tat-now otherwise) and need, the
// tat'-now the request asked for (used for RetryAfter when it did not fit).
func resultFor(r *Result, t, tau, d, need int64, denied bool) {
	rem := int64(0)
	if d < tau {
		rem = (tau - d) / t
	}
	r.Remaining = rem
	r.ResetAfter = time.Duration(d)
	r.RetryAfter = 0
	if denied && need > tau {
		// Integer nanoseconds: after waiting exactly need-τ, tat'-now == τ,
		// which admits.
		r.RetryAfter = time.Duration(need - tau)
	}
}

// results returns res[:n], or a new slice when res is too short.
func results(res []Result, n int) []Result {
	if cap(res) >= n {
		return res[:n]
	}
	return make([]Result, n)
}

// ttlMillis converts a TTL to whole milliseconds for Redis, rounding up so
// an entry never expires before its TTL; <= 0 stays 0 (no expiry).
func ttlMillis(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return int64((ttl + time.Millisecond - 1) / time.Millisecond)
}

// never is the expiry of entries that do not expire.
const never = math.MaxInt64
