package events

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sink stores or emits events. Each sink added to a Bus gets its own queue
// and goroutine, so Write may be slow without touching the request path.
type Sink interface {
	Name() string
	// Write stores or emits a batch. It may be slow; it never runs on the
	// request path. The bus reuses batch's backing array once Write returns,
	// so Write must not keep it.
	Write(ctx context.Context, batch []Event) error
}

// BusOptions tune a Bus. Zero values take the defaults.
type BusOptions struct {
	QueueSize  int           // buffered events per sink, rounded up to a power of two (default 8192)
	BatchSize  int           // max events per Write (default 512)
	FlushEvery time.Duration // max wait before a partial batch is written (default 200ms)
	// WriteTimeout bounds one Write call (default 30s). Without it a sink
	// hung on a dead connection would stop draining its queue for good.
	WriteTimeout time.Duration
	Logger       *slog.Logger          // default slog.Default()
	Registerer   prometheus.Registerer // may be nil
}

const (
	defaultQueueSize    = 8192
	defaultBatchSize    = 512
	defaultFlushEvery   = 200 * time.Millisecond
	defaultWriteTimeout = 30 * time.Second
	defaultRetryBackoff = 250 * time.Millisecond
	defaultLogEvery     = 10 * time.Second
)

// Bus fans events out to sinks through one bounded queue per sink. Publish
// never blocks: when a sink's queue is full the event is dropped for that
// sink and counted, because delaying a request to save an event is the
// wrong trade for an abuse gateway under attack. Close the Bus before the
// stores it writes to.
type Bus struct {
	opts BusOptions
	log  *slog.Logger

	// sinks is copy-on-write so Publish reads it with one atomic load.
	sinks atomic.Pointer[[]*sinkQueue]
	mu    sync.Mutex // serialises AddSink and Close

	// inflight and closed form a Dekker-style handshake: Publish bumps
	// inflight before it looks at closed, Close sets closed before it waits
	// for inflight to reach zero, so once Close has seen zero no Publish is
	// halfway through a push and the workers can be stopped knowing that
	// every accepted event is in a ring for them to drain.
	inflight atomic.Int64
	closed   atomic.Bool

	// scratch holds the copy of an event that accept funcs see. Handing
	// &e of Publish's parameter to an unknown func would make e escape and
	// cost a heap allocation per Publish.
	scratch sync.Pool

	// writeCtx is handed to every Write; Close cancels it when its own
	// context ends so that sinks give up instead of holding shutdown.
	writeCtx    context.Context
	cancelWrite context.CancelFunc

	// Unexported knobs so tests need not sleep for production intervals.
	retryBackoff time.Duration
	logEvery     time.Duration
}

