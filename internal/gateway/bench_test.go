package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/events"
)

// nopWriter is a ResponseWriter that costs nothing, so the benchmarks measure
// the engine, not the recorder.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
	}
	w.WriteHeader(http.StatusOK)
})

// benchEngine builds a middleware-mode engine: the engine's whole request
// path with the wrapped handler in place of the network.
func benchEngine(b *testing.B, yaml string, bus Publisher) *Engine {
	b.Helper()
	cfg, err := config.Parse("bench.yaml", []byte(yaml), config.Options{Middleware: true})
	if err != nil {
		b.Fatal(err)
	}
	e, err := NewEngine(cfg, EngineOptions{Terminal: okHandler, Events: bus})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func denyList(n int) string {
	var s []string
	for i := range n {
		s = append(s, fmt.Sprintf("10.%d.%d.0/24", i>>8, i&255))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// BenchmarkPipeline measures the per-request overhead of the engine: request
// id, client address, header limit, route match, the checks, metrics and
// event publication. "baseline" calls the handler directly.
func BenchmarkPipeline(b *testing.B) {
	routes := "routes:\n  - {name: api, path_prefix: /api/, methods: [GET, POST]}\n"
	cases := []struct {
		name   string
		yaml   string
		method string
		body   []byte
		bus    bool
	}{
		{name: "baseline"},
		{name: "checks=0", yaml: routes, method: "GET"},
		{name: "checks=1", yaml: routes + "checks: {iplist: {deny: " + denyList(1000) + "}}\n", method: "GET"},
		{name: "checks=all/GET", yaml: routes + "checks: {iplist: {deny: " + denyList(1000) + "}}\n", method: "GET", bus: true},
		{name: "checks=all/POST-1KiB-JSON", yaml: routes + "checks: {iplist: {deny: " + denyList(1000) + "}}\n", method: "POST", bus: true,
			body: []byte(`{"items":[` + strings.Repeat(`{"id":12345,"name":"widget","tags":["a","b"],"price":9.99},`, 16) + `{"id":1}],"note":"` + strings.Repeat("x", 40) + `"}`)},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var h http.Handler = okHandler
			if tc.yaml != "" {
				var pub Publisher = discard{}
				if tc.bus {
					bus := events.NewBus(events.BusOptions{QueueSize: 1 << 16})
					bus.AddSink(nopSink{}, nil)
					b.Cleanup(func() { _ = bus.Close(b.Context()) })
					pub = bus
				}
				h = benchEngine(b, tc.yaml, pub)
			}
			method := tc.method
			if method == "" {
				method = "GET"
			}
			req, _ := http.NewRequest(method, "http://api.example.com/api/items/42", nil)
			req.RemoteAddr = "192.0.2.44:5123"
			req.RequestURI = "/api/items/42"
			req.Header.Set("User-Agent", "bench/1.0")
			req.Header.Set("Accept", "application/json")
			if tc.body != nil {
				req.Header.Set("Content-Type", "application/json")
				req.ContentLength = int64(len(tc.body))
			}
			w := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			if tc.body != nil {
				b.SetBytes(int64(len(tc.body)))
			}
			for b.Loop() {
				clear(w.h)
				req.Header.Del("X-Request-Id")
				if tc.body != nil {
					req.Body = io.NopCloser(bytes.NewReader(tc.body))
				}
				h.ServeHTTP(w, req)
			}
		})
	}
}

type nopSink struct{}

func (nopSink) Name() string                                    { return "nop" }
func (nopSink) Write(_ context.Context, _ []events.Event) error { return nil }
