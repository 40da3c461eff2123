package detect

import (
	"hash/maphash"
	"strconv"
	"testing"
)

func newStringTable(maxKeys int, ttl int64) *table[string, int] {
	seed := maphash.MakeSeed()
	return newTable[string, int](maxKeys, ttl, func(k string) uint64 { return maphash.String(seed, k) }, cloneString)
}

func touch(t *table[string, int], k string, now int64) (*int, bool) {
	s := t.lock(k)
	defer s.mu.Unlock()
	return t.upsert(s, k, now)
}

func TestTableEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	tb := newStringTable(3, 1000)
	for i, k := range []string{"a", "b", "c"} {
		v, fresh := touch(tb, k, int64(i))
		if !fresh {
			t.Fatalf("%s not fresh", k)
		}
		*v = i + 1
	}
	touch(tb, "a", 3) // a is now the most recent; b the least
	if _, fresh := touch(tb, "d", 4); !fresh {
		t.Fatal("d not fresh")
	}
	if tb.len() != 3 {
		t.Fatalf("len = %d, want 3", tb.len())
	}
	s := tb.lock("b")
	gone := tb.get(s, "b", 4) == nil
	s.mu.Unlock()
	if !gone {
		t.Error("b (least recently used) was not evicted")
	}
	for _, k := range []string{"a", "c", "d"} {
		s := tb.lock(k)
		ok := tb.get(s, k, 4) != nil
		s.mu.Unlock()
		if !ok {
			t.Errorf("%s evicted", k)
		}
	}
	if v, fresh := touch(tb, "a", 5); fresh || *v != 1 {
		t.Errorf("a = %d, fresh %v; want its value 1", *v, fresh)
	}
	if tb.evicted.Load() != 1 {
		t.Errorf("evicted = %d", tb.evicted.Load())
	}
}

func TestTableExpires(t *testing.T) {
	t.Parallel()
	tb := newStringTable(100, 10)
	v, _ := touch(tb, "a", 0)
	*v = 7
	if v, fresh := touch(tb, "a", 10); fresh || *v != 7 {
		t.Fatalf("within ttl: fresh %v value %d", fresh, *v)
	}
	if _, fresh := touch(tb, "a", 21); !fresh {
		t.Fatal("idle longer than ttl must come back fresh")
	}
	// Idle keys are removed as new ones arrive, without a sweeper.
	for i := range 50 {
		touch(tb, strconv.Itoa(i), 100)
	}
	for i := range 50 {
		touch(tb, "n"+strconv.Itoa(i), 200)
	}
	if n := tb.len(); n > 60 {
		t.Errorf("len = %d: idle keys are not being removed", n)
	}
	if tb.evicted.Load() != 0 {
		t.Errorf("expiry counted as eviction")
	}
}

func TestTableBounded(t *testing.T) {
	t.Parallel()
	for _, max := range []int{1, 7, 1000, 5000} {
		tb := newStringTable(max, 1<<60)
		for i := range 3 * max {
			touch(tb, strconv.Itoa(i), int64(i))
		}
		limit := max
		if len(tb.shards) > 1 {
			per := (max + len(tb.shards) - 1) / len(tb.shards)
			limit = per * len(tb.shards)
		}
		if n := tb.len(); n > limit {
			t.Errorf("max %d: len %d", max, n)
		}
		// The most recent key is always present.
		k := strconv.Itoa(3*max - 1)
		s := tb.lock(k)
		ok := tb.get(s, k, int64(3*max)) != nil
		s.mu.Unlock()
		if !ok {
			t.Errorf("max %d: newest key missing", max)
		}
	}
}
