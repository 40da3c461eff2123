// Package events is the typed event model, the bounded asynchronous bus that
// carries events off the request path, and the sinks that keep them: the
// slog JSON log, SQLite (default) and PostgreSQL stores.
package events

import "time"

// Kind classifies an event.
type Kind string

const (
	KindRequest Kind = "request" // one per request the gateway handled
	KindVerdict Kind = "verdict" // one per non-allow verdict of a check
	KindConfig  Kind = "config"  // config loaded, reload failed, ...
	KindSystem  Kind = "system"  // backend fault or recovery, startup, shutdown
	KindAudit   Kind = "audit"   // admin actions
)

// Event is one thing that happened. Fields that do not apply stay zero.
// Secrets never go into an event: identity fields hold names and ids only.
type Event struct {
	ID        int64     `json:"id,omitempty"` // assigned by a store
	Time      time.Time `json:"time"`
	Kind      Kind      `json:"kind"`
	RequestID string    `json:"request_id,omitempty"`
	Route     string    `json:"route,omitempty"`
	Method    string    `json:"method,omitempty"`
	Host      string    `json:"host,omitempty"`
	Path      string    `json:"path,omitempty"`
	Status    int       `json:"status,omitempty"`

	// Client identity keys.
	ClientIP string `json:"client_ip,omitempty"`
	Subject  string `json:"subject,omitempty"`
	APIKey   string `json:"api_key,omitempty"` // key name, never the key
	App      string `json:"app,omitempty"`
	Device   string `json:"device,omitempty"`
	JA4      string `json:"ja4,omitempty"`
	JA4H     string `json:"ja4h,omitempty"`

	// Template is the matched OpenAPI path template; Undeclared marks a
	// request the spec does not declare (detectors: probing).
	Template   string `json:"template,omitempty"`
	Undeclared bool   `json:"undeclared,omitempty"`
	// Login is set on the bot service's login routes: the username tried
	// and whether it succeeded (detectors: credential stuffing). Sinks
	// that store events keep it out of their rows.
	Login *Login `json:"-"`
	// PathParams are the template's parameters (detectors: enumeration).
	PathParams map[string]string `json:"-"`

	// Verdict fields. Action is allow, flag, challenge, deny or would-deny
	// (a deny that monitor mode let through).
	Check  string `json:"check,omitempty"`
	Action string `json:"action,omitempty"`
	Reason string `json:"reason,omitempty"`
	Score  int    `json:"score,omitempty"`
	Detail string `json:"detail,omitempty"`

	// Latency is the gateway's total time for the request; Upstream the
	// upstream's share of it; CheckLatency the check's own time.
	Latency      time.Duration `json:"latency_ns,omitempty"`
	Upstream     time.Duration `json:"upstream_ns,omitempty"`
	CheckLatency time.Duration `json:"check_latency_ns,omitempty"`

	// Attrs carries evidence (matched rule, thresholds, counts).
	Attrs map[string]string `json:"attrs,omitempty"`
}

// Login is a login attempt seen on a configured login route.
type Login struct {
	Username string
	Success  bool
}
