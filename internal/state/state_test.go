package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/testutil"
)

// fakeClock is an injectable clock that only moves when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// harness is one backend under test. advance moves its time: the fake
// clock for Memory, a real sleep for Redis (whose time is the server's).
// tol is how far a reported duration may lag the exact model (0 for the
// fake clock; round trips and sleep overshoot for Redis).
type harness struct {
	b       Backend
	advance func(time.Duration)
	exact   bool
	tol     time.Duration
}

func randPrefix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "apiguard-test:" + hex.EncodeToString(b) + ":"
}

// newRedisForTest connects to the shared test Redis with a unique key
// prefix, so parallel tests and packages never see each other's keys, and
// deletes the prefix's keys at the end.
func newRedisForTest(t testing.TB, prefix string) *Redis {
	t.Helper()
	addr := testutil.Redis(t)
	if prefix == "" {
		prefix = randPrefix()
	}
	r, err := NewRedis(RedisOptions{Addrs: []string{addr}, KeyPrefix: prefix, PoolSize: 128})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := r.c.Scan(ctx, 0, globEscape(prefix)+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			r.c.Del(ctx, keys...)
		}
		_ = r.Close()
	})
	return r
}

// forEachBackend runs fn against Memory (fake clock) and Redis.
func forEachBackend(t *testing.T, fn func(t *testing.T, h harness)) {
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		clk := newFakeClock()
		m := NewMemory(MemoryOptions{Clock: clk.Now})
		t.Cleanup(func() { _ = m.Close() })
		fn(t, harness{b: m, advance: clk.Advance, exact: true})
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		r := newRedisForTest(t, "")
		fn(t, harness{b: r, advance: time.Sleep, tol: 250 * time.Millisecond})
	})
}

// gcraStep is one step of a GCRA scenario. wait == waitRetry waits the
// RetryAfter reported by the previous step's first denying limit.
type gcraStep struct {
	wait      time.Duration
	exactOnly bool // needs a clock that can stop at an exact nanosecond
	charge    bool
	limits    []Limit // nil: the case's limits
	cost      int64
	allowed   bool
	want      []Result
}

const waitRetry = -1

// Limits used by the scenarios. T (the emission interval) is 400ms: long
// enough that Redis round trips never move Remaining, short enough to
// sleep through.
var (
	five   = Limit{Count: 5, Period: 2 * time.Second, Burst: 5}    // T=400ms τ=2s
	tenPer = Limit{Count: 10, Period: 10 * time.Second, Burst: 10} // T=1s τ=10s
	twoPer = Limit{Count: 2, Period: 10 * time.Second, Burst: 2}   // T=5s τ=10s
	burst3 = Limit{Count: 5, Period: 2 * time.Second, Burst: 3}    // T=400ms τ=1.2s
)

func r(rem int64, reset, retry time.Duration) Result {
	return Result{Remaining: rem, ResetAfter: reset, RetryAfter: retry}
}

const ms = time.Millisecond

