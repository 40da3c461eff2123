package state

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// benchKeys is the working set of the memory benchmark: enough distinct
// keys to spread over every shard, few enough (with their strings) to stay in
// cache as a gateway's hot clients do. BenchmarkMemoryRateLimitColdKeys
// measures the 1M-key case, where DRAM latency dominates.
const benchKeys = 1 << 12

// makeKeys returns n distinct keys shaped like a gateway's (route and client
// address), laid out contiguously as a gateway builds each in a fresh
// buffer, so the benchmark measures the backend rather than cache misses
// on scattered key strings.
func makeKeys(n int) []string {
	var all []byte
	ends := make([]int, n)
	for i := range n {
		all = append(all, "route:login:ip:10."...)
		all = strconv.AppendInt(all, int64(i>>16&255), 10)
		all = append(all, '.')
		all = strconv.AppendInt(all, int64(i>>8&255), 10)
		all = append(all, '.')
		all = strconv.AppendInt(all, int64(i&255), 10)
		ends[i] = len(all)
	}
	s := string(all)
	keys := make([]string, n)
	start := 0
	for i, e := range ends {
		keys[i] = s[start:e]
		start = e
	}
	return keys
}

// benchLimit admits ~every decision of the benchmark (1000/s per key with a
// 2.5 h burst) and keeps every key live (tat > now), which is the common
// case of a busy gateway: a decision that reads, admits and charges.
var benchLimit = []Limit{{Count: 1000, Period: time.Second, Burst: 9_000_000}}

func benchMemory(b *testing.B, nkeys int) {
	m := NewMemory(MemoryOptions{MaxKeys: max(defaultMaxKeys, 2*nkeys)})
	var be Backend = m
	keys := makeKeys(nkeys)
	ctx := context.Background()
	for _, k := range keys {
		if _, err := be.RateLimit(ctx, k, benchLimit, 1, nil); err != nil {
			b.Fatal(err)
		}
	}
	var seq atomic.Uint64
	var denied atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// 8 results' room keeps each goroutine's res on its own cache
		// lines; two 24-byte slices could otherwise share one and every
		// decision would bounce it between cores.
		res := make([]Result, 1, 8)
		// Each goroutine walks the keys from its own offset with an odd
		// stride, so goroutines rarely hit the same shard at once.
		i := int(seq.Add(1) * 7919)
		mask := nkeys - 1
		n := int64(0)
		for pb.Next() {
			i = (i + 40503) & mask
			d, err := be.RateLimit(ctx, keys[i], benchLimit, 1, res)
			if err != nil {
				b.Fatal(err)
			}
			if !d.Allowed {
				n++
			}
		}
		denied.Add(n)
	})
	_ = denied.Load()
}

// BenchmarkMemoryRateLimit: go test -run=^$ -bench=MemoryRateLimit -benchmem -cpu 1,2
func BenchmarkMemoryRateLimit(b *testing.B) { benchMemory(b, benchKeys) }

// BenchmarkMemoryRateLimitColdKeys spreads over 1M keys (~40 MB of table),
// so nearly every decision misses the CPU caches.
func BenchmarkMemoryRateLimitColdKeys(b *testing.B) { benchMemory(b, 1<<20) }

// BenchmarkMemoryPerKey reports the heap held by 1M distinct rate-limit
// keys (one limit each): go test -run=^$ -bench=MemoryPerKey -benchtime=1x
func BenchmarkMemoryPerKey(b *testing.B) {
	const n = 1_000_000
	var held uint64
	for range b.N {
		before := heapAlloc()
		m := NewMemory(MemoryOptions{})
		fillKeys(b, m, n)
		held = heapAlloc() - before
		runtime.KeepAlive(m)
	}
	b.ReportMetric(float64(held)/n, "B/key")
	b.ReportMetric(float64(held)/(1<<20), "MB/1M-keys")
}

// BenchmarkMemoryRateLimit3 is one decision over three limits of one key.
func BenchmarkMemoryRateLimit3(b *testing.B) {
	m := NewMemory(MemoryOptions{})
	keys := makeKeys(benchKeys)
	lims := []Limit{benchLimit[0], {Count: 100_000, Period: time.Minute, Burst: 9_000_000}, {Count: 1_000_000, Period: time.Hour, Burst: 9_000_000}}
	var seq atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		res := make([]Result, 3, 8)
		i := int(seq.Add(1) * 7919)
		for pb.Next() {
			i = (i + 40503) & (benchKeys - 1)
			if _, err := m.RateLimit(context.Background(), keys[i], lims, 1, res); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// fillKeys inserts n distinct keys with one limit each, reusing one key
// buffer so only the backend's memory remains after GC.
func fillKeys(tb testing.TB, m *Memory, n int) {
	tb.Helper()
	ctx := context.Background()
	lim := []Limit{{Count: 10, Period: time.Hour, Burst: 10}}
	res := make([]Result, 1)
	buf := make([]byte, 0, 32)
	for i := 0; i < n; i++ {
		buf = strconv.AppendInt(append(buf[:0], "client:"...), int64(i), 10)
		if _, err := m.RateLimit(ctx, string(buf), lim, 1, res); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkRedisRateLimit: 64 concurrent callers (as many gateway request
// goroutines) over many keys, one EVALSHA round trip per decision.
//
//	go test -run=^$ -bench=RedisRateLimit -benchmem ./internal/state/
func BenchmarkRedisRateLimit(b *testing.B) {
	for _, nlim := range []int{1, 3} {
		b.Run("limits="+strconv.Itoa(nlim), func(b *testing.B) {
			r := newRedisForTest(b, "")
			lims := []Limit{benchLimit[0], {Count: 100_000, Period: time.Minute, Burst: 9_000_000}, {Count: 1_000_000, Period: time.Hour, Burst: 9_000_000}}[:nlim]
			keys := makeKeys(10_000)
			var seq atomic.Uint64
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				res := make([]Result, nlim, 8)
				i := int(seq.Add(1) * 7919)
				for pb.Next() {
					i = (i + 40503) % len(keys)
					if _, err := r.RateLimit(context.Background(), keys[i], lims, 1, res); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "decisions/s")
		})
	}
}
