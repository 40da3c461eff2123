package detect

import (
	"strconv"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	t.Parallel()
	type req struct {
		status     int
		undeclared bool
		login      bool
	}
	mix := func(n int, f func(i int) req) []req {
		out := make([]req, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	tests := []struct {
		desc string
		reqs []req
		want map[string]int // rule -> request of its first finding
	}{
		{"path guessing", mix(40, func(int) req { return req{404, true, false} }), map[string]int{"undeclared": 10, "not_found": 20}},
		{"token guessing", mix(40, func(i int) req { return req{[]int{401, 403}[i%2], false, false} }), map[string]int{"auth_errors": 10}},
		{"busy client with a few stale links", mix(400, func(i int) req {
			if i%20 == 0 {
				return req{404, false, false}
			}
			return req{200, false, false}
		}), map[string]int{}},
		{"expired token, one retry each", mix(200, func(i int) req {
			if i%4 == 0 {
				return req{401, false, false}
			}
			return req{200, false, false}
		}), map[string]int{}},
		{"failed logins are the login detector's", mix(40, func(int) req { return req{401, false, true} }), map[string]int{}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			u := newUnit(t, only(DetectorProbe))
			got := map[string]int{}
			for i, r := range tc.reqs {
				o := get(time.Time{}, ip("198.18.4.4"), pyreq, "/p/"+strconv.Itoa(i), "", nil, r.status)
				o.Undeclared = r.undeclared
				if r.login {
					o.Login = &LoginAttempt{Username: "u"}
				}
				for _, f := range u.do(time.Second, o) {
					if _, seen := got[f.Rule]; !seen {
						got[f.Rule] = i + 1
						t.Logf("%s at %d: %d %v %v", f.Rule, i+1, f.Score, f.Evidence, f.Thresholds)
					}
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("rules %v, want %v", got, tc.want)
			}
			for rule, at := range tc.want {
				if got[rule] != at {
					t.Errorf("%s first at request %d, want %d", rule, got[rule], at)
				}
			}
		})
	}
}
