package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apiguard/apiguard/client"
	"github.com/apiguard/apiguard/internal/problem"
)

// Kind is a scenario's ground truth: what the traffic really is, whatever
// the gateway decides.
type Kind string

// The kinds of traffic.
const (
	Genuine Kind = "genuine"
	Attack  Kind = "attack"
)

// Scenario is one simulated population of clients. Add a scenario by
// appending to DefaultScenarios; the runner, the counters and the summary
// need nothing else.
type Scenario struct {
	// Name is stable: tests and the summary refer to it.
	Name string
	Kind Kind
	// Description is one line for the summary.
	Description string
	// Run sends traffic through c until ctx is done. It may start goroutines
	// (one per simulated client) but must wait for them before it returns.
	Run func(ctx context.Context, c *Client)
}

// Client is a scenario's connection to the gateway. It counts every
// response for the scenario's summary. Simulated clients (Agents) are made
// from it.
type Client struct {
	base string
	http *http.Client
	log  *slog.Logger
	rec  *recorder
	*world
}

// world is what the scenarios of one run share: the app's signing key, the
// identity provider (for the expired-token attacker), the wire where
// signed requests and attestation tokens can be captured, and the app's
// attestation set-up (release binaries, the service's signing key).
type world struct {
	signer   *appSigner
	idp      *identityProvider
	captured chan capturedRequest
	tokens   chan capturedToken
	attest   *attestKit
}

// Agent is one simulated client: a source address (declared in
// X-Forwarded-For, as a load balancer would), a User-Agent, the headers its
// software sends, and a session token once signed in.
type Agent struct {
	c       *Client
	ip      string
	ua      string
	headers http.Header // extra headers on every request
	token   string
	// hc, when set, sends the agent's requests instead of the scenario's
	// client (AttestedAgent: through the attestation SDK's Transport).
	hc *http.Client
}

// Agent makes a simulated client with source address ip and User-Agent ua.
// headers, which may be nil, are sent with every request.
func (c *Client) Agent(ip, ua string, headers http.Header) *Agent {
	return &Agent{c: c, ip: ip, ua: ua, headers: headers}
}

// Response is what an Agent learnt from one request.
type Response struct {
	Status int
	// Denied is true when apiguard itself refused the request: an
	// application/problem+json body whose type starts urn:apiguard:problem:.
	Denied bool
	// Reason is the problem slug of a denial (ip-denied, body-too-large, ...).
	Reason string
	Body   []byte
	// Err is a transport error; Status is 0 then.
	Err error
}

// OK reports a 2xx answer.
func (r Response) OK() bool { return r.Status >= 200 && r.Status < 300 }

// maxResponseBody bounds what an agent keeps of a response body.
const maxResponseBody = 1 << 20

// Do sends one request. body, when not nil, is sent as application/json.
func (a *Agent) Do(ctx context.Context, method, path string, body []byte) Response {
	return a.do(ctx, method, path, body, nil)
}

// SignedPostJSON posts v signed as the shop's app signs (RFC 9421), and
// leaves a copy on the wire for the replay attacker.
func (a *Agent) SignedPostJSON(ctx context.Context, path string, v any) Response {
	body, _ := json.Marshal(v)
	return a.do(ctx, http.MethodPost, path, body, func(req *http.Request) {
		a.c.signer.sign(req, body)
		select {
		case a.c.captured <- capturedRequest{method: req.Method, path: path, header: req.Header.Clone(), body: body}:
		default:
		}
	})
}

// SignedPost posts body signed with the app's key, as an attacker who
// extracted the key from the app does, after prepare (which may be nil)
// has set its headers. Nothing is left on the wire.
func (a *Agent) SignedPost(ctx context.Context, path string, body []byte, prepare func(*http.Request)) Response {
	return a.do(ctx, http.MethodPost, path, body, func(req *http.Request) {
		if prepare != nil {
			prepare(req)
		}
		a.c.signer.sign(req, body)
	})
}

func (a *Agent) do(ctx context.Context, method, path string, body []byte, prepare func(*http.Request)) Response {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.c.base+path, rd)
	if err != nil {
		return Response{Err: err}
	}
	for k, vs := range a.headers {
		req.Header[k] = vs
	}
	req.Header.Set("User-Agent", a.ua)
	req.Header.Set("X-Forwarded-For", a.ip)
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if prepare != nil {
		prepare(req)
	}
	hc := a.c.http
	if a.hc != nil {
		hc = a.hc
	}
	resp, err := hc.Do(req)
	if pe, ok := errors.AsType[*client.ProblemError](err); ok {
		// The attestation service refused the app: that answer was
		// counted when the SDK received it.
		out := Response{Status: pe.Status, Err: err}
		if slug := pe.Slug(); slug != "" {
			out.Denied, out.Reason = true, slug
		}
		return out
	}
	if err != nil {
		if ctx.Err() == nil { // the end of the run is not an error
			a.c.rec.transportError()
			a.c.log.Debug("demo request failed", "method", method, "path", path, "client_ip", a.ip, "err", err)
		}
		return Response{Err: err}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4*maxResponseBody)) // keep the connection reusable
	_ = resp.Body.Close()
	if err != nil && ctx.Err() != nil {
		return Response{Err: err}
	}
	out := Response{Status: resp.StatusCode, Body: b}
	out.Denied, out.Reason = denial(resp.Header.Get("Content-Type"), b)
	a.c.rec.record(out)
	return out
}

// Get sends a GET.
func (a *Agent) Get(ctx context.Context, path string) Response {
	return a.Do(ctx, http.MethodGet, path, nil)
}

