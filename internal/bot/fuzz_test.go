package bot

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/lenient"
)

// refPointer is an independent RFC 6901 evaluation: it decodes the
// reference tokens in the RFC's order (~1 first, then ~0) and walks the
// document. It returns the string at pointer, or "".
func refPointer(body []byte, pointer string) string {
	var v any
	if len(body) == 0 || len(body) > 64<<10 || json.Unmarshal(body, &v) != nil {
		return ""
	}
	for _, tok := range strings.Split(pointer, "/")[1:] {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch x := v.(type) {
		case map[string]any:
			v = x[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return ""
			}
			v = x[i]
		default:
			return ""
		}
	}
	s, _ := v.(string)
	return s
}

// FuzzLoginOf feeds attacker-controlled bodies to the JSON pointer walk of
// a login route: it must never panic, must agree with the reference
// evaluation, and must bound what it returns.
func FuzzLoginOf(f *testing.F) {
	f.Add([]byte(`{"username":"alice"}`), "username", 200)
	f.Add([]byte(`{"user":{"name":"bob"}}`), "/user/name", 401)
	f.Add([]byte(`{"a/b":{"c~d":"x"}}`), "/a~1b/c~0d", 200)
	f.Add([]byte(`{"~1":"x"}`), "/~01", 200)
	f.Add([]byte(`{"u":[{"n":"x"},{"n":"y"}]}`), "/u/1/n", 200)
	f.Add([]byte(`{"u":["x"]}`), "/u/-1", 200)
	f.Add([]byte(`{"u":["x"]}`), "/u/99999999999999999999", 200)
	f.Add([]byte(`[[[[["deep"]]]]]`), "/0/0/0/0/0", 200)
	f.Add([]byte(`{"":""}`), "/", 200)
	f.Add([]byte(`{"username":"`+strings.Repeat("é", 200)+`"}`), "username", 200)
	f.Add([]byte(`{"username":"\ud800"}`), "username", 200)
	f.Add([]byte(`nul`), "x", 0)
	f.Fuzz(func(t *testing.T, body []byte, pointer string, status int) {
		kind, name, err := parseSource("json:" + pointer)
		if err != nil {
			// Only an empty or malformed pointer is a config error.
			p := pointer
			if !strings.HasPrefix(p, "/") {
				p = "/" + p
			}
			if _, ok := lenient.SplitPointer(p); pointer != "" && ok {
				t.Fatalf("parseSource(json:%q): %v", pointer, err)
			}
			return
		}
		if kind != "json" || !strings.HasPrefix(name, "/") {
			t.Fatalf("parseSource(json:%q) = %q, %q", pointer, kind, name)
		}
		ptr, _ := lenient.SplitPointer(name)
		s := &Service{logins: map[string]login{"login": {kind: kind, name: name, pointer: ptr}}}
		got := s.LoginOf("login", body, nil, nil, status)
		want := refPointer(body, name)
		if got == nil {
			if want != "" {
				t.Fatalf("LoginOf(%q, %q) = nil, want %q", body, name, want)
			}
			return
		}
		if got.Username == "" || len(got.Username) > 256 || !strings.HasPrefix(want, got.Username) ||
			len(want) <= 256 && got.Username != want {
			t.Fatalf("LoginOf(%q, %q) = %q, want %q (at most 256 bytes of it)", body, name, got.Username, want)
		}
		if got.Success != (status >= 200 && status < 300) {
			t.Fatalf("status %d: success %v", status, got.Success)
		}
	})
}
