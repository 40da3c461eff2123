package ssrf

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
)

// fakeResolver maps names to addresses; unknown names fail like NXDOMAIN.
type fakeResolver struct {
	m     map[string][]string
	calls atomic.Int32
}

func (f *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.calls.Add(1)
	list, ok := f.m[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	out := make([]netip.Addr, len(list))
	for i, s := range list {
		out[i] = netip.MustParseAddr(s)
	}
	return out, nil
}

func newResolver() *fakeResolver {
	return &fakeResolver{m: map[string][]string{
		"example.com":        {"93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"},
		"cdn.example.com":    {"151.101.1.1"},
		"good.com":           {"198.41.0.4"},
		"innocent.example":   {"10.0.0.5"},
		"mixed.example":      {"8.8.8.8", "192.168.1.1"},
		"rebind.example":     {"127.0.0.1"},
		"v6private.example":  {"fd00::1"},
		"mapped.example":     {"::ffff:169.254.169.254"},
		"images.corp.net":    {"10.1.2.3"},
		"corp.net":           {"10.1.2.2"},
		"x.images.corp.net":  {"10.1.2.4"},
		"assets.example.org": {"203.0.114.9"},
	}}
}

func build(t testing.TB, cfg Config, r Resolver) *Check {
	t.Helper()
	c, err := New(cfg, WithResolver(r))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func req(query, body string) *pipeline.Request {
	r := &pipeline.Request{HTTP: httptest.NewRequest("POST", "/fetch", nil)}
	r.HTTP.URL.RawQuery = query
	if body != "" {
		r.Body = []byte(body)
	}
	return r
}

func bodyURL(u string) string {
	return `{"image_url":` + jsonString(u) + `}`
}

func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&15])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func TestURLEncodings(t *testing.T) {
	t.Parallel()
	refused := map[string]string{ // URL: detail fragment
		"http://127.0.0.1/":                                   "loopback",
		"http://localhost:8080/admin":                         "internal host",
		"http://LOCALHOST./":                                  "internal host",
		"http://api.localhost/":                               "internal host",
		"http://2130706433/":                                  "loopback",
		"http://0177.0.0.1/":                                  "loopback",
		"http://0x7f000001/":                                  "loopback",
		"http://0x7f.0.0.1/":                                  "loopback",
		"http://127.1/":                                       "loopback",
		"http://127.0.1/":                                     "loopback",
		"http://017700000001/":                                "loopback",
		"http://127.0.0.1./":                                  "loopback",
		"http://0/":                                           "unspecified",
		"http://0.0.0.0:80/":                                  "unspecified",
		"http://[::1]/":                                       "loopback",
		"http://[::]/":                                        "unspecified",
		"http://[0:0:0:0:0:0:0:1]:8080/":                      "loopback",
		"http://[::ffff:127.0.0.1]/":                          "loopback",
		"http://[::ffff:7f00:1]/":                             "loopback",
		"http://[::ffff:169.254.169.254]/":                    "link-local",
		"http://[64:ff9b::a9fe:a9fe]/":                        "link-local",
		"http://[2002:c0a8:0101::1]/":                         "private",
		"http://[fe80::1%25eth0]/":                            "link-local",
		"http://[fd00:ec2::254]/":                             "private",
		"http://169.254.169.254/latest/meta-data":             "link-local",
		"http://metadata.google.internal/computeMetadata/v1/": "internal host",
		"http://metadata/":                                    "internal host",
		"http://instance-data/":                               "internal host",
		"http://metadata.azure.com/":                          "internal host",
		"http://10.0.0.1/":                                    "private",
		"http://172.16.5.4/":                                  "private",
		"http://192.168.0.1/":                                 "private",
		"http://100.64.1.1/":                                  "reserved",
		"http://224.0.0.1/":                                   "multicast",
		"http://[ff02::1]/":                                   "multicast",
		"http://255.255.255.255/":                             "reserved",
		"http://0.1.2.3/":                                     "reserved",
		"http://good.com@127.0.0.1/":                          "loopback",
		"http://user:pass@127.0.0.1:80/":                      "loopback",
		"http://127.0.0.1:80\\@good.com/":                     "loopback",
		"http://good.com#@127.0.0.1/":                         "loopback",
		"http://127.0.0.1#@good.com/":                         "loopback",
		"http://%31%32%37%2e%30%2e%30%2e%31/":                 "loopback",
		"http://%2531%2532%2537.0.0.1/":                       "loopback",
		"http://１２７．０．０．１/":                                   "loopback",
		"http://127。0。0。1/":                                   "loopback",
		"HTTP://127.0.0.1/":                                   "loopback",
		"  http://127.0.0.1/":                                 "loopback",
		"ht\ttp://127.0.0.1/":                                 "loopback",
		"http:/\\127.0.0.1/":                                  "loopback",
		"http:127.0.0.1/":                                     "loopback",
		"https://innocent.example/":                           "resolves to a private",
		"https://mixed.example/":                              "resolves to a private",
		"https://rebind.example/":                             "resolves to a loopback",
		"https://v6private.example/":                          "resolves to a private",
		"https://mapped.example/":                             "resolves to a link-local",
		"http://redis:6379/":                                  "internal host",
		"http://db.default.svc/":                              "internal host",
		"http://printer.local/":                               "internal host",
		"http://256.0.0.1/":                                   "invalid host",
		"http://1.2.3.4.5/":                                   "invalid host",
		"http:///":                                            "invalid host",
		"http://exa mple.com/":                                "invalid host",
		"file:///etc/passwd":                                  "scheme",
		"gopher://example.com:70/_GET":                        "scheme",
		"dict://example.com:11211/stat":                       "scheme",
		"ftp://example.com/":                                  "scheme",
	}
	allowed := []string{
		"https://example.com/image.png",
		"http://example.com:8080/x?y=1#z",
		"https://cdn.example.com/a/b",
		"https://user@example.com/",
		"https://EXAMPLE.COM./",
		"http://93.184.215.14/",
		"http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/",
		"http://8.8.8.8/",
		"not a url at all",
		"mailto:admin@127.0.0.1", // not a fetchable scheme: no URL in auto mode
		"javascript:alert(1)",
		"$12 for http",
	}
	c := build(t, Config{}, newResolver())
	for u, want := range refused {
		v, err := c.Check(t.Context(), req("", bodyURL(u)))
		if err != nil {
			t.Errorf("%q: error %v", u, err)
			continue
		}
		if v.Reason != reason || v.Status != 400 || v.Action != pipeline.Deny {
			t.Errorf("%q: not refused: %+v", u, v)
			continue
		}
		if !strings.Contains(v.Detail, want) || !strings.Contains(v.Detail, "/image_url") {
			t.Errorf("%q: detail %q, want %q", u, v.Detail, want)
		}
		if strings.Contains(v.Detail, "http") || strings.Contains(v.Detail, "127") {
			t.Errorf("%q: detail echoes the URL: %q", u, v.Detail)
		}
	}
	for _, u := range allowed {
		v, err := c.Check(t.Context(), req("", bodyURL(u)))
		if err != nil || v.Action != pipeline.Allow {
			t.Errorf("%q: %+v %v", u, v, err)
		}
	}
}