// NewBus returns a Bus with no sinks. Add sinks before the first Publish.
func NewBus(opts BusOptions) *Bus {
	if opts.QueueSize <= 0 {
		opts.QueueSize = defaultQueueSize
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = defaultBatchSize
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = defaultFlushEvery
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = defaultWriteTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	b := &Bus{
		opts:         opts,
		log:          opts.Logger,
		retryBackoff: defaultRetryBackoff,
		logEvery:     defaultLogEvery,
	}
	b.scratch.New = func() any { return new(Event) }
	b.writeCtx, b.cancelWrite = context.WithCancel(context.Background())
	empty := []*sinkQueue{}
	b.sinks.Store(&empty)
	return b
}

// sinkQueue is one sink's queue, worker and counters.
type sinkQueue struct {
	sink   Sink
	name   string
	accept func(*Event) bool
	ring   *ring

	// wakeAt is how many queued events the sleeping worker wants before
	// it is worth waking (0: awake). Publish wakes the worker only when
	// that threshold is crossed, so under load a wake-up is paid once per
	// batch, not once per event.
	wakeAt atomic.Int64
	wake   chan struct{} // capacity 1; a token means "look again"
	stop   chan struct{} // closed by Close once no Publish is in flight
	done   chan struct{} // closed by the worker when it exits

	dropped atomic.Uint64 // the only counter Publish writes, and only when full
	_       [56]byte      // keep the worker's counters off Publish's lines
	pending atomic.Int64  // events taken off the ring but not yet written
	written atomic.Uint64
	errs    atomic.Uint64

	metrics []prometheus.Collector
}

// AddSink adds s with its own queue and goroutine. accept picks the events
// s receives (nil means all); it runs on the request path, so it must be
// cheap and must not keep the pointer. Adding after Publish is safe but the
// sink misses what was published before. Adding after Close is ignored.
func (b *Bus) AddSink(s Sink, accept func(*Event) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		b.log.Warn("events: sink added after close, ignored", "sink", s.Name())
		return
	}
	q := &sinkQueue{
		sink:   s,
		name:   s.Name(),
		accept: accept,
		ring:   newRing(b.opts.QueueSize),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	b.register(q)
	old := *b.sinks.Load()
	next := make([]*sinkQueue, len(old), len(old)+1)
	copy(next, old)
	next = append(next, q)
	b.sinks.Store(&next)
	go b.run(q)
}

// register exports q's counters. Func collectors read the atomics at scrape
// time so that Publish pays nothing for metrics.
func (b *Bus) register(q *sinkQueue) {
	if b.opts.Registerer == nil {
		return
	}
	labels := prometheus.Labels{"sink": q.name}
	q.metrics = []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "apiguard_events_queue_depth",
			Help:        "Events queued for a sink and not yet written.",
			ConstLabels: labels,
		}, func() float64 { return float64(q.depth()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "apiguard_events_dropped_total",
			Help:        "Events a sink lost: queue full, write failed, or shutdown.",
			ConstLabels: labels,
		}, func() float64 { return float64(q.dropped.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "apiguard_events_written_total",
			Help:        "Events a sink wrote successfully.",
			ConstLabels: labels,
		}, func() float64 { return float64(q.written.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "apiguard_events_sink_errors_total",
			Help:        "Batches a sink failed to write after its retry.",
			ConstLabels: labels,
		}, func() float64 { return float64(q.errs.Load()) }),
	}
	for _, c := range q.metrics {
		if err := b.opts.Registerer.Register(c); err != nil {
			// A duplicate sink name only costs the metric, not the events.
			b.log.Warn("events: metrics not registered", "sink", q.name, "err", err)
		}
	}
}

func (q *sinkQueue) depth() int {
	return q.ring.len() + int(q.pending.Load())
}

// Publish queues e for every sink that accepts it. It never blocks and does
// not allocate; a sink whose queue is full loses e and counts the drop. The
// sinks read e later on other goroutines, so the caller must not change
// e.Attrs after publishing it.
func (b *Bus) Publish(e Event) {
	b.inflight.Add(1)
	sinks := *b.sinks.Load()
	if b.closed.Load() {
		b.inflight.Add(-1)
		b.dropClosed(&sinks, e)
		return
	}
	var p *Event
	for _, q := range sinks {
		if q.accept != nil {
			if p == nil {
				p = b.scratch.Get().(*Event)
				*p = e
			}
			if !q.accept(p) {
				continue
			}
		}
		pos, ok := q.ring.push(&e)
		if !ok {
			q.dropped.Add(1)
			continue
		}
		if w := q.wakeAt.Load(); w != 0 && int64(pos+1-q.ring.head.Load()) >= w && q.wakeAt.CompareAndSwap(w, 0) {
			select {
			case q.wake <- struct{}{}:
			default:
			}
		}
	}
	b.inflight.Add(-1)
	if p != nil {
		*p = Event{} // release the strings and Attrs the copy points at
		b.scratch.Put(p)
	}
}

// dropClosed counts an event published after Close against the sinks that
// would have taken it, so late publishers show up in the drop metrics.
func (b *Bus) dropClosed(sinks *[]*sinkQueue, e Event) {
	p := b.scratch.Get().(*Event)
	*p = e
	for _, q := range *sinks {
		if q.accept == nil || q.accept(p) {
			q.dropped.Add(1)
		}
	}
	*p = Event{}
	b.scratch.Put(p)
}

// Dropped is the total number of events lost, summed over sinks.
func (b *Bus) Dropped() uint64 {
	var n uint64
	for _, q := range *b.sinks.Load() {
		n += q.dropped.Load()
	}
	return n
}

// QueueDepth is the number of events queued or being written, summed over
// sinks.
func (b *Bus) QueueDepth() int {
	n := 0
	for _, q := range *b.sinks.Load() {
		n += q.depth()
	}
	return n
}

// Close stops accepting events and lets every sink drain its queue until ctx
// ends. It then cancels in-progress writes, counts what is left as dropped
// and returns ctx's error without waiting for sinks that ignore cancellation.
// Calling Close again waits on the same drain.
func (b *Bus) Close(ctx context.Context) error {
	b.mu.Lock()
	first := !b.closed.Swap(true)
	sinks := *b.sinks.Load()
	if first {
		// Publishers that saw closed == false are at most a few
		// instructions from done, so a yield loop is short.
		for b.inflight.Load() != 0 {
			runtime.Gosched()
		}
		for _, q := range sinks {
			close(q.stop)
		}
	}
	b.mu.Unlock()

	for _, q := range sinks {
		select {
		case <-q.done:
			continue
		default:
		}
		select {
		case <-q.done:
		case <-ctx.Done():
			b.cancelWrite()
			return fmt.Errorf("events: close: %d events not flushed: %w", b.QueueDepth(), ctx.Err())
		}
	}
	b.cancelWrite()
	if first {
		for _, q := range sinks {
			for _, c := range q.metrics {
				b.opts.Registerer.Unregister(c)
			}
		}
	}
	return nil
}

// run is a sink's worker. It writes when a batch is full, and otherwise every
// FlushEvery, so no event waits longer than that for its write. Waking only
// for a full batch or the tick, never for the first event of an empty
// queue, matters: a worker that keeps up would otherwise park after every
// few events and Publish would pay a goroutine wake-up each time. After stop
// it drains the ring and exits.
func (b *Bus) run(q *sinkQueue) {
	defer close(q.done)
	// A batch larger than the ring could never fill.
	size := min(b.opts.BatchSize, q.ring.capacity())
	w := worker{bus: b, q: q, batch: make([]Event, 0, size)}
	defer w.finish()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var (
		head    uint64    // next ring position to take
		tick    time.Time // when the next partial batch is due; zero: not armed
		stopped bool
	)
	for {
		took := 0
		for n := len(w.batch); n < cap(w.batch); n++ {
			w.batch = w.batch[:n+1]
			if !q.ring.pop(head, &w.batch[n]) {
				w.batch = w.batch[:n]
				break
			}
			head++
			took++
		}
		if took > 0 {
			q.ring.head.Store(head)
			q.pending.Store(int64(len(w.batch)))
		}
		n := len(w.batch)
		now := time.Now()
		due := !tick.IsZero() && !now.Before(tick)
		if due {
			tick = time.Time{}
		}
		if n == cap(w.batch) || (n > 0 && (due || stopped)) {
			w.flush()
			continue
		}
		if stopped {
			// Close waited for every Publish to finish before stopping us,
			// so an unfilled head slot means the ring is empty.
			return
		}

		// Sleep until a full batch is queued, the tick, or stop. wakeAt is
		// set before the ring is looked at again and Publish fills a slot
		// before it reads wakeAt, so one of the two always sees the other
		// and no wake-up is lost.
		need := cap(w.batch) - n
		q.wakeAt.Store(int64(need))
		if q.ring.ready(head + uint64(need) - 1) {
			q.wakeAt.Store(0)
			if took == 0 {
				// A slot before the last one is claimed but its producer
				// was descheduled mid-copy; let it run instead of spinning.
				runtime.Gosched()
			}
			continue
		}
		if tick.IsZero() {
			tick = now.Add(b.opts.FlushEvery)
		}
		timer.Reset(tick.Sub(now))
		select {
		case <-q.wake:
		case <-timer.C:
		case <-q.stop:
			stopped = true
		}
		timer.Stop()
		q.wakeAt.Store(0)
	}
}

// worker is the state of one sink's goroutine; nothing in it is shared.
type worker struct {
	bus   *Bus
	q     *sinkQueue
	batch []Event

	failed       uint64 // failed batches since the last error log line
	lastErrLog   time.Time
	lastDropSeen uint64
	lastDropLog  time.Time
}

// flush writes the batch, retrying once, and then forgets it either way:
// retrying without bound would turn one broken sink into an unbounded
// backlog.
func (w *worker) flush() {
	n := len(w.batch)
	if n == 0 {
		return
	}
	b := w.bus
	if b.writeCtx.Err() != nil {
		// Close gave up waiting; do not start work it will not see.
		w.q.dropped.Add(uint64(n))
	} else {
		err := w.write()
		if err != nil && b.writeCtx.Err() == nil {
			t := time.NewTimer(b.retryBackoff)
			select {
			case <-t.C:
				err = w.write()
			case <-b.writeCtx.Done():
			}
			t.Stop()
		}
		if err != nil {
			w.q.errs.Add(1)
			w.q.dropped.Add(uint64(n))
			w.logError(err, n)
		} else {
			w.q.written.Add(uint64(n))
		}
	}
	clear(w.batch) // let the GC have the strings and maps
	w.batch = w.batch[:0]
	w.q.pending.Store(0)
	w.logDrops()
}

// write calls the sink once, turning a panic into an error: a sink bug must
// cost its events, not the gateway process.
func (w *worker) write() (err error) {
	ctx, cancel := context.WithTimeout(w.bus.writeCtx, w.bus.opts.WriteTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("events: sink %s panicked: %v", w.q.name, r)
		}
	}()
	return w.q.sink.Write(ctx, w.batch)
}

