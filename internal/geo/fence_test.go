package geo

import (
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/config/field"
)

func TestFence(t *testing.T) {
	t.Parallel()
	type probe struct {
		country string
		allowed bool
		reason  string
	}
	for _, tc := range []struct {
		desc   string
		cfg    FenceConfig
		probes []probe
	}{
		{
			desc: "allow-list, unknown denied by default",
			cfg:  FenceConfig{Allow: []string{"DE", "at", " ch "}},
			probes: []probe{
				{"DE", true, ""},
				{"AT", true, ""},
				{"ch", true, ""}, // lower case from a caller
				{"US", false, ReasonCountryNotAllowed},
				{"", false, ReasonCountryUnknown},
				{"D", false, ReasonCountryUnknown},
				{"D1", false, ReasonCountryUnknown},
			},
		},
		{
			desc: "allow-list, unknown allowed",
			cfg:  FenceConfig{Allow: []string{"DE"}, Unknown: UnknownAllow},
			probes: []probe{
				{"DE", true, ""},
				{"FR", false, ReasonCountryNotAllowed},
				{"", true, ""},
			},
		},
		{
			desc: "deny-list, unknown allowed by default",
			cfg:  FenceConfig{Deny: []string{"KP", "IR"}},
			probes: []probe{
				{"KP", false, ReasonCountryDenied},
				{"ir", false, ReasonCountryDenied},
				{"DE", true, ""},
				{"", true, ""},
			},
		},
		{
			desc: "deny-list, unknown denied",
			cfg:  FenceConfig{Deny: []string{"KP"}, Unknown: UnknownDeny},
			probes: []probe{
				{"KP", false, ReasonCountryDenied},
				{"DE", true, ""},
				{"", false, ReasonCountryUnknown},
			},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			f, err := NewFence(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.probes {
				allowed, reason := f.Check(p.country)
				if allowed != p.allowed || reason != p.reason {
					t.Errorf("Check(%q) = %v, %q; want %v, %q", p.country, allowed, reason, p.allowed, p.reason)
				}
				if f.Allows(p.country) != p.allowed {
					t.Errorf("Allows(%q) != %v", p.country, p.allowed)
				}
			}
		})
	}
}

func TestFenceValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc string
		cfg  FenceConfig
		want []string // substrings, one per error, in order
	}{
		{"valid", FenceConfig{Allow: []string{"de", "XK"}}, nil},
		{"empty", FenceConfig{}, []string{"geo: set allow or deny"}},
		{"both", FenceConfig{Allow: []string{"DE"}, Deny: []string{"FR"}}, []string{"geo: set allow or deny, not both"}},
		{"hint", FenceConfig{Deny: []string{"UK"}}, []string{"geo.deny[0]: \"UK\" is not an ISO 3166-1 alpha-2 code; did you mean GB?"}},
		{"unassigned", FenceConfig{Allow: []string{"DE", "QQ", "Germany", ""}}, []string{
			"geo.allow[1]: \"QQ\" is not an ISO",
			"geo.allow[2]: \"Germany\" is not an ISO",
			"geo.allow[3]: \"\" is not an ISO",
		}},
		{"duplicate", FenceConfig{Allow: []string{"DE", "de"}}, []string{"geo.allow[1]: duplicate country \"DE\""}},
		{"unknown policy", FenceConfig{Allow: []string{"DE"}, Unknown: "block"}, []string{"geo.unknown: must be allow or deny, not \"block\""}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			var errs field.Errors
			tc.cfg.Validate("geo", &errs)
			if errs.Len() != len(tc.want) {
				t.Fatalf("got %d errors %v, want %d", errs.Len(), errs.Err(), len(tc.want))
			}
			for i, w := range tc.want {
				if got := errs.List[i].Error(); !strings.Contains(got, w) {
					t.Errorf("error %d = %q, want it to contain %q", i, got, w)
				}
			}
			_, err := NewFence(tc.cfg)
			if (err == nil) != (len(tc.want) == 0) {
				t.Fatalf("NewFence error %v, want error: %v", err, len(tc.want) > 0)
			}
		})
	}
}

func TestValidCountry(t *testing.T) {
	t.Parallel()
	n := 0
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			if ValidCountry(string([]rune{a, b})) {
				n++
			}
		}
	}
	if n != 250 { // 249 assigned + XK
		t.Fatalf("%d valid codes, want 250", n)
	}
	for _, c := range []string{"de", "UK", "EU", "D", "DEU", " DE", ""} {
		if ValidCountry(c) {
			t.Errorf("ValidCountry(%q) = true", c)
		}
	}
}

func TestFilesValidate(t *testing.T) {
	t.Parallel()
	var errs field.Errors
	(&Files{}).Validate("geo.databases", &errs)
	(&Files{ASN: "asn.mmdb"}).Validate("x", &errs)
	if errs.Len() != 1 || errs.List[0].Path != "geo.databases" {
		t.Fatalf("errors: %v", errs.Err())
	}
}

func BenchmarkFenceCheck(b *testing.B) {
	f, err := NewFence(FenceConfig{Allow: []string{"DE", "AT", "CH"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := f.Check("FR"); ok {
			b.Fatal("FR allowed")
		}
	}
}
