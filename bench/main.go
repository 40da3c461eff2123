// Command bench is apiguard's end-to-end benchmark harness. In one run it
// measures a load generator against
//
//   - direct:          a small upstream HTTP server,
//   - bare:            a bare net/http/httputil.ReverseProxy in front of it,
//   - coraza:          with -coraza, a plain Go proxy running Coraza + the
//     OWASP CRS on every request (bench/corazaproxy),
//   - apiguard-<name>: the real apiguard binary in each selected profile,
//
// each in its own process, and reports throughput, latency percentiles and
// ratios against the bare proxy (and the coraza proxy) measured in the same
// run. The requests are one repeated request or a workload mix (-workload).
// See README.md.
//
//	go run ./bench -mode=closed -concurrency=64 -duration=10s -rounds=3
//	go run ./bench -mode=rate -rate=1000 -duration=10s -rounds=3
//	go run ./bench -workload=shop -profiles=openapi-waf -coraza -rounds=3
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	// Harness.
	mode         string
	concurrency  int
	rate         float64
	duration     time.Duration
	warmup       time.Duration
	rounds       int
	path         string
	postBytes    int
	workload     string
	coraza       bool
	timeout      time.Duration
	maxSenders   int
	profiles     string
	apiguard     bool
	apiguardBin  string
	repo         string
	json         bool
	keep         bool
	settleMax    time.Duration
	quietWait    time.Duration
	readyTimeout time.Duration

	// Children (-role); respBytes also configures the upstream child.
	role      string
	listen    string
	target    string
	respBytes int
	maxIdle   int
	barePool  bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.mode, "mode", modeClosed, "closed (N workers, next request after the previous response) or rate (open-loop fixed rate)")
	fs.IntVar(&o.concurrency, "concurrency", 64, "closed mode: number of concurrent workers")
	fs.Float64Var(&o.rate, "rate", 1000, "rate mode: requests per second")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured duration per target per round")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load per target right before each measurement")
	fs.IntVar(&o.rounds, "rounds", 1, "measure all targets this many times, interleaved; the median round is reported")
	fs.StringVar(&o.path, "path", "/api/items/42", "request path (and query)")
	fs.IntVar(&o.postBytes, "post-bytes", 0, "when > 0, POST a JSON body of this many bytes instead of GET")
	fs.StringVar(&o.workload, "workload", workloadSingle, "requests to send: single (-path, -post-bytes) or shop (a fixed mix of an online shop's API calls; see README.md)")
	fs.BoolVar(&o.coraza, "coraza", false, "also measure a plain Go reverse proxy running Coraza + OWASP CRS PL1 on every request (bench/corazaproxy), and compare with it")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout (a timed-out request is an error)")
	fs.IntVar(&o.maxSenders, "max-senders", 250, "rate mode: cap of the sender pool (in-flight requests); keep it under apiguard's limits.max_conns_per_ip (256)")
	fs.StringVar(&o.profiles, "profiles", strings.Join(defaultProfiles(), ","), "apiguard profiles to run, comma-separated (known: "+strings.Join(profileNames(), ", ")+")")
	fs.BoolVar(&o.apiguard, "apiguard", true, "build and measure apiguard (false: direct and bare only)")
	fs.StringVar(&o.apiguardBin, "apiguard-bin", "", "use this apiguard binary instead of building ./cmd/apiguard")
	fs.StringVar(&o.repo, "repo", "", "repository root to build ./cmd/apiguard in (default: from go env GOMOD)")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON on stdout (progress still goes to stderr)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, logs, event database)")
	fs.DurationVar(&o.settleMax, "settle-max", 15*time.Second, "before each target, wait up to this long for the processes under test to go idle")
	fs.DurationVar(&o.quietWait, "quiet-wait", 0, "before each target, also wait up to this long for other processes on the machine to use < 0.25 cores (Linux)")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 30*time.Second, "how long a started apiguard may take to become ready")

	fs.StringVar(&o.role, "role", "", "internal: run as a child process (upstream, bare or coraza)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "internal: listen address of a -role child")
	fs.StringVar(&o.target, "target", "", "internal: upstream URL of -role=bare and -role=coraza")
	fs.IntVar(&o.respBytes, "resp-bytes", 200, "size of the upstream's JSON response body")
	fs.IntVar(&o.maxIdle, "max-idle", 1024, "internal: MaxIdleConnsPerHost of -role=bare and -role=coraza")
	fs.BoolVar(&o.barePool, "bare-buffer-pool", true, "give the bare ReverseProxy a BufferPool (false: a new 32 KiB copy buffer per response)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.role != "" {
		return o, nil
	}
	switch {
	case o.mode != modeClosed && o.mode != modeRate:
		return nil, fmt.Errorf("-mode must be %s or %s, not %q", modeClosed, modeRate, o.mode)
	case o.concurrency < 1:
		return nil, errors.New("-concurrency must be at least 1")
	case !(o.rate > 0):
		return nil, errors.New("-rate must be positive")
	case o.duration <= 0:
		return nil, errors.New("-duration must be positive")
	case o.warmup < 0:
		return nil, errors.New("-warmup must not be negative")
	case o.rounds < 1:
		return nil, errors.New("-rounds must be at least 1")
	case !strings.HasPrefix(o.path, "/"):
		return nil, errors.New("-path must start with /")
	case o.postBytes < 0:
		return nil, errors.New("-post-bytes must not be negative")
	case o.maxSenders < 1:
		return nil, errors.New("-max-senders must be at least 1")
	case !slices.Contains(workloadNames(), o.workload):
		return nil, fmt.Errorf("-workload must be one of %s, not %q", strings.Join(workloadNames(), ", "), o.workload)
	}
	if o.workload != workloadSingle {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if set["path"] || set["post-bytes"] {
			return nil, fmt.Errorf("-path and -post-bytes apply to -workload=%s only", workloadSingle)
		}
	}
	if o.apiguard {
		if _, err := selectProfiles(o.profiles); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	o, err := parseFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 2
	}
	if o.role != "" {
		return runRole(o)
	}
	return runHarness(o)
}

