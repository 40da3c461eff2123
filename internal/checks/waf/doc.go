// Package waf detects injection attacks (SQL injection, XSS, path
// traversal, command injection ...) with Coraza v3 running the OWASP Core
// Rule Set v4, adapted to JSON APIs.
//
// A conventional WAF hands the raw request body to its JSON processor and
// matches CRS rules against every value, numbers and structure included.
// On APIs that produces false positives (JSON nested in strings is full of
// quotes and braces) and wasted work (values the schema already proved to
// be integers, enums or uuids cannot carry an injection). This check
// therefore never gives Coraza a JSON or URL-encoded form body. It walks
// the request itself and adds one argument per free-text value, named by
// where it came from:
//
//	query:NAME          query parameter
//	path:NAME           route path parameter
//	cookie:NAME/ptr     leaf of JSON held in a cookie
//	json:/a/0/b         JSON body leaf string (RFC 6901 pointer)
//	form:NAME           application/x-www-form-urlencoded field
//
// The names are the keys of pipeline.Request.Typed, so values schema
// validation proved typed are skipped, and exclusions name parameters the
// same way. Numbers, booleans and null are never fed. A string that itself
// holds a JSON object or array (in the body, a query value, a cookie or a
// form field) is walked too, its leaves named by the string's name
// followed by their pointer (json:/meta/tags/0, cookie:prefs/theme), to two
// levels.
//
// The rest goes to Coraza the conventional way. Headers are fed as
// headers. The Cookie header is too, less typed cookies and those holding
// JSON (walked instead), so plain cookies are Coraza's REQUEST_COOKIES and
// inspected once; exclusions naming cookie:NAME cover them there. The URI
// is given as sent (REQUEST_LINE, REQUEST_URI, QUERY_STRING and
// REQUEST_FILENAME see the raw query), but the arguments Coraza would
// parse from it are dropped for the query:NAME ones. So that ARGS_NAMES
// holds the names a conventional WAF sees (the CRS session-fixation and
// protocol rules match them anchored), each query parameter's and form
// field's name is also fed bare, without a value, within MaxArgs; typed
// parameters' names are not. Query strings and forms are split on '&'
// only and invalid escapes kept, as Coraza and most backends do.
//
// Bodies of every other type (multipart/form-data, XML, text, unknown)
// are written to the transaction for Coraza's own MULTIPART, XML and raw
// (forced URLENCODED) processors, up to 12.5 MiB (ProcessPartial);
// multipart file parts go through temporary files, as in any Coraza.
// Matches there are reported as body:NAME (multipart or raw fields),
// files, xml or request_body, the last two redacted.
//
// Building a WAF with the CRS costs about 100 ms and tens of MB, so built
// WAFs are shared by every check with the same effective settings (see
// engineFor); routes with identical settings cost one WAF.
package waf
