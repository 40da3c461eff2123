// Package ratelimit enforces rate limits, quotas and concurrency caps per
// client key with GCRA over the shared state backend (memory by default,
// Redis across instances), and answers with the IETF RateLimit header fields
// (draft-ietf-httpapi-ratelimit-headers-10).
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/apiguard/apiguard/internal/state"
)

// Limiter is the built check: the policies of one phase.
type Limiter struct {
	policies []*policy
	backend  state.Backend
	v6bits   int
}

var (
	_ pipeline.Check         = (*Limiter)(nil)
	_ pipeline.ResponseCheck = (*Limiter)(nil)
)

type keyKind uint8

const (
	keyIP keyKind = iota
	keyAPIKey
	keySubject
	keyApp
	keyDevice
	keyJA4
	keyHeader
	keyClaim
	keyJSON
)

type keyPart struct {
	kind keyKind
	name string // header or claim name
}

type policy struct {
	name        string
	parts       []keyPart
	limits      []state.Limit
	limitNames  []string
	cost        int64
	concurrency int64
	methods     []string
	paths       []string
	countStatus []int
	monitor     bool
	failOpen    bool
	headers     bool
	// policyField is this policy's part of RateLimit-Policy, built once.
	policyField string
}

// early reports whether every key part is known before authentication, so
// the policy can run in the early phase and refuse floods before any
// expensive check.
func (p *policy) early() bool {
	for _, k := range p.parts {
		switch k.kind {
		case keyIP, keyJA4, keyHeader, keyJSON:
		default:
			return false
		}
	}
	return true
}

// Build builds the check from a validated config. It returns the policies
// that can run early (keys known before authentication) and the rest; either
// may be nil.
func Build(cfg Config, backend state.Backend) (early, late *Limiter, err error) {
	v6 := cfg.IPv6Prefix
	if v6 == 0 {
		v6 = 64
	}
	defaultHeaders := cfg.Headers == nil || *cfg.Headers
	var earlyPs, latePs []*policy
	for i := range cfg.Policies {
		pc := &cfg.Policies[i]
		p := &policy{name: pc.Name, methods: pc.Methods, paths: pc.Paths, countStatus: slices.Clone(pc.CountStatus),
			concurrency: int64(pc.Concurrency), monitor: pc.Mode == pipeline.ModeMonitor,
			failOpen: policyOnError(pc.OnError, cfg.OnError) != pipeline.OnErrorDeny, headers: defaultHeaders}
		if pc.Headers != nil {
			p.headers = *pc.Headers
		}
		for _, k := range pc.Key {
			p.parts = append(p.parts, parseKeyPart(k))
		}
		if p.limits, p.limitNames, err = pc.limits(); err != nil {
			return nil, nil, fmt.Errorf("ratelimit: policy %s: %w", pc.Name, err)
		}
		if p.cost, err = parseCost(pc.Cost); err != nil {
			return nil, nil, fmt.Errorf("ratelimit: policy %s: %w", pc.Name, err)
		}
		p.policyField = p.buildPolicyField()
		if p.early() {
			earlyPs = append(earlyPs, p)
		} else {
			latePs = append(latePs, p)
		}
	}
	if len(earlyPs) > 0 {
		early = &Limiter{policies: earlyPs, backend: backend, v6bits: v6}
	}
	if len(latePs) > 0 {
		late = &Limiter{policies: latePs, backend: backend, v6bits: v6}
	}
	return early, late, nil
}

func parseKeyPart(s string) keyPart {
	kind, name, _ := strings.Cut(s, ":")
	switch kind {
	case "api_key":
		return keyPart{kind: keyAPIKey}
	case "subject":
		return keyPart{kind: keySubject}
	case "app":
		return keyPart{kind: keyApp}
	case "device":
		return keyPart{kind: keyDevice}
	case "ja4":
		return keyPart{kind: keyJA4}
	case "header":
		return keyPart{kind: keyHeader, name: http.CanonicalHeaderKey(name)}
	case "claim":
		return keyPart{kind: keyClaim, name: name}
	case "json":
		return keyPart{kind: keyJSON, name: name}
	}
	return keyPart{kind: keyIP}
}

// buildPolicyField renders the policy's RateLimit-Policy items:
// "name";q=quota;w=window (;qu="content-bytes" for byte costs).
func (p *policy) buildPolicyField() string {
	var items []string
	for i, l := range p.limits {
		item := fmt.Sprintf("%q;q=%d;w=%d", p.limitNames[i], l.Count, int64(l.Period/time.Second))
		if p.cost == costContentBytes {
			item += `;qu="content-bytes"`
		}
		items = append(items, item)
	}
	if p.concurrency > 0 {
		items = append(items, fmt.Sprintf(`%q;q=%d;qu="concurrent-requests"`, p.name+"-concurrency", p.concurrency))
	}
	return strings.Join(items, ", ")
}

