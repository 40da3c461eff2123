package authz

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
)

// Config is the authz check's configuration: ordered rules whose CEL
// expressions decide function-level (OWASP API5) and object-level (OWASP
// API1, BOLA) authorization.
//
// Rules are tried in order. The first rule whose methods and path match
// decides: an allow rule allows when its expression is true and denies
// (403 forbidden) when it is false; a deny rule denies when its expression
// is true and, when false, passes the request on to the next rule. When no
// rule decides, Default decides. An expression that fails at run time (a
// missing map key such as identity.claims.roles or request.headers["x-a"],
// a type error) denies: authorization fails closed. Validate rejects
// path.name references to parameters the rule's template does not have.
//
// # CEL variables
//
// Every expression sees these variables (and nothing else):
//
//	request.method         string              HTTP method, upper case ("GET")
//	request.path           string              decoded URL path ("/api/orders/42")
//	request.query          map(string, string) query parameters, first value of each
//	request.headers        map(string, string) request headers by lower-case name, first value
//	                                           (request.headers["x-owner-id"])
//	request.host           string              Host of the request, with any port
//	path                   map(string, string) parameters of the matched rule's path
//	                                           template: path.id for /api/orders/{id}
//	identity.sub           string              authenticated subject (JWT sub, session user), "" if none
//	identity.claims        map(string, dyn)    token claims (identity.claims.roles, identity.claims.tenant)
//	identity.api_key       string              name of the API key used (never the secret), "" if none
//	identity.scopes        list(string)        granted OAuth scopes
//	identity.cert_subject  string              client-certificate subject (mTLS), "" if none
//	identity.app           string              attested app id, "" if none
//	identity.device        string              attested device or installation id, "" if none
//	identity.authenticated bool                true when sub, api_key or cert_subject is set
//
// Reading a map key that is absent is a run-time error and denies; guard
// optional keys with has(identity.claims.roles) or "x" in request.headers.
// Dotted access works for keys that are identifiers (path.id,
// identity.claims.roles); others need brackets (request.headers["x-user"]).
// Besides the standard CEL functions (size, startsWith, endsWith,
// contains, matches, in, exists, all, has, int, string, timestamp ...), the
// strings extension is available: split, lowerAscii, upperAscii, trim,
// replace, indexOf, lastIndexOf, substring, join, format.
//
// An expression must be of type bool; one of type dyn (identity.claims.admin)
// is accepted and denies at run time if its value is not a bool.
//
// # Examples
//
//	# function level: only admins reach the admin API
//	- name: admin-api
//	  path: /api/admin/**
//	  allow: '"admin" in identity.claims.roles'
//	# object level: users read and change only their own profile
//	- name: own-profile
//	  path: /api/users/{username}
//	  allow: 'path.username == identity.sub || "admin" in identity.claims.roles'
//	# scopes
//	- name: read-orders
//	  methods: [GET]
//	  path: /api/orders/**
//	  allow: '"orders:read" in identity.scopes'
//
// # Objects whose owner the path does not show (BOLA)
//
// A gateway cannot tell from /api/orders/42 who owns order 42. Two patterns
// make the owner visible to a rule:
//
//   - Ids that embed the owner: /api/users/{user}/orders/{id}, with
//     allow: path.user == identity.sub (the upstream must still check that
//     order id belongs to user, a cheap local check), or owner-prefixed
//     ids such as alice:42 with allow: path.id.split(":")[0] == identity.sub.
//     Unguessable ids (UUIDs) are no substitute for a check.
//   - An owner header set by a trusted component in front of the rule (an
//     earlier lookup service or an edge proxy that strips the header from
//     client requests): allow: request.headers["x-resource-owner"] ==
//     identity.sub. Never trust such a header if clients can set it; the
//     jwt check's forward_claims headers are safe, it removes client copies.
//
// # Notes
//
// Methods are compared exactly: list HEAD next to GET if HEAD should pass.
// Path templates: {name} matches one non-empty segment, a trailing /**
// matches zero or more segments (/api/** matches /api and /api/a/b), other
// segments match literally, and a trailing slash is significant. Segments
// are percent-decoded before matching; a segment holding an encoded slash
// (%2F), a backslash or a dot segment never matches a parameter, so the
// rule does not apply to such paths. The on_error setting does not
// apply to expression errors: they always deny, with the error recorded.
type Config struct {
	pipeline.Options `yaml:",inline"`
	// RequireAuth refuses (401 unauthorized) requests without an
	// authenticated identity (Subject or APIKey or CertSubject) on this route.
	RequireAuth bool `yaml:"require_auth,omitempty"`
	// Default decides requests no rule matches: deny (default) or allow.
	Default string `yaml:"default,omitempty"`
	Rules   []Rule `yaml:"rules"`
}

