// Package pipeline defines the check interface every capability implements and
// runs checks in phase order. Checks return verdicts; only the caller (gateway,
// forward-auth endpoint, middleware) writes responses, so one check serves all
// three modes.
package pipeline

import (
	"context"
	"net/http"
	"net/netip"
	"time"
)

// Check judges a request. It is built once from its config by a constructor
// that validates, and is then called concurrently.
type Check interface {
	Name() string
	// Check returns a decision. A non-nil error means "could not decide"
	// (backend down, keys unreachable); the check's on_error setting decides,
	// unless the check also returned a non-allow verdict: then it has
	// applied its own failure policy and that verdict stands (the error is
	// recorded either way).
	Check(ctx context.Context, req *Request) (Verdict, error)
}

// ResponseCheck is implemented by checks that also judge the upstream response.
type ResponseCheck interface {
	CheckResponse(ctx context.Context, req *Request, resp *http.Response) (Verdict, error)
}

// Action is what a verdict asks for.
type Action uint8

const (
	Allow     Action = iota // nothing to say
	Flag                    // allow, but record a risk score and reason
	Challenge               // ask the client to prove itself (attest, proof-of-work)
	Deny                    // refuse the request
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Flag:
		return "flag"
	case Challenge:
		return "challenge"
	case Deny:
		return "deny"
	}
	return "unknown"
}

// Verdict is a check's decision.
type Verdict struct {
	Action Action
	// Status is the HTTP status for Deny and Challenge; 0 means 403.
	Status int
	// Reason is a stable slug; it becomes the problem type
	// urn:apiguard:problem:<reason> and the event reason.
	Reason string
	// Detail is client-safe text. Never put internals here.
	Detail string
	// Score is a risk score 0..100 for Flag verdicts.
	Score int
	// Headers are added to the problem response (Retry-After, WWW-Authenticate).
	Headers http.Header
	// Extensions are extra members of the problem document (RFC 9457 §3.2),
	// e.g. the violated rate-limit policies.
	Extensions map[string]any
	// Evidence is recorded with the verdict's event (matched rules,
	// thresholds, truncated and redacted data) and never sent to the
	// client.
	Evidence map[string]string
	// MonitorOnly marks a deny that its check was configured to only
	// monitor (per-policy monitor mode): recorded as would-deny, not enforced.
	MonitorOnly bool
}

// Allowed is the zero-cost allow verdict.
var Allowed = Verdict{}

// Phase orders checks: a check runs after every check of an earlier phase.
type Phase uint8

const (
	PhaseIdentify Phase = iota
	PhaseDecisions
	PhaseRateLimitEarly
	PhaseAuthenticate
	PhaseAttest
	PhaseRateLimit
	PhaseAuthorize
	PhaseValidate
	PhaseInspect
	PhaseBehavior
)

// Identity is what earlier checks established about the caller. Later checks
// (rate limits, rules) key on it.
type Identity struct {
	Subject     string
	Claims      map[string]any
	APIKey      string // key name, never the secret
	Scopes      []string
	CertSubject string
	// CertSANs are the client certificate's DNS, URI, e-mail and IP names.
	CertSANs []string
	// CertThumbprint is base64url(SHA-256(DER)) of the client certificate,
	// the x5t#S256 of RFC 8705 certificate-bound tokens.
	CertThumbprint string
	App            string // attested app id
	Device         string // attested device or installation id
	JA4            string
	JA4H           string
}

// Request is the per-request scope shared by every check.
type Request struct {
	HTTP     *http.Request
	ID       string
	ClientIP netip.Addr
	Route    string
	// PathParams holds parameters of the matched route or operation template.
	PathParams map[string]string
	// Template is the matched OpenAPI path template (/api/orders/{id}),
	// "" when no spec matched; detectors group requests by it.
	Template string
	// Body is the buffered request body when the gateway buffered it
	// (JSON bodies up to the route's limit); nil otherwise.
	Body     []byte
	Identity Identity
	Start    time.Time

	// Typed names request values that schema validation proved to be
	// typed (integer, boolean, enum, uuid, date-time ...): inspection for
	// injection skips them and scans only free text. Keys are
	// "path:NAME", "query:NAME", "header:NAME", "cookie:NAME" and
	// "json:POINTER" (RFC 6901, e.g. json:/items/0/quantity).
	Typed map[string]struct{}

	// Verdicts records every non-allow verdict in order, for events.
	Verdicts []Recorded

	// ResponseHeader collects headers checks add to the response whatever
	// the outcome (RateLimit fields); nil until a check adds one.
	ResponseHeader http.Header
	// cleanups run when the request is done (release concurrency slots).
	cleanups []func()
}

// SetResponseHeader sets a header of the response the client gets. The key
// is used as written (no canonicalisation), so fields keep their
// registered spelling, e.g. RateLimit-Policy.
func (r *Request) SetResponseHeader(key, value string) {
	if r.ResponseHeader == nil {
		r.ResponseHeader = make(http.Header, 2)
	}
	r.ResponseHeader[key] = []string{value}
}

// OnDone registers f to run once the response is complete.
func (r *Request) OnDone(f func()) { r.cleanups = append(r.cleanups, f) }

// Done runs the registered cleanups; the gateway calls it once per request.
func (r *Request) Done() {
	for _, f := range r.cleanups {
		f()
	}
	r.cleanups = r.cleanups[:0]
}

// Recorded is one non-allow verdict with the check that gave it.
type Recorded struct {
	Check    string
	Verdict  Verdict
	Enforced bool // false when monitor mode turned a deny into a would-deny
	Err      error
	Latency  time.Duration
}