// Name implements pipeline.Check.
func (*Limiter) Name() string { return "ratelimit" }

// concurrencyTTL bounds a slot whose release never comes (a crashed instance).
const concurrencyTTL = 5 * time.Minute

// Check implements pipeline.Check.
func (l *Limiter) Check(ctx context.Context, req *pipeline.Request) (pipeline.Verdict, error) {
	var (
		buf         [4]state.Result
		denied      []string // visible names of enforced violated policies
		deniedAny   bool
		monitorOnly []string
		retry       time.Duration
		policyField string // RateLimit-Policy, built up only when several policies apply
		stateField  []byte // RateLimit
		backendErr  error
		failClosed  bool
	)
	for _, p := range l.policies {
		if !p.applies(req.HTTP) {
			continue
		}
		key := p.key(req, l.v6bits)
		if p.concurrency > 0 {
			ok, err := l.backend.Acquire(ctx, key+":c", p.concurrency, concurrencyTTL)
			switch {
			case err != nil:
				backendErr, failClosed = err, failClosed || !p.failOpen
			case !ok:
				if p.monitor {
					monitorOnly = append(monitorOnly, p.name)
				} else {
					deniedAny = true
					retry = max(retry, time.Second)
					if p.headers {
						denied = append(denied, p.name)
					}
				}
			default:
				b := l.backend
				req.OnDone(func() { _ = b.Release(context.Background(), key+":c") })
			}
		}
		if len(p.limits) == 0 {
			continue
		}
		res := buf[:0]
		if len(p.limits) > len(buf) {
			res = make([]state.Result, 0, len(p.limits))
		}
		res = res[:len(p.limits)]
		cost := p.requestCost(req)
		var d state.Decision
		var err error
		if p.countStatus != nil {
			// Only matching responses count; the request is refused once
			// they have used up the limit.
			d, err = l.backend.RateLimit(ctx, key, p.limits, 0, res)
			if err == nil {
				for _, r := range d.Results {
					if r.Remaining < 1 {
						d.Allowed = false
					}
				}
			}
		} else {
			d, err = l.backend.RateLimit(ctx, key, p.limits, cost, res)
		}
		if err != nil {
			backendErr, failClosed = err, failClosed || !p.failOpen
			continue
		}
		if p.headers {
			if policyField == "" {
				policyField = p.policyField
			} else {
				policyField += ", " + p.policyField
			}
			for i, r := range d.Results {
				if stateField == nil {
					stateField = make([]byte, 0, 64)
				} else {
					stateField = append(stateField, ", "...)
				}
				stateField = strconv.AppendQuote(stateField, p.limitNames[i])
				stateField = append(stateField, ";r="...)
				stateField = strconv.AppendInt(stateField, r.Remaining, 10)
				stateField = append(stateField, ";t="...)
				stateField = strconv.AppendInt(stateField, ceilSeconds(r.ResetAfter), 10)
			}
		}
		if !d.Allowed {
			var wait time.Duration
			for _, r := range d.Results {
				wait = max(wait, r.RetryAfter)
			}
			if wait == 0 { // count_status peek: wait until one more unit fits
				for i, r := range d.Results {
					if r.Remaining < 1 {
						l := p.limits[i]
						t := l.Period / time.Duration(l.Count) // emission interval
						wait = max(wait, r.ResetAfter+t-t*time.Duration(l.Burst))
					}
				}
			}
			if p.monitor {
				monitorOnly = append(monitorOnly, p.name)
				continue
			}
			deniedAny = true
			retry = max(retry, wait)
			if p.headers {
				denied = append(denied, p.name)
			}
		}
	}
	if policyField != "" {
		req.SetResponseHeader("RateLimit-Policy", policyField)
		req.SetResponseHeader("RateLimit", string(stateField))
	}
	switch {
	case deniedAny:
		v := pipeline.Verdict{Action: pipeline.Deny, Status: http.StatusTooManyRequests, Reason: "rate-limited",
			Detail: "rate limit exceeded; retry later", Headers: http.Header{"Retry-After": {strconv.FormatInt(max(ceilSeconds(retry), 1), 10)}}}
		if len(denied) > 0 {
			v.Detail = "rate limit exceeded: " + strings.Join(denied, ", ")
			v.Extensions = map[string]any{"violated_policies": denied}
		}
		return v, nil
	case failClosed:
		return pipeline.Verdict{Action: pipeline.Deny, Status: http.StatusServiceUnavailable, Reason: "rate-limit-unavailable",
			Detail: "the request could not be checked; try again later", Headers: http.Header{"Retry-After": {"1"}}}, backendErr
	case len(monitorOnly) > 0:
		return pipeline.Verdict{Action: pipeline.Deny, Status: http.StatusTooManyRequests, Reason: "rate-limited", MonitorOnly: true,
			Detail: "would exceed: " + strings.Join(monitorOnly, ", ")}, nil
	case backendErr != nil:
		// Fail open, but visibly.
		return pipeline.Verdict{Action: pipeline.Flag, Reason: "rate-limit-unavailable", Detail: "state backend error; allowed (fail-open)"}, nil
	}
	return pipeline.Allowed, nil
}

