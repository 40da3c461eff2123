package nosql

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
)

func request(query, body string) *pipeline.Request {
	target := "/login"
	if query != "" {
		target += "?" + query
	}
	r := &pipeline.Request{HTTP: httptest.NewRequest("POST", target, nil)}
	if body != "" {
		r.Body = []byte(body)
	}
	return r
}

func TestCheck(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc   string
		cfg    Config
		query  string
		body   string
		reason string // "" = allowed
		detail string // substring of the detail
	}{
		// Attacks.
		{"login bypass $ne", Config{}, "", `{"username":"admin","password":{"$ne":null}}`, reasonInjection, "/password/$ne"},
		{"$gt empty string", Config{}, "", `{"username":{"$gt":""},"password":{"$gt":""}}`, reasonInjection, "/username/$gt"},
		{"$where javascript", Config{}, "", `{"$where":"this.password.length > 0 || sleep(5000)"}`, reasonInjection, "/$where"},
		{"$where nested deep", Config{}, "", `{"a":[{"b":{"c":[1,2,{"$where":"1"}]}}]}`, reasonInjection, "/a/0/b/c/2/$where"},
		{"$regex enumeration", Config{}, "", `{"username":"admin","password":{"$regex":"^a"}}`, reasonInjection, "$regex"},
		{"$in list", Config{}, "", `{"role":{"$in":["admin","root"]}}`, reasonInjection, ""},
		{"$nin", Config{}, "", `{"id":{"$nin":[]}}`, reasonInjection, ""},
		{"$exists", Config{}, "", `{"token":{"$exists":true}}`, reasonInjection, ""},
		{"$expr", Config{}, "", `{"q":{"$expr":{"$eq":[1,1]}}}`, reasonInjection, ""},
		{"$function", Config{}, "", `{"q":{"$function":{"body":"function(){return true}","args":[],"lang":"js"}}}`, reasonInjection, ""},
		{"$accumulator", Config{}, "", `{"g":{"$accumulator":{}}}`, reasonInjection, ""},
		{"$lookup in array", Config{}, "", `[{"$lookup":{"from":"users"}}]`, reasonInjection, "/0/$lookup"},
		{"escaped dollar key", Config{}, "", `{"password":{"\u0024ne":1}}`, reasonInjection, ""},
		{"duplicate key first wins elsewhere", Config{}, "", `{"password":{"$ne":1},"password":"x"}`, reasonInjection, ""},
		{"embedded JSON string", Config{}, "", `{"filter":"{\"$where\":\"1==1\"}"}`, reasonInjection, "embedded in the string at /filter"},
		{"doubly embedded JSON", Config{}, "", `{"f":"[\"{\\\"$ne\\\":1}\"]"}`, reasonInjection, ""},
		{"query bracket $ne", Config{}, "user=admin&password[$ne]=x", "", reasonInjection, `"password[$ne]"`},
		{"query bracket $regex", Config{}, "password[$regex]=.*", "", reasonInjection, ""},
		{"query encoded brackets", Config{}, "password%5B%24ne%5D=x", "", reasonInjection, ""},
		{"query nested brackets", Config{}, "user[name][$ne]=x", "", reasonInjection, ""},
		{"query array brackets", Config{}, "user[][$in]=a", "", reasonInjection, ""},
		{"query dot syntax", Config{}, "user.$ne=x", "", reasonInjection, ""},
		{"query top-level $where", Config{}, "$where=sleep(1)", "", reasonInjection, ""},
		{"query semicolon separated", Config{}, "a=1;password[$ne]=x", "", reasonInjection, ""},
		{"query JSON value", Config{}, `filter=%7B%22%24where%22%3A%221%22%7D`, "", reasonInjection, `query parameter "filter"`},
		{"operator list override hit", Config{Operators: []string{"$where"}}, "", `{"$where":"1"}`, reasonInjection, ""},

		// Benign.
		{"plain login", Config{}, "", `{"username":"admin","password":"hunter2"}`, "", ""},
		{"dollar in values", Config{}, "", `{"price":"$12","note":"costs $5 {not json","currency":"USD","tags":["$", "$ne"]}`, "", ""},
		{"key containing dollar later", Config{}, "", `{"price$":1,"us$":2}`, "", ""},
		{"json string that is not an object", Config{}, "", `{"s":"[1,2,3]","t":"{\"a\":\"$b\"}"}`, "", ""},
		{"benign query", Config{}, "q=$12&sort[name]=asc&page=2", "", "", ""},
		{"invalid json is not ours", Config{}, "", `{"a":`, "", ""},
		{"scalar body", Config{}, "", `42`, "", ""},
		{"operator list override miss", Config{Operators: []string{"$where"}}, "", `{"q":{"$ne":1}}`, "", ""},

		// AllowKeys.
		{"allow by name", Config{AllowKeys: []string{"filter"}}, "", `{"filter":{"age":{"$gt":18}}}`, "", ""},
		{"allow by name elsewhere too", Config{AllowKeys: []string{"filter"}}, "", `{"a":{"filter":{"$gt":1}}}`, "", ""},
		{"allow by name does not cover siblings", Config{AllowKeys: []string{"filter"}}, "", `{"filter":{"$gt":1},"password":{"$ne":1}}`, reasonInjection, "/password/$ne"},
		{"allow by pointer", Config{AllowKeys: []string{"/query"}}, "", `{"query":{"$or":[{"a":1}]}}`, "", ""},
		{"allow by pointer is exact", Config{AllowKeys: []string{"/query"}}, "", `{"x":{"query":{"$or":[]}}}`, reasonInjection, ""},
		{"allow by pointer wildcard", Config{AllowKeys: []string{"/items/*/where"}}, "", `{"items":[{"where":{"$gt":1}}]}`, "", ""},
		{"allow embedded", Config{AllowKeys: []string{"/filter"}}, "", `{"filter":"{\"$where\":\"1\"}"}`, "", ""},
		{"allow query by pointer", Config{AllowKeys: []string{"/filter"}}, "filter[$gt]=3", "", "", ""},
		{"allow query by name", Config{AllowKeys: []string{"filter"}}, "filter=%7B%22%24gt%22%3A1%7D", "", "", ""},
		{"allow an operator itself", Config{AllowKeys: []string{"$text"}}, "", `{"$text":{"$search":"coffee"}}`, "", ""},
		{"query allow does not cover others", Config{AllowKeys: []string{"/filter"}}, "filter[$gt]=3&user[$ne]=x", "", reasonInjection, ""},

		// Limits.
		{"too deep", Config{MaxDepth: 3}, "", `{"a":{"b":{"c":{"d":1}}}}`, reasonComplex, ""},
		{"depth boundary", Config{MaxDepth: 3}, "", `{"a":{"b":{"c":1}}}`, "", ""},
		{"embedded counts depth", Config{MaxDepth: 3}, "", `{"a":{"b":"{\"c\":{}}"}}`, reasonComplex, ""},
		{"too many nodes", Config{MaxNodes: 5}, "", `[1,2,3,4,5,6]`, reasonComplex, ""},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			v, err := New(tc.cfg).Check(t.Context(), request(tc.query, tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if v.Reason != tc.reason {
				t.Fatalf("reason %q (%s), want %q", v.Reason, v.Detail, tc.reason)
			}
			if tc.reason == "" {
				return
			}
			if v.Action != pipeline.Deny || v.Status != 400 {
				t.Fatalf("verdict %+v", v)
			}
			if !strings.Contains(v.Detail, tc.detail) {
				t.Fatalf("detail %q does not contain %q", v.Detail, tc.detail)
			}
		})
	}
}