var gcraCases = []struct {
	name   string
	limits []Limit
	steps  []gcraStep
}{
	{"burst exhausted then denied", []Limit{five}, []gcraStep{
		{cost: 1, allowed: true, want: []Result{r(4, 400*ms, 0)}},
		{cost: 1, allowed: true, want: []Result{r(3, 800*ms, 0)}},
		{cost: 1, allowed: true, want: []Result{r(2, 1200*ms, 0)}},
		{cost: 1, allowed: true, want: []Result{r(1, 1600*ms, 0)}},
		{cost: 1, allowed: true, want: []Result{r(0, 2000*ms, 0)}},
		{cost: 1, allowed: false, want: []Result{r(0, 2000*ms, 400*ms)}},
		{cost: 1, allowed: false, want: []Result{r(0, 2000*ms, 400*ms)}},
	}},
	{"retry after admits exactly when waited", []Limit{five}, []gcraStep{
		{cost: 5, allowed: true, want: []Result{r(0, 2000*ms, 0)}},
		{cost: 1, allowed: false, want: []Result{r(0, 2000*ms, 400*ms)}},
		{wait: 400*ms - 1, exactOnly: true, cost: 1, allowed: false, want: []Result{r(0, 1600*ms+1, 1)}},
		{wait: waitRetry, cost: 1, allowed: true, want: []Result{r(0, 2000*ms, 0)}},
		{cost: 1, allowed: false, want: []Result{r(0, 2000*ms, 400*ms)}},
	}},
	{"exact refill time", []Limit{five}, []gcraStep{
		{cost: 5, allowed: true, want: []Result{r(0, 2000*ms, 0)}},
		{wait: 800 * ms, cost: 0, allowed: true, want: []Result{r(2, 1200*ms, 0)}},
		{wait: 1200*ms - 1, exactOnly: true, cost: 0, allowed: true, want: []Result{r(4, 1, 0)}},
		{wait: 1200 * ms, cost: 0, allowed: true, want: []Result{r(5, 0, 0)}},
		{cost: 5, allowed: true, want: []Result{r(0, 2000*ms, 0)}},
	}},
	{"cost greater than one", []Limit{five}, []gcraStep{
		{cost: 3, allowed: true, want: []Result{r(2, 1200*ms, 0)}},
		{cost: 3, allowed: false, want: []Result{r(2, 1200*ms, 400*ms)}},
		{cost: 2, allowed: true, want: []Result{r(0, 2000*ms, 0)}},
	}},
	{"cost greater than burst is never admitted", []Limit{burst3}, []gcraStep{
		{cost: 4, allowed: false, want: []Result{r(3, 0, 400*ms)}},
		{wait: time.Hour, exactOnly: true, cost: 4, allowed: false, want: []Result{r(3, 0, 400*ms)}},
		{cost: 3, allowed: true, want: []Result{r(0, 1200*ms, 0)}},
	}},
	{"cost zero only reports", []Limit{five}, []gcraStep{
		{cost: 0, allowed: true, want: []Result{r(5, 0, 0)}},
		{cost: 2, allowed: true, want: []Result{r(3, 800*ms, 0)}},
		{cost: 0, allowed: true, want: []Result{r(3, 800*ms, 0)}},
		{cost: 0, allowed: true, want: []Result{r(3, 800*ms, 0)}},
	}},
	{"denied second limit charges nothing on the first", []Limit{tenPer, twoPer}, []gcraStep{
		{cost: 1, allowed: true, want: []Result{r(9, time.Second, 0), r(1, 5*time.Second, 0)}},
		{cost: 1, allowed: true, want: []Result{r(8, 2*time.Second, 0), r(0, 10*time.Second, 0)}},
		{cost: 1, allowed: false, want: []Result{r(8, 2*time.Second, 0), r(0, 10*time.Second, 5*time.Second)}},
		{cost: 1, allowed: false, want: []Result{r(8, 2*time.Second, 0), r(0, 10*time.Second, 5*time.Second)}},
		// Only the first limit (same key, index 0): still 8 left.
		{limits: []Limit{tenPer}, cost: 0, allowed: true, want: []Result{r(8, 2*time.Second, 0)}},
	}},
	{"denied first limit charges nothing on the second", []Limit{twoPer, tenPer}, []gcraStep{
		{cost: 2, allowed: true, want: []Result{r(0, 10*time.Second, 0), r(8, 2*time.Second, 0)}},
		{cost: 1, allowed: false, want: []Result{r(0, 10*time.Second, 5*time.Second), r(8, 2*time.Second, 0)}},
	}},
	{"charge beyond the limit", []Limit{five}, []gcraStep{
		{charge: true, cost: 2, allowed: true, want: []Result{r(3, 800*ms, 0)}},
		{charge: true, cost: 5, allowed: false, want: []Result{r(0, 2800*ms, 800*ms)}},
		{cost: 0, allowed: false, want: []Result{r(0, 2800*ms, 800*ms)}},
		{cost: 1, allowed: false, want: []Result{r(0, 2800*ms, 1200*ms)}},
		{wait: 800 * ms, cost: 0, allowed: true, want: []Result{r(0, 2000*ms, 0)}},
		{wait: 400 * ms, cost: 1, allowed: true, want: []Result{r(0, 2000*ms, 0)}},
	}},
	{"charge on several limits", []Limit{tenPer, twoPer}, []gcraStep{
		{charge: true, cost: 3, allowed: false, want: []Result{r(7, 3*time.Second, 0), r(0, 15*time.Second, 5*time.Second)}},
		{cost: 1, allowed: false, want: []Result{r(7, 3*time.Second, 0), r(0, 15*time.Second, 10*time.Second)}},
	}},
}

