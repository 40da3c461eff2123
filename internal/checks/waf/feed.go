package waf

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/apiguard/apiguard/internal/lenient"
	"github.com/apiguard/apiguard/internal/pipeline"
)

// arg is one value fed to the WAF.
type arg struct {
	name, value string
	get         bool // query or path: added before the request-headers phase
	// param, for a name-only argument (a query parameter's or form
	// field's own name, with an empty value, for the rules on
	// ARGS_NAMES), names the parameter as reported.
	param string
}

const (
	// maxNested bounds JSON-in-string decoding: the body is level 0, a
	// JSON string inside it level 1, a JSON string inside that level 2.
	maxNested = 2
	// maxDepth bounds the structure walked; deeper (hostile) JSON is fed
	// raw rather than walked, keeping pointer building linear.
	maxDepth = 64
	// overflowName carries every value beyond MaxArgs, joined.
	overflowName = "overflow"
)

// feeder collects the arguments of one request.
type feeder struct {
	typed    map[string]struct{}
	max      int
	args     []arg
	overflow []string
}

func (f *feeder) add(name, value string, get bool) {
	if value == "" {
		return
	}
	if len(f.args) < f.max-1 {
		f.args = append(f.args, arg{name: name, value: value, get: get})
		return
	}
	// Past the bound values are still inspected, as one joined argument,
	// so padding a request with harmless values cannot hide a payload.
	f.overflow = append(f.overflow, value)
}

// name feeds a query parameter's or form field's bare name as an
// argument without a value, so that ARGS_NAMES holds the names a
// conventional WAF would see (the CRS matches some, e.g. session ids,
// anchored). Names count against the bound; past it a name joins the
// overflow.
func (f *feeder) name(name, param string, get bool) {
	if name == "" {
		return
	}
	if len(f.args) < f.max-1 {
		f.args = append(f.args, arg{name: name, param: param, get: get})
		return
	}
	f.overflow = append(f.overflow, name)
}

func (f *feeder) finish() []arg {
	if len(f.overflow) == 1 && len(f.args) < f.max {
		f.args = append(f.args, arg{name: overflowName, value: f.overflow[0]})
	} else if len(f.overflow) > 0 {
		f.args = append(f.args, arg{name: overflowName, value: strings.Join(f.overflow, "\n")})
	}
	return f.args
}

func (f *feeder) isTyped(name string) bool {
	_, ok := f.typed[name]
	return ok
}

// value feeds a free-text value, walking it when it holds JSON.
func (f *feeder) value(name, v string, get bool, level int) {
	if f.isTyped(name) {
		return
	}
	if level < maxNested && looksJSON(v) {
		if f.json([]byte(v), name, get, level+1) {
			return
		}
	}
	f.add(name, v, get)
}

// looksJSON reports whether s may be a JSON object or array; json walks
// it to be sure.
func looksJSON(s string) bool {
	s = strings.TrimLeft(s, " \t\r\n")
	return len(s) > 1 && (s[0] == '{' || s[0] == '[')
}

// frame is an open JSON object or array.
type frame struct {
	ptr    string
	array  bool
	idx    int
	key    string
	hasKey bool
}

