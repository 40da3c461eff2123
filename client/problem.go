package client

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
)

// ProblemTypePrefix prefixes the type of every problem apiguard answers.
const ProblemTypePrefix = "urn:apiguard:problem:"

// ProblemError is an RFC 9457 problem answered by apiguard (or any other
// non-2xx answer, whose Type is then empty). Find it with errors.As:
//
//	var p *client.ProblemError
//	if errors.As(err, &p) && p.Slug() == "attestation-failed" { log.Print(p.Reason) }
type ProblemError struct {
	// Status is the HTTP status code of the response.
	Status int
	// Type is the problem type, e.g. "urn:apiguard:problem:attestation-failed".
	Type string
	// Title is the short human-readable summary of the problem type.
	Title string
	// Detail explains this occurrence.
	Detail string
	// Reason names the exact check that failed (attestation failures only),
	// e.g. "mac_mismatch" or "used".
	Reason string
}

// Error implements error.
func (e *ProblemError) Error() string {
	msg := fmt.Sprintf("apiguard: %d %s", e.Status, e.Title)
	if e.Type != "" {
		msg += " (" + e.Type
		if e.Reason != "" {
			msg += ", reason " + e.Reason
		}
		msg += ")"
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Slug returns the type without ProblemTypePrefix ("attestation-failed"),
// or "" when the problem is not one of apiguard's.
func (e *ProblemError) Slug() string {
	if s, ok := strings.CutPrefix(e.Type, ProblemTypePrefix); ok {
		return s
	}
	return ""
}

// parseProblem builds the error for a non-2xx response with the given
// Content-Type and body. It never fails: a body that is not a problem
// document leaves Type empty and Title the status text. Members of the wrong
// JSON type are ignored one by one rather than discarding the document.
func parseProblem(status int, contentType string, body []byte) *ProblemError {
	p := &ProblemError{Status: status}
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/problem+json" || mt == "application/json" {
		var raw map[string]json.RawMessage
		if json.Unmarshal(body, &raw) == nil {
			str := func(name string) string {
				var s string
				if v, ok := raw[name]; ok && json.Unmarshal(v, &s) == nil {
					return s
				}
				return ""
			}
			p.Type, p.Title, p.Detail, p.Reason = str("type"), str("title"), str("detail"), str("reason")
		}
	}
	if p.Title == "" {
		p.Title = http.StatusText(status)
	}
	return p
}
