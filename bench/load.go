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
	"time"
)

const (
	modeClosed = "closed"
	modeRate   = "rate"
)

// coarseSleepAbove is the gap above which the fixed-rate scheduler first
// waits on an interruptible Go timer before its precise sleep.
const coarseSleepAbove = 5 * time.Millisecond

// doFunc sends one request and reads the whole response; a non-nil error is
// a failed request.
type doFunc func(ctx context.Context) error

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

// requester builds and sends the benchmark request.
type requester struct {
	client *http.Client
	method string
	url    string
	body   []byte // nil: no body
}

func (q *requester) do(ctx context.Context) error {
	var body io.Reader
	if q.body != nil {
		body = bytes.NewReader(q.body)
	}
	req, err := http.NewRequestWithContext(ctx, q.method, q.url, body)
	if err != nil {
		return err
	}
	if q.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := q.client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	cerr := resp.Body.Close()
	if err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return statusError(resp.StatusCode)
	}
	return nil
}

// runClosed runs a closed loop: concurrency workers, each sending its next
// request as soon as the previous response has been read, until dur has
// passed. Latency is send-to-last-byte. Requests started before the end are
// allowed to finish, and the throughput span includes them.
func runClosed(ctx context.Context, do doFunc, concurrency int, dur time.Duration) *result {
	recs := make([]*recorder, concurrency)
	hint := 4096
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for i := range recs {
		rec := newRecorder(hint)
		recs[i] = rec
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				err := do(ctx)
				now := time.Now()
				rec.add(now.Sub(t0), err, now)
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
func runRate(ctx context.Context, do doFunc, rate float64, dur time.Duration, maxSenders int) *result {
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
		rec := newRecorder(hint)
		handle := func(due time.Time) {
			err := do(ctx)
			now := time.Now()
			rec.add(now.Sub(due), err, now)
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
