package openapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/pipeline"
)

// orderBody is a realistic ~1 KB order: nested objects, enums, formats,
// patterns and 3.1 nullable types.
func orderBody(extra string) []byte {
	var b strings.Builder
	b.WriteString(`{"customer":{"email":"alice@example.com","name":"Alice Example","id":"6f1c2b9e-2a4e-4d6b-9a53-0c4f8f9b1e21"},"items":[`)
	for i := range 6 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"ABC-%04d","quantity":%d,"gift":false,"note":"please wrap item %d carefully, thanks a lot"}`, 1000+i, i+1, i)
	}
	b.WriteString(`],"shipping":{"street":"1 Infinite Loop Road, Building 4","city":"Springfield","postal_code":"12345","country":"DE","method":"express"},"payment":"card","coupon":null,"channel":"web","placed_at":"2026-01-02T15:04:05Z"`)
	b.WriteString(extra)
	b.WriteString(`}`)
	return []byte(b.String())
}

func BenchmarkCheck1KB(b *testing.B) {
	for _, spec := range []string{"testdata/shop30.yaml", "testdata/shop31.yaml"} {
		b.Run(strings.TrimSuffix(strings.TrimPrefix(spec, "testdata/"), ".yaml"), func(b *testing.B) {
			c := newCheck(b, Config{Spec: spec})
			body := orderBody("")
			r := httptest.NewRequest(http.MethodPost, "/orders", nil)
			r.Header.Set("Content-Type", "application/json")
			r.ContentLength = int64(len(body))
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				req := &pipeline.Request{HTTP: r, Body: body}
				v, _ := c.Check(context.Background(), req)
				if v.Action != pipeline.Allow {
					b.Fatal(v)
				}
			}
		})
	}
}

// responseBody is a ~10 KB order list where every order carries an
// undeclared and a write-only property.
func responseBody() []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range 24 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"status":"paid","total":12.5,"card_token":"tok_%08d","internal_margin":0.31,"items":[{"sku":"ABC-1234","quantity":1,"note":"n"},{"sku":"XYZ-9876","quantity":3,"gift":true}],"shipping":{"street":"1 Main St","city":"Springfield","postal_code":"12345","country":"DE"}}`, i+1, i)
	}
	b.WriteByte(']')
	return b.Bytes()
}

func BenchmarkCheckResponse10KB(b *testing.B) {
	c := newCheck(b, Config{Response: &ResponseConfig{UndeclaredProperties: "remove"}})
	body := responseBody()
	req := (reqSpec{method: "GET", target: "/orders"}).build()
	h := http.Header{"Content-Type": {"application/json"}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		resp := &http.Response{StatusCode: 200, Header: h.Clone(), Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}
		v, _ := c.CheckResponse(context.Background(), req, resp)
		if v.Reason != "response-undeclared-properties" {
			b.Fatal(v)
		}
	}
}

func FuzzValidateRequest(f *testing.F) {
	f.Add("POST", "/orders", "dry_run=true", string(orderBody("")))
	f.Add("GET", "/orders", "limit=5&limit=6&tags=a,b", "")
	f.Add("PATCH", "/users/alice", "", `{"id":1,"settings":{"x":[1,{"y":"\ud83d\ude00"}]}}`)
	f.Add("GET", "/orders/%2F..%2F", "status=%zz", "")
	f.Add("DELETE", "/orders/1e400", "", `[[[[`)
	checks := []*Check{
		newCheck(f, Config{Spec: "testdata/shop31.yaml", AdditionalProperties: "reject"}),
		newCheck(f, Config{Spec: "testdata/shop30.yaml", Undeclared: "log"}),
		newCheck(f, Config{Spec: "testdata/demo.yaml", BasePath: "/x"}),
	}
	f.Fuzz(func(t *testing.T, method, path, query, body string) {
		u := &url.URL{Path: path, RawQuery: query}
		r := &http.Request{Method: method, URL: u, Header: http.Header{"Content-Type": {"application/json"}}, ContentLength: int64(len(body))}
		for _, c := range checks {
			req := &pipeline.Request{HTTP: r, Body: []byte(body)}
			v, err := c.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if v.Action == pipeline.Deny && v.Status == 0 {
				t.Fatal("deny without status")
			}
			resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}
			if _, err := c.CheckResponse(context.Background(), req, resp); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// FuzzParseJSON holds our parser to encoding/json: whatever it accepts is
// valid JSON, and an untouched tree re-emits the input exactly.
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e3,-0,true,null,"x\u00e9\ud83d\ude00"]}`, `[]`, `{"a":1,"a":2}`, "\"\xff\"", `{"a":{"b":[{}]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseJSON(b)
		if err != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		out := appendPruned(nil, b, &v)
		if !bytes.Equal(bytes.TrimSpace(out), bytes.TrimSpace(b)) {
			t.Fatalf("round trip changed %q to %q", b, out)
		}
		// Mark every object dirty and drop nothing: the re-emitted
		// document must still be valid JSON and equal in value.
		var markAll func(*value)
		markAll = func(x *value) {
			x.dirty = x.k == kObject || x.k == kArray
			for i := range x.arr {
				markAll(&x.arr[i])
			}
			for i := range x.obj {
				markAll(&x.obj[i].val)
			}
		}
		markAll(&v)
		out = appendPruned(nil, b, &v)
		var a, c any
		if json.Unmarshal(b, &a) != nil || json.Unmarshal(out, &c) != nil || !reflect.DeepEqual(a, c) {
			t.Fatalf("rewrite changed %q to %q", b, out)
		}
	})
}
