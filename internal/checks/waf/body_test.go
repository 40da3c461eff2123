package waf

import (
	"net/http"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/pipeline"
)

// multipart builds a multipart/form-data body with boundary XyZ from
// parts given as header lines and content.
func multipart(parts ...[2]string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString("--XyZ\r\n" + p[0] + "\r\n\r\n" + p[1] + "\r\n")
	}
	b.WriteString("--XyZ--\r\n")
	return b.String()
}

func mpField(name, v string) [2]string {
	return [2]string{`Content-Disposition: form-data; name="` + name + `"`, v}
}

func mpFile(name, filename, ctype, v string) [2]string {
	return [2]string{`Content-Disposition: form-data; name="` + name + `"; filename="` + filename + "\"\r\nContent-Type: " + ctype, v}
}

const mpType = "multipart/form-data; boundary=XyZ"

// Bodies that are neither JSON nor forms are parsed by Coraza's own body
// processors (MULTIPART, XML, URLENCODED forced on other types).
func TestRawBodiesInspected(t *testing.T) {
	tests := []struct {
		name   string
		s      spec
		family int
		param  string
	}{
		{"multipart field", spec{ctype: mpType, body: multipart(mpField("title", "Holiday photos"), mpField("comment", sqliUnion),
			mpFile("photo", "beach.jpg", "image/jpeg", "\xff\xd8\xff\xe0JFIF"))}, 942, "body:comment"},
		{"multipart xss field", spec{ctype: mpType, body: multipart(mpField("bio", xssImg))}, 941, "body:bio"},
		{"multipart php upload", spec{ctype: mpType, body: multipart(mpFile("f", "shell.php", "image/jpeg", "<?php system($_GET['c']); ?>"))}, 933, ""},
		{"multipart put", spec{method: http.MethodPut, ctype: mpType, body: multipart(mpField("q", traversal))}, 930, "body:q"},
		{"xml element", spec{ctype: "application/xml", body: "<order><note>" + xssScript + "</note></order>"}, 941, "xml"},
		{"soap sqli", spec{ctype: "text/xml; charset=utf-8", body: "<Envelope><Body><q>" + sqliUnion + "</q></Body></Envelope>"}, 942, "xml"},
		{"text body", spec{ctype: "text/plain", body: "x=" + cmdInj}, 932, "body:x"},
		{"long text body", spec{ctype: "text/plain", body: strings.Repeat("padding ", 50) + xssScript}, 941, ""},
	}
	c := shared(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if in := collect(tt.s.request(), 512); !in.rawBody || len(in.args) != 0 {
				t.Fatalf("body fed as arguments: %+v", in)
			}
			v := run(t, c, tt.s)
			if v.Action != pipeline.Deny {
				t.Fatalf("not detected: %s", v.Detail)
			}
			if !matchedOn(v, tt.family, tt.param) {
				t.Errorf("no %dxxx rule matched on %q; got %+v", tt.family, tt.param, matches(v))
			}
			for _, m := range matches(v) {
				if len(m.Param) > len("body:")+maxData {
					t.Errorf("param of %d bytes", len(m.Param))
				}
				if m.Param == "xml" && m.Data != redacted {
					t.Errorf("xml text reported: %q", m.Data)
				}
			}
		})
	}
}

func TestRawBodiesBenign(t *testing.T) {
	tests := []struct {
		name string
		s    spec
	}{
		{"multipart upload", spec{ctype: mpType, body: multipart(mpField("title", "Holiday photos"), mpField("album", "summer-2025"),
			mpFile("photo", "beach.jpg", "image/jpeg", "\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01binary"))}},
		{"xml", spec{ctype: "application/xml", body: `<?xml version="1.0"?><order id="42"><item sku="KT-1700" qty="2"/><note>Leave it at the back door, it's the green one.</note></order>`}},
	}
	c := shared(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v := run(t, c, tt.s); v.Action != pipeline.Allow {
				t.Fatalf("benign body refused: %s %+v", v.Detail, matches(v))
			}
		})
	}
}