func TestDetailIsEscaped(t *testing.T) {
	t.Parallel()
	c := New(Config{})
	for _, body := range []string{
		`{"<script>alert(1)</script>":{"$ne":1}}`,
		`{"a\n\"b":{"$ne":1}}`,
		`{"` + strings.Repeat("x", 500) + `":{"$ne":1}}`,
	} {
		v, _ := c.Check(t.Context(), request("", body))
		if v.Reason != reasonInjection {
			t.Fatalf("%s: not refused", body)
		}
		if strings.ContainsAny(v.Detail, "<>\n\"") || strings.Contains(v.Detail, strings.Repeat("x", 200)) {
			t.Fatalf("detail not escaped or truncated: %q", v.Detail)
		}
	}
	v, _ := c.Check(t.Context(), request("%3Cb%3E[$ne]=1", ""))
	if v.Reason != reasonInjection || strings.Contains(v.Detail, "<b>") {
		t.Fatalf("query detail %q", v.Detail)
	}
}

func TestTypedSkipsEmbedded(t *testing.T) {
	t.Parallel()
	r := request("", `{"note":"{\"$ne\":1}","k":{"$ne":1}}`)
	r.Typed = map[string]struct{}{"json:/note": {}}
	v, _ := New(Config{}).Check(t.Context(), r)
	// The typed string is skipped, but keys are always inspected.
	if v.Reason != reasonInjection || !strings.Contains(v.Detail, "/k/$ne") {
		t.Fatalf("verdict %+v", v)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	var errs field.Errors
	c := Config{AllowKeys: []string{"", "/a~2", "/ok", "name"}, Operators: []string{"", "$where"}, MaxDepth: -1, MaxNodes: -2}
	c.Validate("routes[0].checks.nosql", &errs)
	if errs.Len() != 5 {
		t.Fatalf("got %d errors: %v", errs.Len(), errs.Err())
	}
	errs = field.Errors{}
	good := Config{AllowKeys: []string{"/items/*/q", "filter"}, Operators: []string{"$where"}}
	good.Validate("x", &errs)
	if errs.Len() != 0 {
		t.Fatal(errs.Err())
	}
}

func TestSplitQueryKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"user":          "user",
		"user[$ne]":     "user|$ne",
		"a[b][c]":       "a|b|c",
		"a[]":           "a|",
		"a.b":           "a|b",
		"[$ne]":         "$ne",
		"":              "",
		"a[b]extra[$x]": "a|b|extra|$x",
	} {
		if got := strings.Join(splitQueryKey(in), "|"); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func FuzzCheck(f *testing.F) {
	f.Add("", `{"username":"admin","password":{"$ne":null}}`)
	f.Add("password[$regex]=.*", "")
	f.Add("f=%7B%22%24where%22%3A1%7D", `{"a":"[\"{\\\"$ne\\\":1}\"]"}`)
	f.Add("a=1;b[c]=2", `[1,{"a":[{}]},"$12"]`)
	c := New(Config{AllowKeys: []string{"/filter", "q"}, MaxDepth: 16, MaxNodes: 1000})
	f.Fuzz(func(t *testing.T, query, body string) {
		r := &pipeline.Request{HTTP: httptest.NewRequest("GET", "/", nil), Body: []byte(body)}
		r.HTTP.URL.RawQuery = query
		v, err := c.Check(t.Context(), r)
		if err != nil {
			t.Fatal(err)
		}
		if v.Action != pipeline.Allow && strings.ContainsAny(v.Detail, "<>\n\r\x00") {
			t.Fatalf("unsafe detail %q", v.Detail)
		}
		// A body with no "$" at all, escaped or not, can never hold an operator key.
		if !strings.Contains(query, "$") && !strings.Contains(query, "%") && !strings.Contains(body, "$") &&
			!strings.Contains(body, `\u`) && v.Reason == reasonInjection {
			t.Fatalf("refused without a dollar: %q %q", query, body)
		}
	})
}

func BenchmarkBody(b *testing.B) {
	c := New(Config{})
	body := `{"username":"admin","password":"hunter2","profile":{"name":"A","tags":["x","y","$12"],"address":{"city":"Paris","zip":"75001"}},"items":[{"id":1,"qty":2},{"id":2,"qty":1}]}`
	r := request("page=2&sort[name]=asc", body)
	b.ReportAllocs()
	for b.Loop() {
		if v, _ := c.Check(b.Context(), r); v.Action != pipeline.Allow {
			b.Fatal(v)
		}
	}
}
