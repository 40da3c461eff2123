package config

import (
	"time"
)

// Defaults of the zero-config mode and of every key left unset.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultAdminListen     = "127.0.0.1:9090"
	DefaultDataDir         = "./apiguard-data"
	DefaultMaxBodyBytes    = 10 << 20
	DefaultMaxHeaderBytes  = 64 << 10
	DefaultJSONMaxDepth    = 64
	DefaultJSONMaxElements = 100_000
	DefaultMaxConnsPerIP   = 256
	DefaultQueueSize       = 8192
)

// ApplyDefaults fills every unset key. It is idempotent.
func (c *Config) ApplyDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = DefaultAdminListen
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Mode == "" {
		c.Mode = "enforce"
	}
	if c.MaskUpstreamErrors == nil {
		c.MaskUpstreamErrors = ptr(true)
	}
	l := &c.Limits
	setSize(&l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setSize(&l.MaxBodyBytes, DefaultMaxBodyBytes)
	setInt(&l.JSONMaxDepth, DefaultJSONMaxDepth)
	setInt(&l.JSONMaxElements, DefaultJSONMaxElements)
	setDur(&l.ReadHeaderTimeout, 10*time.Second)
	setDur(&l.ReadTimeout, 60*time.Second)
	setDur(&l.WriteTimeout, 60*time.Second)
	setDur(&l.IdleTimeout, 120*time.Second)
	setDur(&l.UpstreamTimeout, 30*time.Second)
	setDur(&l.ShutdownTimeout, 30*time.Second)
	setInt(&l.MaxConnsPerIP, DefaultMaxConnsPerIP)

	for _, u := range c.Upstreams {
		if u == nil {
			continue
		}
		// Inherited values are clamped at 0 so that an invalid (negative)
		// global limit is reported once, where it is written.
		setDur(&u.Timeout, max(l.UpstreamTimeout.Std(), 0))
		setDur(&u.DialTimeout, 5*time.Second)
		setDur(&u.FailTimeout, 10*time.Second)
		setInt(&u.MaxIdleConns, 512)
	}
	for _, r := range c.Routes {
		if r == nil {
			continue
		}
		if r.PathPrefix == "" {
			r.PathPrefix = "/"
		}
		setSize(&r.Limits.MaxBodyBytes, max(int64(l.MaxBodyBytes), 0))
		setInt(&r.Limits.JSONMaxDepth, max(l.JSONMaxDepth, 0))
		setInt(&r.Limits.JSONMaxElements, max(l.JSONMaxElements, 0))
		if r.MaskUpstreamErrors == nil {
			r.MaskUpstreamErrors = ptr(*c.MaskUpstreamErrors)
		}
	}

	if c.State.Backend == "" {
		c.State.Backend = "memory"
	}
	e := &c.Events
	setInt(&e.QueueSize, DefaultQueueSize)
	if e.Store.Driver == "" {
		e.Store.Driver = "sqlite"
	}
	setDur(&e.Store.Retention, 7*24*time.Hour)
	if e.Store.Requests == "" {
		e.Store.Requests = "rollup"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
}

func ptr[T any](v T) *T { return &v }

func setSize(p *ByteSize, v int64) {
	if *p == 0 {
		*p = ByteSize(v)
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setDur(p *Duration, v time.Duration) {
	if *p == 0 {
		*p = Duration(v)
	}
}
