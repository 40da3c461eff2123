// Package problem writes RFC 9457 problem details. Every response the gateway
// makes itself goes through here, so clients see one format and no internals.
package problem

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// TypePrefix is the URN prefix of every problem type.
const TypePrefix = "urn:apiguard:problem:"

// ContentType is the media type of problem responses.
const ContentType = "application/problem+json"

// Details is the RFC 9457 body.
type Details struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Extensions the problem type defines (e.g. violated policies).
	Extra map[string]any `json:"-"`
}

// titles gives the fixed title of each problem type the gateway emits.
// Unknown slugs fall back to the HTTP status text.
var titles = map[string]string{
	"not-found":               "No route matches the request",
	"method-not-allowed":      "Method not allowed on this route",
	"body-too-large":          "Request body too large",
	"headers-too-large":       "Request headers too large",
	"json-too-deep":           "JSON body nested too deeply",
	"json-too-many-elements":  "JSON body has too many elements",
	"invalid-json":            "Request body is not valid JSON",
	"bad-request":             "Malformed request",
	"upstream-unavailable":    "Upstream unavailable",
	"upstream-timeout":        "Upstream timed out",
	"upstream-error":          "Upstream error",
	"ip-denied":               "Client address is denied",
	"ip-not-allowed":          "Client address is not allowed",
	"check-error":             "Request could not be checked",
	"cors-rejected":           "Cross-origin request not allowed",
	"unauthorized":            "Authentication required",
	"forbidden":               "Forbidden",
	"rate-limited":            "Too many requests",
	"too-many-connections":    "Too many connections",
	"internal":                "Internal error",
	"unsupported-media-type":  "Unsupported media type",
	"request-timeout":         "Request timed out",
	"service-unavailable":     "Service unavailable",
	"forward-auth-bad-header": "Forward-auth request is malformed",
}

// Title returns the title for a slug.
func Title(slug string, status int) string {
	if t, ok := titles[slug]; ok {
		return t
	}
	return http.StatusText(status)
}

// New builds the details for a slug and status.
func New(status int, slug, detail, instance string) Details {
	return Details{Type: TypePrefix + slug, Title: Title(slug, status), Status: status, Detail: detail, Instance: instance}
}

// MarshalJSON adds Extra members beside the standard ones.
func (d Details) MarshalJSON() ([]byte, error) {
	type plain Details
	b, err := json.Marshal(plain(d))
	if err != nil || len(d.Extra) == 0 {
		return b, err
	}
	m := make(map[string]any, len(d.Extra)+5)
	for k, v := range d.Extra {
		m[k] = v
	}
	m["type"], m["title"], m["status"] = d.Type, d.Title, d.Status
	if d.Detail != "" {
		m["detail"] = d.Detail
	}
	if d.Instance != "" {
		m["instance"] = d.Instance
	}
	return json.Marshal(m)
}

// Write sends the problem. Extra headers (Retry-After, WWW-Authenticate, Allow)
// are copied first; the content type and caching headers are fixed.
func Write(w http.ResponseWriter, d Details, extra http.Header) {
	h := w.Header()
	for k, vs := range extra {
		h[k] = append(h[k][:0:0], vs...)
	}
	body, err := json.Marshal(d)
	if err != nil { // cannot happen for our own types; stay safe anyway
		body = []byte(`{"type":"urn:apiguard:problem:internal","title":"Internal error","status":500}`)
		d.Status = http.StatusInternalServerError
	}
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(d.Status)
	_, _ = w.Write(body)
}
