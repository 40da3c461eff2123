package events

import (
	"runtime"
	"sync"
	"testing"
)

func TestRingCapacity(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ size, want int }{
		{0, 2}, {1, 2}, {2, 2}, {3, 4}, {4, 4}, {1000, 1024}, {65536, 65536},
	} {
		if got := newRing(tc.size).capacity(); got != tc.want {
			t.Errorf("newRing(%d).capacity() = %d, want %d", tc.size, got, tc.want)
		}
	}
}

func TestRingFullAndWrap(t *testing.T) {
	t.Parallel()
	r := newRing(4)
	var head uint64
	next := 0
	// Several laps, each filling the ring to the brim.
	for lap := range 5 {
		for i := range 4 {
			e := seqEvent(next + i)
			if _, ok := r.push(&e); !ok {
				t.Fatalf("lap %d: push %d refused below capacity", lap, i)
			}
		}
		e := seqEvent(-1)
		if _, ok := r.push(&e); ok {
			t.Fatalf("lap %d: push accepted beyond capacity", lap)
		}
		if r.len() != 4 {
			t.Fatalf("lap %d: len = %d, want 4", lap, r.len())
		}
		for range 4 {
			var got Event
			if !r.pop(head, &got) {
				t.Fatalf("lap %d: pop at %d found nothing", lap, head)
			}
			if want := seqEvent(next); got.RequestID != want.RequestID {
				t.Fatalf("lap %d: popped %s, want %s", lap, got.RequestID, want.RequestID)
			}
			head++
			next++
		}
		r.head.Store(head)
		var none Event
		if r.pop(head, &none) || r.len() != 0 {
			t.Fatalf("lap %d: ring not empty after draining", lap)
		}
	}
}

// Concurrent producers and one consumer: every pushed event comes out
// exactly once. Run with -race to check the slot hand-over.
func TestRingConcurrent(t *testing.T) {
	t.Parallel()
	const producers, each = 4, 5000
	r := newRing(64)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				e := Event{Score: p*each + i}
				for {
					if _, ok := r.push(&e); ok {
						break
					}
					runtime.Gosched()
				}
			}
		})
	}
	seen := make([]bool, producers*each)
	var head uint64
	for n := 0; n < producers*each; {
		var e Event
		if !r.pop(head, &e) {
			runtime.Gosched()
			continue
		}
		head++
		r.head.Store(head)
		if seen[e.Score] {
			t.Fatalf("event %d popped twice", e.Score)
		}
		seen[e.Score] = true
		n++
	}
	wg.Wait()
}
