package state

import (
	"context"
	"hash/maphash"
	"sync/atomic"
	"testing"
)

func BenchmarkExpDisjoint(b *testing.B) {
	m := NewMemory(MemoryOptions{})
	keys := makeKeys(benchKeys * 2)
	var part [2][]string
	for _, k := range keys {
		h := maphash.String(m.seed, k)
		sh := (h >> 32) & m.mask
		part[sh&1] = append(part[sh&1], k)
	}
	var seq atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		my := part[seq.Add(1)&1]
		res := make([]Result, 1, 8)
		i := 0
		for pb.Next() {
			i = (i + 40503) % len(my)
			m.RateLimit(context.Background(), my[i], benchLimit, 1, res)
		}
	})
}
