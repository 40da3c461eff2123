package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/admin"
	"github.com/apiguard/apiguard/internal/decision"
	"github.com/apiguard/apiguard/internal/problem"
	"github.com/apiguard/apiguard/internal/state"
)

const testAdminToken = "s3cret-admin-token-0123456789"

// newDecisionsAdmin serves the decisions API behind a bearer-token check,
// mounted like the gateway's admin listener does.
func newDecisionsAdmin(t *testing.T) (*httptest.Server, *decision.Store) {
	t.Helper()
	mem := state.NewMemory(state.MemoryOptions{})
	t.Cleanup(func() { _ = mem.Close() })
	store, err := decision.NewStore(mem, decision.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	want := sha256.Sum256([]byte(testAdminToken))
	requireToken := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			sum := sha256.Sum256([]byte(tok))
			if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="apiguard-admin"`)
				problem.Write(w, problem.New(http.StatusUnauthorized, "unauthorized", "a valid admin bearer token is required", ""), nil)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	mux := http.NewServeMux()
	h := requireToken(admin.Decisions(store, admin.Options{}))
	mux.Handle(admin.DecisionsPath, h)
	mux.Handle(admin.DecisionsPath+"/", h)
	mux.Handle("GET /moved", http.RedirectHandler("/elsewhere", http.StatusTemporaryRedirect))
	mux.Handle("/", requireToken(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		problem.Write(w, problem.New(http.StatusNotFound, "not-found", "no such admin endpoint", ""), nil)
	})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, store
}

// decisionsCLI runs `apiguard decisions ARGS... --admin URL --token T`
// and checks the token is never printed.
func decisionsCLI(t *testing.T, url string, args ...string) (int, string, string) {
	t.Helper()
	if url != "" {
		args = append(args, "--admin", url, "--token", testAdminToken)
	}
	code, out, errOut := runCLI(append([]string{"decisions"}, args...)...)
	if strings.Contains(out+errOut, testAdminToken) {
		t.Fatalf("decisions %v printed the token:\n%s%s", args, out, errOut)
	}
	return code, out, errOut
}

func TestDecisionsCLI(t *testing.T) {
	t.Parallel()
	srv, store := newDecisionsAdmin(t)

	code, out, errOut := decisionsCLI(t, srv.URL, "add", "ip:203.0.113.7", "--action", "block", "--ttl", "1h", "--reason", "manual: abuse report #123")
	if code != exitOK {
		t.Fatalf("add: exit %d\n%s", code, errOut)
	}
	row := regexp.MustCompile(`(?m)^ID +KEY +ACTION +SOURCE +REASON +EXPIRES IN\n([0-9a-f]{24}) +ip:203\.0\.113\.7 +block +manual +manual: abuse report #123 +(59m59s|1h)\n$`)
	m := row.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("add printed:\n%s", out)
	}
	id := m[1]
	if d, ok := store.Match("ip:203.0.113.7"); !ok || d.ID != id || d.Source != decision.SourceManual {
		t.Fatalf("not enforced: %+v %v", d, ok)
	}
	time.Sleep(2 * time.Millisecond) // a distinct creation time, for the order
	// Flags before the key, a network key, days; --json.
	code, out, errOut = decisionsCLI(t, srv.URL, "add", "--action=challenge", "--ttl=7d", "--json", "net:10.0.0.7/24")
	if code != exitOK {
		t.Fatalf("add net: exit %d\n%s", code, errOut)
	}
	var nd decision.Decision
	if err := json.Unmarshal([]byte(out), &nd); err != nil || nd.Key != "net:10.0.0.0/24" || nd.Action != decision.Challenge || nd.Expires.Sub(nd.Created) != 7*24*time.Hour {
		t.Fatalf("add --json printed %s (%v)", out, err)
	}
	time.Sleep(2 * time.Millisecond) // a distinct creation time, for the order
	code, _, errOut = decisionsCLI(t, srv.URL, "add", "sub:https://idp.example/users/42", "--action", "throttle", "--ttl", "30m")
	if code != exitOK {
		t.Fatalf("add sub: exit %d\n%s", code, errOut)
	}

	// The table, newest first.
	code, out, errOut = decisionsCLI(t, srv.URL, "list")
	if code != exitOK {
		t.Fatalf("list: exit %d\n%s", code, errOut)
	}
	table := regexp.MustCompile(`^ID +KEY +ACTION +SOURCE +REASON +EXPIRES IN\n` +
		`[0-9a-f]{24} +sub:https://idp\.example/users/42 +throttle +manual +- +(29m59s|30m)\n` +
		`[0-9a-f]{24} +net:10\.0\.0\.0/24 +challenge +manual +- +(6d23h|7d)\n` +
		id + ` +ip:203\.0\.113\.7 +block +manual +manual: abuse report #123 +(59m59s|1h)\n$`)
	if !table.MatchString(out) {
		t.Fatalf("list printed:\n%s", out)
	}
	// Filters.
	code, out, _ = decisionsCLI(t, srv.URL, "list", "--action", "challenge")
	if code != exitOK || strings.Count(out, "\n") != 2 || !strings.Contains(out, "net:10.0.0.0/24") {
		t.Fatalf("list --action challenge: exit %d\n%s", code, out)
	}
	code, out, _ = decisionsCLI(t, srv.URL, "list", "--key", "ip:::ffff:203.0.113.7", "--source", "manual")
	if code != exitOK || strings.Count(out, "\n") != 2 || !strings.Contains(out, id) {
		t.Fatalf("list --key: exit %d\n%s", code, out)
	}
	// JSON: the admin API's stable form.
	code, out, errOut = decisionsCLI(t, srv.URL, "list", "--json")
	if code != exitOK {
		t.Fatalf("list --json: exit %d\n%s", code, errOut)
	}
	var lr admin.ListResponse
	if err := json.Unmarshal([]byte(out), &lr); err != nil || len(lr.Decisions) != 3 || lr.Decisions[2].ID != id || lr.Decisions[2].Reason != "manual: abuse report #123" {
		t.Fatalf("list --json printed %s (%v)", out, err)
	}
	if !strings.HasPrefix(out, "{\n  \"decisions\": [\n    {\n      \"id\": ") {
		t.Errorf("list --json is not indented: %s", out)
	}

	// Delete by ID, by key with '/' and by a key with "//" (escaped).
	for _, target := range []string{id, "net:10.0.0.0/24", "sub:https://idp.example/users/42"} {
		code, out, errOut = decisionsCLI(t, srv.URL, "delete", target)
		if code != exitOK || out != "deleted "+target+"\n" {
			t.Fatalf("delete %s: exit %d\n%s%s", target, code, out, errOut)
		}
	}
	code, out, errOut = decisionsCLI(t, srv.URL, "list")
	if code != exitOK || out != "" || errOut != "no decisions\n" {
		t.Fatalf("empty list: exit %d stdout %q stderr %q", code, out, errOut)
	}
	code, out, _ = decisionsCLI(t, srv.URL, "list", "--json")
	if code != exitOK || out != "{\n  \"decisions\": []\n}\n" {
		t.Fatalf("empty list --json: exit %d %q", code, out)
	}
}

