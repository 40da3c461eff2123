package detect

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestKeys(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 300)
	tests := []struct {
		desc string
		o    Observation
		mode fpMode
		want []string
	}{
		{
			desc: "ipv4 and every identity",
			o:    Observation{IP: netip.MustParseAddr("203.0.113.7"), JA4: "t13d", JA4H: "ge11_aa_bb_cc", APIKey: "k1", Subject: "alice", Device: "d9"},
			want: []string{"ip:203.0.113.7", "net:203.0.113.0/24", "fp:t13d|ge11_aa_bb", "key:k1", "sub:alice", "dev:d9"},
		},
		{
			desc: "ipv6 is grouped by /64",
			o:    Observation{IP: netip.MustParseAddr("2001:db8:1:2:3:4:5:6")},
			want: []string{"ip:2001:db8:1:2:3:4:5:6", "net:2001:db8:1:2::/64"},
		},
		{
			desc: "ipv4-mapped ipv6 is ipv4, zones dropped",
			o:    Observation{IP: netip.MustParseAddr("::ffff:192.0.2.1")},
			want: []string{"ip:192.0.2.1", "net:192.0.2.0/24"},
		},
		{
			desc: "zone",
			o:    Observation{IP: netip.MustParseAddr("fe80::1%eth0")},
			want: []string{"ip:fe80::1", "net:fe80::/64"},
		},
		{desc: "nothing", o: Observation{}, want: []string{}},
		{desc: "plain http: ja4h only", o: Observation{JA4H: "ge11_aa_bb_cc"}, want: []string{"fp:|ge11_aa_bb"}},
		{desc: "ja4 mode", o: Observation{JA4: "t13d", JA4H: "ge11_aa_bb_cc"}, mode: fpJA4, want: []string{"fp:t13d|"}},
		{desc: "ja4h mode", o: Observation{JA4: "t13d", JA4H: "ge11_aa_bb_cc"}, mode: fpJA4H, want: []string{"fp:|ge11_aa_bb"}},
		{desc: "ja4 mode without ja4", o: Observation{JA4H: "ge11_aa_bb_cc"}, mode: fpJA4, want: []string{}},
		{
			desc: "long values are clipped with a hash",
			o:    Observation{Subject: long},
			want: []string{"sub:" + long[:maxPart-17] + "~" + string(appendHex64(nil, fnv64a(long)))},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			id := identify(&tc.o, tc.mode)
			got := id.list()
			if !slices.Equal(got, tc.want) {
				t.Errorf("keys = %q, want %q", got, tc.want)
			}
		})
	}
	if got := FingerprintKey("a", "b_c_d_e"); got != "fp:a|b_c_d" {
		t.Errorf("FingerprintKey = %q", got)
	}
	if got := Keys(&Observation{Subject: "s"}); !slices.Equal(got, []string{"sub:s"}) {
		t.Errorf("Keys = %q", got)
	}
}

func TestNormUser(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"  Alice@Example.COM ": "alice@example.com",
		"bob":                  "bob",
		"ÉLODIE":               "élodie",
		"":                     "",
	} {
		if got := normUser(in); got != want {
			t.Errorf("normUser(%q) = %q, want %q", in, got, want)
		}
	}
	if got := normUser(strings.Repeat("A", 1000)); len(got) > maxPart {
		t.Errorf("normUser kept %d bytes", len(got))
	}
}