// logf reports progress on stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// target is one system the load generator is pointed at.
type target struct {
	name    string
	kind    string // direct, bare, coraza or apiguard
	profile string // apiguard only
	desc    string
	url     string // http://host:port; the workload adds the paths
	sut     *child // the process whose CPU time is attributed to the target
	waf     bool   // must refuse the attack probes
	rounds  []Summary

	refused       []string // benign workload requests refused before measuring
	probes        int      // attack probes sent
	probesRefused int
	probesMissed  []string
}

func runHarness(o *options) (code int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; !ok {
			return
		}
		logf("interrupted: stopping (again to kill at once)")
		cancel()
		if _, ok := <-sigs; ok {
			killAll(0)
			os.Exit(130)
		}
	}()

	wl, err := newWorkload(o)
	if err != nil {
		logf("%v", err)
		return 2
	}
	tmp, err := os.MkdirTemp("", "apiguard-bench-")
	if err != nil {
		logf("%v", err)
		return 1
	}
	if o.keep {
		defer logf("kept %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	defer killAll(3 * time.Second) // runs before the RemoveAll
	self, err := os.Executable()
	if err != nil {
		logf("cannot find own executable: %v", err)
		return 1
	}

	// Upstream and bare proxy: this binary again, in child processes.
	up, upAddr, err := startChild("upstream", []string{self, "-role=upstream", "-listen=127.0.0.1:0",
		"-resp-bytes=" + strconv.Itoa(o.respBytes)}, tmp, filepath.Join(tmp, "upstream.log"), true, 10*time.Second)
	if err != nil {
		logf("%v", err)
		return 1
	}
	upURL := "http://" + strings.TrimPrefix(upAddr, listeningPrefix)
	maxIdle := max(1024, 2*o.concurrency, 2*o.maxSenders)
	bare, bareAddr, err := startChild("bare", []string{self, "-role=bare", "-listen=127.0.0.1:0",
		"-target=" + upURL, "-max-idle=" + strconv.Itoa(maxIdle), "-bare-buffer-pool=" + strconv.FormatBool(o.barePool)}, tmp, filepath.Join(tmp, "bare.log"), true, 10*time.Second)
	if err != nil {
		logf("%v", err)
		return 1
	}
	bareURL := "http://" + strings.TrimPrefix(bareAddr, listeningPrefix)
	ready := []struct {
		c *child
		u string
	}{{up, upURL}, {bare, bareURL}}
	targets := []*target{
		{name: "direct", kind: "direct", desc: "load generator -> upstream", url: upURL, sut: up},
		{name: "bare", kind: "bare", desc: bareDesc(o.barePool), url: bareURL, sut: bare},
	}
	if o.coraza {
		// Building the WAF (CRS parsing, regexp compilation) takes a few
		// seconds on a small machine before the child announces itself.
		logf("starting coraza: plain Go proxy + Coraza + OWASP CRS PL1 (%s)", corazaRx)
		cz, czAddr, err := startChild("coraza", []string{self, "-role=coraza", "-listen=127.0.0.1:0",
			"-target=" + upURL, "-max-idle=" + strconv.Itoa(maxIdle)}, tmp, filepath.Join(tmp, "coraza.log"), true, 2*time.Minute)
		if err != nil {
			logf("%v", err)
			return 1
		}
		czURL := "http://" + strings.TrimPrefix(czAddr, listeningPrefix)
		ready = append(ready, struct {
			c *child
			u string
		}{cz, czURL})
		targets = append(targets, &target{name: "coraza", kind: "coraza", desc: corazaDesc(), url: czURL, sut: cz, waf: true})
	}
	for _, c := range ready {
		if err := waitReady(ctx, c.c, 10*time.Second, c.u+wl.readyPath()); err != nil {
			logf("%v", err)
			return 1
		}
	}

	var skipped []Skip
	failed := false
	if o.apiguard {
		bin := o.apiguardBin
		if bin == "" {
			bin = filepath.Join(tmp, "apiguard")
			root, err := repoRoot(o.repo)
			if err == nil {
				logf("building apiguard: go build -o %s ./cmd/apiguard (in %s)", bin, root)
				err = buildApiguard(ctx, root, bin)
				if err != nil && ctx.Err() == nil {
					// Other go commands sharing the build cache can make a
					// build fail transiently; one retry.
					logf("build failed, retrying once: %v", firstLine(err.Error()))
					err = buildApiguard(ctx, root, bin)
				}
			}
			if err != nil {
				bin = ""
				logf("SKIPPING apiguard: the binary could not be built, measuring direct and bare only:\n    %v", err)
				skipped = append(skipped, Skip{Name: "apiguard", Reason: "build failed: " + err.Error()})
			}
		}
		if bin != "" {
			profs, _ := selectProfiles(o.profiles)
			for _, p := range profs {
				t, err := startApiguard(ctx, bin, tmp, p, upURL, wl.readyPath(), o)
				if err != nil {
					if ctx.Err() != nil {
						return 130
					}
					logf("SKIPPING apiguard-%s: %v", p.name, err)
					skipped = append(skipped, Skip{Name: "apiguard-" + p.name, Reason: err.Error()})
					failed = true
					continue
				}
				targets = append(targets, t)
			}
		}
	} else {
		logf("apiguard skipped (-apiguard=false)")
	}

	var pids []int
	for _, t := range targets {
		pids = append(pids, t.sut.pid())
	}
	client := newClient(max(o.concurrency, o.maxSenders), o.timeout)
	defer client.CloseIdleConnections()

	// Every target must pass the whole benign cycle, and those with a WAF
	// must refuse the attack probes (probe.go).
	for _, t := range targets {
		q := newRequester(client, t.url, wl)
		t.refused = verifyWorkload(ctx, q)
		for _, r := range t.refused {
			logf("WARNING %s refused a benign request of the workload: %s", t.name, r)
		}
		if t.waf {
			t.probes = len(attackProbes)
			t.probesRefused, t.probesMissed = probeAttacks(ctx, q)
			for _, m := range t.probesMissed {
				logf("WARNING %s let an attack probe through: %s", t.name, m)
			}
			logf("%s: %d of %d attack probes refused", t.name, t.probesRefused, t.probes)
		}
		if ctx.Err() != nil {
			return 130
		}
	}

	for r := range o.rounds {
		for _, t := range targets {
			if t.sut.exited() {
				logf("%s: process exited (%v)%s", t.name, t.sut.waitErr, t.sut.logTail())
				return 1
			}
			waited, idle := settle(ctx, pids, o.settleMax, o.quietWait)
			if !idle && ctx.Err() == nil {
				logf("%s: machine still busy after %v, measuring anyway", t.name, waited.Round(time.Millisecond))
			}
			q := newRequester(client, t.url, wl)
			if o.warmup > 0 {
				load(ctx, o, q.do, len(wl.kinds), o.warmup)
			}
			snap0 := snapCPU(pids)
			cpu0, cpuErr := processCPU(t.sut.pid())
			start := time.Now()
			res := load(ctx, o, q.do, len(wl.kinds), o.duration)
			cpu1, cpuErr2 := processCPU(t.sut.pid())
			snap1 := snapCPU(pids)
			if ctx.Err() != nil {
				return 130
			}
			s := res.summary()
			s.Round = r + 1
			s.ByKind = res.kindSummaries(wl.kinds)
			if cpuErr == nil && cpuErr2 == nil && s.Requests > 0 {
				s.SUTCPUUsPerReq = float64(cpu1-cpu0) / float64(time.Microsecond) / float64(s.Requests)
			}
			s.OtherCPUCores = otherCores(snap0, snap1, time.Since(start))
			t.rounds = append(t.rounds, s)
			other := ""
			if s.OtherCPUCores >= 0 {
				other = fmt.Sprintf("  other load %.2f cores", s.OtherCPUCores)
			}
			logf("round %d/%d %-24s %8.0f req/s  p50 %s  p99 %s  errors %d%s", r+1, o.rounds, t.name, s.RPS,
				fmtMs(s.P50Ms), fmtMs(s.P99Ms), s.Errors, other)
		}
	}

	rep := buildReport(o, wl, targets, skipped)
	if o.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(rep); err != nil {
			logf("%v", err)
			return 1
		}
	} else {
		printReport(os.Stdout, rep)
	}
	if failed {
		return 1
	}
	return 0
}

