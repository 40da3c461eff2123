package fingerprint

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// naiveJA4H follows the FoxIO python reference (python/ja4h.py) on an
// explicit list of header names, written apart from ja4h.go.
func naiveJA4H(method, version string, names []string, h http.Header) string {
	hash := func(l []string) string {
		if len(l) == 0 {
			return "000000000000"
		}
		sum := sha256.Sum256([]byte(strings.Join(l, ",")))
		return hex.EncodeToString(sum[:])[:12]
	}
	m := ""
	for _, c := range strings.ToLower(method) {
		if len(m) == 2 {
			break
		}
		if strings.ContainsRune("abcdefghijklmnopqrstuvwxyz0123456789", c) {
			m += string(c)
		} else {
			m += "0"
		}
	}
	m += strings.Repeat("0", 2-len(m))
	cookie, referer := "n", "n"
	var kept []string
	for _, n := range names {
		switch strings.ToLower(n) {
		case "cookie":
			cookie = "c"
		case "referer":
			referer = "r"
		default:
			kept = append(kept, n)
		}
	}
	lang := strings.ToLower(strings.ReplaceAll(h.Get("Accept-Language"), "-", ""))
	lang = strings.Split(strings.ReplaceAll(lang, ";", ","), ",")[0]
	lang = strings.Map(func(r rune) rune {
		if strings.ContainsRune("abcdefghijklmnopqrstuvwxyz0123456789*", r) {
			return r
		}
		return -1
	}, lang)
	if len(lang) > 4 {
		lang = lang[:4]
	}
	lang += strings.Repeat("0", 4-len(lang))
	type pair struct{ name, pair string }
	var cookies []pair
	for _, line := range h.Values("Cookie") {
		for _, p := range strings.Split(line, ";") {
			if p = strings.TrimSpace(p); p != "" {
				cookies = append(cookies, pair{strings.TrimSpace(strings.SplitN(p, "=", 2)[0]), p})
			}
		}
	}
	sort.Slice(cookies, func(i, j int) bool {
		if cookies[i].name != cookies[j].name {
			return cookies[i].name < cookies[j].name
		}
		return cookies[i].pair < cookies[j].pair
	})
	var cn, cp []string
	for _, c := range cookies {
		cn = append(cn, c.name)
		cp = append(cp, c.pair)
	}
	return fmt.Sprintf("%s%s%s%s%02d%s_%s_%s_%s", m, version, cookie, referer, min(len(kept), 99), lang,
		hash(kept), hash(cn), hash(cp))
}

// TestJA4HPublishedVector is the HTTP/1.1 request of FoxIO-LLC/ja4
// rust/ja4/src/http.rs (test_http_stats_into_out), with its header names
// in the order sent.
func TestJA4HPublishedVector(t *testing.T) {
	t.Parallel()
	wire := []string{"Host", "Cookie", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "User-Agent", "Sec-Ch-Ua-Platform", "Accept",
		"Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Referer",
		"Accept-Encoding", "Accept-Language"}
	r := &http.Request{Method: "GET", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{
		"Cookie":          {"FastAB=0=6859,1=8174,2=4183,3=3319,4=3917,5=2557,6=4259,7=6070,8=0804,9=6453,10=1942,11=4435,12=4143,13=9445,14=6957,15=8682,16=1885,17=1825,18=3760,19=0929; sato=1; countryCode=US; stateCode=VA; geoData=purcellville|VA|20132|US|NA|-400|broadband|39.160|-77.700|511; usprivacy=1---; umto=1; _dd_s=logs=1&id=b5c2d770-eaba-4847-8202-390c4552ff9a&created=1686159462724&expire=1686160422726"},
		"Referer":         {"https://www.cnn.com/"},
		"Accept-Language": {"en-US,en;q=0.9"},
	}}
	const want = "ge11cr13enus_88d2d584d47f_0f2659b474bf_161698816dab"
	if got := ja4h(r, append([]string(nil), wire...), false); got != want {
		t.Errorf("JA4H = %s, want %s", got, want)
	}
	raw := ja4h(r, append([]string(nil), wire...), true)
	const wantRaw = "ge11cr13enus_Host,Sec-Ch-Ua,Sec-Ch-Ua-Mobile,User-Agent,Sec-Ch-Ua-Platform,Accept,Sec-Fetch-Site," +
		"Sec-Fetch-Mode,Sec-Fetch-Dest,Sec-Fetch-Mode,Sec-Fetch-Dest,Accept-Encoding,Accept-Language_" +
		"FastAB,_dd_s,countryCode,geoData,sato,stateCode,umto,usprivacy_FastAB=0=6859,"
	if !strings.HasPrefix(raw, wantRaw) {
		t.Errorf("JA4H raw = %s\nwant prefix  %s", raw, wantRaw)
	}
	if got := naiveJA4H("GET", "11", wire, r.Header); got != want {
		t.Errorf("test oracle gives %s: the oracle is wrong", got)
	}
}

