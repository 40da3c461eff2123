package detect

import (
	"math"
	"math/bits"
	"strconv"
	"time"
)

// Sliding windows are rings of nb time buckets of width W/nb: bucket
// number n = floor(t/width) lives in slot n mod nb and is reset when a
// newer n claims the slot. A window sum adds the slots whose n is one of
// the last nb bucket numbers, so it covers between (nb-1)/nb·W and W.

// bucketOf is floor(now/width) (also for negative times).
func bucketOf(now, width int64) int64 {
	if width <= 0 {
		return 0
	}
	b := now / width
	if now%width < 0 {
		b--
	}
	return b
}

// slotOf is n mod size as a valid index, for any n.
func slotOf(n int64, size int) int {
	if size <= 0 {
		return 0
	}
	return int(uint64(n) % uint64(size))
}

// live reports whether bucket n is within the nb buckets ending at cur.
func live(n, cur int64, nb int) bool { return n <= cur && cur-n < int64(nb) }

// Bitmaps estimate distinct counts (linear counting): each value sets bit
// hash mod m; with z of m bits still zero, n ≈ -m·ln(z/m). A 512-bit map is
// within a few percent up to ~1500 distinct values, which is all a
// threshold of tens to hundreds needs, in 64 bytes.
type bits512 [8]uint64

func (b *bits512) set(h uint64) { b[(h>>6)&7] |= 1 << (h & 63) }

func (b *bits512) or(o *bits512) {
	for i := range b {
		b[i] |= o[i]
	}
}

func (b *bits512) ones() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

type bits256 [4]uint64

func (b *bits256) set(h uint64) { b[(h>>6)&3] |= 1 << (h & 63) }

func (b *bits256) or(o *bits256) {
	for i := range b {
		b[i] |= o[i]
	}
}

func (b *bits256) ones() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// linearCount estimates the distinct values that set ones of m bits.
func linearCount(ones, m int) float64 {
	if ones <= 0 || m <= 0 {
		return 0
	}
	if ones >= m {
		// Saturated: the estimate is unbounded; report the expected
		// count at which the last bit fills, a floor of the truth.
		return float64(m) * math.Log(float64(m))
	}
	return -float64(m) * math.Log(float64(m-ones)/float64(m))
}

// emitState remembers the last finding of one rule for one key, so a
// condition that persists is reported again only every cooldown, or when
// its score rises by at least scoreStep; a steady attack does not produce
// a finding (and its maps) per request.
type emitState struct {
	at    int64
	score uint8
}

const scoreStep = 10

func (e *emitState) due(now int64, score int, cooldown int64) bool {
	if e.at != 0 && now-e.at < cooldown && score < int(e.score)+scoreStep {
		return false
	}
	e.at = now
	if now == 0 {
		e.at = 1
	}
	e.score = uint8(clampScore(score))
	return true
}

func clampScore(s int) int {
	return min(max(s, 0), 100)
}

// weigh applies a detector weight to a contribution.
func weigh(s float64, w float64) int {
	v := s * w
	if !(v > 0) { // also NaN
		return 0
	}
	return clampScore(int(math.Round(v)))
}

// ramp is base at x = 1 rising by step per unit of x beyond 1, capped.
func ramp(base, step, capAt, x float64) float64 {
	if !(x > 1) {
		return base
	}
	return min(base+step*(x-1), capAt)
}

// Formatting of evidence and thresholds.

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func ftoa(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "0"
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

func dtoa(d time.Duration) string { return d.String() }

func popcount(x uint64) int { return bits.OnesCount64(x) }
