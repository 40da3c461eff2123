package waf

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/corazawaf/coraza/v3"

	"github.com/apiguard/apiguard/internal/pipeline"
)

var (
	rawOnce sync.Once
	rawWAF  coraza.WAF
	rawErr  error
)

// conventional is the same rule set used the usual way: Coraza reads the
// raw body with its JSON body processor, and the raw URI and Cookie header.
func conventional(tb testing.TB) coraza.WAF {
	tb.Helper()
	rawOnce.Do(func() {
		// The check's directives already turn body access on (for the
		// bodies it writes); checkRaw writes every body.
		rawWAF, rawErr = build(directives(defaultParanoia, defaultThreshold, nil))
	})
	if rawErr != nil {
		tb.Fatal(rawErr)
	}
	return rawWAF
}

// checkRaw judges req with the conventional WAF; it reports whether the
// request was interrupted.
func checkRaw(tb testing.TB, w coraza.WAF, req *pipeline.Request) bool {
	r := req.HTTP
	tx := w.NewTransaction()
	defer func() {
		tx.ProcessLogging()
		_ = tx.Close()
	}()
	tx.ProcessConnection("203.0.113.7", 0, "", 0)
	tx.ProcessURI(r.URL.RequestURI(), r.Method, r.Proto)
	tx.AddRequestHeader("Host", r.Host)
	for k, vs := range r.Header {
		for _, v := range vs {
			tx.AddRequestHeader(k, v)
		}
	}
	if len(req.Body) > 0 {
		tx.AddRequestHeader("Content-Length", fmt.Sprint(len(req.Body)))
	}
	if it := tx.ProcessRequestHeaders(); it != nil {
		return true
	}
	if _, _, err := tx.WriteRequestBody(req.Body); err != nil {
		tb.Fatal(err)
	}
	it, err := tx.ProcessRequestBody()
	if err != nil {
		tb.Fatal(err)
	}
	return it != nil
}

// apiJSON1KB is a benign ~1 KB order-with-review request, half of whose
// fields an OpenAPI schema would type (ids, enums, dates, numbers).
func apiJSON1KB() (body string, typed []string) {
	doc := map[string]any{
		"order_id":   "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f",
		"status":     "confirmed",
		"created_at": "2026-03-14T09:26:53Z",
		"currency":   "EUR",
		"customer": map[string]any{
			"id": "c0ffee00-1234-4abc-8def-001122334455", "name": "Jane O'Connor",
			"email": "jane.oconnor@example.co.uk", "tier": "gold",
		},
		"items": []any{
			map[string]any{"sku": "KT-1700", "qty": 2, "price": 39.99, "gift_note": "Happy birthday, Tom! Don't drink all the tea at once :)"},
			map[string]any{"sku": "MUG-SET", "qty": 1, "price": 12.5, "gift_note": "For the office -- they'll love the colours."},
		},
		"shipping": map[string]any{
			"method": "express", "eta": "2026-03-16T12:00:00Z",
			"address":      map[string]any{"street": "12 O'Neill Street", "city": "Saint-Étienne", "zip": "42000", "country": "FR"},
			"instructions": "Leave with the neighbour at no. 14 if nobody's home; ring twice.",
		},
		"review": map[string]any{
			"rating": 4, "title": "Solid kettle, fast delivery",
			"body": "I'd buy it again: boils 1.7 l in under three minutes and it's quiet. The lid could be sturdier, but for the price (39.99) it's great. See my photos at https://photos.example.com/u/jane/kettle",
		},
		"client": map[string]any{"app": "shop-ios", "version": "3.2.1", "locale": "fr-FR"},
	}
	b, _ := json.Marshal(doc)
	typed = []string{
		"json:/order_id", "json:/status", "json:/created_at", "json:/currency",
		"json:/customer/id", "json:/customer/tier",
		"json:/items/0/sku", "json:/items/1/sku", "json:/shipping/method", "json:/shipping/eta",
		"json:/shipping/address/country", "json:/client/app",
	}
	return string(b), typed
}

func benchCheck(b *testing.B, typed bool) {
	body, ty := apiJSON1KB()
	s := spec{method: "POST", target: "/api/v1/orders?expand=items", body: body}
	if typed {
		s.typed = ty
	}
	c := shared(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		v, err := c.Check(ctx, s.request())
		if err != nil || v.Action != pipeline.Allow {
			b.Fatalf("benign request refused: %s %v", v.Detail, err)
		}
	}
}

func BenchmarkCheckJSON1KB(b *testing.B)          { benchCheck(b, false) }
func BenchmarkCheckJSON1KBTypedHalf(b *testing.B) { benchCheck(b, true) }

func BenchmarkCorazaRawJSON(b *testing.B) {
	body, _ := apiJSON1KB()
	s := spec{method: "POST", target: "/api/v1/orders?expand=items", body: body}
	w := conventional(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if checkRaw(b, w, s.request()) {
			b.Fatal("benign request refused")
		}
	}
}

// BenchmarkNew is the cost of building one WAF (what the cache saves).
func BenchmarkNew(b *testing.B) {
	d := directives(defaultParanoia, defaultThreshold, nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := build(d); err != nil {
			b.Fatal(err)
		}
	}
}

// The 1 KB fixture has about 25 values, half of them typed.
func TestBenchFixture(t *testing.T) {
	body, typed := apiJSON1KB()
	if len(body) < 900 || len(body) > 1200 {
		t.Fatalf("fixture is %d bytes, want about 1 KB", len(body))
	}
	s := spec{body: body}
	all := len(collect(s.request(), 512).args)
	s.typed = typed
	half := len(collect(s.request(), 512).args)
	if half*2 > all+2 || half*2 < all-2 {
		t.Fatalf("typed fixture feeds %d of %d values, want about half", half, all)
	}
	if checkRaw(t, conventional(t), s.request()) {
		t.Fatal("conventional WAF refuses the benign fixture; the baseline would not be comparable")
	}
}

// A saved search stored as JSON in a string: its leaves are inspected as
// values, not as one string full of quotes, brackets and operators.
func TestNestedJSONAllowed(t *testing.T) {
	inner, _ := json.Marshal(map[string]any{
		"filters": []string{"price<100", "brand=Acme"}, "sort": "-rating", "q": "o'reilly -- 2nd ed.",
	})
	s := spec{body: jsonBody("saved_search", string(inner))}
	v := run(t, shared(t), s)
	if v.Action != pipeline.Allow {
		t.Fatalf("nested JSON refused: %s %+v", v.Detail, matches(v))
	}
	args := collect(s.request(), 512).args
	if len(args) != 4 || args[0].name != "json:/saved_search/filters/0" {
		t.Fatalf("nested JSON not walked: %+v", args)
	}
}

// BenchmarkCheckGET is the fixed cost: a GET whose only inputs are the
// path, a typed path parameter and the usual headers.
func BenchmarkCheckGET(b *testing.B) {
	s := spec{method: "GET", target: "/api/products/42", pathParams: map[string]string{"id": "42"}, typed: []string{"path:id"}}
	c := shared(b)
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		v, err := c.Check(ctx, s.request())
		if err != nil || v.Action != pipeline.Allow {
			b.Fatalf("benign request refused: %s %v", v.Detail, err)
		}
	}
}

// BenchmarkCorazaRawGET is the same GET the conventional way.
func BenchmarkCorazaRawGET(b *testing.B) {
	s := spec{method: "GET", target: "/api/products/42"}
	w := conventional(b)
	b.ReportAllocs()
	for b.Loop() {
		if checkRaw(b, w, s.request()) {
			b.Fatal("benign request refused")
		}
	}
}
