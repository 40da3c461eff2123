package gateway

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiguard/apiguard/internal/pipeline"
)

// metrics are the gateway's Prometheus series. They live in the server's own
// registry (never the global one) and survive config reloads.
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	checkDur    *prometheus.HistogramVec
	checkErrors *prometheus.CounterVec
	upstreamDur *prometheus.HistogramVec
	upstreamErr *prometheus.CounterVec
	reloads     *prometheus.CounterVec
	connRejects prometheus.Counter
	inflight    atomic.Int64

	// children caches label lookups so the hot path does no hashing or
	// formatting: WithLabelValues costs far more than an Inc.
	children sync.Map // requestKey -> prometheus.Counter
	checks   sync.Map // string -> prometheus.Observer
}

type requestKey struct {
	route    string
	status   int
	decision string
}

var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics(version string) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apiguard_requests_total", Help: "Requests handled, by route, status and decision (allow, deny, challenge, would-deny).",
	}, []string{"route", "status", "decision"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "apiguard_request_duration_seconds", Help: "Total time from request to the end of the response, by route.", Buckets: latencyBuckets,
	}, []string{"route"})
	m.checkDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "apiguard_check_duration_seconds", Help: "Time spent in each check.", Buckets: []float64{1e-7, 5e-7, 1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, .001, .005, .01, .05},
	}, []string{"check"})
	m.checkErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apiguard_check_errors_total", Help: "Checks that could not decide (on_error applied).",
	}, []string{"check"})
	m.upstreamDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "apiguard_upstream_duration_seconds", Help: "Upstream time to response headers, by upstream.", Buckets: latencyBuckets,
	}, []string{"upstream"})
	m.upstreamErr = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apiguard_upstream_errors_total", Help: "Upstream failures by kind (unavailable, timeout, error).",
	}, []string{"upstream", "kind"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apiguard_config_reloads_total", Help: "Config reloads by result (ok, error).",
	}, []string{"result"})
	m.connRejects = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "apiguard_connections_rejected_total", Help: "Connections closed because a client address had too many open.",
	})
	inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "apiguard_inflight_requests", Help: "Requests in progress on the public listener.",
	}, func() float64 { return float64(m.inflight.Load()) })
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "apiguard_build_info", Help: "Build information.", ConstLabels: prometheus.Labels{"version": version},
	})
	build.Set(1)
	m.reg.MustRegister(m.requests, m.duration, m.checkDur, m.checkErrors, m.upstreamDur, m.upstreamErr,
		m.reloads, m.connRejects, inflight, build,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) countRequest(route string, status int, decision string) {
	k := requestKey{route, status, decision}
	c, ok := m.children.Load(k)
	if !ok {
		c, _ = m.children.LoadOrStore(k, m.requests.WithLabelValues(route, strconv.Itoa(status), decision))
	}
	c.(prometheus.Counter).Inc()
}

// ObserveCheck implements pipeline.Observer.
func (m *metrics) ObserveCheck(check string, d time.Duration, _ pipeline.Action, err error) {
	o, ok := m.checks.Load(check)
	if !ok {
		o, _ = m.checks.LoadOrStore(check, m.checkDur.WithLabelValues(check))
	}
	o.(prometheus.Observer).Observe(d.Seconds())
	if err != nil {
		m.checkErrors.WithLabelValues(check).Inc()
	}
}

func (m *metrics) inflightValue() int64 { return m.inflight.Load() }
