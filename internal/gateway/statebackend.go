package gateway

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/events"
	"github.com/apiguard/apiguard/internal/state"
)

// NewStateBackend opens the backend a config names (for embedders such as
// the middleware, which own its lifecycle).
func NewStateBackend(c config.State) (state.Backend, error) { return newStateBackend(c) }

// newStateBackend opens the configured backend. Redis is not required to be
// up: the client reconnects by itself and the health watch reports it.
func newStateBackend(c config.State) (state.Backend, error) {
	if c.Backend != "redis" {
		return state.NewMemory(state.MemoryOptions{MaxKeys: c.Memory.MaxKeys}), nil
	}
	r := c.Redis
	return state.NewRedis(state.RedisOptions{
		Addrs: r.Addrs, Cluster: r.Cluster, Username: r.Username, Password: r.Password, DB: r.DB,
		KeyPrefix: r.KeyPrefix, TLS: r.TLS, PoolSize: r.PoolSize,
		DialTimeout: r.DialTimeout.Std(), ReadTimeout: r.ReadTimeout.Std(), WriteTimeout: r.WriteTimeout.Std(),
	})
}

// stateHealth pings the backend and reports transitions: a metric, a log
// line and an event when it goes down and when it recovers. Requests never
// wait for it; each policy's on_error decides what a fault means for them.
type stateHealth struct {
	backend state.Backend
	up      atomic.Bool
	since   atomic.Int64 // unix nanos of the last transition
}

func newStateHealth(b state.Backend, reg prometheus.Registerer) *stateHealth {
	h := &stateHealth{backend: b}
	h.up.Store(true)
	h.since.Store(time.Now().UnixNano())
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "apiguard_state_backend_up", Help: "1 when the state backend answers pings.", ConstLabels: prometheus.Labels{"backend": b.Name()},
	}, func() float64 {
		if h.up.Load() {
			return 1
		}
		return 0
	}))
	return h
}

func (h *stateHealth) watch(ctx context.Context, every time.Duration, log *slog.Logger, pub Publisher) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, every)
		err := h.backend.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if up := err == nil; up != h.up.Load() {
			h.up.Store(up)
			h.since.Store(time.Now().UnixNano())
			ev := events.Event{Time: time.Now(), Kind: events.KindSystem, Check: "state", Detail: h.backend.Name()}
			if up {
				ev.Reason = "state-backend-recovered"
				log.Info("state backend recovered", "backend", h.backend.Name())
			} else {
				ev.Reason = "state-backend-down"
				ev.Attrs = map[string]string{"error": err.Error()}
				log.Error("state backend unreachable; policies apply their on_error", "backend", h.backend.Name(), "error", err.Error())
			}
			pub.Publish(ev)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (h *stateHealth) report() map[string]any {
	return map[string]any{"backend": h.backend.Name(), "up": h.up.Load(), "since": time.Unix(0, h.since.Load()).UTC().Format(time.RFC3339)}
}