// Rule is one authorization rule.
type Rule struct {
	// Name identifies the rule in denials and events (letters, digits, - and _).
	Name string `yaml:"name"`
	// Methods the rule applies to, upper case; empty means any method.
	Methods []string `yaml:"methods,omitempty"`
	// Path is a template such as /api/orders/{id}: {name} matches one
	// segment, a trailing /** matches the rest; empty means any path.
	Path string `yaml:"path,omitempty"`
	// Allow is a CEL expression: true allows, false denies.
	Allow string `yaml:"allow,omitempty"`
	// Deny is a CEL expression: true denies, false moves on to the next rule.
	// At most one of Allow and Deny is set.
	Deny string `yaml:"deny,omitempty"`
	// ResponseAllow is a CEL expression evaluated on the upstream's answer
	// to a request this rule allowed: false replaces the answer with 403.
	// It also sees response.status (int) and response.json (the parsed JSON
	// body, up to 1 MiB; a larger or non-JSON 2xx body is refused). This is
	// how ownership that only the upstream knows is enforced:
	// response.json.owner == identity.sub. An allow rule may consist of
	// ResponseAllow alone.
	ResponseAllow string `yaml:"response_allow,omitempty"`
}

// Default values.
const (
	DefaultDeny  = "deny"
	DefaultAllow = "allow"
)

// Names of the CEL variables, as the activation resolves them.
const (
	varMethod        = "request.method"
	varPath          = "request.path"
	varQuery         = "request.query"
	varHeaders       = "request.headers"
	varHost          = "request.host"
	varParams        = "path"
	varSub           = "identity.sub"
	varClaims        = "identity.claims"
	varAPIKey        = "identity.api_key"
	varScopes        = "identity.scopes"
	varCertSubject   = "identity.cert_subject"
	varApp           = "identity.app"
	varDevice        = "identity.device"
	varAuthenticated = "identity.authenticated"
)

var stringMap = cel.MapType(cel.StringType, cel.StringType)

// variables are the declared CEL variables; keep in sync with the Config doc.
var variables = []struct {
	name string
	typ  *cel.Type
}{
	{varMethod, cel.StringType},
	{varPath, cel.StringType},
	{varQuery, stringMap},
	{varHeaders, stringMap},
	{varHost, cel.StringType},
	{varParams, stringMap},
	{varSub, cel.StringType},
	{varClaims, cel.MapType(cel.StringType, cel.DynType)},
	{varAPIKey, cel.StringType},
	{varScopes, cel.ListType(cel.StringType)},
	{varCertSubject, cel.StringType},
	{varApp, cel.StringType},
	{varDevice, cel.StringType},
	{varAuthenticated, cel.BoolType},
}

// celEnv is the one environment every expression is compiled in.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	opts := make([]cel.EnvOption, 0, len(variables)+1)
	// The strings extension adds split, lowerAscii, upperAscii, trim,
	// replace, indexOf, substring and join, e.g. for ids that embed
	// their owner: path.id.split(":")[0] == identity.sub.
	opts = append(opts, ext.Strings())
	for _, v := range variables {
		opts = append(opts, cel.Variable(v.name, v.typ))
	}
	return cel.NewEnv(opts...)
})

