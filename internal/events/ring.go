package events

import (
	"math/bits"
	"sync/atomic"
)

// ring is a bounded multi-producer, single-consumer queue of Events after
// Dmitry Vyukov's bounded MPMC queue: each slot carries a sequence number
// that says whose turn it is, so producers claim a slot with one CAS and
// never wait for each other or for the consumer. A buffered channel was
// measured first: its lock, shared with the draining worker, and the wake-up
// of a parked receiver on nearly every send made Publish about three times
// slower.
type ring struct {
	// tail is the next position producers claim. Padded so that producers
	// hammering it do not evict the consumer's fields.
	tail atomic.Uint64
	_    [56]byte
	// head is the consumer's next position, published after each drain for
	// depth estimates; correctness rests on the slot sequences alone.
	head  atomic.Uint64
	_     [56]byte
	mask  uint64
	slots []slot
}

type slot struct {
	// seq holds the slot's sequence minus the slot's index, so that the
	// zero value means "free for the first lap" and newRing need not touch
	// every slot.
	// Sequence == pos: free for the producer of pos; == pos+1: filled, for
	// the consumer; == pos+len: free for the producer one lap later.
	seq atomic.Uint64
	ev  Event
}

// newRing returns a ring holding at least size events; the size is rounded
// up to a power of two so that positions map to slots with a mask, and to at
// least two because with one slot "filled for pos" and "free for pos+1"
// would be the same sequence number.
func newRing(size int) *ring {
	n := uint64(2)
	if size > 2 {
		n = 1 << bits.Len64(uint64(size-1))
	}
	return &ring{mask: n - 1, slots: make([]slot, n)}
}

func (r *ring) capacity() int { return len(r.slots) }

// push copies *e into the ring and returns its position, or false when the
// ring is full.
func (r *ring) push(e *Event) (uint64, bool) {
	pos := r.tail.Load()
	for {
		i := pos & r.mask
		s := &r.slots[i]
		switch d := int64(s.seq.Load() + i - pos); {
		case d == 0:
			if r.tail.CompareAndSwap(pos, pos+1) {
				s.ev = *e
				s.seq.Store(pos + 1 - i)
				return pos, true
			}
			pos = r.tail.Load()
		case d < 0:
			// The slot still holds the event from one lap ago.
			return 0, false
		default:
			// Another producer claimed pos; try the current tail.
			pos = r.tail.Load()
		}
	}
}

// pop moves the event at the consumer's position into *dst. It reports false
// when that slot is not filled yet, which includes a producer that has
// claimed it but not finished copying. Only the consumer may call it.
func (r *ring) pop(head uint64, dst *Event) bool {
	i := head & r.mask
	s := &r.slots[i]
	if s.seq.Load()+i != head+1 {
		return false
	}
	*dst = s.ev
	s.ev = Event{} // drop references so the GC can have them
	s.seq.Store(head + r.mask + 1 - i)
	return true
}

// ready reports whether the slot at pos is filled. Only the consumer may
// call it.
func (r *ring) ready(pos uint64) bool {
	i := pos & r.mask
	return r.slots[i].seq.Load()+i == pos+1
}

// len is the number of claimed positions not yet drained by the consumer.
func (r *ring) len() int {
	h := r.head.Load() // before tail: head never passes a tail read later
	return int(r.tail.Load() - h)
}
