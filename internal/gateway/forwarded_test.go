package gateway

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	t.Parallel()
	trusted := trustedProxies{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	cases := []struct {
		desc, remote string
		xff          []string
		fwd          string
		want         string
		wantTrusted  bool
	}{
		{"untrusted peer ignores xff", "198.51.100.1:1234", []string{"1.2.3.4"}, "", "198.51.100.1", false},
		{"trusted peer, one hop", "10.0.0.1:1234", []string{"192.0.2.5"}, "", "192.0.2.5", true},
		{"client-forged left entries ignored", "10.0.0.1:1", []string{"6.6.6.6, 192.0.2.5"}, "", "192.0.2.5", true},
		{"trusted hops skipped", "10.0.0.1:1", []string{"192.0.2.5, 10.1.1.1, 10.2.2.2"}, "", "192.0.2.5", true},
		{"several header lines", "10.0.0.1:1", []string{"192.0.2.9", "10.3.3.3"}, "", "192.0.2.9", true},
		{"garbage stops the walk", "10.0.0.1:1", []string{"192.0.2.5, garbage, 10.1.1.1"}, "", "10.1.1.1", true},
		{"all trusted gives leftmost", "10.0.0.1:1", []string{"10.5.5.5, 10.6.6.6"}, "", "10.5.5.5", true},
		{"xff with port", "10.0.0.1:1", []string{"192.0.2.5:4711"}, "", "192.0.2.5", true},
		{"ipv6 peer and client", "[2001:db8::1]:443", []string{"2001:db9::7"}, "", "2001:db9::7", true},
		{"forwarded header when no xff", "10.0.0.1:1", nil, `for="[2001:db9::8]:80";proto=https, for=10.1.1.1`, "2001:db9::8", true},
		{"trusted peer without headers", "10.0.0.1:1", nil, "", "10.0.0.1", true},
		{"mapped v4 peer", "[::ffff:10.0.0.1]:1", []string{"192.0.2.5"}, "", "192.0.2.5", true},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if tc.fwd != "" {
				r.Header.Set("Forwarded", tc.fwd)
			}
			got, tr := trusted.clientIP(r)
			if got.String() != tc.want || tr != tc.wantTrusted {
				t.Fatalf("clientIP = %s (trusted peer %v), want %s (%v)", got, tr, tc.want, tc.wantTrusted)
			}
		})
	}
}

func TestCleanPath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/":                 "/",
		"":                  "/",
		"/a/b":              "/a/b",
		"/a/b/":             "/a/b/",
		"/a/../b":           "/b",
		"/a/./b/":           "/a/b/",
		"//a//b":            "/a/b",
		"/../../etc/passwd": "/etc/passwd",
		"a/b":               "/a/b",
		"/a/..":             "/",
	} {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRequestIDs(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id := newRequestID()
		if !validRequestID(id) || len(id) != 32 || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
	for id, ok := range map[string]bool{"abc": true, "a b": false, "": false, "x\n": false, string(make([]byte, 129)): false, "A-Z_0.9:": true} {
		if validRequestID(id) != ok {
			t.Errorf("validRequestID(%q) != %v", id, ok)
		}
	}
}