func TestGCRA(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h harness) {
		for _, tc := range gcraCases {
			// Serial: the cases share the harness's settable clock, and a
			// parallel case advancing it would refill another's bucket.
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				key := "gcra:" + tc.name
				var lastRetry time.Duration
				res := make([]Result, 0, 4)
				for i, st := range tc.steps {
					if st.exactOnly && !h.exact {
						continue
					}
					switch {
					case st.wait == waitRetry:
						if lastRetry <= 0 {
							t.Fatalf("step %d: no RetryAfter to wait for", i)
						}
						h.advance(lastRetry)
					case st.wait > 0:
						h.advance(st.wait)
					}
					limits := st.limits
					if limits == nil {
						limits = tc.limits
					}
					var d Decision
					var err error
					if st.charge {
						d, err = h.b.Charge(ctx, key, limits, st.cost, res)
					} else {
						d, err = h.b.RateLimit(ctx, key, limits, st.cost, res)
					}
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					if d.Allowed != st.allowed {
						t.Errorf("step %d: Allowed = %v, want %v (%+v)", i, d.Allowed, st.allowed, d.Results)
					}
					checkResults(t, i, h, d.Results, st.want)
					lastRetry = 0
					for _, r := range d.Results {
						lastRetry = max(lastRetry, r.RetryAfter)
					}
				}
			})
		}
	})
}

func checkResults(t *testing.T, step int, h harness, got, want []Result) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("step %d: %d results, want %d", step, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if h.exact {
			if g != w {
				t.Errorf("step %d limit %d: got %+v, want %+v", step, i, g, w)
			}
			continue
		}
		// Real time: durations lag the model by the time the steps took;
		// RetryAfter is rounded up to Redis TIME's microseconds.
		near := func(g, w time.Duration) bool {
			return g <= w+time.Microsecond && g >= w-h.tol && (w != 0) == (g != 0)
		}
		if g.Remaining != w.Remaining || !near(g.ResetAfter, w.ResetAfter) || !near(g.RetryAfter, w.RetryAfter) {
			t.Errorf("step %d limit %d: got %+v, want %+v (within %v)", step, i, g, w, h.tol)
		}
	}
}