func TestSchemes(t *testing.T) {
	t.Parallel()
	r := newResolver()
	c := build(t, Config{Schemes: []string{"https", "ftp"}}, r)
	for u, ok := range map[string]bool{
		"https://example.com/":    true,
		"ftp://example.com/":      true,
		"http://example.com/":     false,
		"gopher://example.com/":   false,
		"ftp://127.0.0.1/":        false,
		"FTP://example.com/a.txt": true,
	} {
		v, err := c.Check(t.Context(), req("", bodyURL(u)))
		if err != nil || (v.Action == pipeline.Allow) != ok {
			t.Errorf("%q: %+v %v", u, v, err)
		}
	}
}

func TestAllowHosts(t *testing.T) {
	t.Parallel()
	c := build(t, Config{AllowHosts: []string{"*.corp.net", "localhost", "10.9.9.9"}}, newResolver())
	for u, ok := range map[string]bool{
		"http://images.corp.net/a":   true,
		"http://x.images.corp.net/a": true,
		"http://corp.net/":           false, // *.suffix needs a label
		"http://localhost:3000/":     true,
		"http://10.9.9.9/":           true,
		"http://0x0a090909/":         false, // exemptions match the written host only
		"http://innocent.example/":   false,
	} {
		v, _ := c.Check(t.Context(), req("", bodyURL(u)))
		if (v.Action == pipeline.Allow) != ok {
			t.Errorf("%q: %+v", u, v)
		}
	}
}