// json walks a JSON document, feeding each leaf string under prefix plus
// its RFC 6901 pointer. It reports false, feeding nothing, when b is not
// JSON or is nested too deep.
func (f *feeder) json(b []byte, prefix string, get bool, level int) bool {
	mark, markOverflow := len(f.args), len(f.overflow)
	fail := func() bool {
		f.args, f.overflow = f.args[:mark], f.overflow[:markOverflow]
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var stack []frame
	done := false // the document's one value is complete
	for {
		tok, err := dec.Token()
		if err == io.EOF && done {
			return true
		}
		if err != nil || done {
			// Truncated, malformed, or followed by more data.
			return fail()
		}
		// The pointer of the value this token starts, or "" for a key.
		ptr := prefix
		isKey := false
		if n := len(stack); n > 0 {
			top := &stack[n-1]
			switch {
			case top.array:
				ptr = top.ptr + "/" + strconv.Itoa(top.idx)
			case !top.hasKey:
				isKey = true
			default:
				ptr = top.ptr + "/" + escapePointer(top.key)
			}
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			advance(stack)
			done = len(stack) == 0
			continue
		}
		if isKey {
			top := &stack[len(stack)-1]
			top.key, _ = tok.(string)
			top.hasKey = true
			continue
		}
		switch t := tok.(type) {
		case json.Delim:
			if len(stack) >= maxDepth {
				return fail()
			}
			stack = append(stack, frame{ptr: ptr, array: t == '['})
			continue
		case string:
			f.value(ptr, t, get, level)
		}
		// Numbers, booleans and null cannot carry an injection.
		advance(stack)
		done = len(stack) == 0
	}
}

// advance moves the innermost container past a completed value.
func advance(stack []frame) {
	if n := len(stack); n > 0 {
		top := &stack[n-1]
		if top.array {
			top.idx++
		} else {
			top.hasKey = false
		}
	}
}

// escapePointer escapes a key as an RFC 6901 reference token.
func escapePointer(k string) string {
	if !strings.ContainsAny(k, "~/") {
		return k
	}
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// request is what one request gives the WAF besides its headers.
type request struct {
	args []arg
	// cookies are the Cookie header lines to give Coraza (which parses
	// them into REQUEST_COOKIES): the original lines less the typed
	// cookies and those holding JSON, whose leaves are args instead.
	cookies []string
	// cookieNames are the names of the cookies left in cookies, for
	// reporting matches under the name sent.
	cookieNames []string
	// rawBody: req.Body is neither JSON nor a URL-encoded form and goes to
	// Coraza's own body processors (multipart, XML, raw).
	rawBody bool
}

// collect gathers the arguments of req, at most max of them.
func collect(req *pipeline.Request, max int) request {
	f := &feeder{typed: req.Typed, max: max}
	var out request
	r := req.HTTP
	for _, name := range sortedKeys(req.PathParams) {
		f.value("path:"+name, req.PathParams[name], true, 0)
	}
	if r != nil && r.URL != nil && r.URL.RawQuery != "" {
		q, bad := parseQuery(r.URL.RawQuery)
		if bad {
			// Undecodable escapes: inspect the raw text as well, as a
			// backend might decode it more leniently.
			f.add("query", r.URL.RawQuery, true)
		}
		for _, name := range sortedKeys(q) {
			if !f.isTyped("query:" + name) {
				f.name(name, "query:"+name, true)
			}
			for _, v := range q[name] {
				f.value("query:"+name, v, true, 0)
			}
		}
	}
	if r != nil {
		for _, line := range r.Header.Values("Cookie") {
			if kept := cookies(f, line, &out.cookieNames); kept != "" {
				out.cookies = append(out.cookies, kept)
			}
		}
	}
	if len(req.Body) > 0 {
		out.rawBody = body(f, req)
	}
	out.args = f.finish()
	return out
}

// parseQuery parses a query string or form body like url.ParseQuery, but
// takes ';' as part of a value (as Coraza and most backends do) rather
// than dropping the pair, and decodes a pair with invalid escapes
// leniently (leaving those escapes as they are) rather than dropping it.
// bad reports such pairs.
func parseQuery(s string) (m url.Values, bad bool) {
	m = url.Values{}
	for s != "" {
		var kv string
		kv, s, _ = strings.Cut(s, "&")
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k, ok1 := lenient.QueryUnescape(k)
		v, ok2 := lenient.QueryUnescape(v)
		bad = bad || !ok1 || !ok2
		m[k] = append(m[k], v)
	}
	return m, bad
}

// cookies handles one Cookie header line: typed cookies are dropped,
// cookies holding JSON are walked (their leaves fed as cookie:NAME/ptr
// arguments) and dropped, and the line of the others is returned for
// Coraza, which inspects them as REQUEST_COOKIES. It parses leniently
// (net/http drops values with quotes or backslashes, which JSON cookies
// have and which backends may still accept).
func cookies(f *feeder, line string, names *[]string) string {
	var kept []string
	for part := range strings.SplitSeq(line, ";") {
		part = strings.TrimSpace(part)
		name, v, _ := strings.Cut(part, "=")
		if name == "" && v == "" {
			continue
		}
		key := "cookie:" + name
		if f.isTyped(key) {
			continue
		}
		v = strings.Trim(v, `"`)
		if !looksJSON(v) {
			// JSON cookies are commonly URL-encoded.
			if u, err := url.QueryUnescape(v); err == nil && looksJSON(u) {
				v = u
			}
		}
		if looksJSON(v) && f.json([]byte(v), key, false, 1) {
			continue
		}
		kept = append(kept, part)
		*names = append(*names, name)
	}
	return strings.Join(kept, "; ")
}

// body feeds the buffered body by its media type. It reports whether the
// body is of another type, to be given to Coraza whole.
func body(f *feeder, req *pipeline.Request) (raw bool) {
	ct := ""
	if req.HTTP != nil {
		ct = req.HTTP.Header.Get("Content-Type")
	}
	mt, _, _ := mime.ParseMediaType(ct)
	switch {
	case mt == "application/x-www-form-urlencoded":
		form, bad := parseQuery(string(req.Body))
		if bad {
			f.add("form", string(req.Body), false)
		}
		for _, name := range sortedKeys(form) {
			if f.isTyped("form:" + name) {
				continue // a declared field; its name is known
			}
			f.name(name, "form:"+name, false)
			for _, v := range form[name] {
				f.value("form:"+name, v, false, 0)
			}
		}
	case mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "" && looksJSON(string(req.Body)):
		if !f.json(req.Body, "json:", false, 0) {
			// The gateway refuses invalid JSON before checks run; this is
			// defence in depth: inspect it whole.
			f.add("json:", string(req.Body), false)
		}
	default:
		// Multipart, XML, text, anything else: Coraza's body processors
		// (selected by the Content-Type header) read it the conventional
		// way.
		return true
	}
	return false
}