// logError logs at most once per logEvery per sink so that a dead database
// does not flood the process log; the count says how much was hidden.
func (w *worker) logError(err error, n int) {
	w.failed++
	now := time.Now()
	if !w.lastErrLog.IsZero() && now.Sub(w.lastErrLog) < w.bus.logEvery {
		return
	}
	w.bus.log.Error("events: sink write failed, batch dropped",
		"sink", w.q.name, "err", err, "batch", n, "failed_batches", w.failed)
	w.lastErrLog = now
	w.failed = 0
}

// logDrops reports queue-full drops from the worker side, because Publish
// must not log. Same rate limit as errors.
func (w *worker) logDrops() {
	d := w.q.dropped.Load()
	if d == w.lastDropSeen {
		return
	}
	now := time.Now()
	if !w.lastDropLog.IsZero() && now.Sub(w.lastDropLog) < w.bus.logEvery {
		return
	}
	w.bus.log.Warn("events: events dropped", "sink", w.q.name, "dropped", d-w.lastDropSeen, "dropped_total", d)
	w.lastDropSeen = d
	w.lastDropLog = now
}

// finish logs what the rate limits had been holding back, since there will
// be no later line to carry it.
func (w *worker) finish() {
	w.lastDropLog = time.Time{}
	w.logDrops()
	if w.failed > 0 {
		w.bus.log.Error("events: sink write failures at shutdown", "sink", w.q.name, "failed_batches", w.failed)
	}
}
