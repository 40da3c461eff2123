package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/apiguard/apiguard/internal/problem"
)

// proxyError turns transport failures into problems. The error itself goes
// to the log under the request id, never to the client.
func (e *Engine) proxyError(r *route) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, req *http.Request, err error) {
		ex := exchangeFrom(req.Context())
		if ex == nil {
			ex = &exchange{}
		}
		if req.Context().Err() != nil && errors.Is(err, context.Canceled) {
			// The client went away or its body stalled past read_timeout.
			// Answer anyway: writing to a closed connection is harmless, and
			// net/http would otherwise send an empty 200.
			e.refuse(w, ex, "limits", http.StatusRequestTimeout, "request-timeout", "the request was not received completely")
			return
		}
		var cbe *clientBodyError
		if errors.As(err, &cbe) && !errors.As(err, new(*http.MaxBytesError)) {
			// The client's body failed mid-stream: its fault, not the upstream's.
			e.refuse(w, ex, "limits", http.StatusRequestTimeout, "request-timeout", "the request body was not received completely")
			return
		}
		var (
			mbe    *http.MaxBytesError
			status int
			slug   string
			detail string
			kind   string
		)
		switch {
		case errors.As(err, &mbe):
			// Found while streaming a body of unknown length: as much a
			// gateway decision as the Content-Length case.
			e.refuse(w, ex, "limits", http.StatusRequestEntityTooLarge, "body-too-large", "the request body exceeds "+strconv.FormatInt(mbe.Limit, 10)+" bytes")
			return
		case isTimeout(err):
			status, slug, detail, kind = http.StatusGatewayTimeout, "upstream-timeout", "the upstream did not answer in time", "timeout"
		case isRefused(err):
			status, slug, detail, kind = http.StatusBadGateway, "upstream-unavailable", "the upstream is unavailable", "unavailable"
		default:
			status, slug, detail, kind = http.StatusBadGateway, "upstream-error", "the upstream failed to answer", "error"
		}
		if kind != "" {
			e.metrics.upstreamErr.WithLabelValues(r.upstream.name, kind).Inc()
			e.log.Error("upstream failure", "request_id", ex.req.ID, "route", r.name, "upstream", r.upstream.name, "error", err)
		}
		ex.req.Verdicts = append(ex.req.Verdicts, pipeline.Recorded{Check: "upstream", Enforced: true,
			Verdict: pipeline.Verdict{Action: pipeline.Deny, Status: status, Reason: slug, Detail: detail}})
		e.writeVerdict(w, ex, pipeline.Verdict{Action: pipeline.Deny, Status: status, Reason: slug, Detail: detail})
		ex.decision = "" // an upstream failure is not a gateway decision
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// modifyResponse hardens upstream responses: strips identifying headers,
// adds security headers, applies CORS, masks 5xx bodies and runs response
// checks.
func (e *Engine) modifyResponse(r *route) func(*http.Response) error {
	return func(resp *http.Response) error {
		ex := exchangeFrom(resp.Request.Context())
		if ex != nil {
			ex.upDur = time.Since(ex.upStart)
			e.metrics.upstreamDur.WithLabelValues(r.upstream.name).Observe(ex.upDur.Seconds())
		}
		h := resp.Header
		if ex != nil {
			for k, vs := range ex.req.ResponseHeader {
				h.Del(k) // the upstream's own field of that name, in any spelling
				h[k] = vs
			}
		}
		h.Del("X-Request-Id") // ours is already set; the upstream's would duplicate it
		h.Del("Server")
		h.Del("X-Powered-By")
		h.Del("X-AspNet-Version")
		if h.Get("X-Content-Type-Options") == "" {
			h.Set("X-Content-Type-Options", "nosniff")
		}
		if e.tls && h.Get("Strict-Transport-Security") == "" {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if r.cors != nil && ex != nil {
			r.cors.apply(ex.req.HTTP.Header.Get("Origin"), h)
		}
		if ex != nil && r.pipeline.HasResponseChecks() {
			if v, denied := r.pipeline.RunResponse(resp.Request.Context(), &ex.req, resp); denied {
				ex.decision = v.Action.String()
				replaceWithProblem(resp, v.Status, v.Reason, v.Detail, ex.req.ID)
				return nil
			}
		}
		if r.mask && resp.StatusCode >= 500 {
			id := ""
			if ex != nil {
				id = ex.req.ID
			}
			replaceWithProblem(resp, resp.StatusCode, "upstream-error", "the upstream failed to process the request", id)
		}
		return nil
	}
}

// replaceWithProblem swaps an upstream response body for a problem document.
func replaceWithProblem(resp *http.Response, status int, slug, detail, id string) {
	body, _ := json.Marshal(problem.New(status, slug, detail, id))
	_ = resp.Body.Close()
	resp.StatusCode = status
	resp.Status = strconv.Itoa(status) + " " + http.StatusText(status)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.TransferEncoding = nil
	resp.Trailer = nil
	h := resp.Header
	for _, k := range []string{"Content-Encoding", "Transfer-Encoding", "Etag", "Last-Modified", "Content-Range", "Content-Disposition", "Set-Cookie"} {
		h.Del(k)
	}
	h.Set("Content-Type", problem.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
}
