package detect

import (
	"fmt"
	"testing"
	"time"
)

func TestFlows(t *testing.T) {
	t.Parallel()
	type step struct {
		after   time.Duration
		what    string // "cart", "checkout", "confirm", "transfer", "step-up", "login", "login-fail"
		session string
		subject string
		ip      string
		status  int
	}
	s := func(after time.Duration, what, session, subject string) step {
		return step{after, what, session, subject, "198.18.6.6", 200}
	}
	tests := []struct {
		desc  string
		steps []step
		want  []string // "request:rule:violation"
	}{
		{"cart then checkout", []step{s(0, "cart", "s1", "al"), s(time.Minute, "checkout", "s1", "al")}, nil},
		{"checkout without cart", []step{s(0, "checkout", "s1", "al")}, []string{"1:checkout_after_cart:missing_step"}},
		{"cart too long ago", []step{s(0, "cart", "s1", "al"), s(31*time.Minute, "checkout", "s1", "al")}, []string{"2:checkout_after_cart:stale_step"}},
		{"anonymous cart, login, checkout in the new session", []step{
			s(0, "cart", "anon-1", ""), s(time.Minute, "login", "", ""), s(time.Minute, "checkout", "jti-1", "alice"),
		}, nil},
		{"transfer right after login", []step{s(0, "login", "", ""), s(time.Minute, "transfer", "jti-1", "alice")}, nil},
		{"transfer long after login", []step{s(0, "login", "", ""), s(6*time.Minute, "transfer", "jti-1", "alice")}, []string{"2:transfer_after_login:stale_step"}},
		{"step-up refreshes", []step{s(0, "login", "", ""), s(6*time.Minute, "step-up", "jti-1", "alice"), s(time.Second, "transfer", "jti-1", "alice")}, nil},
		{"failed login does not count", []step{s(0, "login-fail", "", ""), s(time.Second, "transfer", "jti-1", "alice")}, []string{"2:transfer_after_login:missing_step"}},
		{"stolen token, no login", []step{s(0, "transfer", "jti-x", "alice")}, []string{"1:transfer_after_login:missing_step"}},
		{"failed cart does not count", []step{{0, "cart", "s1", "al", "198.18.6.6", 500}, s(time.Second, "checkout", "s1", "al")}, []string{"2:checkout_after_cart:missing_step"}},
		{"out of order", []step{
			s(0, "checkout", "s1", "al"), s(time.Second, "cart", "s1", "al"), s(time.Second, "confirm", "s1", "al"),
		}, []string{"1:checkout_after_cart:missing_step", "3:confirm_sequence:out_of_order"}},
		{"full sequence", []step{s(0, "cart", "s1", "al"), s(time.Second, "checkout", "s1", "al"), s(time.Second, "confirm", "s1", "al")}, nil},
		{"anonymous: keyed by IP", []step{
			{0, "cart", "", "", "198.18.6.7", 200}, {time.Second, "checkout", "", "", "198.18.6.7", 200}, {time.Second, "checkout", "", "", "198.18.6.8", 200},
		}, []string{"3:checkout_after_cart:missing_step"}},
		// Documented trade-off: behind one address, another person's cart
		// satisfies the rule (flows err towards missing an attack).
		{"NAT fallback", []step{s(0, "cart", "s-other", "other"), s(time.Second, "checkout", "s-me", "me")}, nil},
		{"cooldown", []step{
			s(0, "checkout", "s1", "al"), s(10*time.Second, "checkout", "s1", "al"), s(2*time.Minute, "checkout", "s1", "al"),
		}, []string{"1:checkout_after_cart:missing_step", "3:checkout_after_cart:missing_step"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			u := newUnit(t, only(DetectorFlow))
			var got []string
			for i, st := range tc.steps {
				a := ip(st.ip)
				var o Observation
				switch st.what {
				case "cart":
					o = post(time.Time{}, a, chrome, "/api/cart", 201)
				case "checkout":
					o = post(time.Time{}, a, chrome, "/api/checkout", 200)
				case "confirm":
					o = post(time.Time{}, a, chrome, "/api/orders/confirm", 200)
				case "transfer":
					o = post(time.Time{}, a, chrome, "/api/transfer", 200)
				case "step-up":
					o = post(time.Time{}, a, chrome, "/api/auth/step-up", 200)
				case "login", "login-fail":
					o = login(time.Time{}, a, chrome, "alice", st.what == "login")
				}
				if st.status != 200 {
					o.Status = st.status
				}
				o.Session, o.Subject = st.session, st.subject
				for _, f := range u.do(st.after, o) {
					got = append(got, fmt.Sprintf("%d:%s:%s", i+1, f.Rule, f.Evidence["violation"]))
					wantKey := "sub:" + st.subject
					if st.subject == "" {
						wantKey = "ip:" + st.ip
					}
					if f.Detector != DetectorFlow || f.Key != wantKey || f.Thresholds["within"] == "" || f.Evidence["required"] == "" {
						t.Errorf("finding %+v", f)
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("findings %v, want %v", got, tc.want)
			}
		})
	}
}