// Response variables, only in response_allow expressions.
const (
	varRespStatus = "response.status"
	varRespJSON   = "response.json"
)

// celResponseEnv extends the request environment with the response.
var celResponseEnv = sync.OnceValues(func() (*cel.Env, error) {
	env, err := celEnv()
	if err != nil {
		return nil, err
	}
	return env.Extend(cel.Variable(varRespStatus, cel.IntType), cel.Variable(varRespJSON, cel.DynType))
})

// compileResponse compiles a response_allow expression.
func compileResponse(expr string) (*cel.Ast, error) {
	env, err := celResponseEnv()
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, errors.New(strings.ReplaceAll(strings.TrimSpace(iss.Err().Error()), "\n", " "))
	}
	if !ast.OutputType().IsExactType(cel.BoolType) && !ast.OutputType().IsExactType(cel.DynType) {
		return nil, fmt.Errorf("must be a bool expression, not %s", ast.OutputType())
	}
	return ast, nil
}

// compile parses and type-checks one expression. Its errors are
// single-line, client-of-config friendly messages.
func compile(expr string) (*cel.Ast, error) {
	env, err := celEnv()
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		var msgs []string
		for _, e := range iss.Errors() {
			msg := strings.TrimSuffix(e.Message, " (in container '')")
			if name, ok := strings.CutPrefix(msg, "undeclared reference to '"); ok {
				name = strings.TrimSuffix(name, "'")
				// The checker names only the first segment of a misspelt
				// qualified name (identity for identity.scope); report the
				// whole reference as written.
				if full := referenceAt(expr, e.Location.Line(), e.Location.Column()); (name == "identity" || name == "request") &&
					strings.HasPrefix(full, name+".") {
					name = full
					msg = "undeclared reference to '" + name + "'"
				}
				if s := suggest(name); s != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", s)
				}
			}
			msgs = append(msgs, fmt.Sprintf("%s at %d:%d", msg, e.Location.Line(), e.Location.Column()+1))
		}
		return nil, fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	switch out := ast.OutputType(); {
	case out.IsExactType(cel.BoolType), out.IsExactType(cel.DynType):
	default:
		return nil, fmt.Errorf("must be a bool expression, not %s", out)
	}
	return ast, nil
}

// referenceAt returns the dotted identifier starting at line:column
// (1-based line, 0-based column in code points) of expr.
func referenceAt(expr string, line, column int) string {
	lines := strings.Split(expr, "\n")
	if line < 1 || line > len(lines) {
		return ""
	}
	rs := []rune(lines[line-1])
	if column < 0 || column >= len(rs) {
		return ""
	}
	end := column
	for end < len(rs) && (rs[end] == '_' || rs[end] == '.' || rs[end] >= 'a' && rs[end] <= 'z' ||
		rs[end] >= 'A' && rs[end] <= 'Z' || rs[end] >= '0' && rs[end] <= '9') {
		end++
	}
	return strings.TrimRight(string(rs[column:end]), ".")
}

// pathRefs lists the template parameters an expression reads with
// path.name or path["name"] (presence tests with has() excluded).
func pathRefs(a *cel.Ast) []string {
	var out []string
	isPath := func(e celast.Expr) bool {
		return e.Kind() == celast.IdentKind && e.AsIdent() == varParams
	}
	celast.PreOrderVisit(a.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		switch e.Kind() {
		case celast.SelectKind:
			if sel := e.AsSelect(); isPath(sel.Operand()) && !sel.IsTestOnly() && !slices.Contains(out, sel.FieldName()) {
				out = append(out, sel.FieldName())
			}
		case celast.CallKind:
			c := e.AsCall()
			if c.FunctionName() != operators.Index || len(c.Args()) != 2 || !isPath(c.Args()[0]) ||
				c.Args()[1].Kind() != celast.LiteralKind {
				return
			}
			if k, ok := c.Args()[1].AsLiteral().(types.String); ok && !slices.Contains(out, string(k)) {
				out = append(out, string(k))
			}
		}
	}))
	return out
}

