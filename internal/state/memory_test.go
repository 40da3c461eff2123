package state

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

func newTestMemory(o MemoryOptions) (*Memory, *fakeClock) {
	clk := newFakeClock()
	o.Clock = clk.Now
	return NewMemory(o), clk
}

func admit(t *testing.T, b Backend, key string, lim []Limit, cost int64) Decision {
	t.Helper()
	d, err := b.RateLimit(context.Background(), key, lim, cost, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// countAdmitted sends single-unit requests until one is denied.
func countAdmitted(t *testing.T, b Backend, key string, lim []Limit) int {
	t.Helper()
	n := 0
	for admit(t, b, key, lim, 1).Allowed {
		n++
		if n > 1_000_000 {
			t.Fatal("never denied")
		}
	}
	return n
}

// TestClockBackwards: when the clock steps back, tat never decreases, so a
// key never gets more than Burst, and RetryAfter stays truthful.
func TestClockBackwards(t *testing.T) {
	m, clk := newTestMemory(MemoryOptions{})
	lim := []Limit{five} // T=400ms, Burst 5
	if n := countAdmitted(t, m, "k", lim); n != 5 {
		t.Fatalf("admitted %d, want 5", n)
	}
	clk.Advance(-10 * time.Second)
	d := admit(t, m, "k", lim, 1)
	if d.Allowed {
		t.Fatal("admitted after the clock went back")
	}
	// Truthful in the new clock: 10s to get back to where it was, plus T.
	if got, want := d.Results[0].RetryAfter, 10*time.Second+400*ms; got != want {
		t.Errorf("RetryAfter = %v, want %v", got, want)
	}
	// Walking the clock forward again grants nothing until the original
	// time + T, then exactly one unit per T.
	for range 25 {
		clk.Advance(400 * ms)
		if admit(t, m, "k", lim, 1).Allowed {
			t.Fatal("admitted before the clock caught up")
		}
	}
	clk.Advance(400 * ms)
	if n := countAdmitted(t, m, "k", lim); n != 1 {
		t.Fatalf("admitted %d after catching up one T, want 1", n)
	}

	// A partially used key never exceeds Burst within the step either.
	m2, clk2 := newTestMemory(MemoryOptions{})
	total := 0
	for range 2 {
		if admit(t, m2, "p", lim, 1).Allowed {
			total++
		}
	}
	clk2.Advance(-time.Hour)
	total += countAdmitted(t, m2, "p", lim)
	if total > 5 {
		t.Fatalf("admitted %d in all, more than Burst 5", total)
	}
}

// TestClockForwardJump: a jump forward fills the bucket and grants at most
// Burst, however long the jump.
func TestClockForwardJump(t *testing.T) {
	m, clk := newTestMemory(MemoryOptions{})
	lim := []Limit{five}
	countAdmitted(t, m, "k", lim)
	clk.Advance(365 * 24 * time.Hour)
	if n := countAdmitted(t, m, "k", lim); n != 5 {
		t.Fatalf("admitted %d after a year's jump, want Burst 5", n)
	}
	d := admit(t, m, "k", lim, 0)
	if d.Results[0].ResetAfter != 2*time.Second {
		t.Errorf("ResetAfter = %v, want 2s", d.Results[0].ResetAfter)
	}
}

// TestConcurrentRefill: under concurrency, after the burst, exactly one
// unit per elapsed T is admitted.
func TestConcurrentRefill(t *testing.T) {
	m, clk := newTestMemory(MemoryOptions{})
	lim := []Limit{{Count: 10, Period: time.Second, Burst: 50}} // T=100ms
	hammer := func() int {
		var wg sync.WaitGroup
		var mu sync.Mutex
		n := 0
		for range 8 {
			wg.Go(func() {
				res := make([]Result, 1)
				c := 0
				for range 200 {
					d, err := m.RateLimit(context.Background(), "k", lim, 1, res)
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed {
						c++
					}
				}
				mu.Lock()
				n += c
				mu.Unlock()
			})
		}
		wg.Wait()
		return n
	}
	if n := hammer(); n != 50 {
		t.Fatalf("first round admitted %d, want Burst 50", n)
	}
	clk.Advance(730 * ms)
	if n := hammer(); n != 7 {
		t.Fatalf("after 730ms admitted %d, want 7 (one per 100ms)", n)
	}
	clk.Advance(30 * ms) // 760ms of the 800ms for the 8th unit: not yet
	if n := hammer(); n != 0 {
		t.Fatalf("admitted %d before the next unit was due", n)
	}
	clk.Advance(40 * ms)
	if n := hammer(); n != 1 {
		t.Fatalf("admitted %d when one unit was due", n)
	}
}

// TestConcurrentRealClock runs the same hammer on the real (monotonic)
// clock: admissions are Burst plus the refill of the elapsed time, exactly
// to within one unit at each end.
func TestConcurrentRealClock(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	lim := []Limit{{Count: 100, Period: time.Second, Burst: 20}} // T=10ms
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	for range 8 {
		wg.Go(func() {
			res := make([]Result, 1)
			c := 0
			for time.Since(start) < 300*ms {
				d, err := m.RateLimit(context.Background(), "k", lim, 1, res)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					c++
				}
			}
			mu.Lock()
			n += c
			mu.Unlock()
		})
	}
	wg.Wait()
	// Drain what accrued while goroutines were descheduled, so the count
	// does not depend on scheduling: by the time the drain starts, every
	// unit due is taken.
	drainStart := time.Since(start)
	n += countAdmitted(t, m, "k", lim)
	elapsed := time.Since(start)
	hi := 20 + int(elapsed/(10*ms)) + 1
	lo := 20 + int(drainStart/(10*ms)) - 1
	if n < lo || n > hi {
		t.Fatalf("admitted %d in %v (drain from %v), want within [%d, %d]", n, elapsed, drainStart, lo, hi)
	}
}

// TestEviction: with a small MaxKeys, inserting more keys keeps the count
// bounded and evicts expired entries before live ones.
func TestEviction(t *testing.T) {
	const max = 64
	m, clk := newTestMemory(MemoryOptions{MaxKeys: max, Shards: 1})
	short := []Limit{{Count: 1, Period: time.Second, Burst: 1}} // tat = now+1s
	long := []Limit{{Count: 1, Period: time.Hour, Burst: 1}}    // tat = now+1h
	for i := range 48 {
		admit(t, m, "short"+strconv.Itoa(i), short, 1)
	}
	for i := range 16 {
		admit(t, m, "long"+strconv.Itoa(i), long, 1)
	}
	if keys, _ := m.len(); keys != max {
		t.Fatalf("%d keys, want %d", keys, max)
	}
	clk.Advance(2 * time.Second) // every short bucket is full again: expired
	for i := range 48 {
		admit(t, m, "new"+strconv.Itoa(i), long, 1)
		if keys, _ := m.len(); keys > max {
			t.Fatalf("%d keys, above MaxKeys %d", keys, max)
		}
	}
	// Every live key kept its state: each is still drained.
	for i := range 16 {
		if admit(t, m, "long"+strconv.Itoa(i), long, 1).Allowed {
			t.Errorf("long%d was evicted while expired keys remained", i)
		}
	}
	for i := range 48 {
		if admit(t, m, "new"+strconv.Itoa(i), long, 1).Allowed {
			t.Errorf("new%d was evicted while expired keys remained", i)
		}
	}

	// Under pressure from live keys only, the count stays bounded and the
	// victims are the keys expiring soonest.
	for i := range 1000 {
		admit(t, m, "flood"+strconv.Itoa(i), []Limit{{Count: 1, Period: time.Duration(i+1) * time.Minute, Burst: 1}}, 1)
		if keys, _ := m.len(); keys > max {
			t.Fatalf("%d keys, above MaxKeys %d", keys, max)
		}
	}
	kept := 0
	for i := 900; i < 1000; i++ {
		if !admit(t, m, "flood"+strconv.Itoa(i), []Limit{{Count: 1, Period: time.Duration(i+1) * time.Minute, Burst: 1}}, 0).Allowed {
			t.Fatal("cost 0 denied")
		}
		if d := admit(t, m, "flood"+strconv.Itoa(i), []Limit{{Count: 1, Period: time.Duration(i+1) * time.Minute, Burst: 1}}, 0); d.Results[0].Remaining == 0 {
			kept++
		}
	}
	if kept < 30 {
		t.Errorf("only %d of the 100 longest-lived flood keys survived; eviction should prefer the soonest-expiring", kept)
	}
}

// TestLazySweep: expired keys are dropped without the shard being full.
func TestLazySweep(t *testing.T) {
	m, clk := newTestMemory(MemoryOptions{Shards: 1})
	short := []Limit{{Count: 1, Period: time.Second, Burst: 1}}
	for i := range 1000 {
		admit(t, m, "a"+strconv.Itoa(i), short, 1)
	}
	clk.Advance(2 * time.Second)
	for i := range 1000 {
		admit(t, m, "b"+strconv.Itoa(i), short, 1)
	}
	if keys, _ := m.len(); keys > 1000+1000/2+minSweep {
		t.Errorf("%d keys held; the 1000 expired ones were not swept", keys)
	}
}

func TestKVEviction(t *testing.T) {
	m, clk := newTestMemory(MemoryOptions{MaxKVKeys: 32, Shards: 1})
	ctx := context.Background()
	for i := range 16 {
		if err := m.Put(ctx, "short"+strconv.Itoa(i), []byte("x"), time.Second); err != nil {
			t.Fatal(err)
		}
		if err := m.Put(ctx, "long"+strconv.Itoa(i), []byte("x"), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(2 * time.Second)
	for i := range 16 {
		if ok, err := m.PutNX(ctx, "new"+strconv.Itoa(i), []byte("x"), time.Hour); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	for i := range 16 {
		if _, ok, _ := m.Get(ctx, "long"+strconv.Itoa(i)); !ok {
			t.Errorf("long%d evicted while expired entries remained", i)
		}
	}
	for i := range 200 {
		if err := m.Put(ctx, "flood"+strconv.Itoa(i), []byte("x"), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if _, kv := m.len(); kv > 32 {
		t.Errorf("%d KV keys, above MaxKVKeys 32", kv)
	}
}

func TestShardOptions(t *testing.T) {
	for _, tc := range []struct{ maxKeys, shards, wantShards int }{
		{0, 0, 256},
		{0, 3, 4},
		{0, 1, 1},
		{10, 0, 8},
		{1, 256, 1},
		{1000, 256, 256},
	} {
		m := NewMemory(MemoryOptions{MaxKeys: tc.maxKeys, Shards: tc.shards})
		if len(m.shards) != tc.wantShards {
			t.Errorf("MaxKeys %d Shards %d: %d shards, want %d", tc.maxKeys, tc.shards, len(m.shards), tc.wantShards)
		}
		total := 0
		for i := range m.shards {
			total += m.shards[i].max
			if m.shards[i].max < 1 {
				t.Errorf("shard with max %d", m.shards[i].max)
			}
			if m.shards[i].max*4 > m.shards[i].maxSlots*3 {
				t.Errorf("maxSlots %d too small for %d keys", m.shards[i].maxSlots, m.shards[i].max)
			}
		}
		want := tc.maxKeys
		if want == 0 {
			want = defaultMaxKeys
		}
		if total != want {
			t.Errorf("MaxKeys %d: shards hold %d in all", tc.maxKeys, total)
		}
	}
}

// TestTableRandomOps checks the open-addressing table against a map under
// random inserts, updates, deletes, sweeps and evictions.
func TestTableRandomOps(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var s shard
	s.init(300)
	ref := map[uint64]slot{}
	now := int64(0)
	fullInserts := 0 // inserts into a full shard: each may evict one live key
	for step := range 300_000 {
		k := uint64(rng.IntN(1000)) + 1
		switch op := rng.IntN(10); {
		case op < 6:
			exp := now + int64(rng.IntN(2000))
			if s.find(k) < 0 && s.n >= s.max {
				fullInserts++
			}
			s.set(k, int64(step), exp, now)
			ref[k] = slot{k: k, v: int64(step), exp: exp}
			if i := s.find(k); i < 0 || s.slots[i] != ref[k] {
				t.Fatalf("step %d: set(%d) not found after", step, k)
			}
		case op < 8:
			if i := s.find(k); i >= 0 {
				s.deleteAt(i)
			}
			delete(ref, k)
		default:
			now += int64(rng.IntN(20))
		}
		if s.n > s.max {
			t.Fatalf("step %d: n %d > max %d", step, s.n, s.max)
		}
		if step%500 != 0 {
			continue
		}
		// Everything in the table matches the reference and is findable.
		n := 0
		for _, e := range s.slots {
			if e.k == 0 {
				continue
			}
			n++
			if r, ok := ref[e.k]; !ok || r != e {
				t.Fatalf("step %d: table has %+v, reference %+v (%v)", step, e, r, ok)
			}
			if i := s.find(e.k); i < 0 || s.slots[i] != e {
				t.Fatalf("step %d: find(%d) broken", step, e.k)
			}
		}
		if n != s.n {
			t.Fatalf("step %d: counted %d, n = %d", step, n, s.n)
		}
		// Whatever the table dropped was expired, or evicted from a full
		// shard (at most one live key per insert into a full shard).
		for k, r := range ref {
			if s.find(k) >= 0 {
				continue
			}
			if r.exp > now {
				if fullInserts == 0 {
					t.Fatalf("step %d: live key %d dropped without pressure", step, k)
				}
				fullInserts--
			}
			delete(ref, k)
		}
	}
}

// TestMemoryPerMillionKeys measures the heap held by 1M distinct
// rate-limit keys. It must stay within 150 MB.
func TestMemoryPerMillionKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates and fills 1M keys")
	}
	const n = 1_000_000
	before := heapAlloc()
	m := NewMemory(MemoryOptions{})
	fillKeys(t, m, n)
	after := heapAlloc()
	keys, _ := m.len()
	mb := float64(after-before) / (1 << 20)
	t.Logf("%d keys held (of %d inserted): %.1f MB heap, %.1f bytes/key", keys, n, mb, float64(after-before)/float64(keys))
	if keys < n*99/100 {
		t.Errorf("only %d of %d keys held with the default MaxKeys", keys, n)
	}
	if mb > 150 {
		t.Errorf("1M keys take %.1f MB, want <= 150 MB", mb)
	}
	runtime.KeepAlive(m)
}

func TestMemoryClose(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	ctx := context.Background()
	ch, err := m.Subscribe(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, ch)
	if _, err := m.RateLimit(ctx, "k", []Limit{five}, 1, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("RateLimit after Close: %v", err)
	}
	if err := m.Ping(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping after Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestMemoryRateLimitAllocs pins the zero-allocation hot path.
func TestMemoryRateLimitAllocs(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	res := make([]Result, 2)
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprintf("client-%d", i)
	}
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		i++
		if _, err := m.RateLimit(context.Background(), keys[i%len(keys)], []Limit{tenPer, five}, 1, res); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("RateLimit allocates %.1f times per call", allocs)
	}
}
