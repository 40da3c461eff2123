// Package admin serves the JSON admin API of the admin listener, under
// /api/v1/. It does no authentication of its own: the gateway mounts it
// behind its bearer-token check, like /metrics.
//
// The decisions endpoints (see docs/decisions.md):
//
//	GET    /api/v1/decisions[?key=K&action=A&source=S]  {"decisions":[...]}, newest first
//	POST   /api/v1/decisions                            {"key","action","ttl","reason"} → 201 + the decision
//	DELETE /api/v1/decisions/{idOrKey...}               204; 404 when there is none
//
// Mount the handler on both DecisionsPath and DecisionsPath+"/":
//
//	h := s.requireToken(admin.Decisions(store, admin.Options{Logger: s.log}))
//	mux.Handle(admin.DecisionsPath, h)
//	mux.Handle(admin.DecisionsPath+"/", h)
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/apiguard/apiguard/internal/decision"
	"github.com/apiguard/apiguard/internal/problem"
)

// DecisionsPath is the decisions collection; a decision (or every
// decision of a key) is DecisionsPath + "/" + its ID or key.
const DecisionsPath = "/api/v1/decisions"

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 64 << 10

// storeTimeout bounds one call to the decision store, so a hung backend
// does not hold an admin request forever.
const storeTimeout = 10 * time.Second

// AddRequest is the body of POST /api/v1/decisions. Every decision made
// through the API has the source "manual".
type AddRequest struct {
	// Key is the identity the decision is for (ip:203.0.113.7,
	// net:10.0.0.0/24, key:<API key name>, ...); see decision.ParseKey.
	Key string `json:"key"`
	// Action is block, challenge, throttle or allow.
	Action string `json:"action"`
	// TTL is how long the decision lasts: a Go duration ("90m", "1h")
	// or days ("7d", "1d12h"), at most decision.MaxTTL. Required.
	TTL string `json:"ttl"`
	// Reason says why, for whoever reads the list later.
	Reason string `json:"reason,omitempty"`
}

// ListResponse is the body of GET /api/v1/decisions.
type ListResponse struct {
	Decisions []decision.Decision `json:"decisions"`
}

// Options tune the handler. Zero values take the defaults.
type Options struct {
	// Logger receives one Info line per change made (the audit trail)
	// and the store errors hidden from clients (default: discard).
	Logger *slog.Logger
	// Clock is the time a TTL starts from (default time.Now); give it the
	// decision store's clock.
	Clock func() time.Time
}

// Decisions returns the handler of the decisions endpoints. It serves
// DecisionsPath and the paths under it and answers everything else with
// a 404 problem. It does not check the admin token: mount it behind the
// gateway's.
func Decisions(store *decision.Store, o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return &decisionsHandler{store: store, log: o.Logger, clock: o.Clock}
}

type decisionsHandler struct {
	store *decision.Store
	log   *slog.Logger
	clock func() time.Time
}

// Problem types of this package that internal/problem has no title for.
var titles = map[string]string{
	"invalid-decision":   "Invalid decision",
	"decision-not-found": "Decision not found",
	"too-many-decisions": "Too many decisions",
}

func writeProblem(w http.ResponseWriter, status int, slug, detail string, extra http.Header) {
	d := problem.New(status, slug, detail, "")
	if t, ok := titles[slug]; ok {
		d.Title = t
	}
	problem.Write(w, d, extra)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, "internal", "the response could not be encoded", nil)
		return
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	writeProblem(w, http.StatusMethodNotAllowed, "method-not-allowed",
		fmt.Sprintf("%s is not allowed here (allowed: %s)", r.Method, allow), http.Header{"Allow": {allow}})
}

func (h *decisionsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// r.URL.Path is unescaped: an ID or key may come escaped
	// (net:10.0.0.0%2F24) or not (net:10.0.0.0/24); both arrive the same.
	switch p := r.URL.Path; {
	case p == DecisionsPath:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			h.list(w, r)
		case http.MethodPost:
			h.add(w, r)
		default:
			methodNotAllowed(w, r, "GET, HEAD, POST")
		}
	case strings.HasPrefix(p, DecisionsPath+"/"):
		if r.Method != http.MethodDelete {
			methodNotAllowed(w, r, "DELETE")
			return
		}
		h.delete(w, r, strings.TrimPrefix(p, DecisionsPath+"/"))
	default:
		writeProblem(w, http.StatusNotFound, "not-found", "no such admin endpoint", nil)
	}
}