func bareDesc(pool bool) string {
	if pool {
		return "httputil.ReverseProxy (Rewrite+SetURL+SetXForwarded, BufferPool)"
	}
	return "httputil.ReverseProxy (Rewrite+SetURL+SetXForwarded, no BufferPool)"
}

func corazaDesc() string {
	return "httputil.ReverseProxy (NewSingleHostReverseProxy) in Coraza's txhttp.WrapHandler, OWASP CRS PL1, " + corazaRx
}

func load(ctx context.Context, o *options, do doFunc, nkinds int, d time.Duration) *result {
	if o.mode == modeRate {
		return runRate(ctx, do, nkinds, o.rate, d, o.maxSenders)
	}
	return runClosed(ctx, do, nkinds, o.concurrency, d)
}

// startApiguard renders the profile's config, writes its files, starts
// `apiguard serve -c` and waits until the admin /healthz and a proxied GET
// of readyPath answer 2xx. A start that dies early (e.g. a port taken
// between picking and binding) is retried with fresh ports.
func startApiguard(ctx context.Context, bin, tmp string, p profile, upURL, readyPath string, o *options) (*target, error) {
	name := "apiguard-" + p.name
	dir := filepath.Join(tmp, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := p.writeFiles(filepath.Join(dir, "data")); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		listen, err := freeAddr()
		if err != nil {
			return nil, err
		}
		admin, err := freeAddr()
		if err != nil {
			return nil, err
		}
		cfg, err := p.render(profileVars{
			Listen: listen, Admin: admin, AdminToken: benchAdminToken,
			DataDir: filepath.Join(dir, "data"), UpstreamURL: upURL,
		})
		if err != nil {
			return nil, err
		}
		cfgPath := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
			return nil, err
		}
		logf("starting %s: %s serve -c %s", name, bin, cfgPath)
		c, _, err := startChild(name, []string{bin, "serve", "-c", cfgPath}, dir,
			filepath.Join(dir, fmt.Sprintf("apiguard-%d.log", attempt)), false, 0)
		if err != nil {
			return nil, err
		}
		err = waitReady(ctx, c, o.readyTimeout, "http://"+admin+"/healthz", "http://"+listen+readyPath)
		if err == nil {
			return &target{name: name, kind: "apiguard", profile: p.name, desc: p.desc, url: "http://" + listen, sut: c, waf: p.waf}, nil
		}
		exitedEarly := c.exited()
		c.stop(time.Second)
		lastErr = err
		if !exitedEarly || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}
