package client

import (
	"bytes"
	"io"
	"mime"
	"net/http"
)

// TransportOptions configures (*Client).Transport.
type TransportOptions struct {
	// BindHeader is the header the gateway binds tokens to on your routes
	// (e.g. "Authorization"); each token is bound to the request's value
	// of it. Empty: unbound tokens.
	BindHeader string
	// SingleUse reports whether a request goes to a single-use route; such
	// requests get a fresh token each (FreshToken). Nil: none.
	SingleUse func(*http.Request) bool
}

// Transport returns a RoundTripper that adds an Apiguard-Token to each
// request and then sends it with base (nil: http.DefaultTransport). When
// the gateway answers 401 attestation-expired, -replayed or -invalid, it
// gets a fresh token and sends the request once more, if its body can be
// replayed (no body, or GetBody set, as http.NewRequest does for in-memory
// bodies). A failed attestation is returned as the RoundTrip error; the
// *ProblemError can be found with errors.As.
func (c *Client) Transport(base http.RoundTripper, opts TransportOptions) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{c: c, base: base, opts: opts}
}

type transport struct {
	c    *Client
	base http.RoundTripper
	opts TransportOptions
}

// retryOn are the gateway's answers a new token can fix.
var retryOn = map[string]bool{
	ProblemTypePrefix + "attestation-expired":  true,
	ProblemTypePrefix + "attestation-replayed": true,
	ProblemTypePrefix + "attestation-invalid":  true,
}

// maxPeek bounds the part of a 401 body read to find its problem type.
const maxPeek = 64 << 10

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	var bind string
	if t.opts.BindHeader != "" {
		bind = req.Header.Get(t.opts.BindHeader)
	}
	single := t.opts.SingleUse != nil && t.opts.SingleUse(req)
	var tok string
	var err error
	if single {
		tok, err = t.c.FreshToken(ctx, bind)
	} else {
		tok, err = t.c.Token(ctx, bind)
	}
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	r1 := req.Clone(ctx)
	r1.Header.Set(TokenHeader, tok)
	resp, err := t.base.RoundTrip(r1)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	typ := peekProblemType(resp)
	if !retryOn[typ] {
		return resp, nil
	}
	t.c.invalidate(bind, tok) // whether or not this request can be retried
	if !replayable {
		return resp, nil
	}

	// Build the second request before giving up the first answer.
	r2 := req.Clone(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		r2.Body = body
	}
	if single || typ == ProblemTypePrefix+"attestation-replayed" {
		tok, err = t.c.FreshToken(ctx, bind)
	} else {
		tok, err = t.c.Token(ctx, bind)
	}
	if err != nil {
		if r2.Body != nil {
			r2.Body.Close()
		}
		return resp, nil // the gateway's answer explains more than our failure
	}
	resp.Body.Close()
	r2.Header.Set(TokenHeader, tok)
	return t.base.RoundTrip(r2)
}

// peekProblemType returns the problem type of a problem response, leaving
// its body readable from the start.
func peekProblemType(resp *http.Response) string {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/problem+json" && mt != "application/json" {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxPeek))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
	return parseProblem(resp.StatusCode, mt, b).Type
}
