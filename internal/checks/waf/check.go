package waf

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/corazawaf/coraza/v3/collection"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
)

// Check is the built waf check. It is safe for concurrent use: each
// request gets its own Coraza transaction on the shared WAF.
type Check struct {
	eng     *engine
	maxArgs int
}

var _ pipeline.Check = (*Check)(nil)

// New validates cfg and builds the check, reusing the WAF of any other
// check with the same paranoia level, threshold and exclusions.
func New(cfg Config) (*Check, error) {
	var errs field.Errors
	cfg.Validate("", &errs)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	pl := cmp(cfg.ParanoiaLevel, defaultParanoia)
	th := cmp(cfg.AnomalyThreshold, defaultThreshold)
	eng, err := engineFor(directives(pl, th, cfg.Exclusions))
	if err != nil {
		return nil, err
	}
	return &Check{eng: eng, maxArgs: cmp(cfg.MaxArgs, defaultMaxArgs)}, nil
}

func cmp(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// Name implements pipeline.Check.
func (*Check) Name() string { return "waf" }

// Check implements pipeline.Check.
func (c *Check) Check(_ context.Context, req *pipeline.Request) (pipeline.Verdict, error) {
	in := collect(req, c.maxArgs)
	tx := c.eng.waf.NewTransactionWithID(req.ID)
	defer func() {
		tx.ProcessLogging()
		_ = tx.Close()
	}()

	ip := ""
	if req.ClientIP.IsValid() {
		ip = req.ClientIP.String()
	}
	tx.ProcessConnection(ip, 0, "", 0)
	method, uri, proto := http.MethodGet, "/", "HTTP/1.1"
	if r := req.HTTP; r != nil {
		method = r.Method
		// The URI as sent, for the rules on REQUEST_LINE, REQUEST_URI(_RAW),
		// QUERY_STRING and REQUEST_FILENAME; the query's names and values
		// are fed one by one below instead of as Coraza parses them.
		switch {
		case r.RequestURI != "":
			uri = r.RequestURI
		case r.URL != nil:
			uri = r.URL.RequestURI()
		}
		if r.Proto != "" {
			proto = r.Proto
		}
		if r.Host != "" {
			tx.AddRequestHeader("Host", r.Host)
		}
		for k, vs := range r.Header {
			if k == "Cookie" {
				continue // less typed and JSON cookies, below
			}
			for _, v := range vs {
				tx.AddRequestHeader(k, v)
			}
		}
		for _, line := range in.cookies {
			tx.AddRequestHeader("Cookie", line)
		}
		switch {
		case len(req.Body) > 0:
			tx.AddRequestHeader("Content-Length", strconv.Itoa(len(req.Body)))
		case r.ContentLength > 0:
			tx.AddRequestHeader("Content-Length", strconv.FormatInt(r.ContentLength, 10))
		}
	}
	vars, ok := tx.(interface {
		Variables() plugintypes.TransactionVariables
	})
	if !ok {
		// Coraza's parse of the query could not be emptied: give it the
		// path only.
		uri, _, _ = strings.Cut(uri, "?")
	}
	tx.ProcessURI(uri, method, proto)
	if ok {
		clearArgs(vars.Variables().ArgsGet())
	}

	for _, a := range in.args {
		switch {
		case !a.get:
		case strings.HasPrefix(a.name, "path:"):
			tx.AddPathRequestArgument(a.name, a.value)
		default:
			tx.AddGetRequestArgument(a.name, a.value)
		}
	}
	if it := tx.ProcessRequestHeaders(); it != nil {
		return verdict(tx, it, in), nil
	}
	for _, a := range in.args {
		if !a.get {
			tx.AddPostRequestArgument(a.name, a.value)
		}
	}
	// JSON and form bodies were fed as arguments and are not written, so
	// Coraza's JSON and URLENCODED processors never see them (an empty
	// body is not processed). Other bodies are Coraza's to parse.
	if in.rawBody {
		it, _, err := tx.WriteRequestBody(req.Body)
		if err != nil {
			return pipeline.Allowed, fmt.Errorf("waf: %w", err)
		}
		if it != nil {
			return verdict(tx, it, in), nil
		}
	}
	it, err := tx.ProcessRequestBody()
	if err != nil {
		return pipeline.Allowed, fmt.Errorf("waf: %w", err)
	}
	if it != nil {
		return verdict(tx, it, in), nil
	}
	return pipeline.Allowed, nil
}

// clearArgs removes the query parameters ProcessURI parsed into
// ARGS_GET: their values are the query:NAME arguments (typed ones
// skipped, JSON walked) and their names are fed bare, both within
// MaxArgs, where Coraza would take tens of thousands.
func clearArgs(get collection.Map) {
	for _, md := range get.FindAll() {
		get.Remove(md.Key())
	}
}

// Match is one matched rule as reported in the problem document's "rules"
// member.
type Match struct {
	ID    int    `json:"id"`
	Msg   string `json:"msg,omitempty"`
	Param string `json:"param,omitempty"`
	// Data is the start of the matched value: at most maxData bytes,
	// escaped, or "[redacted]" for credentials, cookies and headers.
	Data string `json:"data,omitempty"`
}

const (
	maxData        = 64
	maxReported    = 16
	maxDetailIDs   = 8
	redacted       = "[redacted]"
	reasonInjected = "injection-detected"
)

// family names the attack class of a CRS rule file (the id's first three
// digits).
var family = map[int]string{
	911: "method enforcement", 913: "scanner", 920: "protocol violation", 921: "protocol attack",
	922: "multipart attack", 930: "path traversal", 931: "remote file inclusion", 932: "command injection",
	933: "PHP injection", 934: "generic injection", 941: "XSS", 942: "SQL injection",
	943: "session fixation", 944: "Java injection",
}

func verdict(tx types.Transaction, it *types.Interruption, in request) pipeline.Verdict {
	// Coraza may report argument and cookie names lower-cased; report
	// them as sent.
	names := make(map[string]string, len(in.args)+len(in.cookieNames))
	for _, a := range in.args {
		if a.param == "" {
			names[strings.ToLower(a.name)] = a.name
		}
	}
	for _, n := range in.cookieNames {
		names["cookie:"+strings.ToLower(n)] = "cookie:" + n
	}
	// Bare names (ARGS_NAMES) are reported as their parameter; a fed
	// argument of the same name wins.
	for _, a := range in.args {
		if _, ok := names[strings.ToLower(a.name)]; !ok && a.param != "" {
			names[strings.ToLower(a.name)] = a.param
		}
	}
	var matches []Match
	var ids []int
	var fams []string
	for _, mr := range tx.MatchedRules() {
		id := mr.Rule().ID()
		if !detection(id, mr.Message()) && (id != it.RuleID || id/1000 == 949) {
			continue
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
		if f, ok := family[id/1000]; ok && !slices.Contains(fams, f) {
			fams = append(fams, f)
		}
		if len(matches) == maxReported {
			continue
		}
		m := Match{ID: id, Msg: mr.Message()}
		if mds := mr.MatchedDatas(); len(mds) > 0 {
			md := mds[0]
			m.Param = paramOf(md.Variable().Name(), md.Key(), names)
			m.Data = reportData(m.Param, md.Variable().Name(), md.Value())
		}
		matches = append(matches, m)
	}
	if len(ids) == 0 {
		ids = append(ids, it.RuleID)
	}
	// The client learns the attack family, not which rules matched or
	// on what: that would help tune an evasion. Rule ids and the
	// (truncated, redacted) matches go to the event.
	detail := "a value of the request looks like an injection attack"
	if len(fams) > 0 {
		detail += " (" + strings.Join(fams, ", ") + ")"
	}
	idText := make([]string, 0, len(ids))
	for i, id := range ids {
		if i == maxDetailIDs {
			idText = append(idText, "...")
			break
		}
		idText = append(idText, strconv.Itoa(id))
	}
	v := pipeline.Verdict{Action: pipeline.Deny, Status: http.StatusForbidden, Reason: reasonInjected, Detail: detail,
		Evidence: map[string]string{"rules": strings.Join(idText, ",")}}
	if len(matches) > 0 {
		if b, err := json.Marshal(matches); err == nil {
			v.Evidence["matches"] = string(b)
		}
	}
	return v
}

// detection reports whether a matched rule is a detection, not one of
// the CRS's setup, paranoia-level skip (NNN0xx), scoring or blocking
// rules, which match on every request.
func detection(id int, msg string) bool {
	_, ok := family[id/1000]
	return ok && id%1000 >= 100 && msg != ""
}

// paramOf names where a match was, in the same terms as the fed
// arguments.
func paramOf(variable, key string, names map[string]string) string {
	switch {
	case strings.HasPrefix(variable, "ARGS"):
		if n, ok := names[strings.ToLower(key)]; ok {
			return n
		}
		// Parsed by Coraza from a multipart or other raw body; a raw
		// body parsed as a form may be one long key.
		return "body:" + clip(key)
	case strings.HasPrefix(variable, "REQUEST_COOKIES"):
		if n, ok := names["cookie:"+strings.ToLower(key)]; ok {
			return n
		}
		return "cookie:" + key
	case strings.HasPrefix(variable, "REQUEST_HEADERS"):
		return "header:" + strings.ToLower(key)
	case variable == "XML", variable == "REQUEST_XML":
		return "xml"
	case variable == "REQUEST_FILENAME", variable == "REQUEST_BASENAME", strings.HasPrefix(variable, "REQUEST_URI"), variable == "REQUEST_LINE":
		return "uri"
	}
	return strings.ToLower(variable)
}

// reportData is the client-safe form of a matched value.
func reportData(param, variable, value string) string {
	switch variable {
	case "REQUEST_HEADERS", "REQUEST_HEADERS_NAMES", "REQUEST_COOKIES", "REQUEST_COOKIES_NAMES", "REQUEST_BODY", "XML", "REQUEST_XML":
		// Headers and cookies carry credentials; a raw body or XML text
		// may hold anything, under no name that tells.
		return redacted
	}
	if sensitive(param) {
		return redacted
	}
	return clip(value)
}

// sensitive reports parameters whose values must never be echoed:
// credentials by name, cookies, and the catch-all arguments that mix many
// values (any of which may be a credential).
func sensitive(param string) bool {
	p := strings.ToLower(param)
	for _, s := range []string{"password", "passwd", "secret", "token"} {
		if strings.Contains(p, s) {
			return true
		}
	}
	switch p {
	case overflowName, "json:", "form", "body", "query":
		return true
	}
	return strings.HasPrefix(p, "cookie:") || strings.HasPrefix(p, "header:")
}

// clip escapes quotes, backslashes, control and format characters and
// cuts the result to at most maxData bytes, marking a cut with "...".
func clip(s string) string {
	var b strings.Builder
	cut := 0 // longest prefix of whole escapes that leaves room for "..."
	for _, r := range s {
		var e string
		switch {
		case r == utf8.RuneError: // also invalid UTF-8
			e = `\ufffd`
		case r == '"' || r == '\'' || r == '\\':
			e = `\` + string(r)
		case unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) || r == 0x2028 || r == 0x2029:
			e = fmt.Sprintf(`\u%04x`, r)
		default:
			e = string(r)
		}
		if b.Len()+len(e) <= maxData-len("...") {
			cut = b.Len() + len(e)
		}
		b.WriteString(e)
		if b.Len() > maxData {
			break
		}
	}
	if b.Len() <= maxData {
		return b.String()
	}
	return b.String()[:cut] + "..."
}
