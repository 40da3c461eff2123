package events

import (
	"context"
	"errors"
	"fmt"
	"github.com/apiguard/apiguard/internal/testutil"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// memSink keeps what it is given.
type memSink struct {
	name string
	mu   sync.Mutex
	got  []Event
	n    atomic.Int64
}

func (s *memSink) Name() string { return s.name }

func (s *memSink) Write(_ context.Context, batch []Event) error {
	s.mu.Lock()
	s.got = append(s.got, batch...)
	s.mu.Unlock()
	s.n.Add(int64(len(batch)))
	return nil
}

func (s *memSink) events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.got...)
}

// stuckSink blocks every Write until release is closed, ignoring its
// context, like a sink wedged on a dead socket without deadlines.
type stuckSink struct {
	release chan struct{}
	entered chan struct{}
	once    sync.Once
}

func newStuckSink(t *testing.T) *stuckSink {
	s := &stuckSink{release: make(chan struct{}), entered: make(chan struct{})}
	t.Cleanup(func() { close(s.release) })
	return s
}

func (*stuckSink) Name() string { return "stuck" }

func (s *stuckSink) Write(context.Context, []Event) error {
	s.once.Do(func() { close(s.entered) })
	<-s.release
	return errors.New("released")
}

// failSink fails every Write.
type failSink struct{ calls atomic.Int64 }

func (*failSink) Name() string { return "fail" }

func (s *failSink) Write(context.Context, []Event) error {
	s.calls.Add(1)
	return errors.New("database on fire")
}

type panicSink struct{}

func (panicSink) Name() string                         { return "panic" }
func (panicSink) Write(context.Context, []Event) error { panic("sink bug") }

// testBus returns a Bus with test-speed retry and a logger into buf.
func testBus(opts BusOptions, buf *testutil.SyncBuffer) *Bus {
	var w io.Writer = io.Discard
	if buf != nil {
		w = buf
	}
	if opts.QueueSize == 0 {
		opts.QueueSize = 1024 // the default's 23 MB ring is slow under -race
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b := NewBus(opts)
	b.retryBackoff = time.Millisecond
	return b
}

func seqEvent(i int) Event {
	return Event{Time: time.Unix(1700000000, int64(i)).UTC(), Kind: KindRequest, RequestID: fmt.Sprint("r", i), Status: 200}
}

func closeBus(t *testing.T, b *Bus, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return b.Close(ctx)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestPublishNeverBlocksOnStuckSink(t *testing.T) {
	t.Parallel()
	const queue, batch, n = 16, 4, 20000
	stuck := newStuckSink(t)
	healthy := &memSink{name: "mem"}
	b := testBus(BusOptions{QueueSize: queue, BatchSize: batch, FlushEvery: time.Millisecond}, nil)
	b.AddSink(stuck, nil)
	b.AddSink(healthy, nil)

	b.Publish(seqEvent(0))
	<-stuck.entered // the worker now holds one event and is wedged
	start := time.Now()
	for i := 1; i < n; i++ {
		b.Publish(seqEvent(i))
	}
	// A blocking Publish would hang here; the bound is generous for -race
	// on a loaded two-core machine.
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("publishing %d events took %v", n, elapsed)
	}
	// The stuck sink can hold one event in Write plus its queue.
	if got, want := b.sinkByName("stuck").dropped.Load(), uint64(n-queue-1); got != want {
		t.Errorf("stuck sink dropped %d, want %d", got, want)
	}

	err := closeBus(t, b, 100*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want deadline exceeded", err)
	}
	// The healthy sink drains even though the stuck one holds Close up,
	// because each sink has its own worker. It may have dropped some of the
	// burst itself (its queue is tiny), but nothing goes missing.
	hq := b.sinkByName("mem")
	waitFor(t, "healthy sink to drain", func() bool { return hq.depth() == 0 })
	if got := uint64(healthy.n.Load()) + hq.dropped.Load(); got != n {
		t.Errorf("healthy sink: written + dropped = %d, want %d", got, n)
	}
	if healthy.n.Load() == 0 {
		t.Error("healthy sink wrote nothing")
	}
}

func TestCloseFlushesQueued(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		n, batch     int
		queue        int
		wantMaxBatch int
	}{
		{name: "partial batch", n: 7, batch: 100, queue: 1000},
		{name: "many batches", n: 1050, batch: 100, queue: 2000},
		{name: "exactly full queue", n: 64, batch: 8, queue: 64},
		{name: "batch larger than queue", n: 64, batch: 512, queue: 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sink := &batchSizeSink{}
			// FlushEvery of an hour: only a full batch or Close writes.
			b := testBus(BusOptions{QueueSize: tc.queue, BatchSize: tc.batch, FlushEvery: time.Hour}, nil)
			b.AddSink(sink, nil)
			var want []Event
			for i := range tc.n {
				e := seqEvent(i)
				want = append(want, e)
				b.Publish(e)
			}
			if err := closeBus(t, b, 10*time.Second); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if diff := cmp.Diff(want, sink.events()); diff != "" {
				t.Errorf("events written (-want +got):\n%s", diff)
			}
			if b.Dropped() != 0 || b.QueueDepth() != 0 {
				t.Errorf("Dropped() = %d, QueueDepth() = %d, want 0, 0", b.Dropped(), b.QueueDepth())
			}
			if sink.maxBatch > tc.batch {
				t.Errorf("largest batch %d exceeds BatchSize %d", sink.maxBatch, tc.batch)
			}
		})
	}
}