func TestValidation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h harness) {
		ctx := context.Background()
		ok := []Limit{five}
		for _, tc := range []struct {
			name   string
			key    string
			limits []Limit
			cost   int64
			want   error
		}{
			{"empty key", "", ok, 1, ErrEmptyKey},
			{"negative cost", "k", ok, -1, ErrInvalidCost},
			{"zero count", "k", []Limit{{Count: 0, Period: time.Second, Burst: 1}}, 1, ErrInvalidLimit},
			{"zero period", "k", []Limit{{Count: 1, Period: 0, Burst: 1}}, 1, ErrInvalidLimit},
			{"zero burst", "k", []Limit{{Count: 1, Period: time.Second, Burst: 0}}, 1, ErrInvalidLimit},
			{"sub-nanosecond interval", "k", []Limit{{Count: 2, Period: 1, Burst: 1}}, 1, ErrInvalidLimit},
			{"tolerance beyond 2^53ns", "k", []Limit{{Count: 1, Period: 200 * 24 * time.Hour, Burst: 1}}, 1, ErrInvalidLimit},
			{"second limit invalid", "k", []Limit{five, {Count: 1, Period: time.Second}}, 1, ErrInvalidLimit},
		} {
			if _, err := h.b.RateLimit(ctx, tc.key, tc.limits, tc.cost, nil); !errors.Is(err, tc.want) {
				t.Errorf("RateLimit %s: err = %v, want %v", tc.name, err, tc.want)
			}
			if _, err := h.b.Charge(ctx, tc.key, tc.limits, tc.cost, nil); !errors.Is(err, tc.want) {
				t.Errorf("Charge %s: err = %v, want %v", tc.name, err, tc.want)
			}
		}
		// No limits: trivially allowed.
		d, err := h.b.RateLimit(ctx, "k", nil, 1, nil)
		if err != nil || !d.Allowed || len(d.Results) != 0 {
			t.Errorf("no limits: %+v, %v", d, err)
		}
		// 100 days fits (monthly quotas and then some).
		if _, err := h.b.RateLimit(ctx, "k", []Limit{{Count: 1000, Period: 100 * 24 * time.Hour, Burst: 1000}}, 1, nil); err != nil {
			t.Errorf("100-day limit: %v", err)
		}
	})
}

// TestResultSliceReuse: a res with room is used as Decision.Results.
func TestResultSliceReuse(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h harness) {
		res := make([]Result, 2)
		d, err := h.b.RateLimit(context.Background(), "reuse", []Limit{five, tenPer}, 1, res)
		if err != nil {
			t.Fatal(err)
		}
		if &d.Results[0] != &res[0] || len(d.Results) != 2 {
			t.Errorf("Results does not reuse res")
		}
		d, err = h.b.RateLimit(context.Background(), "reuse", []Limit{five, tenPer}, 1, res[:0:1])
		if err != nil || len(d.Results) != 2 {
			t.Errorf("short res: %+v %v", d, err)
		}
	})
}

func TestAcquireRelease(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h harness) {
		ctx := context.Background()
		acquire := func(key string, max int64, ttl time.Duration, want bool) {
			t.Helper()
			got, err := h.b.Acquire(ctx, key, max, ttl)
			if err != nil || got != want {
				t.Fatalf("Acquire(%s) = %v, %v; want %v", key, got, err, want)
			}
		}
		release := func(key string) {
			t.Helper()
			if err := h.b.Release(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
		acquire("c", 2, time.Minute, true)
		acquire("c", 2, time.Minute, true)
		acquire("c", 2, time.Minute, false)
		acquire("other", 2, time.Minute, true) // keys are independent
		release("c")
		acquire("c", 2, time.Minute, true)
		acquire("c", 2, time.Minute, false)
		// Releasing more than acquired never creates extra slots.
		for range 5 {
			release("c")
		}
		acquire("c", 2, time.Minute, true)
		acquire("c", 2, time.Minute, true)
		acquire("c", 2, time.Minute, false)
		release("never-acquired")

		// A slot whose Release never comes is freed ttl after the last Acquire.
		acquire("leak", 1, 300*ms, true)
		acquire("leak", 1, 300*ms, false)
		h.advance(450 * ms)
		acquire("leak", 1, 300*ms, true)

		if _, err := h.b.Acquire(ctx, "", 1, time.Second); !errors.Is(err, ErrEmptyKey) {
			t.Errorf("empty key: %v", err)
		}
	})
}

