// Package problem writes RFC 9457 problem details. Every response the gateway
// makes itself goes through here, so clients see one format and no internals.
package problem

import (
	"encoding/json"
	"net/http"
	"slices"
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
	"not-found":                        "No route matches the request",
	"method-not-allowed":               "Method not allowed on this route",
	"body-too-large":                   "Request body too large",
	"headers-too-large":                "Request headers too large",
	"json-too-deep":                    "JSON body nested too deeply",
	"json-too-many-elements":           "JSON body has too many elements",
	"invalid-json":                     "Request body is not valid JSON",
	"bad-request":                      "Malformed request",
	"upstream-unavailable":             "Upstream unavailable",
	"upstream-timeout":                 "Upstream timed out",
	"upstream-error":                   "Upstream error",
	"ip-denied":                        "Client address is denied",
	"ip-not-allowed":                   "Client address is not allowed",
	"check-error":                      "Request could not be checked",
	"cors-rejected":                    "Cross-origin request not allowed",
	"unauthorized":                     "Authentication required",
	"forbidden":                        "Forbidden",
	"rate-limited":                     "Too many requests",
	"too-many-connections":             "Too many connections",
	"internal":                         "Internal error",
	"unsupported-media-type":           "Unsupported media type",
	"request-timeout":                  "Request timed out",
	"service-unavailable":              "Service unavailable",
	"forward-auth-bad-header":          "Forward-auth request is malformed",
	"rate-limit-unavailable":           "Rate limits unavailable",
	"token-malformed":                  "Malformed token",
	"token-algorithm":                  "Token algorithm not allowed",
	"token-signature":                  "Invalid token signature",
	"token-invalid":                    "Invalid token",
	"token-expired":                    "Token expired",
	"token-not-yet-valid":              "Token not yet valid",
	"token-issuer":                     "Unknown token issuer",
	"token-audience":                   "Token not meant for this API",
	"token-claims":                     "Token lacks required claims",
	"token-not-bound":                  "Token not bound to a certificate",
	"token-binding-mismatch":           "Token bound to another certificate",
	"client-certificate-required":      "Client certificate required",
	"client-certificate-invalid":       "Client certificate not trusted",
	"client-certificate-not-allowed":   "Client certificate not allowed",
	"api-key-invalid":                  "Invalid API key",
	"api-key-revoked":                  "API key revoked",
	"api-key-expired":                  "API key expired",
	"insufficient-scope":               "Insufficient scope",
	"attestation-missing":              "Attestation token required",
	"attestation-invalid":              "Invalid attestation token",
	"attestation-expired":              "Attestation token expired",
	"attestation-unbound":              "Attestation token not bound to this request",
	"attestation-replayed":             "Attestation token already used",
	"attestation-app-not-allowed":      "App not allowed",
	"attestation-app-unknown":          "Unknown app",
	"attestation-provider-not-allowed": "Attestation provider not allowed for this app",
	"attestation-release-unknown":      "Unknown app release",
	"attestation-release-revoked":      "App release revoked",
	"attestation-challenge-invalid":    "Invalid attestation challenge",
	"attestation-failed":               "Attestation failed",
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

// MarshalJSON writes the standard members first, in RFC 9457 order, then
// the Extra members (sorted), none of which may shadow a standard one.
func (d Details) MarshalJSON() ([]byte, error) {
	type plain Details
	b, err := json.Marshal(plain(d))
	if err != nil || len(d.Extra) == 0 {
		return b, err
	}
	keys := make([]string, 0, len(d.Extra))
	for k := range d.Extra {
		switch k {
		case "type", "title", "status", "detail", "instance":
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := b[:len(b)-1] // drop the closing brace
	for _, k := range keys {
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(d.Extra[k])
		if err != nil {
			return nil, err
		}
		out = append(append(append(append(out, ','), kb...), ':'), vb...)
	}
	return append(out, '}'), nil
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
