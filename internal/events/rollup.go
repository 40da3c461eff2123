package events

import (
	"context"
	"sync"
	"time"
)

// Rollup is the count of request events of one route, client, method,
// status and decision in one time bucket. Storing requests this way instead
// of one row each keeps the event store's cost flat under load (a flood of
// 10k requests a second from one client is one row per bucket), while
// verdicts, which explain decisions, are still stored one by one.
type Rollup struct {
	Start      time.Time
	Route      string
	ClientIP   string
	Method     string
	Status     int
	Action     string
	Count      int64
	LatencySum time.Duration
	LatencyMax time.Duration
}

type rollupKey struct {
	bucket                        int64
	route, client, method, action string
	status                        int
}

// RollupSink aggregates request events into rollups of Bucket width and
// passes every other event through to the store unchanged.
type RollupSink struct {
	store  Store
	bucket time.Duration
	now    func() time.Time

	mu  sync.Mutex
	agg map[rollupKey]*Rollup
}

// DefaultRollupBucket is fine enough for per-client rate suggestions
// (their shortest window is 10 s).
const DefaultRollupBucket = 10 * time.Second

// NewRollupSink wraps store.
func NewRollupSink(store Store, bucket time.Duration) *RollupSink {
	if bucket <= 0 {
		bucket = DefaultRollupBucket
	}
	return &RollupSink{store: store, bucket: bucket, now: time.Now, agg: map[rollupKey]*Rollup{}}
}

// Name implements Sink.
func (r *RollupSink) Name() string { return r.store.Name() }

// Write aggregates the batch's request events, stores the rest, and writes
// the rollups of buckets that are complete.
func (r *RollupSink) Write(ctx context.Context, batch []Event) error {
	var raw []Event
	r.mu.Lock()
	for i := range batch {
		e := &batch[i]
		if e.Kind != KindRequest {
			raw = append(raw, *e)
			continue
		}
		b := e.Time.UnixNano() / int64(r.bucket) * int64(r.bucket)
		k := rollupKey{bucket: b, route: e.Route, client: e.ClientIP, method: e.Method, action: e.Action, status: e.Status}
		ro := r.agg[k]
		if ro == nil {
			ro = &Rollup{Start: time.Unix(0, b), Route: e.Route, ClientIP: e.ClientIP, Method: e.Method, Status: e.Status, Action: e.Action}
			r.agg[k] = ro
		}
		ro.Count++
		ro.LatencySum += e.Latency
		ro.LatencyMax = max(ro.LatencyMax, e.Latency)
	}
	done := r.takeLocked(r.now().Add(-r.bucket))
	r.mu.Unlock()
	var err error
	if len(raw) > 0 {
		err = r.store.Write(ctx, raw)
	}
	if len(done) > 0 {
		if werr := r.store.WriteRollups(ctx, done); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// takeLocked removes and returns the rollups of buckets that started before
// cutoff (the zero time takes all).
func (r *RollupSink) takeLocked(cutoff time.Time) []Rollup {
	var out []Rollup
	for k, ro := range r.agg {
		if cutoff.IsZero() || ro.Start.Before(cutoff) {
			out = append(out, *ro)
			delete(r.agg, k)
		}
	}
	return out
}

// FlushComplete writes the rollups of buckets that have ended, so an idle
// gateway's last requests reach the store too.
func (r *RollupSink) FlushComplete(ctx context.Context) error {
	r.mu.Lock()
	done := r.takeLocked(r.now().Add(-r.bucket))
	r.mu.Unlock()
	if len(done) == 0 {
		return nil
	}
	return r.store.WriteRollups(ctx, done)
}

// Flush writes every pending rollup (at shutdown, after the bus is closed).
func (r *RollupSink) Flush(ctx context.Context) error {
	r.mu.Lock()
	all := r.takeLocked(time.Time{})
	r.mu.Unlock()
	if len(all) == 0 {
		return nil
	}
	return r.store.WriteRollups(ctx, all)
}
