package gateway

import (
	"context"
	"net/url"

	"github.com/apiguard/apiguard/internal/events"
	"github.com/apiguard/apiguard/internal/fingerprint"
)

// observeSink is the observe path: the event bus hands it request events
// in batches, off the request path, and it feeds them to the current bot
// service's detectors. A slow detector delays only this sink, whose queue
// drops (and counts) what it cannot take.
type observeSink struct{ e *Engine }

func (observeSink) Name() string { return "detectors" }

func (o observeSink) Write(ctx context.Context, batch []events.Event) error {
	b := o.e.rt.Load().bot
	if b == nil {
		return nil
	}
	for i := range batch {
		b.Observe(ctx, &batch[i])
	}
	return nil
}

// addBotFields fills what the detectors need into a request event: the
// HTTP fingerprint, the OpenAPI template and parameters, whether the spec
// declares the operation and, on login routes, the username tried.
func (e *Engine) addBotFields(rt *runtime, ex *exchange, ev *events.Event) {
	b := rt.bot
	if b == nil {
		return
	}
	r := ex.req.HTTP
	ev.JA4H = ex.req.Identity.JA4H
	if ev.JA4H == "" {
		ev.JA4H, _ = fingerprint.JA4H(r)
	}
	ev.Template = ex.req.Template
	ev.PathParams = ex.req.PathParams
	for _, v := range ex.req.Verdicts {
		if v.Verdict.Reason == "undeclared-operation" {
			ev.Undeclared = true
		}
	}
	// The username is read here, after the response went out, because the
	// buffered body belongs to the pooled exchange; login routes only.
	if ex.route != nil && b.IsLogin(ex.route.name) {
		form := func(name string) string {
			v, _ := url.ParseQuery(string(ex.req.Body))
			return v.Get(name)
		}
		ev.Login = b.LoginOf(ex.route.name, ex.req.Body, r.URL.Query().Get, form, ev.Status)
	}
}
