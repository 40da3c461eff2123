package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fullEvent sets every field, so that a test using it notices a field that
// a sink or store forgets.
func fullEvent() Event {
	return Event{
		ID:           0,
		Time:         time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.FixedZone("X", 3600)),
		Kind:         KindVerdict,
		RequestID:    "req-1",
		Route:        "api",
		Method:       "POST",
		Host:         "api.example.com",
		Path:         "/v1/login",
		Status:       429,
		ClientIP:     "203.0.113.9",
		Subject:      "user-42",
		APIKey:       "mobile-app",
		App:          "ios",
		Device:       "dev-7",
		JA4:          "t13d1516h2_8daaf6152771_b186095e22b6",
		Check:        "ratelimit",
		Action:       "deny",
		Reason:       "rate_exceeded",
		Score:        87,
		Detail:       "20 requests in 1s, limit 10",
		Latency:      1500 * time.Microsecond,
		Upstream:     time.Millisecond,
		CheckLatency: 25 * time.Microsecond,
		Attrs:        map[string]string{"limit": "10", "count": "20", "rule": "login \"burst\""},
	}
}

func TestLogSink(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		event Event
		want  map[string]any
	}{
		{
			name:  "every field",
			event: func() Event { e := fullEvent(); e.ID = 9; return e }(),
			want: map[string]any{
				"time": "2025-03-04T05:06:07.123456789+01:00", "level": "INFO", "msg": "event",
				"id": 9.0, "kind": "verdict", "request_id": "req-1", "route": "api", "method": "POST",
				"host": "api.example.com", "path": "/v1/login", "status": 429.0, "client_ip": "203.0.113.9",
				"subject": "user-42", "api_key": "mobile-app", "app": "ios", "device": "dev-7",
				"ja4": "t13d1516h2_8daaf6152771_b186095e22b6", "check": "ratelimit", "action": "deny",
				"reason": "rate_exceeded", "score": 87.0, "detail": "20 requests in 1s, limit 10",
				"latency_ms": 1.5, "upstream_ms": 1.0, "check_latency_ms": 0.025,
				"attrs": map[string]any{"limit": "10", "count": "20", "rule": "login \"burst\""},
			},
		},
		{
			name:  "zero fields omitted",
			event: Event{Time: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Kind: KindSystem, Detail: "startup"},
			want: map[string]any{
				"time": "2025-01-01T00:00:00Z", "level": "INFO", "msg": "event",
				"kind": "system", "detail": "startup",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			s := NewLogSink(slog.New(slog.NewJSONHandler(&buf, nil)))
			if err := s.Write(context.Background(), []Event{tc.event, tc.event}); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("got %d lines, want 2:\n%s", len(lines), buf.String())
			}
			for _, line := range lines {
				var got map[string]any
				if err := json.Unmarshal([]byte(line), &got); err != nil {
					t.Fatalf("line is not JSON: %v\n%s", err, line)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("log line (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestLogSinkKeepsLoggerAttrsAndLevel(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := NewLogSink(logger).Write(context.Background(), []Event{fullEvent()}); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Errorf("logged at Info under a Warn logger: %s", buf.String())
	}
	buf.Reset()
	logger = slog.New(slog.NewJSONHandler(&buf, nil)).With("component", "events")
	if err := NewLogSink(logger).Write(context.Background(), []Event{{Kind: KindAudit}}); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got["component"] != "events" || got["time"] == nil {
		t.Errorf("line lacks the logger's attrs or a time: %s", buf.String())
	}
}

// failingHandler refuses records whose detail is "bad".
type failingHandler struct {
	slog.Handler
}

func (h failingHandler) Handle(ctx context.Context, r slog.Record) error {
	bad := false
	r.Attrs(func(a slog.Attr) bool {
		bad = bad || (a.Key == "detail" && a.Value.String() == "bad")
		return true
	})
	if bad {
		return errors.New("disk full")
	}
	return h.Handler.Handle(ctx, r)
}

func TestLogSinkKeepsGoingAfterAFailedLine(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	s := NewLogSink(slog.New(failingHandler{slog.NewJSONHandler(&buf, nil)}))
	err := s.Write(context.Background(), []Event{
		{Kind: KindSystem, Detail: "bad"}, {Kind: KindSystem, Detail: "ok"}, {Kind: KindSystem, Detail: "bad"},
	})
	if err == nil || !strings.Contains(err.Error(), "2 of 3 lines failed: disk full") {
		t.Errorf("Write error = %v", err)
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Errorf("wrote %d lines, want the 1 good one:\n%s", n, buf.String())
	}
}
