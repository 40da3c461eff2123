package main

import (
	"bytes"
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const (
	modeClosed = "closed"
	modeRate   = "rate"
)

// coarseSleepAbove is the gap above which the fixed-rate scheduler first
// waits on an interruptible Go timer before its precise sleep.
const coarseSleepAbove = 5 * time.Millisecond

// doFunc sends one request and reads the whole response; it returns the
// request's kind (an index into the workload's kinds) and a non-nil error
// for a failed request.
type doFunc func(ctx context.Context) (kind int, err error)

// newClient is the load generator's client: one keep-alive transport for all
// targets (each host has its own idle pool), HTTP/1.1, no compression.
func newClient(maxConnsPerHost int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy: nil, // never go through $HTTP_PROXY
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          0, // no global cap
		MaxIdleConnsPerHost:   maxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// requester sends the workload's requests to one target, round-robin: each
// call takes the next request of the cycle (one counter shared by all
// workers and senders).
type requester struct {
	client *http.Client
	base   string // http://host:port of the target
	w      *workload
	next   atomic.Uint64
}

func newRequester(client *http.Client, base string, w *workload) *requester {
	return &requester{client: client, base: base, w: w}
}

func (q *requester) do(ctx context.Context) (int, error) {
	wr := &q.w.reqs[(q.next.Add(1)-1)%uint64(len(q.w.reqs))]
	return wr.kind, q.send(ctx, wr)
}

// send sends one request of the workload and reads the whole response.
func (q *requester) send(ctx context.Context, wr *workReq) error {
	_, err := q.roundTrip(ctx, wr)
	return err
}

// roundTrip is send that also returns the status code (0 on transport
// errors); a non-2xx status is a statusError.
func (q *requester) roundTrip(ctx context.Context, wr *workReq) (int, error) {
	var body io.Reader
	if wr.body != nil {
		body = bytes.NewReader(wr.body)
	}
	req, err := http.NewRequestWithContext(ctx, wr.method, q.base+wr.path, body)
	if err != nil {
		return 0, err
	}
	for k, v := range q.w.header {
		req.Header[k] = v
	}
	if wr.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := q.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	cerr := resp.Body.Close()
	if err != nil {
		return resp.StatusCode, err
	}
	if cerr != nil {
		return resp.StatusCode, cerr
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, statusError(resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// runClosed runs a closed loop: concurrency workers, each sending its next
// request as soon as the previous response has been read, until dur has
// passed. Latency is send-to-last-byte. Requests started before the end are
// allowed to finish, and the throughput span includes them.
func runClosed(ctx context.Context, do doFunc, nkinds, concurrency int, dur time.Duration) *result {
	recs := make([]*recorder, concurrency)
	hint := 4096
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for i := range recs {
		rec := newRecorder(hint, nkinds)
		recs[i] = rec
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				kind, err := do(ctx)
				now := time.Now()
				rec.add(kind, now.Sub(t0), err, now)
			}
		})
	}
	wg.Wait()
	res := merge(recs)
	res.elapsed = time.Since(start)
	return res
}

// runRate runs an open-loop fixed-rate schedule: request i is due at
// t0 + i/rate, for dur. Latency is measured from the request's DUE time to
// its last response byte, so time spent waiting for a free sender (when the
// target is slow and senders are exhausted) or for a late scheduler counts:
// no coordinated omission.
//
// Senders form a pool that grows on demand up to maxSenders. A due request
// is handed to an idle sender; if none is idle a new one is started; at the
// cap the scheduler blocks until one frees up, and the wait shows up in the
// latencies of every request that became due meanwhile.
//
// The throughput is successful responses over max(dur, t0 -> last response),
// so a target that falls behind and drains its backlog after the schedule
// ends reports less than the target rate.
func runRate(ctx context.Context, do doFunc, nkinds int, rate float64, dur time.Duration, maxSenders int) *result {
	n := int(math.Round(rate * dur.Seconds()))
	n = max(n, 1)
	maxSenders = max(maxSenders, 1)
	interval := float64(time.Second) / rate

	jobs := make(chan time.Time) // unbuffered: a send succeeds only if a sender is idle
	var (
		mu   sync.Mutex
		recs []*recorder
		wg   sync.WaitGroup
	)
	hint := min(n, 4096)
	sender := func(first time.Time) {
		rec := newRecorder(hint, nkinds)
		handle := func(due time.Time) {
			kind, err := do(ctx)
			now := time.Now()
			rec.add(kind, now.Sub(due), err, now)
		}
		handle(first)
		for due := range jobs {
			handle(due)
		}
		mu.Lock()
		recs = append(recs, rec)
		mu.Unlock()
	}

	lag := make([]time.Duration, 0, n)
	senders, capWaits := 0, 0
	var freeAt time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	t0 := time.Now()
	scheduled := 0
loop:
	for i := range n {
		due := t0.Add(time.Duration(float64(i) * interval))
		if d := time.Until(due); d > coarseSleepAbove {
			// Long gaps (low rates): an interruptible timer to about 2 ms
			// before the due time, then the precise sleep below.
			timer.Reset(d - 2*time.Millisecond) // Go >= 1.23: no stale value after Reset
			select {
			case <-timer.C:
			case <-ctx.Done():
				break loop
			}
		}
		if ctx.Err() != nil {
			break loop
		}
		if d := time.Until(due); d > 0 {
			preciseSleep(d)
		}
		// The scheduler's own lateness: from the due time, or from when it
		// was last released from a full sender pool if that is later (that
		// wait is the target's doing, counted in capWaits).
		ref := due
		if freeAt.After(ref) {
			ref = freeAt
		}
		lag = append(lag, time.Since(ref))
		scheduled++
		select {
		case jobs <- due:
			continue
		default:
		}
		if senders < maxSenders {
			senders++
			wg.Go(func() { sender(due) })
			continue
		}
		capWaits++
		select {
		case jobs <- due:
			freeAt = time.Now()
		case <-ctx.Done():
			scheduled--
			break loop
		}
	}
	close(jobs)
	wg.Wait()

	res := merge(recs)
	res.elapsed = max(dur, res.last.Sub(t0))
	res.scheduled = scheduled
	res.targetRate = rate
	res.senders = senders
	res.capWaits = capWaits
	slices.Sort(lag)
	res.lag = lag
	return res
}
