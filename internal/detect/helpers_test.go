package detect

import (
	"net/netip"
	"testing"
	"time"
)

// unit is a small harness: one engine, an injected clock, and a request
// builder that advances the clock.
type unit struct {
	t     testing.TB
	e     *Engine
	clock *fakeClock
}

func newUnit(t testing.TB, cfg Config) *unit {
	t.Helper()
	clock := &fakeClock{t: t0}
	return &unit{t: t, e: newTestEngine(t, cfg, clock), clock: clock}
}

// do observes o at the clock's time after advancing it by d.
func (u *unit) do(d time.Duration, o Observation) []Finding {
	u.clock.add(d)
	o.Time = u.clock.t
	return u.e.Observe(o)
}

// find returns the first finding of detector/rule (rule "" = any) in fs.
func find(fs []Finding, detector, rule string) (Finding, bool) {
	for _, f := range fs {
		if f.Detector == detector && (rule == "" || f.Rule == rule) {
			return f, true
		}
	}
	return Finding{}, false
}

// only returns a config with just the named detector on (flows stay on
// only when they have rules).
func only(name string) Config {
	off := func() *bool { b := false; return &b }
	c := Config{}
	c.Rate.Enabled, c.Timing.Enabled, c.Scrape.Enabled, c.Enum.Enabled = off(), off(), off(), off()
	c.Probe.Enabled, c.Login.Enabled, c.Flow.Enabled = off(), off(), off()
	on := func() *bool { b := true; return &b }
	switch name {
	case DetectorRate:
		c.Rate.Enabled = on()
	case DetectorTiming:
		c.Timing.Enabled = on()
	case DetectorScrape:
		c.Scrape.Enabled = on()
	case DetectorEnum:
		c.Enum.Enabled = on()
	case DetectorProbe:
		c.Probe.Enabled = on()
	case DetectorLogin:
		c.Login.Enabled = on()
	case DetectorFlow:
		c.Flow.Enabled = on()
	}
	return c
}

func addr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
}