func TestIncr(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h harness) {
		ctx := context.Background()
		incr := func(key string, delta int64, ttl time.Duration, want int64) {
			t.Helper()
			got, err := h.b.Incr(ctx, key, delta, ttl)
			if err != nil || got != want {
				t.Fatalf("Incr(%s, %d) = %d, %v; want %d", key, delta, got, err, want)
			}
		}
		incr("n", 1, 500*ms, 1)
		incr("n", 2, 500*ms, 3)
		h.advance(100 * ms)
		incr("n", 1, 500*ms, 4) // the TTL runs from creation, not from the last Incr
		h.advance(450 * ms)
		incr("n", 1, 500*ms, 1)
		incr("n", -3, 500*ms, -2)
		// Counters, limits and slots of one key are separate.
		if _, err := h.b.RateLimit(ctx, "n", []Limit{five}, 5, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := h.b.Acquire(ctx, "n", 5, time.Minute); err != nil {
			t.Fatal(err)
		}
		incr("n", 1, 500*ms, -1)
		incr("forever", 5, 0, 5)
		h.advance(400 * ms)
		incr("forever", 5, 0, 10)
	})
}

func TestKV(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h harness) {
		ctx := context.Background()
		get := func(key string, want string, wantOK bool) {
			t.Helper()
			v, ok, err := h.b.Get(ctx, key)
			if err != nil || ok != wantOK || string(v) != want {
				t.Fatalf("Get(%s) = %q, %v, %v; want %q, %v", key, v, ok, err, want, wantOK)
			}
		}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		get("missing", "", false)
		buf := []byte("v1")
		must(h.b.Put(ctx, "k", buf, time.Minute))
		buf[0] = 'X' // the backend keeps its own copy
		get("k", "v1", true)
		must(h.b.Put(ctx, "k", []byte("v2"), time.Minute))
		get("k", "v2", true)
		must(h.b.Delete(ctx, "k"))
		get("k", "", false)
		must(h.b.Delete(ctx, "k"))
		must(h.b.Put(ctx, "empty", nil, time.Minute))
		get("empty", "", true)

		// PutNX: single use until the entry expires.
		for i, want := range []bool{true, false, false} {
			ok, err := h.b.PutNX(ctx, "nonce:abc", []byte{byte('a' + i)}, 300*ms)
			if err != nil || ok != want {
				t.Fatalf("PutNX #%d = %v, %v; want %v", i, ok, err, want)
			}
		}
		get("nonce:abc", "a", true)
		must(h.b.Put(ctx, "short", []byte("s"), 300*ms))
		h.advance(450 * ms)
		get("nonce:abc", "", false)
		get("short", "", false)
		if ok, err := h.b.PutNX(ctx, "nonce:abc", []byte("again"), time.Minute); err != nil || !ok {
			t.Fatalf("PutNX after expiry = %v, %v", ok, err)
		}
	})
}

func TestPutNXConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h harness) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		stored := 0
		for range 32 {
			wg.Go(func() {
				ok, err := h.b.PutNX(context.Background(), "once", []byte("x"), time.Minute)
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					stored++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if stored != 1 {
			t.Errorf("PutNX stored %d times, want once", stored)
		}
	})
}

func TestScan(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h harness) {
		ctx := context.Background()
		for _, k := range []string{"block:ip:1", "block:ip:2", "block:key:9", "revoked:1", "block*:odd"} {
			if err := h.b.Put(ctx, k, []byte("v-"+k), time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.b.Put(ctx, "block:ip:forever", []byte("f"), 0); err != nil {
			t.Fatal(err)
		}
		if err := h.b.Put(ctx, "block:ip:gone", []byte("g"), 300*ms); err != nil {
			t.Fatal(err)
		}
		h.advance(450 * ms)
		es, err := h.b.Scan(ctx, "block:ip:", 0)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(es, func(a, b Entry) int {
			if a.Key < b.Key {
				return -1
			}
			return 1
		})
		var keys []string
		for _, e := range es {
			keys = append(keys, e.Key)
			if string(e.Value) != "v-"+e.Key && e.Key != "block:ip:forever" {
				t.Errorf("%s = %q", e.Key, e.Value)
			}
			switch {
			case e.Key == "block:ip:forever":
				if !e.ExpiresAt.IsZero() {
					t.Errorf("%s ExpiresAt = %v, want zero", e.Key, e.ExpiresAt)
				}
			case e.ExpiresAt.IsZero():
				t.Errorf("%s has no ExpiresAt", e.Key)
			}
		}
		if want := []string{"block:ip:1", "block:ip:2", "block:ip:forever"}; !slices.Equal(keys, want) {
			t.Errorf("Scan keys = %v, want %v", keys, want)
		}
		// Glob characters in the prefix are literal.
		es, err = h.b.Scan(ctx, "block*", 0)
		if err != nil || len(es) != 1 || es[0].Key != "block*:odd" {
			t.Errorf("Scan(block*) = %+v, %v", es, err)
		}
		es, err = h.b.Scan(ctx, "block:", 2)
		if err != nil || len(es) != 2 {
			t.Errorf("Scan limit 2 = %d entries, %v", len(es), err)
		}
		es, err = h.b.Scan(ctx, "nothing:", 0)
		if err != nil || len(es) != 0 {
			t.Errorf("Scan(nothing) = %+v, %v", es, err)
		}
	})
}

