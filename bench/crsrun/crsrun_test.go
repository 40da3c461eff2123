package crsrun

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/bench/corazaproxy"
	"github.com/apiguard/apiguard/internal/testutil/gatewaytest"
)

// testsDir finds the CRS regression tests in the module cache.
func testsDir(t testing.TB) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/corazawaf/coraza-coreruleset/v4").Output()
	if err != nil {
		t.Fatalf("locating coraza-coreruleset: %v", err)
	}
	return strings.TrimSpace(string(out)) + "/tests"
}

func serve(t testing.TB, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func okUpstream(t testing.TB) *url.URL {
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	u, _ := url.Parse("http://" + addr)
	return u
}

// suite is every 5th test, or all of them with APIGUARD_CRS_FULL=1 (the
// figures in docs/waf.md are from full runs; a sample keeps `go test -race`
// short).
func suite(t testing.TB) []Test {
	tests, err := Load(testsDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("APIGUARD_CRS_FULL") == "1" {
		return tests
	}
	var out []Test
	for i := 0; i < len(tests); i += 5 {
		out = append(out, tests[i])
	}
	return out
}

func TestLoad(t *testing.T) {
	tests, err := Load(testsDir(t))
	if err != nil {
		t.Fatal(err)
	}
	attacks := 0
	for _, tc := range tests {
		if tc.Attack {
			attacks++
		}
	}
	if len(tests) < 4000 || attacks < 3000 || len(tests)-attacks < 500 {
		t.Fatalf("%d tests, %d attacks", len(tests), attacks)
	}
}

// TestBaselineCorazaProxy measures the plain Coraza+CRS proxy: the numbers
// apiguard's integration is compared with (docs/waf.md).
func TestBaselineCorazaProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the CRS regression suite")
	}
	tests := suite(t)
	h, err := corazaproxy.New(okUpstream(t))
	if err != nil {
		t.Fatal(err)
	}
	rep := Run(context.Background(), serve(t, h), tests, 4)
	t.Logf("plain Coraza+CRS PL1 proxy: attacks blocked %d/%d (%.1f%%), benign passed %d/%d (%.1f%%)",
		rep.AttacksBlocked, rep.Attacks, 100*rep.AttackRate(), rep.BenignPassed, rep.Benign, 100*rep.BenignRate())
	corpus, err := LoadLegit("testdata/legit.yaml")
	if err != nil {
		t.Fatal(err)
	}
	refused := RunLegit(context.Background(), "http://"+serve(t, h), corpus)
	t.Logf("legitimate API corpus: %d of %d refused: %v", len(refused), len(corpus), refused)
	t.Logf("failed attacks by status %v, failed benign by status %v", statusHistogram(rep, true), statusHistogram(rep, false))
	if rep.AttackRate() < 0.5 || rep.BenignRate() < 0.5 {
		t.Fatalf("baseline out of the expected range (about 68%% / 87%%)")
	}
}

func statusHistogram(rep *Report, attack bool) map[int]int {
	h := map[int]int{}
	for _, r := range rep.Results {
		if r.Test.Attack == attack && !r.Passed {
			h[r.Status]++
		}
	}
	return h
}

// startGatewayWAF runs apiguard with the waf check on every request, in
// front of an upstream that answers 200.
func startGatewayWAF(t testing.TB, extra string) string {
	return gatewaytest.Start(t, `events: {store: {driver: none}}
limits: {max_conns_per_ip: -1}
upstreams: {app: {targets: ["`+okUpstream(t).String()+`"]}}
checks:
  waf: {`+extra+`}
routes: [{name: all, path_prefix: /, upstream: app}]
`).Addr
}

// TestGatewayWAF scores apiguard's CRS integration on the same suite and
// corpus as the baseline, in the same run.
func TestGatewayWAF(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the CRS regression suite")
	}
	tests := suite(t)
	h, err := corazaproxy.New(okUpstream(t))
	if err != nil {
		t.Fatal(err)
	}
	base := Run(context.Background(), serve(t, h), tests, 4)
	addr := startGatewayWAF(t, "")
	rep := Run(context.Background(), addr, tests, 4)
	t.Logf("plain Coraza+CRS PL1 proxy: attacks blocked %.1f%%, benign passed %.1f%%", 100*base.AttackRate(), 100*base.BenignRate())
	t.Logf("apiguard waf PL1:           attacks blocked %d/%d (%.1f%%), benign passed %d/%d (%.1f%%)",
		rep.AttacksBlocked, rep.Attacks, 100*rep.AttackRate(), rep.BenignPassed, rep.Benign, 100*rep.BenignRate())
	t.Logf("apiguard failed attacks by status %v, failed benign by status %v", statusHistogram(rep, true), statusHistogram(rep, false))
	corpus, err := LoadLegit("testdata/legit.yaml")
	if err != nil {
		t.Fatal(err)
	}
	baseRefused := RunLegit(context.Background(), "http://"+serve(t, h), corpus)
	refused := RunLegit(context.Background(), "http://"+addr, corpus)
	t.Logf("legitimate API corpus refused: baseline %d of %d, apiguard %d: %v", len(baseRefused), len(corpus), len(refused), refused)
	if len(refused) >= len(baseRefused) {
		t.Errorf("apiguard refuses %d legitimate requests, the plain proxy %d", len(refused), len(baseRefused))
	}
	// The remaining false positives are rich text that reads like code
	// or SQL; docs/waf.md tunes them with one exclusion per field, at
	// paranoia level 1, after which the whole corpus passes.
	tuned := startGatewayWAF(t, tunedExclusions)
	if refused := RunLegit(context.Background(), "http://"+tuned, corpus); len(refused) > 0 {
		t.Errorf("legitimate API requests refused at paranoia level 1 with the documented exclusions: %v", refused)
	}
}

// tunedExclusions are the per-field exclusions of docs/waf.md's tuning
// example.
const tunedExclusions = `exclusions: [
  {rule_ids: [942360], parameters: ["json:/body"]},
  {rule_ids: [942350], parameters: ["json:/description"]},
  {rule_ids: [932230, 932235, 932250, 932260], parameters: ["json:/text"]},
  {rule_ids: [942190], parameters: ["json:/note"]}]`
