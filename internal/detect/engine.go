package detect

import (
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/state"
)

// Engine runs every enabled detector over observations and keeps the risk
// of each key. It is safe for concurrent use by several observer
// goroutines; per-key state is in sharded, bounded tables.
type Engine struct {
	clock    func() time.Time
	fpMode   fpMode
	cooldown int64
	seed     maphash.Seed
	exempt   map[string]bool

	nat    *actors
	rate   *rateDetector
	timing *timingDetector
	scrape *scrapeDetector
	enum   *enumDetector
	probe  *probeDetector
	login  *loginDetector
	flow   *flowDetector
	risk   *Risk

	ownBackend state.Backend // created by New, closed by Close

	observations, findings atomic.Uint64
}

// obsCtx is what the detectors see of one observation besides the
// observation itself, which is passed on its own: detectors store strings
// of both in their tables, and keeping the two apart lets escape analysis
// keep the Observation on the stack.
type obsCtx struct {
	now int64 // unix ns
	id  idents
	// scale divides volume thresholds of ip and net keys (NAT actors);
	// 1 for every other kind.
	scale    [numKinds]float64
	cooldown int64
}

// New builds an engine from a configuration that passes Validate.
func New(cfg Config, opts Options) (*Engine, error) {
	var errs field.Errors
	cfg.Validate("", &errs)
	if err := errs.Err(); err != nil {
		return nil, fmt.Errorf("detect: invalid config: %w", err)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	maxKeys := opts.MaxKeys
	if maxKeys <= 0 || maxKeys > maxMaxKeys {
		maxKeys = defaultMaxKeys
	}
	e := &Engine{
		clock:    opts.Clock,
		cooldown: durOr(cfg.Cooldown, defaultCooldown),
		seed:     maphash.MakeSeed(),
	}
	for _, k := range cfg.ExemptAPIKeys {
		if e.exempt == nil {
			e.exempt = map[string]bool{}
		}
		e.exempt[k] = true
	}
	switch cfg.Fingerprint {
	case FingerprintJA4:
		e.fpMode = fpJA4
	case FingerprintJA4H:
		e.fpMode = fpJA4H
	}
	e.nat = newActors(cfg.NAT, maxKeys, e.seed)
	if cfg.Rate.on() {
		e.rate = newRate(cfg.Rate, maxKeys, e.seed)
	}
	if cfg.Timing.on() {
		e.timing = newTiming(cfg.Timing, maxKeys, e.seed)
	}
	if cfg.Scrape.on() {
		e.scrape = newScrape(cfg.Scrape, maxKeys, e.seed)
	}
	if cfg.Enum.on() {
		e.enum = newEnum(cfg.Enum, maxKeys, e.seed)
	}
	if cfg.Probe.on() {
		e.probe = newProbe(cfg.Probe, maxKeys, e.seed)
	}
	if cfg.Login.on() {
		be := opts.Backend
		if be == nil {
			// The same code path as a shared backend, private to this
			// engine: tests of one cover the other.
			be = state.NewMemory(state.MemoryOptions{MaxKeys: 4 * maxKeys, MaxKVKeys: 2 * maxKeys, Shards: 16, Clock: state.Clock(opts.Clock)})
			e.ownBackend = be
		}
		logger := opts.Logger
		if logger == nil {
			logger = slog.Default()
		}
		prefix := opts.KeyPrefix
		if prefix == "" {
			prefix = defaultKeyPrefix
		}
		timeout := opts.BackendTimeout
		if timeout <= 0 {
			timeout = defaultBackendTimeout
		}
		e.login = newLogin(cfg.Login, maxKeys, e.seed, be, prefix, timeout, logger.With("component", "detect"))
	}
	if len(cfg.Flow.Rules) > 0 && cfg.Flow.on() {
		e.flow = newFlow(cfg.Flow, maxKeys, e.seed)
	}
	e.risk = NewRisk(cfg.Risk, maxKeys, opts.Clock)
	return e, nil
}

// Observe runs the detectors over one finished request, records their
// findings in the risk aggregator and returns them (nil when none). A
// finding that keeps holding is returned again only after Config.Cooldown
// or when its score rises.
func (e *Engine) Observe(o Observation) []Finding {
	if o.APIKey != "" && e.exempt[o.APIKey] {
		return nil
	}
	c := obsCtx{cooldown: e.cooldown}
	if o.Time.IsZero() {
		c.now = e.clock().UnixNano()
	} else {
		c.now = o.Time.UnixNano()
	}
	c.id = identify(&o, e.fpMode)
	for i := range c.scale {
		c.scale[i] = 1
	}
	if e.nat != nil {
		e.nat.observe(&c, &o)
	}
	var out []Finding
	if e.rate != nil {
		out = e.rate.observe(&c, &o, out)
	}
	if e.timing != nil {
		out = e.timing.observe(&c, &o, out)
	}
	if e.scrape != nil {
		out = e.scrape.observe(&c, &o, out)
	}
	if e.enum != nil {
		out = e.enum.observe(&c, &o, out)
	}
	if e.probe != nil {
		out = e.probe.observe(&c, &o, out)
	}
	if e.login != nil && o.Login != nil {
		out = e.login.observe(&c, &o, out)
	}
	if e.flow != nil {
		out = e.flow.observe(&c, &o, out)
	}
	for i := range out {
		e.risk.Add(out[i])
	}
	e.observations.Add(1)
	if len(out) > 0 {
		e.findings.Add(uint64(len(out)))
	}
	return out
}

// Risk is the risk of the client that made o: Score over o's identity
// keys.
func (e *Engine) Risk(o Observation) (int, []Reason) {
	id := identify(&o, e.fpMode)
	return e.risk.Score(id.keys[:]...)
}

// Score is the risk of a client known by the given keys (see Risk.Score).
func (e *Engine) Score(keys ...string) (int, []Reason) { return e.risk.Score(keys...) }

// Keys returns o's identity keys under the engine's fingerprint mode.
func (e *Engine) Keys(o Observation) []string {
	id := identify(&o, e.fpMode)
	return id.list()
}

// Stats are counters for metrics.
type Stats struct {
	Observations  uint64
	Findings      uint64
	Evictions     uint64 // keys evicted from full tables (not expiries)
	BackendErrors uint64 // failed shared-counter calls; their rules were skipped
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	s := Stats{Observations: e.observations.Load(), Findings: e.findings.Load()}
	add := func(n uint64) { s.Evictions += n }
	if e.nat != nil {
		add(e.nat.t.evicted.Load())
	}
	if e.rate != nil {
		add(e.rate.t.evicted.Load() + e.rate.eps.evicted.Load())
	}
	if e.timing != nil {
		add(e.timing.t.evicted.Load())
	}
	if e.scrape != nil {
		add(e.scrape.t.evicted.Load())
	}
	if e.enum != nil {
		add(e.enum.t.evicted.Load())
	}
	if e.probe != nil {
		add(e.probe.t.evicted.Load())
	}
	if e.login != nil {
		add(e.login.t.evicted.Load())
		s.BackendErrors = e.login.sh.errors.Load()
	}
	if e.flow != nil {
		add(e.flow.t.evicted.Load())
	}
	add(e.risk.t.evicted.Load())
	return s
}

// Close releases the private backend, if New created one. A shared
// Options.Backend belongs to the caller and stays open.
func (e *Engine) Close() error {
	if e.ownBackend != nil {
		return e.ownBackend.Close()
	}
	return nil
}