type batchSizeSink struct {
	memSink
	maxBatch int
}

func (s *batchSizeSink) Write(ctx context.Context, batch []Event) error {
	s.mu.Lock()
	s.maxBatch = max(s.maxBatch, len(batch))
	s.mu.Unlock()
	return s.memSink.Write(ctx, batch)
}

func TestPartialBatchWrittenAfterFlushEvery(t *testing.T) {
	t.Parallel()
	sink := &memSink{name: "mem"}
	b := testBus(BusOptions{BatchSize: 1000, FlushEvery: 20 * time.Millisecond}, nil)
	b.AddSink(sink, nil)
	for i := range 3 {
		b.Publish(seqEvent(i))
	}
	waitFor(t, "partial batch", func() bool { return sink.n.Load() == 3 })
	if d := b.QueueDepth(); d != 0 {
		t.Errorf("QueueDepth() = %d after flush, want 0", d)
	}
	if err := closeBus(t, b, time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestFailingSinkDoesNotAffectOthers(t *testing.T) {
	t.Parallel()
	const n = 500
	logs := &testutil.SyncBuffer{}
	fail := &failSink{}
	good := &memSink{name: "good"}
	b := testBus(BusOptions{BatchSize: 10, FlushEvery: time.Millisecond}, logs)
	b.logEvery = time.Hour // however slow the machine, all failures fall in one window
	b.AddSink(fail, nil)
	b.AddSink(good, nil)
	for i := range n {
		b.Publish(seqEvent(i))
	}
	if err := closeBus(t, b, 10*time.Second); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := good.n.Load(); got != n {
		t.Errorf("good sink got %d events, want %d", got, n)
	}
	if got := b.Dropped(); got != n {
		t.Errorf("Dropped() = %d, want %d (every event of the failing sink)", got, n)
	}
	// Each batch is tried twice, then given up.
	batches := b.sinkByName("fail").errs.Load()
	if batches == 0 || fail.calls.Load() != int64(2*batches) {
		t.Errorf("failing sink: %d calls for %d failed batches, want two per batch", fail.calls.Load(), batches)
	}
	// Rate limited: one line when failures start, one summary at shutdown.
	out := logs.String()
	if c := strings.Count(out, "sink write failed"); c != 1 {
		t.Errorf("logged %d write-failure lines, want 1:\n%s", c, out)
	}
	if !strings.Contains(out, "sink write failures at shutdown") || !strings.Contains(out, "database on fire") {
		t.Errorf("log lacks the shutdown summary or the cause:\n%s", out)
	}
}

func (b *Bus) sinkByName(name string) *sinkQueue {
	for _, q := range *b.sinks.Load() {
		if q.name == name {
			return q
		}
	}
	return nil
}

func TestPanickingSinkIsContained(t *testing.T) {
	t.Parallel()
	good := &memSink{name: "good"}
	b := testBus(BusOptions{FlushEvery: time.Millisecond}, nil)
	b.AddSink(panicSink{}, nil)
	b.AddSink(good, nil)
	for i := range 10 {
		b.Publish(seqEvent(i))
	}
	if err := closeBus(t, b, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if good.n.Load() != 10 || b.Dropped() != 10 {
		t.Errorf("good got %d, dropped %d; want 10, 10", good.n.Load(), b.Dropped())
	}
}

func TestAcceptFiltersPerSink(t *testing.T) {
	t.Parallel()
	verdicts := &memSink{name: "verdicts"}
	all := &memSink{name: "all"}
	b := testBus(BusOptions{}, nil)
	b.AddSink(verdicts, func(e *Event) bool { return e.Kind == KindVerdict })
	b.AddSink(all, nil)
	kinds := []Kind{KindRequest, KindVerdict, KindRequest, KindVerdict, KindConfig}
	for i, k := range kinds {
		e := seqEvent(i)
		e.Kind = k
		b.Publish(e)
	}
	if err := closeBus(t, b, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	var got []Kind
	for _, e := range verdicts.events() {
		got = append(got, e.Kind)
	}
	if diff := cmp.Diff([]Kind{KindVerdict, KindVerdict}, got); diff != "" {
		t.Errorf("verdict sink kinds (-want +got):\n%s", diff)
	}
	if len(all.events()) != len(kinds) {
		t.Errorf("all sink got %d events, want %d", len(all.events()), len(kinds))
	}
}

// Every published event is either written or counted as dropped, even when
// Close races with publishers.
func TestEveryEventAccountedForUnderConcurrentClose(t *testing.T) {
	t.Parallel()
	const publishers, each = 8, 2000
	sink := &memSink{name: "mem"}
	b := testBus(BusOptions{QueueSize: 256, BatchSize: 32, FlushEvery: time.Millisecond}, nil)
	b.AddSink(sink, nil)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				b.Publish(seqEvent(p*each + i))
			}
		})
	}
	time.Sleep(time.Millisecond)
	if err := closeBus(t, b, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	written, dropped := uint64(sink.n.Load()), b.Dropped()
	if written+dropped != publishers*each {
		t.Errorf("written %d + dropped %d = %d, want %d", written, dropped, written+dropped, publishers*each)
	}
}

func TestCloseIsIdempotentAndAddSinkAfterCloseIgnored(t *testing.T) {
	t.Parallel()
	b := testBus(BusOptions{}, nil)
	b.AddSink(&memSink{name: "a"}, nil)
	for range 2 {
		if err := closeBus(t, b, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	late := &memSink{name: "late"}
	b.AddSink(late, nil)
	b.Publish(seqEvent(1))
	if len(*b.sinks.Load()) != 1 || b.Dropped() != 1 {
		t.Errorf("sinks = %d, dropped = %d; want 1, 1", len(*b.sinks.Load()), b.Dropped())
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	stuck := newStuckSink(t)
	good := &memSink{name: "good"}
	b := testBus(BusOptions{QueueSize: 4, BatchSize: 1, FlushEvery: time.Millisecond, Registerer: reg}, nil)
	b.AddSink(stuck, nil)
	b.AddSink(good, nil)
	b.Publish(seqEvent(0))
	<-stuck.entered
	for i := 1; i < 10; i++ {
		b.Publish(seqEvent(i))
		// Let the good sink keep up so only the stuck one drops.
		waitFor(t, "good sink", func() bool { return good.n.Load() == int64(i+1) })
	}

	want := map[string]float64{
		"apiguard_events_queue_depth/good":        0,
		"apiguard_events_queue_depth/stuck":       4 + 1, // full queue plus the batch in Write
		"apiguard_events_dropped_total/good":      0,
		"apiguard_events_dropped_total/stuck":     10 - 5,
		"apiguard_events_written_total/good":      10,
		"apiguard_events_written_total/stuck":     0,
		"apiguard_events_sink_errors_total/good":  0,
		"apiguard_events_sink_errors_total/stuck": 0,
	}
	if diff := cmp.Diff(want, gather(t, reg)); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
	if b.QueueDepth() != 5 || b.Dropped() != 5 {
		t.Errorf("QueueDepth() = %d, Dropped() = %d; want 5, 5", b.QueueDepth(), b.Dropped())
	}
}

// gather flattens reg's metrics into "name/sink" -> value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			sink := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "sink" {
					sink = l.GetValue()
				}
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[mf.GetName()+"/"+sink] = v
		}
	}
	return out
}
