package detect

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseID: ids come from attacker-chosen path and query values. The
// oracle is strconv: an id is numeric exactly when it is 1-18 ASCII
// digits, and then has their value.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"0", "42", "007", "123456789012345678", "1234567890123456789", "-1", "+1", "1e3", " 1", "１", "", "550e8400-e29b-41d4-a716-446655440000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := parseID(s)
		digits := len(s) > 0 && len(s) <= 18 && strings.Trim(s, "0123456789") == ""
		if ok != digits {
			t.Fatalf("parseID(%q) ok = %v, want %v", s, ok, digits)
		}
		if ok {
			want, err := strconv.ParseUint(s, 10, 64)
			if err != nil || n != want {
				t.Fatalf("parseID(%q) = %d, strconv %d %v", s, n, want, err)
			}
		}
	})
}

// FuzzIdentify: fingerprints, names and addresses are client-influenced.
// Keys are well formed and bounded whatever they are.
func FuzzIdentify(f *testing.F) {
	f.Add([]byte{203, 0, 113, 7}, "t13d1516h2_8daaf6152771_02713d6af862", "ge11cr15enus_a_b_c", "key", "alice", "dev", uint8(0))
	f.Add([]byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, "", "___", "", strings.Repeat("é", 200), "", uint8(2))
	f.Fuzz(func(t *testing.T, ipb []byte, ja4, ja4h, key, sub, dev string, mode uint8) {
		a, _ := netip.AddrFromSlice(ipb)
		o := Observation{IP: a, JA4: ja4, JA4H: ja4h, APIKey: key, Subject: sub, Device: dev}
		id := identify(&o, fpMode(mode%3))
		for k, s := range id.keys {
			if s == "" {
				continue
			}
			if !strings.HasPrefix(s, kindNames[k]+":") {
				t.Fatalf("key %q of kind %s", s, Kind(k))
			}
			if len(s) > 4+2*maxPart+1 {
				t.Fatalf("key of %d bytes", len(s))
			}
		}
		if a.IsValid() && id.keys[KindIP] == "" {
			t.Fatal("valid address without ip key")
		}
	})
}

// FuzzObserve: arbitrary observations through every detector never panic
// and keep scores in range.
func FuzzObserve(f *testing.F) {
	f.Add("GET", "/api/orders/{id}", "/api/orders/1", "1", "id=2", 404, true, "u", false, int64(0))
	f.Add("POST", "/api/checkout", "/api/checkout", "", "", 200, false, "", true, int64(1e9))
	f.Fuzz(func(t *testing.T, method, tmpl, path, id, query string, status int, undeclared bool, user string, ok bool, dt int64) {
		clock := &fakeClock{t: t0}
		e := fuzzEngine(t, clock)
		q, _ := url.ParseQuery(query)
		for i := range 3 {
			o := Observation{
				Time: t0.Add(time.Duration(dt) * time.Duration(i)), IP: netip.AddrFrom4([4]byte{1, 2, 3, byte(i)}),
				JA4: path, JA4H: id, Subject: user, Session: query, Method: method, Path: path, Template: tmpl,
				PathParams: map[string]string{"id": id}, Query: q, Status: status, Undeclared: undeclared,
			}
			if user != "" {
				o.Login = &LoginAttempt{Username: user, Success: ok}
			}
			for _, f := range e.Observe(o) {
				if f.Score < 0 || f.Score > 100 || f.Key == "" {
					t.Fatalf("finding %+v", f)
				}
			}
			if s, _ := e.Risk(o); s < 0 || s > 100 {
				t.Fatalf("risk %d", s)
			}
		}
	})
}

func fuzzEngine(t *testing.T, clock *fakeClock) *Engine {
	cfg := Config{Flow: FlowConfig{Rules: flowRules}}
	cfg.Enum.QueryParams = []string{"id"}
	e, err := New(cfg, Options{Clock: clock.now, MaxKeys: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}
