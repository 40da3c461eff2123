package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/apiguard/apiguard/internal/admin"
	"github.com/apiguard/apiguard/internal/decision"
	"github.com/apiguard/apiguard/internal/problem"
)

const decisionsUsage = `Usage:
  apiguard decisions list [--json] [--key KEY] [--action ACTION] [--source SOURCE]
  apiguard decisions add KEY --action block|challenge|throttle|allow --ttl DURATION [--reason TEXT] [--json]
  apiguard decisions delete ID|KEY

They talk to a running gateway's admin API:
  --admin URL        admin listener (default $APIGUARD_ADMIN_URL, else ` + defaultAdminURL + `)
  --token TOKEN      admin bearer token (default $APIGUARD_ADMIN_TOKEN; prefer it: flags show in ps)
  --token-file FILE  read the token from FILE (e.g. <data_dir>/admin.token)

KEY is kind:value: ip:203.0.113.7, net:10.0.0.0/24, fp:<ja4>, key:<API key name>,
sub:<subject>, dev:<device>, country:CC. DURATION is e.g. 30m, 1h, 7d (at most 366d).
`

const defaultAdminURL = "http://127.0.0.1:9090"

// adminTimeout bounds one admin API call.
const adminTimeout = 30 * time.Second

func cmdDecisions(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, decisionsUsage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	verb, rest := args[0], args[1:]
	var synopsis string
	var nargs int
	switch verb {
	case "list":
		synopsis = "apiguard decisions list [--json] [--key KEY] [--action ACTION] [--source SOURCE] [--admin URL] [--token TOKEN]"
	case "add":
		synopsis, nargs = "apiguard decisions add KEY --action block|challenge|throttle|allow --ttl DURATION [--reason TEXT] [--json] [--admin URL] [--token TOKEN]", 1
	case "delete":
		synopsis, nargs = "apiguard decisions delete ID|KEY [--admin URL] [--token TOKEN]", 1
	default:
		fmt.Fprintf(stderr, "apiguard decisions: unknown command %q\n\n%s", verb, decisionsUsage)
		return exitUsage
	}
	fs := newFlagSet("decisions "+verb, synopsis, stderr)
	adminURL := fs.String("admin", "", "admin API base URL (default $APIGUARD_ADMIN_URL, else "+defaultAdminURL+")")
	token := fs.String("token", "", "admin bearer token (default $APIGUARD_ADMIN_TOKEN)")
	tokenFile := fs.String("token-file", "", "file holding the admin token, e.g. <data_dir>/admin.token")
	var (
		asJSON                      *bool
		key, action, source, reason *string
		ttl                         *string
	)
	switch verb {
	case "list":
		asJSON = fs.Bool("json", false, "print the admin API's JSON")
		key = fs.String("key", "", "only decisions for this key")
		action = fs.String("action", "", "only this action: block, challenge, throttle or allow")
		source = fs.String("source", "", "only decisions from this source: manual or a detector's name")
	case "add":
		asJSON = fs.Bool("json", false, "print the created decision as JSON")
		action = fs.String("action", "", "block, challenge, throttle or allow (required)")
		ttl = fs.String("ttl", "", "how long the decision lasts, e.g. 30m, 1h, 7d (required; at most 366d)")
		reason = fs.String("reason", "", "why, for whoever reads the list later")
	}
	pos, code, stop := parseInterleaved(fs, rest)
	if stop {
		return code
	}
	if len(pos) != nargs {
		switch {
		case nargs == 0:
			fmt.Fprintf(stderr, "apiguard decisions %s: unexpected arguments: %v\n", verb, pos)
		case len(pos) == 0 && verb == "add":
			fmt.Fprintln(stderr, "apiguard decisions add: the KEY is required, e.g. ip:203.0.113.7")
		case len(pos) == 0:
			fmt.Fprintln(stderr, "apiguard decisions delete: the decision's ID or KEY is required (see apiguard decisions list)")
		default:
			fmt.Fprintf(stderr, "apiguard decisions %s: one argument expected, got %d: %v\n", verb, len(pos), pos)
		}
		fs.Usage()
		return exitUsage
	}

	// Check what can be checked here, for a quick and clear message; the
	// server checks it all again.
	var (
		method = http.MethodGet
		query  url.Values
		body   []byte
	)
	switch verb {
	case "list":
		q := url.Values{}
		if *key != "" {
			k, err := decision.ParseKey(*key)
			if err != nil {
				return usageErr(stderr, "list", "--key: "+invalidDetail(err))
			}
			q.Set("key", k)
		}
		if *action != "" {
			if _, err := decision.ParseAction(*action); err != nil {
				return usageErr(stderr, "list", "--action: "+invalidDetail(err))
			}
			q.Set("action", *action)
		}
		if *source != "" {
			q.Set("source", *source)
		}
		query = q
	case "add":
		k, err := decision.ParseKey(pos[0])
		if err != nil {
			return usageErr(stderr, "add", "KEY: "+invalidDetail(err))
		}
		switch {
		case *action == "":
			return usageErr(stderr, "add", "--action is required: block, challenge, throttle or allow")
		case *ttl == "":
			return usageErr(stderr, "add", "--ttl is required (e.g. 30m, 1h, 7d): every decision expires")
		}
		if _, err := decision.ParseAction(*action); err != nil {
			return usageErr(stderr, "add", "--action: "+invalidDetail(err))
		}
		if _, err := admin.ParseTTL(*ttl); err != nil {
			return usageErr(stderr, "add", "--ttl: "+err.Error())
		}
		method = http.MethodPost
		body, _ = json.Marshal(admin.AddRequest{Key: k, Action: *action, TTL: *ttl, Reason: *reason})
	case "delete":
		if pos[0] == "" {
			return usageErr(stderr, "delete", "the decision's ID or KEY is required (see apiguard decisions list)")
		}
		method = http.MethodDelete
	}

	c, code, ok := newAdminClient(verb, *adminURL, *token, *tokenFile, stderr)
	if !ok {
		return code
	}
	path := admin.DecisionsPath
	if verb == "delete" {
		path += "/" + escapeSegment(pos[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	status, body, err := c.do(ctx, method, path, query, body)
	if err != nil {
		fmt.Fprintf(stderr, "apiguard decisions %s: %v\n", verb, err)
		return exitRuntime
	}
	want := map[string]int{"list": http.StatusOK, "add": http.StatusCreated, "delete": http.StatusNoContent}[verb]
	if status != want {
		return c.fail(stderr, verb, status, body)
	}

	switch verb {
	case "list":
		var lr admin.ListResponse
		if err := json.Unmarshal(body, &lr); err != nil {
			fmt.Fprintf(stderr, "apiguard decisions list: the admin API answered something other than a decision list: %v\n", err)
			return exitRuntime
		}
		if *asJSON {
			return printJSON(stdout, stderr, body)
		}
		if len(lr.Decisions) == 0 {
			fmt.Fprintln(stderr, "no decisions")
			return exitOK
		}
		printDecisions(stdout, lr.Decisions, time.Now())
	case "add":
		var d decision.Decision
		if err := json.Unmarshal(body, &d); err != nil {
			fmt.Fprintf(stderr, "apiguard decisions add: the admin API answered something other than a decision: %v\n", err)
			return exitRuntime
		}
		if *asJSON {
			return printJSON(stdout, stderr, body)
		}
		printDecisions(stdout, []decision.Decision{d}, time.Now())
	case "delete":
		fmt.Fprintf(stdout, "deleted %s\n", pos[0])
	}
	return exitOK
}

// parseInterleaved parses flags given before, between and after the
// positional arguments (`add KEY --ttl 1h` and `add --ttl 1h KEY`), and
// returns the positional ones. Everything after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) (pos []string, code int, stop bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, true
			}
			return nil, exitUsage, true
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, 0, false
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), 0, false
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

func usageErr(stderr io.Writer, verb, msg string) int {
	fmt.Fprintf(stderr, "apiguard decisions %s: %s\n", verb, msg)
	return exitUsage
}

func invalidDetail(err error) string {
	return strings.TrimPrefix(err.Error(), decision.ErrInvalid.Error()+": ")
}

// escapeSegment escapes an ID or key as one path segment: '/' as %2F, and
// a "." or ".." segment as %2E, so the server's path cleaning can neither
// change nor redirect it.
func escapeSegment(s string) string {
	switch s {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return url.PathEscape(s)
}

// adminClient calls the admin API. The token goes only into the
// Authorization header: it is never printed, and redirects (which could
// send it elsewhere, or turn a DELETE into a GET) are not followed.
type adminClient struct {
	base  *url.URL
	token string
	hc    *http.Client
}

func newAdminClient(verb, rawURL, token, tokenFile string, stderr io.Writer) (*adminClient, int, bool) {
	if rawURL == "" {
		rawURL = os.Getenv("APIGUARD_ADMIN_URL")
	}
	if rawURL == "" {
		rawURL = defaultAdminURL
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		fmt.Fprintf(stderr, "apiguard decisions %s: --admin must be an http or https URL such as %s, without credentials, query or fragment\n", verb, defaultAdminURL)
		return nil, exitUsage, false
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	switch {
	case token != "" && tokenFile != "":
		fmt.Fprintf(stderr, "apiguard decisions %s: use either --token or --token-file, not both\n", verb)
		return nil, exitUsage, false
	case tokenFile != "":
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "apiguard decisions %s: --token-file: %v\n", verb, err)
			return nil, exitUsage, false
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			fmt.Fprintf(stderr, "apiguard decisions %s: --token-file %s is empty\n", verb, tokenFile)
			return nil, exitUsage, false
		}
	case token == "":
		token = strings.TrimSpace(os.Getenv("APIGUARD_ADMIN_TOKEN"))
	}
	if token == "" {
		fmt.Fprintf(stderr, "apiguard decisions %s: the admin token is required: set APIGUARD_ADMIN_TOKEN, or pass --token-file or --token\n", verb)
		return nil, exitUsage, false
	}
	if strings.ContainsAny(token, "\r\n") {
		fmt.Fprintf(stderr, "apiguard decisions %s: the admin token must be one line\n", verb)
		return nil, exitUsage, false
	}
	return &adminClient{base: u, token: token, hc: &http.Client{
		Timeout:       adminTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, 0, true
}

// do sends a request to the admin path (escaped), with a JSON body when
// body is not nil, and returns the status and answer (at most 64 MiB).
func (c *adminClient) do(ctx context.Context, method, escapedPath string, query url.Values, body []byte) (int, []byte, error) {
	u := *c.base
	u.RawQuery = query.Encode()
	u.RawPath = c.base.EscapedPath() + escapedPath
	p, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return 0, nil, err
	}
	u.Path = p
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json, "+problem.ContentType)
	req.Header.Set("User-Agent", "apiguard-cli/"+version)
	resp, err := c.hc.Do(req)
	if err != nil {
		// The error names the URL, never the token.
		return 0, nil, fmt.Errorf("cannot reach the admin API at %s: %w", c.base.Redacted(), unwrapURLError(err))
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("reading the admin API's answer: %w", err)
	}
	return resp.StatusCode, answer, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// fail prints an error answer: `apiguard decisions: <title>: <detail>`
// for a problem. A refused request (400) is a usage error; the rest are
// runtime errors.
func (c *adminClient) fail(stderr io.Writer, verb string, status int, body []byte) int {
	var p problem.Details
	if json.Unmarshal(body, &p) == nil && p.Title != "" {
		msg := oneLine(p.Title)
		if p.Detail != "" {
			msg += ": " + oneLine(p.Detail)
		}
		fmt.Fprintf(stderr, "apiguard decisions: %s\n", msg)
	} else {
		fmt.Fprintf(stderr, "apiguard decisions: unexpected answer from the admin API at %s: %d %s\n", c.base.Redacted(), status, http.StatusText(status))
	}
	switch {
	case status == http.StatusUnauthorized:
		fmt.Fprintln(stderr, "check the admin token (APIGUARD_ADMIN_TOKEN, --token-file or --token)")
	case status >= 300 && status < 400:
		fmt.Fprintln(stderr, "redirects are not followed: point --admin at the admin listener itself")
	case status == http.StatusNotFound && verb != "delete":
		fmt.Fprintln(stderr, "is --admin the gateway's admin listener, and does it serve the decisions API?")
	}
	if status == http.StatusBadRequest {
		return exitUsage
	}
	return exitRuntime
}

// oneLine keeps a server-supplied string from moving the cursor or
// forging lines: control characters become spaces, and it is clipped.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return ' '
		}
		return r
	}, s)
	return clip(s, 1000)
}

