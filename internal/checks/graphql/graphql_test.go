package graphql

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
)

func post(body string) *pipeline.Request {
	r := &pipeline.Request{HTTP: httptest.NewRequest("POST", "/graphql", strings.NewReader(body))}
	r.Body = []byte(body)
	return r
}

func postQuery(q string, vars map[string]any) *pipeline.Request {
	b, _ := json.Marshal(map[string]any{"query": q, "variables": vars})
	return post(string(b))
}

func get(q string) *pipeline.Request {
	return &pipeline.Request{HTTP: httptest.NewRequest("GET", "/graphql?query="+url.QueryEscape(q), nil)}
}

// nested returns a query whose deepest field is depth levels down.
func nested(depth int) string {
	return strings.Repeat("{ a ", depth-1) + "{ leaf }" + strings.Repeat(" }", depth-1)
}

// aliased returns a query with n aliased fields.
func aliased(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " a%d: user(id: %d) { id }", i, i)
	}
	b.WriteString(" }")
	return b.String()
}

// fields returns a query with n top-level fields.
func fields(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " f%d", i)
	}
	b.WriteString(" }")
	return b.String()
}

func batch(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = `{"query":"{ me { id } }"}`
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func TestLimits(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc   string
		cfg    Config
		req    *pipeline.Request
		reason string
	}{
		{"benign", Config{}, postQuery(`query Me { me { id name friends(first: 10) { id name } } }`, nil), ""},
		{"benign GET", Config{}, get(`{ me { id } }`), ""},
		{"typename allowed", Config{}, postQuery(`{ __typename me { __typename id } }`, nil), ""},
		{"mutation", Config{}, postQuery(`mutation { login(user: "a", pass: "b") { token } }`, nil), ""},
		{"persisted query without text", Config{}, post(`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}}}`), ""},
		{"null query", Config{}, post(`{"query":null}`), ""},
		{"no query anywhere", Config{}, &pipeline.Request{HTTP: httptest.NewRequest("GET", "/graphql", nil)}, ""},

		{"depth at limit", Config{}, postQuery(nested(10), nil), ""},
		{"depth over limit", Config{}, postQuery(nested(11), nil), ReasonTooDeep},
		{"depth custom at", Config{MaxDepth: 3}, postQuery(nested(3), nil), ""},
		{"depth custom over", Config{MaxDepth: 3}, postQuery(nested(4), nil), ReasonTooDeep},
		{"depth through fragments", Config{MaxDepth: 3}, postQuery(`{ a { ...F } } fragment F on T { b { ...G } } fragment G on T { c { d } }`, nil), ReasonTooDeep},
		{"depth through fragments at limit", Config{MaxDepth: 3}, postQuery(`{ a { ...F } } fragment F on T { b { ...G } } fragment G on T { c }`, nil), ""},
		{"inline fragments add no depth", Config{MaxDepth: 2}, postQuery(`{ a { ... on T { ... on U { b } } } }`, nil), ""},
		{"depth in GET", Config{MaxDepth: 3}, get(nested(4)), ReasonTooDeep},

		{"aliases at limit", Config{}, postQuery(aliased(15), nil), ""},
		{"aliases over limit", Config{}, postQuery(aliased(16), nil), ReasonTooManyAlias},
		{"aliases through repeated fragment", Config{MaxAliases: 4}, postQuery(`{ ...F ...F ...F } fragment F on Q { x: a y: b }`, nil), ReasonTooManyAlias},
		{"aliases fragment at limit", Config{MaxAliases: 4}, postQuery(`{ ...F ...F } fragment F on Q { x: a y: b }`, nil), ""},

		{"batch at limit", Config{}, post(batch(5)), ""},
		{"batch over limit", Config{}, post(batch(6)), ReasonBatchTooLarge},
		{"batching disabled", Config{MaxBatch: 1}, post(batch(2)), ReasonBatchTooLarge},
		{"batching disabled single array", Config{MaxBatch: 1}, post(batch(1)), ""},
		{"batch element judged", Config{}, post(`[{"query":"{ a }"},{"query":"{ __schema { types { name } } }"}]`), ReasonIntrospection},

		{"cost at limit", Config{MaxCost: 10}, postQuery(fields(10), nil), ""},
		{"cost over limit", Config{MaxCost: 10}, postQuery(fields(11), nil), ReasonTooCostly},
		{"cost multiplied by first", Config{MaxCost: 201}, postQuery(`{ users(first: 100) { id name } }`, nil), ""},
		{"cost multiplied by first over", Config{MaxCost: 200}, postQuery(`{ users(first: 100) { id name } }`, nil), ReasonTooCostly},
		{"cost nested lists multiply", Config{}, postQuery(`{ users(first: 100) { friends(last: 100) { id } } }`, nil), ReasonTooCostly},
		{"cost limit argument", Config{MaxCost: 50}, postQuery(`{ items(limit: 50) { id } }`, nil), ReasonTooCostly},
		{"cost from variable", Config{MaxCost: 50}, postQuery(`query($n: Int) { items(first: $n) { id } }`, map[string]any{"n": 1000}), ReasonTooCostly},
		{"cost from variable default", Config{MaxCost: 50}, postQuery(`query($n: Int = 1000) { items(first: $n) { id } }`, nil), ReasonTooCostly},
		{"cost from string-encoded variables", Config{MaxCost: 50}, post(`{"query":"query($n: Int) { items(first: $n) { id } }","variables":"{\"n\":1000}"}`), ReasonTooCostly},
		{"cost huge first saturates", Config{}, postQuery(`{ items(first: 99999999999999999999999) { id } }`, nil), ReasonTooCostly},
		{"cost negative first", Config{}, postQuery(`{ items(first: -5) { id } }`, nil), ""},
		{"cost fragment fan-out stops early", Config{}, postQuery(fanOut(30), nil), ReasonTooCostly},

		{"introspection refused", Config{}, postQuery(`{ __schema { types { name } } }`, nil), ReasonIntrospection},
		{"__type refused", Config{}, postQuery(`{ __type(name: "User") { fields { name } } }`, nil), ReasonIntrospection},
		{"introspection in fragment", Config{}, postQuery(`{ ...F } fragment F on Query { __schema { queryType { name } } }`, nil), ReasonIntrospection},
		{"introspection GET", Config{}, get(`{ __schema { types { name } } }`), ReasonIntrospection},
		{"introspection allowed", Config{Introspection: true}, postQuery(`{ __schema { types { name } } }`, nil), ""},

		{"syntax error", Config{}, postQuery(`{ me { id }`, nil), ReasonInvalid},
		{"fragment cycle", Config{}, postQuery(`{ ...A } fragment A on Q { ...B } fragment B on Q { ...A }`, nil), ReasonInvalid},
		{"self-spreading fragment", Config{}, postQuery(`{ a { ...A } } fragment A on T { b { ...A } }`, nil), ReasonInvalid},
		{"unused fragment cycle", Config{}, postQuery(`{ a } fragment A on Q { ...A }`, nil), ReasonInvalid},
		{"undefined fragment", Config{}, postQuery(`{ ...Nope }`, nil), ReasonInvalid},
		{"duplicate fragment", Config{}, postQuery(`{ ...A } fragment A on Q { a } fragment A on Q { b }`, nil), ReasonInvalid},
		{"only fragments", Config{}, postQuery(`fragment A on Q { a }`, nil), ReasonInvalid},
		{"duplicate query member", Config{}, post(`{"query":"{ a }","query":"{ __schema { types { name } } }"}`), ReasonInvalid},
		{"query not a string", Config{}, post(`{"query":42}`), ReasonInvalid},
		{"body not json", Config{}, post(`query { a }`), ReasonInvalid},
		{"body trailing value", Config{}, post(`{"query":"{ a }"} {"query":"{ b }"}`), ReasonInvalid},
		{"too large", Config{MaxQueryBytes: 64}, postQuery(fields(40), nil), ReasonTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			v, err := New(tc.cfg).Check(t.Context(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if v.Reason != tc.reason {
				t.Fatalf("reason %q (%s), want %q", v.Reason, v.Detail, tc.reason)
			}
			if tc.reason != "" && (v.Action != pipeline.Deny || v.Status != 400 || v.Detail == "") {
				t.Fatalf("verdict %+v", v)
			}
		})
	}
}

// fanOut returns a query whose fragments double at each of n levels: 2^n
// fields if fully expanded.
func fanOut(n int) string {
	var b strings.Builder
	b.WriteString("{ ...F0 }")
	for i := range n {
		fmt.Fprintf(&b, " fragment F%d on Q { ...F%d ...F%d }", i, i+1, i+1)
	}
	fmt.Fprintf(&b, " fragment F%d on Q { x }", n)
	return b.String()
}

func TestParseErrorDetail(t *testing.T) {
	t.Parallel()
	q := `{ me { id } } <script>alert("` + strings.Repeat("x", 5000) + `")</script>`
	v, _ := New(Config{}).Check(t.Context(), postQuery(q, nil))
	if v.Reason != ReasonInvalid {
		t.Fatalf("%+v", v)
	}
	if len(v.Detail) > 200 || strings.ContainsAny(v.Detail, `<>"`) || strings.Contains(v.Detail, "xxxxxxxxxx") {
		t.Fatalf("detail %q", v.Detail)
	}
	q = `{ a(x: "` + strings.Repeat("y", 300) + `) }` // unterminated string
	v, _ = New(Config{}).Check(t.Context(), postQuery(q, nil))
	if v.Reason != ReasonInvalid || len(v.Detail) > 200 {
		t.Fatalf("%+v", v)
	}
}

func TestUninspectableBody(t *testing.T) {
	t.Parallel()
	r := &pipeline.Request{HTTP: httptest.NewRequest("POST", "/graphql", strings.NewReader("{ a }"))}
	r.HTTP.Header.Set("Content-Type", "application/graphql")
	if _, err := New(Config{}).Check(t.Context(), r); err == nil {
		t.Fatal("an unbuffered body must be an error for on_error")
	}
}

func TestDeepNestingDoesNotCrash(t *testing.T) {
	t.Parallel()
	// Deeper than the parser's own nesting bound, within the byte limit.
	q := strings.Repeat("{a", 5000) + strings.Repeat("}", 5000)
	v, _ := New(Config{MaxQueryBytes: 1 << 20}).Check(t.Context(), postQuery(q, nil))
	if v.Reason != ReasonInvalid && v.Reason != ReasonTooDeep {
		t.Fatalf("%+v", v)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	var errs field.Errors
	(&Config{MaxDepth: -1, MaxCost: 2_000_000_000}).Validate("c", &errs)
	if errs.Len() != 2 {
		t.Fatal(errs.Err())
	}
	errs = field.Errors{}
	(&Config{MaxDepth: 5, MaxBatch: 1}).Validate("c", &errs)
	if errs.Len() != 0 {
		t.Fatal(errs.Err())
	}
}

func FuzzQuery(f *testing.F) {
	for _, s := range []string{`{ me { id } }`, nested(12), aliased(3), fanOut(4),
		`{ ...A } fragment A on Q { ...B } fragment B on Q { ...A }`, `query($n:Int=5){ a(first:$n){ b } }`,
		`{ __schema { types { name } } }`, `{ a(x: "\u00e9") }`} {
		f.Add(s)
	}
	c := New(Config{})
	f.Fuzz(func(t *testing.T, q string) {
		v, err := c.Check(t.Context(), postQuery(q, map[string]any{"n": 7}))
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Detail) > 250 || strings.ContainsAny(v.Detail, "<>\"\n\r") {
			t.Fatalf("unsafe detail %q", v.Detail)
		}
		if v.Action == pipeline.Allow && len(q) > defaultMaxQueryBytes {
			t.Fatal("size limit not applied")
		}
	})
}

// typical is a realistic ~1 KB query: fragments, variables, pagination.
const typical = `query Dashboard($owner: String!, $first: Int = 10, $after: String) {
  viewer { id login name avatarUrl(size: 64) ...UserBits }
  repository(owner: $owner, name: "apiguard") {
    id name description stargazerCount forkCount
    issues(first: $first, after: $after, states: [OPEN]) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes { id number title createdAt author { login ...UserBits } labels(first: 5) { nodes { name color } } }
    }
    pullRequests(last: 5) { nodes { id title mergeable author { login } } }
  }
}
fragment UserBits on User { id login url company location bio }
# padding comment to reach a typical production size with comments and whitespace...........
# more padding ..................................................................................
# more padding ..................................................................................`

func BenchmarkTypicalQuery(b *testing.B) {
	c := New(Config{MaxCost: 5000})
	body, _ := json.Marshal(map[string]any{"query": typical, "operationName": "Dashboard", "variables": map[string]any{"owner": "apiguard", "first": 20}})
	req := &pipeline.Request{HTTP: httptest.NewRequest("POST", "/graphql", nil), Body: body}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		v, _ := c.Check(b.Context(), req)
		if v.Action != pipeline.Allow {
			b.Fatalf("%+v", v)
		}
	}
}
