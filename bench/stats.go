package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"sort"
	"syscall"
	"time"
)

// recorder collects one sender's samples; every sender owns one, so the hot
// path takes no lock. Latencies of successful requests only; failures are
// counted by kind of error. With several request kinds (a workload mix) the
// latencies and failures are also kept per request kind.
type recorder struct {
	lat  []time.Duration
	errs map[string]int64
	last time.Time // when the last response (or failure) completed

	kindLat  [][]time.Duration // per request kind; nil with one kind
	kindErrs []int64
}

func newRecorder(hint, nkinds int) *recorder {
	r := &recorder{lat: make([]time.Duration, 0, hint)}
	if nkinds > 1 {
		r.kindLat = make([][]time.Duration, nkinds)
		r.kindErrs = make([]int64, nkinds)
	}
	return r
}

func (r *recorder) add(kind int, d time.Duration, err error, now time.Time) {
	r.last = now
	perKind := kind >= 0 && kind < len(r.kindLat)
	if err != nil {
		if r.errs == nil {
			r.errs = map[string]int64{}
		}
		r.errs[classify(err)]++
		if perKind {
			r.kindErrs[kind]++
		}
		return
	}
	r.lat = append(r.lat, d)
	if perKind {
		r.kindLat[kind] = append(r.kindLat[kind], d)
	}
}

// result is a merged measurement: sorted latencies plus error counts.
type result struct {
	lat     []time.Duration // sorted ascending
	errs    map[string]int64
	nerr    int64
	elapsed time.Duration // span the throughput is computed over
	last    time.Time

	kindLat  [][]time.Duration // per request kind, sorted; nil with one kind
	kindErrs []int64

	// Fixed-rate mode only.
	scheduled  int
	targetRate float64
	lag        []time.Duration // scheduler lateness (sorted), before hand-off
	senders    int             // peak number of sender goroutines
	capWaits   int             // requests that found every sender busy at the cap
}

func merge(recs []*recorder) *result {
	res := &result{errs: map[string]int64{}}
	n := 0
	for _, r := range recs {
		n += len(r.lat)
	}
	res.lat = make([]time.Duration, 0, n)
	for _, r := range recs {
		res.lat = append(res.lat, r.lat...)
		for k, v := range r.errs {
			res.errs[k] += v
			res.nerr += v
		}
		if r.last.After(res.last) {
			res.last = r.last
		}
		if len(r.kindLat) > 0 && res.kindLat == nil {
			res.kindLat = make([][]time.Duration, len(r.kindLat))
			res.kindErrs = make([]int64, len(r.kindLat))
		}
		for k := range min(len(r.kindLat), len(res.kindLat)) {
			res.kindLat[k] = append(res.kindLat[k], r.kindLat[k]...)
			res.kindErrs[k] += r.kindErrs[k]
		}
	}
	slices.Sort(res.lat)
	for _, l := range res.kindLat {
		slices.Sort(l)
	}
	return res
}

// KindSummary is the latency of one kind of request of a workload mix.
type KindSummary struct {
	Kind     string  `json:"kind"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	MeanMs   float64 `json:"mean_ms"`
	P50Ms    float64 `json:"p50_ms"`
	P90Ms    float64 `json:"p90_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
}

// kindSummaries breaks the result down by request kind (nil with one kind).
func (res *result) kindSummaries(names []string) []KindSummary {
	if len(res.kindLat) == 0 {
		return nil
	}
	out := make([]KindSummary, len(res.kindLat))
	for k, l := range res.kindLat {
		name := fmt.Sprint(k)
		if k < len(names) {
			name = names[k]
		}
		out[k] = KindSummary{
			Kind: name, Requests: int64(len(l)), Errors: res.kindErrs[k],
			MeanMs: ms(mean(l)), P50Ms: ms(percentile(l, 50)), P90Ms: ms(percentile(l, 90)),
			P99Ms: ms(percentile(l, 99)), MaxMs: ms(percentile(l, 100)),
		}
	}
	return out
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted: the smallest sample such that at least p% of samples are <= it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// The epsilon keeps e.g. 99.9% of 1000 at rank 999 despite float error.
	rank := int(math.Ceil(p/100*float64(n) - 1e-9))
	rank = max(1, min(rank, n))
	return sorted[rank-1]
}

func mean(sorted []time.Duration) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	var sum float64
	for _, d := range sorted {
		sum += float64(d)
	}
	return time.Duration(sum / float64(len(sorted)))
}