func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func printJSON(stdout, stderr io.Writer, body []byte) int {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(body), "", "  "); err != nil {
		fmt.Fprintf(stderr, "apiguard decisions: the admin API answered invalid JSON: %v\n", err)
		return exitRuntime
	}
	buf.WriteByte('\n')
	_, _ = stdout.Write(buf.Bytes())
	return exitOK
}

// printDecisions prints the table of `list` and `add`.
func printDecisions(w io.Writer, ds []decision.Decision, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKEY\tACTION\tSOURCE\tREASON\tEXPIRES IN")
	for _, d := range ds {
		reason := "-"
		if d.Reason != "" {
			reason = clip(oneLine(d.Reason), 60)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", oneLine(d.ID), clip(oneLine(d.Key), 80), d.Action, oneLine(d.Source), reason, expiresIn(d.Expires.Sub(now)))
	}
	_ = tw.Flush()
}

// expiresIn is a remaining lifetime to the second at most, the two
// largest units only: 6d23h, 7d, 23h59m, 1h, 59m59s, 42s.
func expiresIn(d time.Duration) string {
	if d <= 0 {
		return "expired"
	}
	s := int64(d.Round(time.Second) / time.Second)
	if s == 0 {
		s = 1
	}
	days, h, m := s/86400, s/3600%24, s/60%60
	switch {
	case days > 0:
		return twoUnits(days, "d", h, "h")
	case h > 0:
		return twoUnits(h, "h", m, "m")
	case m > 0:
		return twoUnits(m, "m", s%60, "s")
	}
	return fmt.Sprintf("%ds", s)
}

func twoUnits(a int64, ua string, b int64, ub string) string {
	if b == 0 {
		return fmt.Sprintf("%d%s", a, ua)
	}
	return fmt.Sprintf("%d%s%d%s", a, ua, b, ub)
}
