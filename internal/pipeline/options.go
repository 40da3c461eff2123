package pipeline

import "github.com/apiguard/apiguard/internal/config/field"

// Mode says whether a check's denials take effect.
type Mode string

const (
	ModeInherit Mode = ""        // take the global mode
	ModeEnforce Mode = "enforce" // denials refuse the request
	ModeMonitor Mode = "monitor" // denials are logged as would-deny; the request passes
	ModeOff     Mode = "off"     // the check does not run on this route
)

// OnError says what happens when a check cannot decide.
type OnError string

const (
	OnErrorDeny  OnError = "deny" // fail closed (default)
	OnErrorAllow OnError = "allow"
)

// Options are the settings every check shares. Check Config types embed it
// inline, so YAML reads `iplist: {mode: monitor, on_error: allow, deny: [...]}`.
type Options struct {
	Mode    Mode    `yaml:"mode,omitempty"`
	OnError OnError `yaml:"on_error,omitempty"`
}

// Validate reports invalid mode or on_error values under path.
func (o Options) Validate(path string, errs *field.Errors) {
	switch o.Mode {
	case ModeInherit, ModeEnforce, ModeMonitor, ModeOff:
	default:
		errs.Add(field.Join(path, "mode"), "must be enforce, monitor or off, not %q", o.Mode)
	}
	switch o.OnError {
	case "", OnErrorDeny, OnErrorAllow:
	default:
		errs.Add(field.Join(path, "on_error"), "must be allow or deny, not %q", o.OnError)
	}
}