// Summary is one measurement of one target, as reported (JSON uses ms).
type Summary struct {
	Round      int              `json:"round"`
	Requests   int64            `json:"requests"` // successful responses
	Errors     int64            `json:"errors"`
	ErrorKinds map[string]int64 `json:"error_kinds,omitempty"`
	ElapsedS   float64          `json:"elapsed_s"`
	RPS        float64          `json:"rps"` // successful responses per second
	MeanMs     float64          `json:"mean_ms"`
	P50Ms      float64          `json:"p50_ms"`
	P90Ms      float64          `json:"p90_ms"`
	P99Ms      float64          `json:"p99_ms"`
	P999Ms     float64          `json:"p99_9_ms"`
	MaxMs      float64          `json:"max_ms"`
	// SUTCPUUsPerReq is the CPU time (user+sys) the system under test used
	// during the window, per successful request: the upstream's for direct,
	// the proxy's for bare and apiguard. 0 when unavailable (non-Linux).
	SUTCPUUsPerReq float64 `json:"sut_cpu_us_per_req,omitempty"`
	// OtherCPUCores is the average number of cores kept busy during the
	// window by processes outside the benchmark (plus VM steal time): noise.
	// -1 when unknown (non-Linux).
	OtherCPUCores float64 `json:"other_cpu_cores"`

	// Fixed-rate mode only.
	Scheduled     int     `json:"scheduled,omitempty"`
	TargetRate    float64 `json:"target_rate,omitempty"`
	RateAchieved  *bool   `json:"rate_achieved,omitempty"`
	SchedLagP99Ms float64 `json:"sched_lag_p99_ms,omitempty"`
	SchedLagMaxMs float64 `json:"sched_lag_max_ms,omitempty"`
	PeakSenders   int     `json:"peak_senders,omitempty"`
	// SenderPoolFull counts requests that became due while all max-senders
	// senders were busy: the target fell behind; they waited, and the wait
	// is in their latency.
	SenderPoolFull int `json:"sender_pool_full,omitempty"`

	// ByKind breaks the round down by request kind (workloads with a mix).
	ByKind []KindSummary `json:"by_kind,omitempty"`
}

// rateAchievedFraction is how close to the target rate the successful
// throughput must come for the target rate to count as achieved.
const rateAchievedFraction = 0.99

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (res *result) summary() Summary {
	s := Summary{
		Requests: int64(len(res.lat)),
		Errors:   res.nerr,
		ElapsedS: res.elapsed.Seconds(),
		MeanMs:   ms(mean(res.lat)),
		P50Ms:    ms(percentile(res.lat, 50)),
		P90Ms:    ms(percentile(res.lat, 90)),
		P99Ms:    ms(percentile(res.lat, 99)),
		P999Ms:   ms(percentile(res.lat, 99.9)),
		MaxMs:    ms(percentile(res.lat, 100)),
	}
	if len(res.errs) > 0 {
		s.ErrorKinds = res.errs
	}
	if res.elapsed > 0 {
		s.RPS = float64(s.Requests) / res.elapsed.Seconds()
	}
	if res.targetRate > 0 {
		s.Scheduled = res.scheduled
		s.TargetRate = res.targetRate
		ok := s.RPS >= rateAchievedFraction*res.targetRate
		s.RateAchieved = &ok
		s.SchedLagP99Ms = ms(percentile(res.lag, 99))
		s.SchedLagMaxMs = ms(percentile(res.lag, 100))
		s.PeakSenders = res.senders
		s.SenderPoolFull = res.capWaits
	}
	return s
}

// statusError is a non-2xx response.
type statusError int

func (e statusError) Error() string { return fmt.Sprintf("status %d", int(e)) }

// classify names an error for the error breakdown, keeping the set small.
func classify(err error) string {
	var se statusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return se.Error()
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no free local port"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return "other: " + s
}

// medianFloat is the median of xs (mean of the middle two for even counts).
func medianFloat(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// medianRound picks the round to report for one target: in closed-loop mode
// the one with the median throughput (the lower middle for an even count),
// in fixed-rate mode the one with the median p99 (the upper middle). Either
// way an even count picks the less flattering round.
func medianRound(rounds []Summary, mode string) int {
	if len(rounds) == 0 {
		return -1
	}
	idx := make([]int, len(rounds))
	for i := range idx {
		idx[i] = i
	}
	if mode == modeRate {
		sort.SliceStable(idx, func(a, b int) bool { return rounds[idx[a]].P99Ms < rounds[idx[b]].P99Ms })
		return idx[len(idx)/2]
	}
	sort.SliceStable(idx, func(a, b int) bool { return rounds[idx[a]].RPS < rounds[idx[b]].RPS })
	return idx[(len(idx)-1)/2]
}