func TestDecisionsCLIErrors(t *testing.T) {
	t.Parallel()
	srv, _ := newDecisionsAdmin(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	_ = ln.Close()

	cases := []struct {
		name  string
		url   string // "" for none
		args  []string
		code  int
		errRe string
	}{
		{"usage", "", nil, exitUsage, `Usage:\n  apiguard decisions list`},
		{"help", "", []string{"--help"}, exitOK, `apiguard decisions add KEY`},
		{"verb help", "", []string{"list", "--help"}, exitOK, `-json`},
		{"unknown verb", "", []string{"purge"}, exitUsage, `unknown command "purge"`},
		{"bad flag", srv.URL, []string{"list", "--bogus"}, exitUsage, `flag provided but not defined: -bogus`},
		{"list args", srv.URL, []string{"list", "ip:1.2.3.4"}, exitUsage, `list: unexpected arguments: \[ip:1.2.3.4\]`},
		{"add no key", srv.URL, []string{"add", "--action", "block", "--ttl", "1h"}, exitUsage, `add: the KEY is required`},
		{"add two keys", srv.URL, []string{"add", "ip:1.2.3.4", "ip:1.2.3.5", "--action", "block", "--ttl", "1h"}, exitUsage, `one argument expected, got 2`},
		{"bad key", srv.URL, []string{"add", "1.2.3.4", "--action", "block", "--ttl", "1h"}, exitUsage, `add: KEY: key "1.2.3.4" is not kind:value`},
		{"no action", srv.URL, []string{"add", "ip:1.2.3.4", "--ttl", "1h"}, exitUsage, `add: --action is required`},
		{"bad action", srv.URL, []string{"add", "ip:1.2.3.4", "--action", "ban", "--ttl", "1h"}, exitUsage, `add: --action: unknown action "ban" \(want block, challenge, throttle or allow\)`},
		{"no ttl", srv.URL, []string{"add", "ip:1.2.3.4", "--action", "block"}, exitUsage, `add: --ttl is required`},
		{"bad ttl", srv.URL, []string{"add", "ip:1.2.3.4", "--action", "block", "--ttl", "forever"}, exitUsage, `add: --ttl: invalid duration "forever"`},
		{"long ttl", srv.URL, []string{"add", "ip:1.2.3.4", "--action", "block", "--ttl", "400d"}, exitUsage, `add: --ttl: "400d" is more than the maximum`},
		{"list bad action", srv.URL, []string{"list", "--action", "nuke"}, exitUsage, `list: --action: unknown action "nuke"`},
		// Refused by the server: its problem is shown.
		{"server 400", srv.URL, []string{"add", "ip:1.2.3.4", "--action", "block", "--ttl", "1h", "--reason", strings.Repeat("x", 600)}, exitUsage,
			`^apiguard decisions: Invalid decision: reason must be at most 512 printable characters\n$`},
		{"unknown id", srv.URL, []string{"delete", "0123456789abcdef01234567"}, exitRuntime,
			`^apiguard decisions: Decision not found: no decision with ID "0123456789abcdef01234567"\n$`},
		{"unknown key", srv.URL, []string{"delete", "net:192.0.2.0/24"}, exitRuntime,
			`^apiguard decisions: Decision not found: no decision for key "net:192.0.2.0/24"\n$`},
		{"delete no arg", srv.URL, []string{"delete"}, exitUsage, `delete: the decision's ID or KEY is required`},
		{"server down", down, []string{"list"}, exitRuntime, `^apiguard decisions list: cannot reach the admin API at ` + regexp.QuoteMeta(down) + `: .*connection refused\n$`},
		{"not an admin API", srv.URL + "/moved", []string{"list"}, exitRuntime, `Decision|No route|no such admin endpoint`},
		{"bad admin url", "ftp://x", []string{"list"}, exitUsage, `--admin must be an http or https URL`},
		{"credentials in url", "http://u:p@127.0.0.1:1", []string{"list"}, exitUsage, `without credentials`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := decisionsCLI(t, tc.url, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			if !regexp.MustCompile(tc.errRe).MatchString(errOut) {
				t.Fatalf("stderr %q does not match %q", errOut, tc.errRe)
			}
		})
	}

	// A wrong token: the server's problem and a hint, never the token.
	code, out, errOut := runCLI("decisions", "list", "--admin", srv.URL, "--token", "wrong-token-0123456789")
	if code != exitRuntime || out != "" || errOut != "apiguard decisions: Authentication required: a valid admin bearer token is required\ncheck the admin token (APIGUARD_ADMIN_TOKEN, --token-file or --token)\n" {
		t.Fatalf("wrong token: exit %d stdout %q stderr %q", code, out, errOut)
	}
	// A redirect is not followed (it could carry the token elsewhere).
	redirect := httptest.NewServer(http.RedirectHandler(srv.URL+admin.DecisionsPath, http.StatusTemporaryRedirect))
	defer redirect.Close()
	code, _, errOut = decisionsCLI(t, redirect.URL, "list")
	if code != exitRuntime || !strings.Contains(errOut, "307 Temporary Redirect") || !strings.Contains(errOut, "redirects are not followed") {
		t.Fatalf("redirect: exit %d stderr %q", code, errOut)
	}
}

// The token from the environment and from a file; missing. Not parallel:
// it sets the environment.
func TestDecisionsCLIToken(t *testing.T) {
	srv, _ := newDecisionsAdmin(t)
	t.Setenv("APIGUARD_ADMIN_URL", srv.URL)
	t.Setenv("APIGUARD_ADMIN_TOKEN", "")

	code, out, errOut := decisionsCLI(t, "", "list")
	if code != exitUsage || out != "" || !strings.Contains(errOut, "the admin token is required: set APIGUARD_ADMIN_TOKEN") {
		t.Fatalf("missing token: exit %d stderr %q", code, errOut)
	}

	file := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(file, []byte(testAdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := decisionsCLI(t, "", "add", "country:kp", "--action", "block", "--ttl", "1h", "--token-file", file); code != exitOK {
		t.Fatalf("--token-file: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := decisionsCLI(t, "", "list", "--token-file", file, "--token", "x"); code != exitUsage || !strings.Contains(errOut, "not both") {
		t.Fatalf("--token and --token-file: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := decisionsCLI(t, "", "list", "--token-file", filepath.Join(t.TempDir(), "missing")); code != exitUsage || !strings.Contains(errOut, "--token-file:") {
		t.Fatalf("missing --token-file: exit %d\n%s", code, errOut)
	}

	t.Setenv("APIGUARD_ADMIN_TOKEN", testAdminToken)
	code, out, errOut = decisionsCLI(t, "", "list")
	if code != exitOK || !strings.Contains(out, "country:KP") {
		t.Fatalf("token from the environment: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := decisionsCLI(t, "", "delete", "country:KP"); code != exitOK || out != "deleted country:KP\n" {
		t.Fatalf("delete: exit %d\n%s%s", code, out, errOut)
	}
}

func TestDecisionsExpiresIn(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		-time.Second: "expired", 0: "expired", time.Millisecond: "1s", 42 * time.Second: "42s",
		59*time.Minute + 59*time.Second: "59m59s", time.Hour: "1h", 90 * time.Minute: "1h30m", 23*time.Hour + 59*time.Minute: "23h59m",
		7 * 24 * time.Hour: "7d", 8784 * time.Hour: "366d", 30 * time.Hour: "1d6h",
	} {
		if got := expiresIn(d); got != want {
			t.Errorf("expiresIn(%s) = %q, want %q", d, got, want)
		}
	}
	if got := escapeSegment(".."); got != "%2E%2E" {
		t.Errorf("escapeSegment(..) = %q", got)
	}
	if got := escapeSegment("net:10.0.0.0/24"); got != "net:10.0.0.0%2F24" {
		t.Errorf("escapeSegment(net) = %q", got)
	}
}
