package events

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// NewLogSink returns a Sink that writes each event as one log line with
// message "event". The line's time is the event's time, not the time the
// worker got to it, so a lagging queue does not skew the log. Every event is
// logged at Info; which kinds reach the log is the accept func's business.
func NewLogSink(logger *slog.Logger) Sink {
	if logger == nil {
		logger = slog.Default()
	}
	return &logSink{h: logger.Handler()}
}

type logSink struct {
	h     slog.Handler
	attrs []slog.Attr // reused between events; only the worker touches it
}

func (*logSink) Name() string { return "log" }

func (s *logSink) Write(ctx context.Context, batch []Event) error {
	if !s.h.Enabled(ctx, slog.LevelInfo) {
		return nil
	}
	// One bad line must not cost the rest of the batch, so keep going and
	// report the first failure. The bus's retry may then repeat lines that
	// did get out; a duplicate log line is cheaper than a lost one.
	var failed int
	var first error
	for i := range batch {
		e := &batch[i]
		t := e.Time
		if t.IsZero() {
			t = time.Now()
		}
		r := slog.NewRecord(t, slog.LevelInfo, "event", 0)
		s.attrs = appendEventAttrs(s.attrs[:0], e)
		r.AddAttrs(s.attrs...)
		if err := s.h.Handle(ctx, r); err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	clear(s.attrs)
	if first != nil {
		return fmt.Errorf("events: log: %d of %d lines failed: %w", failed, len(batch), first)
	}
	return nil
}

// appendEventAttrs appends e's non-zero fields in a fixed order, with the
// same names as Event's JSON tags except durations, which become
// millisecond floats because that is what people read and alert on.
func appendEventAttrs(a []slog.Attr, e *Event) []slog.Attr {
	str := func(k, v string) {
		if v != "" {
			a = append(a, slog.String(k, v))
		}
	}
	num := func(k string, v int) {
		if v != 0 {
			a = append(a, slog.Int(k, v))
		}
	}
	dur := func(k string, d time.Duration) {
		if d != 0 {
			a = append(a, slog.Float64(k, float64(d)/float64(time.Millisecond)))
		}
	}
	if e.ID != 0 {
		a = append(a, slog.Int64("id", e.ID))
	}
	str("kind", string(e.Kind))
	str("request_id", e.RequestID)
	str("route", e.Route)
	str("method", e.Method)
	str("host", e.Host)
	str("path", e.Path)
	num("status", e.Status)
	str("client_ip", e.ClientIP)
	str("subject", e.Subject)
	str("api_key", e.APIKey)
	str("app", e.App)
	str("device", e.Device)
	str("ja4", e.JA4)
	str("check", e.Check)
	str("action", e.Action)
	str("reason", e.Reason)
	num("score", e.Score)
	str("detail", e.Detail)
	dur("latency_ms", e.Latency)
	dur("upstream_ms", e.Upstream)
	dur("check_latency_ms", e.CheckLatency)
	if len(e.Attrs) > 0 {
		keys := make([]string, 0, len(e.Attrs))
		for k := range e.Attrs {
			keys = append(keys, k)
		}
		slices.Sort(keys) // stable lines are easier to diff and grep
		group := make([]any, 0, len(keys))
		for _, k := range keys {
			group = append(group, slog.String(k, e.Attrs[k]))
		}
		a = append(a, slog.Group("attrs", group...))
	}
	return a
}
