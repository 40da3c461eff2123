package gateway

import (
	"context"
	"encoding/pem"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/apiguard/apiguard/internal/attest"
	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/apiguard/apiguard/internal/state"
)

// lazyRegistry opens the app registry the first time the attestation
// service is built and shares it across reloads.
type lazyRegistry struct {
	once sync.Once
	reg  *attest.Registry
	err  error
	open func() (*attest.Registry, error)
}

func (l *lazyRegistry) get() (*attest.Registry, error) {
	l.once.Do(func() { l.reg, l.err = l.open() })
	return l.reg, l.err
}

func (l *lazyRegistry) close() {
	if l.reg != nil {
		_ = l.reg.Store().Close()
	}
}

func newLazyRegistry(cfg *config.Config) *lazyRegistry {
	return &lazyRegistry{open: func() (*attest.Registry, error) {
		driver, dsn, err := KeyStoreLocation(cfg)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := attest.OpenStore(ctx, driver, dsn)
		if err != nil {
			return nil, err
		}
		return attest.NewRegistry(st), nil
	}}
}

// buildAttest builds the attestation service of a runtime; prev is the
// service of the runtime it replaces, whose retired keys keep verifying.
func buildAttest(cfg *config.Config, reg *lazyRegistry, st state.Backend, prev *attest.Service, log *slog.Logger) (*attest.Service, error) {
	if !cfg.Attestation.Enabled() {
		return nil, nil
	}
	r, err := reg.get()
	if err != nil {
		return nil, err
	}
	var chain [][]byte
	if cfg.TLS != nil && cfg.TLS.CertFile != "" {
		b, err := os.ReadFile(cfg.TLS.CertFile)
		if err != nil {
			return nil, err
		}
		for blk, rest := pem.Decode(b); blk != nil; blk, rest = pem.Decode(rest) {
			if blk.Type == "CERTIFICATE" {
				chain = append(chain, blk.Bytes)
			}
		}
	}
	return attest.NewService(*cfg.Attestation, attest.Options{
		State: st, Registry: r, Prev: prev, ListenerCerts: chain, Log: log.With("component", "attest"),
	})
}

// serveAttest answers the attestation service's endpoints and records the
// outcome for the request's events.
func (e *Engine) serveAttest(svc *attest.Service, w http.ResponseWriter, r *http.Request, ex *exchange) {
	ex.req.Route = "attest"
	out := svc.Serve(w, r, ex.req.ClientIP, ex.req.ID)
	ex.req.Identity.App, ex.req.Identity.Device = out.App, out.Device
	if f := out.Failure; f != nil {
		v := pipeline.Verdict{Action: pipeline.Deny, Status: f.Status, Reason: f.Slug, Detail: f.Detail}
		rec := pipeline.Recorded{Check: "attest", Verdict: v, Enforced: true}
		if f.Reason != "" {
			rec.Verdict.Detail = f.Reason + ": " + f.Detail
		}
		ex.req.Verdicts = append(ex.req.Verdicts, rec)
		ex.decision = "deny"
	}
}
