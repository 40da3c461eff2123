package waf

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/apiguard/apiguard/internal/pipeline"
)

func FuzzCheck(f *testing.F) {
	f.Add(`{"comment":"' OR 1=1--"}`, "q=1")
	f.Add(`{"a":"{\"b\":\"[1,\\\"<script>\\\"]\"}"}`, "f=%7B%22x%22%3A%22y%22%7D")
	f.Add(`[[[[["x"]]]]]`, "a=%zz&b")
	f.Add(`{"a":`, "")
	f.Add(`"\ud800"`, "x=\x00")
	c := shared(f)
	f.Fuzz(func(t *testing.T, body, query string) {
		r := &http.Request{
			Method: http.MethodPost, Proto: "HTTP/1.1", Host: "api.example.com",
			URL:    &url.URL{Path: "/api/v1/items", RawQuery: query},
			Header: http.Header{"Content-Type": {"application/json"}, "Cookie": {"prefs=" + query}},
		}
		req := &pipeline.Request{HTTP: r, Body: []byte(body), Typed: map[string]struct{}{"json:/id": {}}}
		v, err := c.Check(context.Background(), req)
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		for _, m := range matches(v) {
			if len(m.Data) > maxData {
				t.Fatalf("data of %d bytes", len(m.Data))
			}
		}
		if n := len(collect(req, 8).args); n > 8 {
			t.Fatalf("fed %d values past MaxArgs 8", n)
		}
	})
}
