package decision

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"ip:192.0.2.1", "ip:192.0.2.1"},
		{"ip:::ffff:192.0.2.1", "ip:192.0.2.1"},
		{"ip:2001:DB8::1", "ip:2001:db8::1"},
		{"ip:fe80::1%eth0", "ip:fe80::1"},
		{"net:10.0.0.7/24", "net:10.0.0.0/24"},
		{"net:2001:db8::1/32", "net:2001:db8::/32"},
		{"net:::ffff:10.0.0.0/104", "net:10.0.0.0/8"},
		{"net:192.0.2.9/32", "ip:192.0.2.9"},
		{"country:de", "country:DE"},
		{"fp:t13d1516h2_8daaf6152771_b186095e22b6", "fp:t13d1516h2_8daaf6152771_b186095e22b6"},
		{"key:partner-acme", "key:partner-acme"},
		{"sub:user@example.com", "sub:user@example.com"},
		{"dev:ab12", "dev:ab12"},
	} {
		got, err := ParseKey(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseKey(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{
		"", "ip", "ip:", "ip:300.1.1.1", "net:10.0.0.0", "net:10.0.0.0/33", "country:UK", "country:DEU",
		"foo:bar", "fp:a\x00b", "sub:" + strings.Repeat("x", 257), "sub:\xff", "key:tab\there",
	} {
		if got, err := ParseKey(in); err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseKey(%q) = %q, %v; want ErrInvalid", in, got, err)
		}
	}
}

func TestKeyHelpers(t *testing.T) {
	if got := IPKey(netip.MustParseAddr("::ffff:1.2.3.4")); got != "ip:1.2.3.4" {
		t.Errorf("IPKey = %q", got)
	}
	if got := NetKey(netip.MustParsePrefix("10.1.2.3/16")); got != "net:10.1.0.0/16" {
		t.Errorf("NetKey = %q", got)
	}
	for in, want := range map[string]string{"DE": "country:DE", "de": "country:DE", "zz": "country:ZZ", "D": "", "D1": "", "[a": "", "": ""} {
		if got := CountryKey(in); got != want {
			t.Errorf("CountryKey(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { CountryKey("fr") }); n != 0 {
		t.Errorf("CountryKey allocates %v times", n)
	}
}

func TestAction(t *testing.T) {
	t.Parallel()
	for _, a := range []Action{Throttle, Challenge, Block, Allow} {
		b, err := a.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Action
		if err := back.UnmarshalText(b); err != nil || back != a || a.String() != string(b) {
			t.Errorf("%v round-trips to %v, %v", a, back, err)
		}
	}
	if _, err := Action(0).MarshalText(); err == nil {
		t.Error("zero action encodes")
	}
	if _, err := ParseAction("ban"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseAction(ban): %v", err)
	}
	if Action(9).String() != "action(9)" {
		t.Error(Action(9).String())
	}
}

// The JSON form is a contract (admin API, CLI): fixed field order, sorted
// map keys, UTC millisecond times, empty fields omitted.
func TestJSONIsStable(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	berlin := time.FixedZone("CET", 3600)
	d := Decision{
		Key:        "ip:::ffff:192.0.2.7",
		Action:     Block,
		Reason:     "credential stuffing",
		Source:     "stuffing",
		Evidence:   map[string]string{"failed_logins": "212", "distinct_users": "180"},
		Thresholds: map[string]string{"failed_logins": "50/5m"},
		Created:    now.In(berlin).Add(1234567 * time.Nanosecond),
		Expires:    now.Add(time.Hour),
	}
	if err := d.normalize(now); err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"` + d.ID + `","key":"ip:192.0.2.7","action":"block","reason":"credential stuffing","source":"stuffing",` +
		`"evidence":{"distinct_users":"180","failed_logins":"212"},"thresholds":{"failed_logins":"50/5m"},` +
		`"created":"2026-03-01T12:00:00.001Z","expires":"2026-03-01T13:00:00Z"}`
	if string(got) != want {
		t.Fatalf("JSON\n got %s\nwant %s", got, want)
	}
	if len(d.ID) != 24 || d.ID != DeriveID("ip:192.0.2.7", Block, "stuffing") {
		t.Fatalf("id %q", d.ID)
	}
	var back Decision
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if !equal(&back, &d) {
		t.Fatalf("round trip: %+v != %+v", back, d)
	}
	again, _ := json.Marshal(back)
	if string(again) != want {
		t.Fatalf("re-encoding differs: %s", again)
	}
	minimal, _ := json.Marshal(Decision{ID: "x", Key: "key:a", Action: Allow, Source: "manual", Created: now, Expires: now})
	if want := `{"id":"x","key":"key:a","action":"allow","source":"manual","created":"2026-03-01T12:00:00Z","expires":"2026-03-01T12:00:00Z"}`; string(minimal) != want {
		t.Fatalf("minimal JSON %s", minimal)
	}
	if err := json.Unmarshal([]byte(`{"action":"ban"}`), &back); err == nil {
		t.Fatal("unknown action decoded")
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	valid := func() Decision {
		return Decision{Key: "ip:192.0.2.1", Action: Block, Source: SourceManual, Expires: now.Add(time.Minute)}
	}
	d := valid()
	if err := d.normalize(now); err != nil {
		t.Fatal(err)
	}
	if !d.Created.Equal(now) || d.ID == "" {
		t.Fatalf("defaults not applied: %+v", d)
	}
	big := map[string]string{}
	for i := range 33 {
		big[strings.Repeat("k", i+1)] = "v"
	}
	for _, tc := range []struct {
		desc string
		mod  func(*Decision)
		want string
	}{
		{"bad key", func(d *Decision) { d.Key = "mac:aa" }, "unknown kind"},
		{"no action", func(d *Decision) { d.Action = 0 }, "action 0"},
		{"bad source", func(d *Decision) { d.Source = "" }, "source"},
		{"bad source chars", func(d *Decision) { d.Source = "a b" }, "source"},
		{"bad id", func(d *Decision) { d.ID = "a:b" }, "id"},
		{"long reason", func(d *Decision) { d.Reason = strings.Repeat("x", 513) }, "reason"},
		{"control in reason", func(d *Decision) { d.Reason = "a\nb" }, "reason"},
		{"big evidence", func(d *Decision) { d.Evidence = big }, "evidence has 33 entries"},
		{"bad threshold", func(d *Decision) { d.Thresholds = map[string]string{"": "x"} }, "thresholds entry"},
		{"no expiry", func(d *Decision) { d.Expires = time.Time{} }, "expires is required"},
		{"expired", func(d *Decision) { d.Expires = now }, "not in the future"},
		{"too long", func(d *Decision) { d.Expires = now.Add(MaxTTL + time.Hour) }, "more than"},
	} {
		d := valid()
		tc.mod(&d)
		err := d.normalize(now)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrInvalid containing %q", tc.desc, err, tc.want)
		}
	}
	// The caller's maps are copied.
	ev := map[string]string{"a": "1"}
	d = valid()
	d.Evidence = ev
	if err := d.normalize(now); err != nil {
		t.Fatal(err)
	}
	ev["a"] = "2"
	if d.Evidence["a"] != "1" {
		t.Fatal("evidence map shared with the caller")
	}
}