// PostJSON marshals v and POSTs it.
func (a *Agent) PostJSON(ctx context.Context, path string, v any) Response {
	b, err := json.Marshal(v)
	if err != nil {
		return Response{Err: err}
	}
	return a.Do(ctx, http.MethodPost, path, b)
}

// PatchJSON marshals v and PATCHes it.
func (a *Agent) PatchJSON(ctx context.Context, path string, v any) Response {
	b, err := json.Marshal(v)
	if err != nil {
		return Response{Err: err}
	}
	return a.Do(ctx, http.MethodPatch, path, b)
}

// Login signs in through POST /api/login and keeps the token on success.
func (a *Agent) Login(ctx context.Context, username, password string) Response {
	r := a.PostJSON(ctx, "/api/login", loginRequest{Username: username, Password: password})
	if r.Status == http.StatusOK {
		var lr struct {
			Token string `json:"token"`
		}
		if json.Unmarshal(r.Body, &lr) == nil {
			a.token = lr.Token
		}
	}
	return r
}

// SetToken replaces the agent's bearer token ("" sends none).
func (a *Agent) SetToken(token string) { a.token = token }

// Token returns the agent's bearer token.
func (a *Agent) Token() string { return a.token }

// denial recognises apiguard's own refusals.
func denial(contentType string, body []byte) (bool, string) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != problem.ContentType {
		return false, ""
	}
	var p struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(body, &p) != nil {
		return false, ""
	}
	slug, ok := strings.CutPrefix(p.Type, problem.TypePrefix)
	if !ok || slug == "" {
		return false, ""
	}
	return true, slug
}

// think waits a random time in [lo, hi), as a person or a throttled bot
// would between requests. It returns false when ctx is done.
func think(ctx context.Context, lo, hi time.Duration) bool {
	d := lo
	if hi > lo {
		d += rand.N(hi - lo)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// pick returns a random element of list.
func pick[T any](list []T) T { return list[rand.IntN(len(list))] }

// chance is true with probability p.
func chance(p float64) bool { return rand.Float64() < p }

// recorder counts one scenario's responses.
type recorder struct {
	start       time.Time
	mu          sync.Mutex
	requests    int64
	denied      int64
	deniedBy    map[string]int64
	statuses    map[int]int64
	errors      int64
	firstDenied time.Duration // -1: never
}

func newRecorder(start time.Time) *recorder {
	return &recorder{start: start, deniedBy: map[string]int64{}, statuses: map[int]int64{}, firstDenied: -1}
}

func (r *recorder) record(resp Response) {
	now := time.Since(r.start)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	r.statuses[resp.Status]++
	if resp.Denied {
		r.denied++
		r.deniedBy[resp.Reason]++
		if r.firstDenied < 0 {
			r.firstDenied = now
		}
	}
}

func (r *recorder) transportError() {
	r.mu.Lock()
	r.errors++
	r.mu.Unlock()
}

// ScenarioResult is one scenario's counts, as the summary reports them.
type ScenarioResult struct {
	Name        string `json:"name"`
	Kind        Kind   `json:"kind"`
	Description string `json:"description,omitempty"`
	// Requests counts answered requests; Allowed + Denied = Requests.
	Requests int64 `json:"requests"`
	Allowed  int64 `json:"allowed"`
	Denied   int64 `json:"denied"`
	// DeniedBy counts denials by problem slug.
	DeniedBy map[string]int64 `json:"denied_by"`
	// FirstDeniedAfterS is the time from the scenario's start to its first
	// denial, in seconds; nil when nothing was denied.
	FirstDeniedAfterS *float64 `json:"first_denied_after_s"`
	// Statuses counts answers by HTTP status code ("200", "403", ...).
	Statuses map[string]int64 `json:"statuses"`
	// Errors counts requests that got no answer (transport errors).
	Errors int64 `json:"errors"`
}

func (r *recorder) result(sc Scenario) ScenarioResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := ScenarioResult{
		Name: sc.Name, Kind: sc.Kind, Description: sc.Description,
		Requests: r.requests, Allowed: r.requests - r.denied, Denied: r.denied,
		DeniedBy: make(map[string]int64, len(r.deniedBy)), Statuses: make(map[string]int64, len(r.statuses)),
		Errors: r.errors,
	}
	for k, v := range r.deniedBy {
		out.DeniedBy[k] = v
	}
	for k, v := range r.statuses {
		out.Statuses[strconv.Itoa(k)] = v
	}
	if r.firstDenied >= 0 {
		s := float64(r.firstDenied.Round(time.Millisecond)) / float64(time.Second)
		out.FirstDeniedAfterS = &s
	}
	return out
}

// runScenarios runs every scenario concurrently against base until ctx is
// done and returns their results in the order given.
func runScenarios(ctx context.Context, base string, hc *http.Client, log *slog.Logger, w *world, scenarios []Scenario) []ScenarioResult {
	recs := make([]*recorder, len(scenarios))
	var wg sync.WaitGroup
	for i, sc := range scenarios {
		c := &Client{base: strings.TrimSuffix(base, "/"), http: hc, log: log.With("scenario", sc.Name), rec: newRecorder(time.Now()), world: w}
		recs[i] = c.rec
		wg.Go(func() {
			// The label names the scenario's goroutines in profiles.
			pprof.Do(ctx, pprof.Labels("scenario", sc.Name), func(ctx context.Context) {
				sc.Run(ctx, c)
			})
		})
	}
	wg.Wait()
	out := make([]ScenarioResult, len(scenarios))
	for i, sc := range scenarios {
		out[i] = recs[i].result(sc)
	}
	return out
}

// newTrafficClient is the HTTP client all simulated clients share: they all
// connect from loopback, like traffic arriving from a load balancer.
func newTrafficClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // never send the demo's traffic to an environment proxy
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{
		Transport: tr,
		Timeout:   15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