// CheckResponse charges count_status policies for matching responses.
func (l *Limiter) CheckResponse(ctx context.Context, req *pipeline.Request, resp *http.Response) (pipeline.Verdict, error) {
	var buf [4]state.Result
	for _, p := range l.policies {
		if p.countStatus == nil || !slices.Contains(p.countStatus, resp.StatusCode) || !p.applies(req.HTTP) {
			continue
		}
		res := buf[:0]
		if len(p.limits) > len(buf) {
			res = make([]state.Result, 0, len(p.limits))
		}
		_, _ = l.backend.Charge(ctx, p.key(req, l.v6bits), p.limits, p.requestCost(req), res[:len(p.limits)])
	}
	return pipeline.Allowed, nil
}

func (p *policy) applies(r *http.Request) bool {
	if r == nil {
		return true
	}
	if len(p.methods) > 0 && !slices.Contains(p.methods, r.Method) {
		return false
	}
	if len(p.paths) == 0 {
		return true
	}
	for _, prefix := range p.paths {
		if strings.HasPrefix(r.URL.Path, prefix) {
			return true
		}
	}
	return false
}

// requestCost is the cost of one request: fixed, or the body size for
// content-bytes (the buffered size when known, else Content-Length; a body of
// unknown length counts 1 until it is read).
func (p *policy) requestCost(req *pipeline.Request) int64 {
	if p.cost != costContentBytes {
		return p.cost
	}
	switch {
	case req.Body != nil:
		return max(int64(len(req.Body)), 1)
	case req.HTTP != nil && req.HTTP.ContentLength > 0:
		return req.HTTP.ContentLength
	}
	return 1
}

// key builds the policy's client key. A missing part (no API key on a
// per-key policy, say) falls back to the client address, so a client cannot
// escape a limit by leaving a header out.
func (p *policy) key(req *pipeline.Request, v6bits int) string {
	b := make([]byte, 0, 96)
	b = append(b, "rl:"...)
	b = append(b, p.name...)
	for _, part := range p.parts {
		b = append(b, '|')
		var v string
		switch part.kind {
		case keyIP:
			b = appendIP(b, req.ClientIP, v6bits)
			continue
		case keyAPIKey:
			v = req.Identity.APIKey
		case keySubject:
			v = req.Identity.Subject
		case keyApp:
			v = req.Identity.App
		case keyDevice:
			v = req.Identity.Device
		case keyJA4:
			v = req.Identity.JA4
		case keyHeader:
			if req.HTTP != nil {
				v = req.HTTP.Header.Get(part.name)
			}
		case keyClaim:
			if c, ok := req.Identity.Claims[part.name]; ok {
				v = fmt.Sprint(c)
			}
		case keyJSON:
			v = jsonField(req.Body, part.name)
		}
		if v == "" {
			b = append(b, "~ip="...)
			b = appendIP(b, req.ClientIP, v6bits)
			continue
		}
		if len(v) > 64 { // bound key size: long values (tokens) are hashed
			sum := sha256.Sum256([]byte(v))
			v = "#" + hex.EncodeToString(sum[:12])
		}
		b = append(b, v...)
	}
	return string(b)
}

func appendIP(b []byte, ip netip.Addr, v6bits int) []byte {
	ip = ip.Unmap()
	if ip.Is6() && v6bits < 128 {
		if p, err := ip.Prefix(v6bits); err == nil {
			b = p.Addr().AppendTo(b)
			return append(b, '/', byte('0'+v6bits/100), byte('0'+v6bits/10%10), byte('0'+v6bits%10))
		}
	}
	return ip.AppendTo(b)
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// jsonField returns a top-level string or number field of a JSON object
// body, case-folded so "Alice" and "alice" are one credential; "" when
// absent. Only the buffered (already validated, size-limited) body is read.
func jsonField(body []byte, name string) string {
	if len(body) == 0 {
		return ""
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	raw, ok := m[name]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.ToLower(strings.TrimSpace(s))
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// policyOnError: a policy's own on_error, else the check's, else allow (a
// state backend outage must not take the API down unless asked to).
func policyOnError(policy, check pipeline.OnError) pipeline.OnError {
	switch {
	case policy != "":
		return policy
	case check != "":
		return check
	}
	return pipeline.OnErrorAllow
}