func TestPubSub(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h harness) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		a, err := h.b.Subscribe(ctx, "decisions")
		if err != nil {
			t.Fatal(err)
		}
		ctxB, cancelB := context.WithCancel(context.Background())
		b, err := h.b.Subscribe(ctxB, "decisions")
		if err != nil {
			t.Fatal(err)
		}
		other, err := h.b.Subscribe(ctx, "other")
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte("block 10.0.0.1")
		if err := h.b.Publish(ctx, "decisions", msg); err != nil {
			t.Fatal(err)
		}
		msg[0] = 'X' // subscribers got their own copy
		for name, ch := range map[string]<-chan []byte{"a": a, "b": b} {
			select {
			case got := <-ch:
				if string(got) != "block 10.0.0.1" {
					t.Errorf("%s got %q", name, got)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: no message", name)
			}
		}
		select {
		case got := <-other:
			t.Errorf("other channel got %q", got)
		case <-time.After(100 * ms):
		}
		// Cancelling a subscription closes its channel; the others go on.
		cancelB()
		waitClosed(t, b)
		if err := h.b.Publish(ctx, "decisions", []byte("2")); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-a:
			if string(got) != "2" {
				t.Errorf("a got %q", got)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a: no second message")
		}
		cancel()
		waitClosed(t, a)
	})
}

func waitClosed(t *testing.T, ch <-chan []byte) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("subscription channel not closed after its context ended")
		}
	}
}

// TestConcurrentExact hammers one key from many goroutines: exactly Burst
// is admitted, whatever the interleaving, and a denied second limit never
// leaks a charge onto the first.
func TestConcurrentExact(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h harness) {
		// The hour-long interval makes refill during the test impossible
		// on the real clock of Redis.
		lim := []Limit{{Count: 1, Period: time.Hour, Burst: 100}, {Count: 1, Period: time.Hour, Burst: 60}}
		const goroutines, attempts = 16, 50
		var wg sync.WaitGroup
		var mu sync.Mutex
		admitted := 0
		for range goroutines {
			wg.Go(func() {
				res := make([]Result, 2)
				n := 0
				for range attempts {
					d, err := h.b.RateLimit(context.Background(), "hammer", lim, 1, res)
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed {
						n++
					}
				}
				mu.Lock()
				admitted += n
				mu.Unlock()
			})
		}
		wg.Wait()
		if admitted != 60 {
			t.Fatalf("admitted %d, want exactly 60 (the smaller burst)", admitted)
		}
		d, err := h.b.RateLimit(context.Background(), "hammer", lim[:1], 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d.Results[0].Remaining != 40 {
			t.Errorf("first limit remaining = %d, want 40: denied requests charged it", d.Results[0].Remaining)
		}
	})
}

func TestNames(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h harness) {
		want := "memory"
		if !h.exact {
			want = "redis"
		}
		if h.b.Name() != want {
			t.Errorf("Name() = %q, want %q", h.b.Name(), want)
		}
		if err := h.b.Ping(context.Background()); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})
}