// list serves GET /api/v1/decisions.
func (h *decisionsHandler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for name, vs := range q {
		switch name {
		case "key", "action", "source":
			if len(vs) > 1 {
				writeProblem(w, http.StatusBadRequest, "bad-request", fmt.Sprintf("query parameter %s: give it at most once", name), nil)
				return
			}
		default:
			writeProblem(w, http.StatusBadRequest, "bad-request", fmt.Sprintf("unknown query parameter %.64q (filters: key, action, source)", name), nil)
			return
		}
	}
	var (
		key    string
		action decision.Action
		source = q.Get("source")
	)
	if v := q.Get("key"); v != "" {
		k, err := decision.ParseKey(v)
		if err != nil {
			writeProblem(w, http.StatusBadRequest, "bad-request", "query parameter key: "+invalidDetail(err), nil)
			return
		}
		key = k
	}
	if v := q.Get("action"); v != "" {
		a, err := decision.ParseAction(v)
		if err != nil {
			writeProblem(w, http.StatusBadRequest, "bad-request", "query parameter action: "+invalidDetail(err), nil)
			return
		}
		action = a
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	all, err := h.store.List(ctx)
	if err != nil {
		h.storeError(w, "list", err)
		return
	}
	out := ListResponse{Decisions: make([]decision.Decision, 0, len(all))}
	for _, d := range all {
		if key != "" && d.Key != key || action != 0 && d.Action != action || source != "" && d.Source != source {
			continue
		}
		out.Decisions = append(out.Decisions, d)
	}
	writeJSON(w, http.StatusOK, out)
}

// add serves POST /api/v1/decisions.
func (h *decisionsHandler) add(w http.ResponseWriter, r *http.Request) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" || params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8") {
		writeProblem(w, http.StatusUnsupportedMediaType, "unsupported-media-type",
			"send the decision as application/json", http.Header{"Accept": {"application/json"}})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeProblem(w, http.StatusRequestEntityTooLarge, "body-too-large", fmt.Sprintf("the body exceeds %d bytes", MaxBodyBytes), nil)
			return
		}
		writeProblem(w, http.StatusBadRequest, "bad-request", "the body could not be read", nil)
		return
	}
	var req AddRequest
	if detail := decodeStrict(body, &req); detail != "" {
		writeProblem(w, http.StatusBadRequest, "invalid-json", detail, nil)
		return
	}
	d, detail := req.decision(h.clock())
	if detail != "" {
		writeProblem(w, http.StatusBadRequest, "invalid-decision", detail, nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	d, err = h.store.Add(ctx, d)
	switch {
	case errors.Is(err, decision.ErrInvalid):
		writeProblem(w, http.StatusBadRequest, "invalid-decision", invalidDetail(err), nil)
		return
	case errors.Is(err, decision.ErrFull):
		writeProblem(w, http.StatusServiceUnavailable, "too-many-decisions",
			"the gateway keeps as many decisions as it may and none ranks below this one: delete some first", nil)
		return
	case err != nil:
		h.storeError(w, "add", err)
		return
	}
	h.log.Info("admin: decision added", "id", d.ID, "key", d.Key, "action", d.Action.String(),
		"source", d.Source, "reason", d.Reason, "expires", d.Expires)
	w.Header().Set("Location", DecisionsPath+"/"+url.PathEscape(d.ID))
	writeJSON(w, http.StatusCreated, d)
}

// delete serves DELETE /api/v1/decisions/{idOrKey...}.
func (h *decisionsHandler) delete(w http.ResponseWriter, r *http.Request, idOrKey string) {
	if idOrKey == "" {
		writeProblem(w, http.StatusBadRequest, "bad-request", "give the ID or key of the decision to delete: DELETE "+DecisionsPath+"/{idOrKey}", nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	err := h.store.Delete(ctx, idOrKey)
	switch {
	case errors.Is(err, decision.ErrNotFound):
		what := "with ID"
		if strings.Contains(idOrKey, ":") {
			what = "for key"
		}
		writeProblem(w, http.StatusNotFound, "decision-not-found", fmt.Sprintf("no decision %s %.300q", what, idOrKey), nil)
		return
	case errors.Is(err, decision.ErrInvalid):
		writeProblem(w, http.StatusBadRequest, "bad-request", invalidDetail(err), nil)
		return
	case err != nil:
		h.storeError(w, "delete", err)
		return
	}
	h.log.Info("admin: decision deleted", "id_or_key", idOrKey)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// storeError answers a backend failure without its details (addresses,
// driver messages), which go to the log.
func (h *decisionsHandler) storeError(w http.ResponseWriter, op string, err error) {
	h.log.Warn("admin: decision store failed", "op", op, "error", err.Error())
	writeProblem(w, http.StatusServiceUnavailable, "service-unavailable", "the decision store is unavailable; see the gateway log", nil)
}

// invalidDetail is a decision.ErrInvalid message without its package
// prefix: `key "x" is not kind:value ...`.
func invalidDetail(err error) string {
	return strings.TrimPrefix(err.Error(), decision.ErrInvalid.Error()+": ")
}

// decodeStrict decodes one JSON object into v, refusing unknown fields
// and trailing data. It returns a detail for the client, "" when v is
// decoded. No value of the body is echoed.
func decodeStrict(body []byte, v any) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			return "the body must hold one JSON object and nothing after it"
		}
		return ""
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return `the body is empty: send {"key": ..., "action": ..., "ttl": ..., "reason": ...}`
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON body ends early"
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return "the body must be a JSON object"
		}
		return fmt.Sprintf("field %s: must be a %s", typ.Field, typ.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Sprintf("unknown field %s (allowed: key, action, ttl, reason)", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return "the body is not valid JSON"
}

// decision checks the request and builds the decision to add; the detail
// names the field at fault.
func (req *AddRequest) decision(now time.Time) (decision.Decision, string) {
	if req.Key == "" {
		return decision.Decision{}, "key is required (e.g. ip:203.0.113.7, net:10.0.0.0/24, key:<API key name>)"
	}
	if v, ok := strings.CutPrefix(req.Key, decision.KindAPIKey+":"); ok && strings.HasPrefix(v, apiKeyPrefix) {
		// Never store (or echo) a secret: the key kind takes the name.
		return decision.Decision{}, "key: a key: decision takes the API key's name (see apiguard apikey list), not the key itself"
	}
	key, err := decision.ParseKey(req.Key)
	if err != nil {
		return decision.Decision{}, "key: " + invalidDetail(err)
	}
	if req.Action == "" {
		return decision.Decision{}, "action is required: block, challenge, throttle or allow"
	}
	action, err := decision.ParseAction(req.Action)
	if err != nil {
		return decision.Decision{}, "action: " + invalidDetail(err)
	}
	if req.TTL == "" {
		return decision.Decision{}, `ttl is required (e.g. "30m", "1h", "7d"): every decision expires`
	}
	ttl, err := ParseTTL(req.TTL)
	if err != nil {
		return decision.Decision{}, "ttl: " + err.Error()
	}
	return decision.Decision{
		Key:     key,
		Action:  action,
		Reason:  req.Reason,
		Source:  decision.SourceManual,
		Created: now,
		Expires: now.Add(ttl),
	}, ""
}

// apiKeyPrefix starts every apiguard API key (apikey.Prefix): a key:
// decision carrying it holds a secret, not a key name.
const apiKeyPrefix = "agk_"

// ParseTTL parses a decision's lifetime: a Go duration ("90s", "30m",
// "1h30m") or whole days with an optional duration after them ("7d",
// "1d12h"). It must be positive and at most decision.MaxTTL.
func ParseTTL(s string) (time.Duration, error) {
	var d time.Duration
	rest := s
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		days, err := strconv.Atoi(s[:i])
		if err != nil || i > 4 || s[0] < '0' || s[0] > '9' {
			return 0, fmt.Errorf("invalid duration %.40q (use e.g. 30m, 1h, 7d)", s)
		}
		d, rest = time.Duration(days)*24*time.Hour, s[i+1:]
	}
	if rest != "" {
		v, err := time.ParseDuration(rest)
		if err != nil || d > 0 && rest[0] != '0' && (rest[0] < '1' || rest[0] > '9') {
			return 0, fmt.Errorf("invalid duration %.40q (use e.g. 30m, 1h, 7d)", s)
		}
		d += v
	}
	switch {
	case d <= 0:
		return 0, fmt.Errorf("%.40q is not a positive duration", s)
	case d > decision.MaxTTL:
		return 0, fmt.Errorf("%.40q is more than the maximum of %s (%dd)", s, decision.MaxTTL, decision.MaxTTL/(24*time.Hour))
	}
	return d, nil
}
