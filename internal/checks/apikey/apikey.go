package apikey

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/apiguard/apiguard/internal/state"
)

// Channel is the state backend channel on which key changes are announced,
// so a revocation reaches every instance at once (within the Redis
// round trip) instead of at the next poll.
const Channel = "apikeys"

// Config is the apikey check's configuration.
type Config struct {
	pipeline.Options `yaml:",inline"`
	// Header carries the key (default X-API-Key). With Authorization, the
	// schemes "ApiKey" and "Bearer" are accepted.
	Header string `yaml:"header,omitempty"`
	// Required refuses requests without a key (default true).
	Required *bool `yaml:"required,omitempty"`
	// Scopes the key must all have on this route.
	Scopes []string `yaml:"scopes,omitempty"`
	// Forward keeps the key header on the request to the upstream (default
	// false: the secret stops at the gateway).
	Forward bool `yaml:"forward,omitempty"`
}

// Validate reports invalid fields under path.
func (c *Config) Validate(path string, errs *field.Errors) {
	c.Options.Validate(path, errs)
	if strings.ContainsAny(c.Header, " :\r\n") {
		errs.Add(field.Join(path, "header"), "not a header name: %q", c.Header)
	}
	for i, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " ,") {
			errs.Add(field.Index(field.Join(path, "scopes"), i), "scopes are single words: %q", s)
		}
	}
}

// Keys is the in-memory view of the key store, shared by every apikey check
// of a gateway: refreshed by polling and at once on a change announcement.
type Keys struct {
	store   *Store
	backend state.Backend
	log     *slog.Logger
	byID    atomic.Pointer[map[string]*Key]
	stop    context.CancelFunc
	done    sync.WaitGroup
}

// NewKeys loads the keys and keeps them fresh until Close.
func NewKeys(store *Store, backend state.Backend, poll time.Duration, log *slog.Logger) (*Keys, error) {
	k := &Keys{store: store, backend: backend, log: log}
	ctx, cancel := context.WithCancel(context.Background())
	k.stop = cancel
	if err := k.reload(ctx); err != nil {
		cancel()
		return nil, err
	}
	var changes <-chan []byte
	if backend != nil {
		changes, _ = backend.Subscribe(ctx, Channel)
	}
	k.done.Add(1)
	go func() {
		defer k.done.Done()
		t := time.NewTicker(poll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-changes:
			}
			if err := k.reload(ctx); err != nil && ctx.Err() == nil {
				k.log.Warn("api keys: reload failed; keeping the last good set", "error", err.Error())
			}
		}
	}()
	return k, nil
}

func (k *Keys) reload(ctx context.Context) error {
	list, err := k.store.List(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]*Key, len(list))
	for i := range list {
		m[list[i].ID] = &list[i]
	}
	k.byID.Store(&m)
	return nil
}

// Close stops the refresh.
func (k *Keys) Close() error {
	k.stop()
	k.done.Wait()
	return nil
}

// Announce tells every instance that keys changed (best effort).
func Announce(ctx context.Context, b state.Backend) {
	if b != nil {
		_ = b.Publish(ctx, Channel, []byte("changed"))
	}
}

// Check is the built apikey check.
type Check struct {
	keys     *Keys
	header   string
	auth     bool
	required bool
	scopes   []string
	forward  bool
	now      func() time.Time
}

var _ pipeline.Check = (*Check)(nil)

// New builds the check over a shared key view.
func New(cfg Config, keys *Keys) *Check {
	h := http.CanonicalHeaderKey(cfg.Header)
	if h == "" {
		h = "X-Api-Key"
	}
	return &Check{keys: keys, header: h, auth: h == "Authorization", required: cfg.Required == nil || *cfg.Required,
		scopes: cfg.Scopes, forward: cfg.Forward, now: time.Now}
}

// Name implements pipeline.Check.
func (*Check) Name() string { return "apikey" }

func refuse(status int, slug, detail string) pipeline.Verdict {
	v := pipeline.Verdict{Action: pipeline.Deny, Status: status, Reason: slug, Detail: detail}
	if status == http.StatusUnauthorized {
		v.Headers = http.Header{"Www-Authenticate": {`ApiKey realm="apiguard"`}}
	}
	return v
}

// Check implements pipeline.Check.
func (c *Check) Check(_ context.Context, req *pipeline.Request) (pipeline.Verdict, error) {
	r := req.HTTP
	raw := r.Header.Get(c.header)
	if c.auth {
		scheme, val, _ := strings.Cut(raw, " ")
		if !strings.EqualFold(scheme, "ApiKey") && !strings.EqualFold(scheme, "Bearer") || !strings.HasPrefix(val, Prefix) {
			raw = "" // another scheme: not ours to judge
		} else {
			raw = val
		}
	}
	if !c.forward && raw != "" {
		r.Header.Del(c.header)
	}
	if raw == "" {
		if c.required {
			return refuse(http.StatusUnauthorized, "unauthorized", "an API key is required"), nil
		}
		return pipeline.Allowed, nil
	}
	id, secret, ok := parse(raw)
	if !ok {
		return refuse(http.StatusUnauthorized, "api-key-invalid", "the API key is not valid"), nil
	}
	k := (*c.keys.byID.Load())[id]
	// Unknown ids and wrong secrets get the same answer, so the ids of
	// existing keys cannot be probed.
	if k == nil || !k.matches(secret) {
		return refuse(http.StatusUnauthorized, "api-key-invalid", "the API key is not valid"), nil
	}
	now := c.now()
	switch {
	case !k.RevokedAt.IsZero():
		return refuse(http.StatusUnauthorized, "api-key-revoked", "the API key was revoked"), nil
	case !k.ExpiresAt.IsZero() && now.After(k.ExpiresAt):
		return refuse(http.StatusUnauthorized, "api-key-expired", "the API key has expired"), nil
	}
	for _, s := range c.scopes {
		if !slices.Contains(k.Scopes, s) {
			return refuse(http.StatusForbidden, "insufficient-scope", "the API key lacks a scope this route requires"), nil
		}
	}
	req.Identity.APIKey = k.Name
	req.Identity.Scopes = append(req.Identity.Scopes, k.Scopes...)
	return pipeline.Allowed, nil
}
