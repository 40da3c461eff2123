package iplist

import (
	"net/netip"
	"testing"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc   string
		cfg    Config
		ip     string
		reason string // "" = allowed
	}{
		{"no lists allow all", Config{}, "192.0.2.1", ""},
		{"deny cidr", Config{Deny: []string{"203.0.113.0/24"}}, "203.0.113.200", "ip-denied"},
		{"deny cidr boundary below", Config{Deny: []string{"203.0.113.0/24"}}, "203.0.112.255", ""},
		{"deny cidr boundary above", Config{Deny: []string{"203.0.113.0/24"}}, "203.0.114.0", ""},
		{"deny single address", Config{Deny: []string{"198.51.100.7"}}, "198.51.100.7", "ip-denied"},
		{"mapped v4 matches v4 list", Config{Deny: []string{"198.51.100.7"}}, "::ffff:198.51.100.7", "ip-denied"},
		{"v6 prefix", Config{Deny: []string{"2001:db8::/32"}}, "2001:db8:1::5", "ip-denied"},
		{"v6 not in v4 list", Config{Deny: []string{"0.0.0.0/0"}}, "2001:db8::1", ""},
		{"allow list admits", Config{Allow: []string{"10.0.0.0/8"}}, "10.200.3.4", ""},
		{"allow list refuses others", Config{Allow: []string{"10.0.0.0/8"}}, "11.0.0.1", "ip-not-allowed"},
		{"deny wins over allow", Config{Allow: []string{"10.0.0.0/8"}, Deny: []string{"10.1.0.0/16"}}, "10.1.2.3", "ip-denied"},
		{"overlapping ranges merge", Config{Deny: []string{"10.0.0.0/16", "10.0.128.0/17", "10.0.5.0/24", "10.2.0.0/16"}}, "10.0.200.1", "ip-denied"},
		{"gap between ranges", Config{Deny: []string{"10.0.0.0/16", "10.2.0.0/16"}}, "10.1.0.1", ""},
		{"invalid client address is not denied by deny list", Config{Deny: []string{"10.0.0.0/8"}}, "", ""},
		{"invalid client address fails an allow list", Config{Allow: []string{"10.0.0.0/8"}}, "", "ip-not-allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			l, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			ip, _ := netip.ParseAddr(tc.ip)
			v, err := l.Check(t.Context(), &pipeline.Request{ClientIP: ip})
			if err != nil {
				t.Fatal(err)
			}
			if v.Reason != tc.reason {
				t.Fatalf("reason %q, want %q", v.Reason, tc.reason)
			}
			if tc.reason != "" && (v.Action != pipeline.Deny || v.Status != 403) {
				t.Fatalf("verdict %+v", v)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	errs := &field.Errors{}
	c := Config{Allow: []string{"10.0.0.0/8", "10.0.0.0/33"}, Deny: []string{"nope"}, Options: pipeline.Options{Mode: "sometimes"}}
	c.Validate("checks.iplist", errs)
	want := map[string]bool{"checks.iplist.allow[1]": true, "checks.iplist.deny[0]": true, "checks.iplist.mode": true}
	if errs.Len() != len(want) {
		t.Fatalf("errors: %v", errs.Err())
	}
	for _, e := range errs.List {
		if !want[e.Path] {
			t.Errorf("unexpected error path %s", e.Path)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	var deny []string
	for i := range 1000 {
		deny = append(deny, netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}).String()+"/24")
	}
	l, _ := New(Config{Deny: deny})
	req := &pipeline.Request{ClientIP: netip.MustParseAddr("192.0.2.1")}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = l.Check(ctx, req)
	}
}