func TestDenyCIDRs(t *testing.T) {
	t.Parallel()
	c := build(t, Config{DenyCIDRs: []string{"151.101.0.0/16", "2606:2800::/32"}}, newResolver())
	for _, u := range []string{"https://cdn.example.com/", "https://example.com/", "http://151.101.9.9/"} {
		v, _ := c.Check(t.Context(), req("", bodyURL(u)))
		if v.Reason != reason || !strings.Contains(v.Detail, "denied address") {
			t.Errorf("%q: %+v", u, v)
		}
	}
	v, _ := c.Check(t.Context(), req("", bodyURL("http://127.0.0.1/")))
	if v.Reason != reason {
		t.Error("defaults dropped")
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	r := newResolver()
	c := build(t, Config{}, r)
	// A repeated name is resolved once per request.
	v, err := c.Check(t.Context(), req("", `{"a":"https://example.com/1","b":["https://example.com/2","https://example.com/3"]}`))
	if err != nil || v.Action != pipeline.Allow || r.calls.Load() != 1 {
		t.Fatalf("%+v %v calls=%d", v, err, r.calls.Load())
	}
	// Lookup failures are errors for on_error to decide.
	_, err = c.Check(t.Context(), req("", bodyURL("https://nxdomain.example/")))
	if err == nil || strings.Contains(err.Error(), "nxdomain") {
		t.Fatalf("error %v", err)
	}
	// Resolve off: names pass unless internal by spelling; literals are still judged.
	off := false
	c = build(t, Config{Resolve: &off}, r)
	for u, ok := range map[string]bool{
		"https://innocent.example/": true,
		"https://nxdomain.example/": true,
		"http://localhost/":         false,
		"http://2130706433/":        false,
	} {
		v, err := c.Check(t.Context(), req("", bodyURL(u)))
		if err != nil || (v.Action == pipeline.Allow) != ok {
			t.Errorf("%q: %+v %v", u, v, err)
		}
	}
	// The default resolver is used without an option.
	d, err := New(Config{})
	if err != nil || d.resolver == nil {
		t.Fatal("no default resolver")
	}
}

func TestLookupBudget(t *testing.T) {
	t.Parallel()
	m := map[string][]string{}
	var b strings.Builder
	b.WriteByte('[')
	for i := range maxLookups + 1 {
		h := "h" + string(rune('a'+i)) + ".example"
		m[h] = []string{"8.8.8.8"}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"https://` + h + `/"`)
	}
	b.WriteByte(']')
	c := build(t, Config{}, &fakeResolver{m: m})
	if _, err := c.Check(t.Context(), req("", b.String())); err == nil {
		t.Fatal("lookup budget not enforced")
	}
}

func TestParameters(t *testing.T) {
	t.Parallel()
	cfg := Config{Parameters: []string{"/image_url", "/items/*/url", "/a~1b", "query:callback"}}
	c := build(t, cfg, newResolver())
	cases := []struct {
		query, body string
		detail      string // "" = allowed
	}{
		{"", `{"image_url":"http://127.0.0.1/"}`, "/image_url"},
		{"", `{"image_url":"127.0.0.1:6379"}`, "/image_url"},        // schemeless host:port
		{"", `{"image_url":"//169.254.169.254/"}`, "/image_url"},    // scheme-relative
		{"", `{"image_url":"localhost:6379"}`, "/image_url"},        // not scheme "localhost"
		{"", `{"image_url":"javascript:alert(1)//"}`, "/image_url"}, // a scheme, not allowed
		{"", `{"image_url":""}`, ""},
		{"", `{"image_url":"https://example.com/x.png"}`, ""},
		{"", `{"image_url":"example.com/x.png"}`, ""},
		{"", `{"other":"http://127.0.0.1/"}`, ""}, // not a configured parameter
		{"", `{"items":[{"url":"https://example.com"},{"url":"http://10.0.0.1"}]}`, "/items/1/url"},
		{"", `{"items":{"k":{"url":"http://10.0.0.1"}}}`, "/items/k/url"},
		{"", `{"items":[{"nested":{"url":"http://10.0.0.1"}}]}`, ""},
		{"", `{"a/b":"http://[::1]/"}`, "/a~1b"},
		{"", `{"image_url":"https://example.com","image_url":"http://127.0.0.1"}`, "/image_url"}, // duplicates
		{"callback=http%3A%2F%2F127.0.0.1%2F", "", `query parameter "callback"`},
		{"callback=https://example.com/hook", "", ""},
		{"next=http://127.0.0.1/", "", ""},
	}
	for _, tc := range cases {
		v, err := c.Check(t.Context(), req(tc.query, tc.body))
		if err != nil {
			t.Errorf("%s %s: %v", tc.query, tc.body, err)
			continue
		}
		if tc.detail == "" {
			if v.Action != pipeline.Allow {
				t.Errorf("%s %s: %+v", tc.query, tc.body, v)
			}
			continue
		}
		if v.Reason != reason || !strings.Contains(v.Detail, tc.detail) {
			t.Errorf("%s %s: %+v, want detail with %q", tc.query, tc.body, v, tc.detail)
		}
	}
	// Auto mode judges every query value and every body string.
	auto := build(t, Config{}, newResolver())
	for _, r := range []*pipeline.Request{req("next=http://127.0.0.1/", ""), req("", `{"deep":[[{"x":"http://10.1.1.1/"}]]}`)} {
		if v, _ := auto.Check(t.Context(), r); v.Reason != reason {
			t.Errorf("auto: %+v", v)
		}
	}
}

func TestDetailEscaped(t *testing.T) {
	t.Parallel()
	c := build(t, Config{}, newResolver())
	v, _ := c.Check(t.Context(), req("", `{"<img src=x>\n":"http://127.0.0.1/"}`))
	if v.Reason != reason || strings.ContainsAny(v.Detail, "<>\n") {
		t.Fatalf("%+v", v)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	var errs field.Errors
	bad := Config{
		Parameters:     []string{"image_url", "query:", "/a~x"},
		AllowHosts:     []string{"http://x.com/", "a b"},
		DenyCIDRs:      []string{"10.0.0.0/33"},
		Schemes:        []string{"ht tp"},
		ResolveTimeout: "forever",
	}
	bad.Validate("c", &errs)
	if errs.Len() != 8 {
		t.Fatalf("%d errors: %v", errs.Len(), errs.Err())
	}
	errs = field.Errors{}
	good := Config{Parameters: []string{"/u", "/items/*/url", "query:cb"}, AllowHosts: []string{"*.corp.net", "img.example.com"},
		DenyCIDRs: []string{"203.0.113.0/24", "2001:db8::1"}, Schemes: []string{"https"}, ResolveTimeout: "50ms"}
	good.Validate("c", &errs)
	if errs.Len() != 0 {
		t.Fatal(errs.Err())
	}
}

func TestParseHost(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"2130706433":     "127.0.0.1",
		"0x7f.1":         "127.0.0.1",
		"0177.0.0.01":    "127.0.0.1",
		"127.0.0.1":      "127.0.0.1",
		"10.0x10.010":    "10.16.0.8",
		"0x":             "0.0.0.0",
		"4294967295":     "255.255.255.255",
		"[::1]":          "::1",
		"::ffff:1.2.3.4": "::ffff:1.2.3.4",
	} {
		k, a := parseHost(in)
		if k != hostAddr || a.String() != want {
			t.Errorf("%q: %v %v, want %s", in, k, a, want)
		}
	}
	for _, in := range []string{"4294967296", "1.2.3.256", "08.1.1.1", "[1.2.3.4]", "[::1", "a..b", "", "1.2.3.4.5", "x.99999999999999999999"} {
		if k, _ := parseHost(in); k != hostInvalid {
			t.Errorf("%q: %v, want invalid", in, k)
		}
	}
	for _, in := range []string{"example.com", "xn--bcher-kva.example", "a_b.example", "0x.example", "0x1g"} {
		if k, _ := parseHost(in); k != hostName {
			t.Errorf("%q: %v, want name", in, k)
		}
	}
}

// FuzzHost checks the URL reader never panics and that whatever address it
// reads is judged the same as the same address written plainly.
func FuzzHost(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1/", "http://0x7f.1/", "http://a@b@[::1]:80\\@c/", "http://%31.0.0.1/",
		"http://１２７．０．０．１/", "gopher://x", "http://[fe80::1%25eth0]/", "http:/\\example.com", "http://017700000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, ok := parseTarget(s, true)
		if !ok {
			return
		}
		for _, h := range tg.hosts {
			k, a := parseHost(h)
			if k == hostAddr {
				k2, a2 := parseHost(a.String())
				if a.Is6() && !a.Is4In6() {
					k2, a2 = parseHost("[" + a.String() + "]")
				}
				if k2 != hostAddr || a2 != a {
					t.Fatalf("%q: %v does not round-trip (%v %v)", h, a, k2, a2)
				}
				if (addrProblem(a, nil) == "") != (addrProblem(a2, nil) == "") {
					t.Fatalf("%q judged differently", h)
				}
			}
		}
		c, _ := New(Config{}, WithResolver(&fakeResolver{m: map[string][]string{}}))
		v, _ := c.Check(t.Context(), req("", bodyURL(s)))
		if strings.ContainsAny(v.Detail, "<>\n\r") {
			t.Fatalf("unsafe detail %q", v.Detail)
		}
	})
}

func BenchmarkBody(b *testing.B) {
	c := build(b, Config{}, newResolver())
	r := req("next=https://example.com/cb", `{"image_url":"https://cdn.example.com/a.png","items":[{"url":"http://93.184.215.14/x"},{"name":"plain text"}]}`)
	b.ReportAllocs()
	for b.Loop() {
		if v, err := c.Check(b.Context(), r); v.Action != pipeline.Allow || err != nil {
			b.Fatal(v, err)
		}
	}
}