func readRequest(t testing.TB, s string) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(s)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestJA4HRequests(t *testing.T) {
	t.Parallel()
	many := "GET / HTTP/1.1\r\nHost: h\r\n"
	for i := range 120 {
		many += fmt.Sprintf("X-H%d: v\r\n", i)
	}
	many += "\r\n"
	tests := []struct {
		desc, req string
		prefix    string   // JA4H part a
		names     []string // the names part b hashes, in that order
	}{
		{
			desc:   "recorded curl 7.88.1 request",
			req:    string(readTestdata(t, "curl.plain")),
			prefix: "ge11nn030000",
			names:  []string{"Host", "Accept", "User-Agent"}, // wire: Host, User-Agent, Accept
		},
		{
			desc:   "recorded python urllib request",
			req:    string(readTestdata(t, "python_urllib.plain")),
			prefix: "ge11nn040000",
			names:  []string{"Host", "Accept-Encoding", "Connection", "User-Agent"},
		},
		{
			desc: "cookies, referer, language, HTTP/1.0 POST",
			req: "POST /login HTTP/1.0\r\nHost: a\r\nAccept-Language: fr-CH, fr;q=0.9, en;q=0.8\r\n" +
				"Cookie: z=1;  b=2 ;a=3\r\nCookie: a=0\r\nReferer: https://a/\r\nContent-Length: 0\r\n\r\n",
			prefix: "po10cr03frch",
			names:  []string{"Host", "Accept-Language", "Content-Length"},
		},
		{
			desc:   "wildcard language, lower-case method letters kept",
			req:    "DELETE /x HTTP/1.1\r\nHost: a\r\nAccept-Language: *\r\n\r\n",
			prefix: "de11nn02*000",
			names:  []string{"Host", "Accept-Language"},
		},
		{
			desc:   "method characters that could forge a separator",
			req:    "A_B / HTTP/1.1\r\nHost: a\r\n\r\n",
			prefix: "a011nn010000",
			names:  []string{"Host"},
		},
		{
			desc:   "chunked body: net/http drops Transfer-Encoding, JA4H counts it",
			req:    "PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			prefix: "pu11nn020000",
			names:  []string{"Host", "Transfer-Encoding"},
		},
		{
			desc:   "more than 99 headers",
			req:    many,
			prefix: "ge11nn990000",
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			r := readRequest(t, tt.req)
			got, wire := JA4H(r)
			if wire {
				t.Error("HTTP/1 request reported as wire order")
			}
			if !strings.HasPrefix(got, tt.prefix+"_") || len(got) != 51 {
				t.Errorf("JA4H = %s, want part a %s and 51 characters", got, tt.prefix)
			}
			if tt.names != nil {
				ver := tt.prefix[2:4]
				names := append([]string(nil), tt.names...)
				if r.Header.Get("Referer") != "" {
					names = append(names, "Referer")
				}
				if len(r.Header.Values("Cookie")) > 0 {
					names = append(names, "Cookie")
				}
				if want := naiveJA4H(r.Method, ver, names, r.Header); got != want {
					t.Errorf("JA4H = %s, oracle %s", got, want)
				}
			}
		})
	}
}

func TestJA4HCookieParts(t *testing.T) {
	t.Parallel()
	r := readRequest(t, "GET / HTTP/1.1\r\nHost: a\r\nCookie: z=1;  b=2 ;a=3\r\nCookie: a=0; ;\r\n\r\n")
	raw := JA4HRaw(r)
	const want = "ge11cn010000_Host_a,a,b,z_a=0,a=3,b=2,z=1"
	if raw != want {
		t.Errorf("JA4H raw = %s, want %s", raw, want)
	}
	r = readRequest(t, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if got, _ := JA4H(r); !strings.HasSuffix(got, "_000000000000_000000000000") {
		t.Errorf("JA4H without cookies = %s, want zero cookie hashes", got)
	}
}

// TestJA4HWireOrderHTTP2 uses Chromium's recorded first request: with the
// capture in the request's context, part b hashes Chromium's own order.
func TestJA4HWireOrderHTTP2(t *testing.T) {
	t.Parallel()
	b := readTestdata(t, "chromium.plain")
	ci := new(ConnInfo)
	c := newH2Capture()
	c.write(b)
	ci.h2.Store(c)

	// Build the request net/http would: decode the block independently.
	fr := http2.NewFramer(nil, bytes.NewReader(b[len(http2.ClientPreface):]))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var mh *http2.MetaHeadersFrame
	for mh == nil {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		mh, _ = f.(*http2.MetaHeadersFrame)
	}
	r := &http.Request{Method: mh.PseudoValue("method"), RequestURI: mh.PseudoValue("path"),
		ProtoMajor: 2, Header: http.Header{}}
	var names []string
	for _, f := range mh.RegularFields() {
		r.Header.Add(f.Name, f.Value)
		names = append(names, f.Name)
	}
	sorted, _ := JA4H(r) // no ConnInfo: approximation
	r = r.WithContext(context.WithValue(context.Background(), connInfoKey{}, ci))
	got, wire := JA4H(r)
	if !wire {
		t.Fatal("wire order not found for the recorded request")
	}
	if want := naiveJA4H("GET", "20", names, r.Header); got != want {
		t.Errorf("JA4H = %s, want %s", got, want)
	}
	if got[:12] != sorted[:12] || got[13:25] == sorted[13:25] {
		t.Errorf("wire %s vs sorted %s: part a must agree and part b differ", got, sorted)
	}
	if got2, wire2 := JA4H(r); wire2 || got2 != sorted {
		t.Errorf("second request for the same block: %s (wire %v); the block must be used once", got2, wire2)
	}
}

// FuzzJA4H checks the fingerprint of any request net/http accepts keeps
// its fixed shape (the separators cannot be forged) and matches the
// oracle.
func FuzzJA4H(f *testing.F) {
	f.Add(string(readTestdata(f, "curl.plain")))
	f.Add(string(readTestdata(f, "python_urllib.plain")))
	f.Add("POST /a HTTP/1.0\r\nHost: a\r\nCookie: a=1; b\r\nAccept-Language: x_y\r\n\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(s)))
		if err != nil {
			return
		}
		got, _ := JA4H(r)
		if len(got) != 51 || strings.Count(got, "_") != 3 {
			t.Fatalf("JA4H %q has the wrong shape", got)
		}
		_ = JA4HRaw(r)
	})
}