// JSON and form bodies are fed as arguments only: Coraza's JSON and
// URLENCODED processors never parse them, so typed values stay unscanned.
func TestAPIBodiesNotWritten(t *testing.T) {
	c := shared(t)
	for _, s := range []spec{
		{body: jsonBody("status", sqliUnion), typed: []string{"json:/status"}},
		{ctype: "application/x-www-form-urlencoded", body: "status=" + urlEscape(sqliUnion), typed: []string{"form:status"}},
		{ctype: "application/json; charset=utf-8", body: jsonBody("status", xssScript), typed: []string{"json:/status"}},
	} {
		if in := collect(s.request(), 512); in.rawBody {
			t.Errorf("%s body handed to Coraza", s.ctype)
		}
		if v := run(t, c, s); v.Action != pipeline.Allow {
			t.Errorf("%s: typed value scanned (body parsed by Coraza?): %s %+v", s.ctype, v.Detail, matches(v))
		}
	}
}

func TestCookies(t *testing.T) {
	c := shared(t)
	t.Run("session fixation in a cookie", func(t *testing.T) {
		s := spec{cookie: "sid=abc123; pref=" + urlEscape(`<meta http-equiv="set-cookie" content="sid=attacker">`)}
		v := run(t, c, s)
		if v.Action != pipeline.Deny || !matchedOn(v, 943, "cookie:pref") {
			t.Fatalf("943 not matched on the cookie: %s %+v", v.Action, matches(v))
		}
		for _, m := range matches(v) {
			if m.Param == "cookie:pref" && m.Data != redacted {
				t.Errorf("cookie value reported: %q", m.Data)
			}
		}
	})
	t.Run("session id name in the query", func(t *testing.T) {
		v := run(t, c, spec{target: "/login?jsessionid=74B0CB41", header: map[string]string{"Referer": "https://evil.example/x"}})
		if v.Action != pipeline.Deny || !matchedOn(v, 943, "query:jsessionid") {
			t.Fatalf("943 not matched on the query name: %s %+v", v.Action, matches(v))
		}
	})
	t.Run("plain cookie inspected once, by coraza", func(t *testing.T) {
		s := spec{cookie: "lang=" + urlEscape(sqliUnion)}
		in := collect(s.request(), 512)
		if len(in.args) != 0 || len(in.cookies) != 1 || in.cookies[0] != s.cookie {
			t.Fatalf("plain cookie fed as an argument too: %+v", in)
		}
		v := run(t, c, s)
		if v.Action != pipeline.Deny || !matchedOn(v, 942, "cookie:lang") {
			t.Fatalf("not detected on cookie:lang: %+v", matches(v))
		}
	})
	t.Run("json cookie walked, not inspected raw", func(t *testing.T) {
		s := spec{cookie: `sid=abc; prefs={"theme":"dark","banner":"` + xssImg + `"}`}
		in := collect(s.request(), 512)
		if len(in.cookies) != 1 || in.cookies[0] != "sid=abc" {
			t.Fatalf("JSON cookie left in the Cookie header: %q", in.cookies)
		}
		v := run(t, c, s)
		if v.Action != pipeline.Deny || !matchedOn(v, 941, "cookie:prefs/banner") {
			t.Fatalf("nested JSON cookie not walked: %+v", matches(v))
		}
		for _, m := range matches(v) {
			if m.Param == "cookie:prefs" {
				t.Errorf("JSON cookie also inspected whole: %+v", m)
			}
		}
	})
	t.Run("benign json cookie", func(t *testing.T) {
		// Raw, its quotes and braces trip rules; its leaves do not.
		s := spec{cookie: `cart={"items":[{"sku":"KT-1700","note":"it's a gift; wrap it"}],"coupon":"SPRING-24"}`}
		if v := run(t, c, s); v.Action != pipeline.Allow {
			t.Fatalf("benign JSON cookie refused: %s %+v", v.Detail, matches(v))
		}
	})
	t.Run("exclusion by cookie", func(t *testing.T) {
		const only942100 = "foo@bar.com' --"
		ex := mustNew(t, Config{Exclusions: []Exclusion{{RuleIDs: []int{942100}, Parameters: []string{"cookie:lang"}}}})
		if v := run(t, ex, spec{cookie: "lang=" + urlEscape(only942100)}); v.Action != pipeline.Allow {
			t.Fatalf("excluded cookie still matched: %+v", matches(v))
		}
		if v := run(t, ex, spec{cookie: "other=" + urlEscape(only942100)}); v.Action != pipeline.Deny {
			t.Fatalf("exclusion covers another cookie")
		}
	})
}
