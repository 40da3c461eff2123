package waf

import (
	"fmt"
	"maps"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"weak"

	"github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
)

// engine is a built WAF shared by every check with the same directives.
type engine struct {
	waf coraza.WAF
}

// The cache holds engines weakly: a WAF lives as long as a check (route)
// uses it, so a config reload that changes settings frees the old one
// instead of accumulating WAFs for the life of the process. Builds happen
// under the lock: they run at config load, and building one WAF per key
// matters more than building different keys in parallel.
var cache = struct {
	sync.Mutex
	m map[string]weak.Pointer[engine]
}{m: map[string]weak.Pointer[engine]{}}

// engineFor returns the shared engine for these directives, building it
// on first use.
func engineFor(directives string) (*engine, error) {
	cache.Lock()
	defer cache.Unlock()
	if wp, ok := cache.m[directives]; ok {
		if e := wp.Value(); e != nil {
			return e, nil
		}
	}
	w, err := build(directives)
	if err != nil {
		return nil, err
	}
	e := &engine{waf: w}
	cache.m[directives] = weak.Make(e)
	runtime.AddCleanup(e, forget, directives)
	return e, nil
}

// build compiles a WAF from directives over the embedded CRS.
func build(directives string) (coraza.WAF, error) {
	w, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(directives))
	if err != nil {
		return nil, fmt.Errorf("waf: building the rule set: %w", err)
	}
	return w, nil
}

// forget drops a collected engine's cache entry unless it was rebuilt.
func forget(key string) {
	cache.Lock()
	defer cache.Unlock()
	if wp, ok := cache.m[key]; ok && wp.Value() == nil {
		delete(cache.m, key)
	}
}

// bodyLimit is how much of a raw (not JSON or form) body Coraza
// inspects: the recommended configuration's limit, above the gateway's
// default of 10 MiB.
const bodyLimit = 13107200

// allowedMethods widens the CRS default (GET HEAD POST OPTIONS) to the
// methods REST APIs use; route method checks happen elsewhere.
const allowedMethods = "GET HEAD POST OPTIONS PUT PATCH DELETE"

// directives renders the effective configuration as SecLang. The text is
// also the cache key, so it must be deterministic: exclusions are sorted.
func directives(paranoia, threshold int, exclusions []Exclusion) string {
	var b strings.Builder
	b.WriteString("Include @coraza.conf-recommended\n")
	// JSON and form bodies are never given to Coraza (arguments are fed
	// instead); other bodies (multipart, XML, text ...) are, up to the
	// gateway's default body limit, in memory, and a longer one is
	// inspected in part rather than refused (the gateway enforces the
	// route's own limit). Responses are not inspected here; audit
	// logging is the gateway's.
	b.WriteString("SecRuleEngine On\nSecRequestBodyAccess On\nSecResponseBodyAccess Off\nSecAuditEngine Off\n")
	fmt.Fprintf(&b, "SecRequestBodyLimit %d\nSecRequestBodyInMemoryLimit %d\nSecRequestBodyLimitAction ProcessPartial\n", bodyLimit, bodyLimit)
	// Our own bound (MaxArgs) applies first; Coraza's must never refuse.
	// Every fed value may come twice (prefixed and bare name); beyond
	// that Coraza stops parsing, which bounds the regexp work a body of
	// thousands of multipart parts can cause.
	fmt.Fprintf(&b, "SecArgumentsLimit %d\n", maxMaxArgs*2)
	b.WriteString("Include @crs-setup.conf.example\n")
	fmt.Fprintf(&b, "SecAction \"id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=%d\"\n", paranoia)
	fmt.Fprintf(&b, "SecAction \"id:900001,phase:1,pass,t:none,nolog,setvar:tx.detection_paranoia_level=%d\"\n", paranoia)
	fmt.Fprintf(&b, "SecAction \"id:900110,phase:1,pass,t:none,nolog,setvar:tx.inbound_anomaly_score_threshold=%d,setvar:tx.outbound_anomaly_score_threshold=4\"\n", threshold)
	fmt.Fprintf(&b, "SecAction \"id:900200,phase:1,pass,t:none,nolog,setvar:'tx.allowed_methods=%s'\"\n", allowedMethods)
	// Only request rules: responses are never given to this WAF, so the
	// RESPONSE-* files would cost memory and build time for nothing.
	b.WriteString("Include @owasp_crs/REQUEST-*.conf\n")

	removed := map[int]bool{}
	targets := map[int][]string{}
	for _, ex := range exclusions {
		for _, id := range ex.RuleIDs {
			if len(ex.Parameters) == 0 {
				removed[id] = true
				continue
			}
			targets[id] = append(targets[id], ex.Parameters...)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(removed)) {
		fmt.Fprintf(&b, "SecRuleRemoveById %d\n", id)
	}
	for _, id := range slices.Sorted(maps.Keys(targets)) {
		if removed[id] {
			continue
		}
		ps := slices.Compact(slices.Sorted(slices.Values(targets[id])))
		for _, p := range ps {
			fmt.Fprintf(&b, "SecRuleUpdateTargetById %d \"!ARGS:/%s/\"\n", id, argKeyRegexp(p))
			// Plain cookies are Coraza's REQUEST_COOKIES, not arguments
			// (a cookie name cannot hold '/': cookie:a/b is a JSON leaf).
			if name, ok := strings.CutPrefix(p, "cookie:"); ok && !strings.Contains(name, "/") {
				fmt.Fprintf(&b, "SecRuleUpdateTargetById %d \"!REQUEST_COOKIES:/%s/\"\n", id, argKeyRegexp(name))
			}
		}
	}
	return b.String()
}

// argKeyRegexp matches the argument named p and the leaves of JSON nested
// in it (p/...). Argument keys are case-insensitive in Coraza. SecLang
// splits targets on whitespace and ends the regex at '/', so both are
// escaped; Go's regexp accepts any escaped punctuation.
func argKeyRegexp(p string) string {
	q := regexp.QuoteMeta(p)
	var b strings.Builder
	for _, r := range q {
		switch {
		case r == '/':
			b.WriteString(`\/`)
		case r == ' ' || r == '\t' || r == '"' || r == '\'' || r < 0x20:
			b.WriteString(`\x{` + strconv.FormatInt(int64(r), 16) + `}`)
		default:
			b.WriteRune(r)
		}
	}
	return "(?i)^" + b.String() + `(?:\/.*)?$`
}