// suggest names the declared variable closest to a misspelt one.
func suggest(name string) string {
	best, bestD := "", 3
	for _, v := range variables {
		// Compare as many segments as the variable has: identity.claims.rol
		// is a reference to identity.claims, not a misspelling.
		n := strings.Count(v.name, ".") + 1
		parts := strings.SplitN(name, ".", n+1)
		if len(parts) > n {
			parts = parts[:n]
		}
		cand, ref := v.name, strings.Join(parts, ".")
		if len(parts) < n || n > 1 && parts[0] != strings.Split(v.name, ".")[0] {
			// idenity (of idenity.sub) for identity: compare the first segment
			cand = strings.Split(v.name, ".")[0]
			ref = parts[0]
		}
		if d := field.Distance(ref, cand); d < bestD && d > 0 {
			best, bestD = cand+name[len(ref):], d
		}
	}
	return best
}

// Validate reports every invalid field under path. It compiles and
// type-checks every expression.
func (c *Config) Validate(path string, errs *field.Errors) {
	c.Options.Validate(path, errs)
	switch c.Default {
	case "", DefaultDeny, DefaultAllow:
	default:
		errs.Add(field.Join(path, "default"), "must be allow or deny, not %q", c.Default)
	}
	rp := field.Join(path, "rules")
	names := map[string]bool{}
	for i := range c.Rules {
		r := &c.Rules[i]
		at := field.Index(rp, i)
		switch {
		case r.Name == "":
			errs.Add(field.Join(at, "name"), "required")
		case !field.ValidName(r.Name):
			errs.Add(field.Join(at, "name"), "must be letters, digits, - and _")
		case names[r.Name]:
			errs.Add(field.Join(at, "name"), "duplicate rule name %q", r.Name)
		}
		names[r.Name] = true
		for j, m := range r.Methods {
			if !field.ValidMethod(m) {
				errs.Add(field.Index(field.Join(at, "methods"), j), "not an upper-case HTTP method: %q", m)
			}
		}
		if r.Path != "" {
			if _, err := parseTemplate(r.Path); err != nil {
				errs.Add(field.Join(at, "path"), "invalid template %q: %v", r.Path, err)
			}
		}
		var tmpl *template
		if r.Path != "" {
			tmpl, _ = parseTemplate(r.Path)
		}
		checkExpr := func(name, expr string) {
			compileFn := compile
			if name == "response_allow" {
				compileFn = compileResponse
			}
			ast, err := compileFn(expr)
			if err != nil {
				errs.Add(field.Join(at, name), "%v", err)
				return
			}
			if r.Path == "" || tmpl != nil {
				for _, p := range pathRefs(ast) {
					if tmpl == nil || !slices.Contains(tmpl.params, p) {
						where := "the rule has no path template"
						if tmpl != nil {
							where = fmt.Sprintf("%s has no {%s}", r.Path, p)
						}
						errs.Add(field.Join(at, name), "path.%s is never set: %s", p, where)
					}
				}
			}
		}
		switch {
		case r.Allow != "" && r.Deny != "":
			errs.Add(at, "set either allow or deny, not both")
		case r.Deny != "" && r.ResponseAllow != "":
			errs.Add(at, "response_allow goes with allow rules, not deny rules")
		case r.Allow == "" && r.Deny == "" && r.ResponseAllow == "":
			errs.Add(at, "one of allow, deny or response_allow is required")
		case r.Allow != "":
			checkExpr("allow", r.Allow)
		case r.Deny != "":
			checkExpr("deny", r.Deny)
		}
		if r.ResponseAllow != "" {
			checkExpr("response_allow", r.ResponseAllow)
		}
	}
}
