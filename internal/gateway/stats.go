package gateway

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/apiguard/apiguard/internal/events"
)

// StatsSink keeps a count of request events and a bounded uniform sample of
// their latencies (reservoir sampling), for summaries such as the demo's.
type StatsSink struct {
	mu      sync.Mutex
	count   int64
	samples []time.Duration
	max     int
}

// NewStatsSink keeps at most max latency samples.
func NewStatsSink(max int) *StatsSink { return &StatsSink{max: max} }

// Name implements events.Sink.
func (*StatsSink) Name() string { return "stats" }

// Write implements events.Sink.
func (s *StatsSink) Write(_ context.Context, batch []events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range batch {
		if batch[i].Kind != events.KindRequest {
			continue
		}
		s.count++
		if len(s.samples) < s.max {
			s.samples = append(s.samples, batch[i].Latency)
		} else if j := rand.Int64N(s.count); j < int64(s.max) {
			s.samples[j] = batch[i].Latency
		}
	}
	return nil
}

// Snapshot returns the request count and latency quantiles (q in 0..1).
func (s *StatsSink) Snapshot(qs ...float64) (int64, []time.Duration) {
	s.mu.Lock()
	sorted := slices.Clone(s.samples)
	n := s.count
	s.mu.Unlock()
	slices.Sort(sorted)
	out := make([]time.Duration, len(qs))
	if len(sorted) == 0 {
		return n, out
	}
	for i, q := range qs {
		idx := int(q*float64(len(sorted)-1) + 0.5)
		out[i] = sorted[min(max(idx, 0), len(sorted)-1)]
	}
	return n, out
}
