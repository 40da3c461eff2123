package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
)

// Report is the whole run; -json prints it.
type Report struct {
	Mode        string         `json:"mode"`
	Concurrency int            `json:"concurrency,omitempty"` // closed mode
	Rate        float64        `json:"rate,omitempty"`        // rate mode, req/s
	MaxSenders  int            `json:"max_senders,omitempty"` // rate mode
	Duration    string         `json:"duration"`
	Warmup      string         `json:"warmup"`
	Rounds      int            `json:"rounds"`
	Workload    string         `json:"workload"`
	Requests    string         `json:"requests"`        // the workload, in words
	Kinds       []string       `json:"kinds,omitempty"` // request kinds of a mix (by_kind)
	Method      string         `json:"method,omitempty"`
	Path        string         `json:"path,omitempty"`
	PostBytes   int            `json:"post_bytes,omitempty"`
	RespBytes   int            `json:"resp_bytes"`
	GOMAXPROCS  int            `json:"gomaxprocs"`
	NumCPU      int            `json:"num_cpu"`
	GoVersion   string         `json:"go_version"`
	GOOS        string         `json:"goos"`
	GOARCH      string         `json:"goarch"`
	Targets     []TargetReport `json:"targets"`
	Skipped     []Skip         `json:"skipped,omitempty"`
}

// TargetReport is one target: its median round and every round.
type TargetReport struct {
	Name        string      `json:"name"`
	Kind        string      `json:"kind"`
	Profile     string      `json:"profile,omitempty"`
	Description string      `json:"description,omitempty"`
	Result      Summary     `json:"result"` // the median round (see medianRound)
	Rounds      []Summary   `json:"rounds"`
	VsBare      *Comparison `json:"vs_bare,omitempty"`
	// VsCoraza compares with the coraza target (with -coraza).
	VsCoraza *Comparison `json:"vs_coraza,omitempty"`
	// Refused lists benign requests of the workload the target refused
	// when each was sent once before measuring.
	Refused []string `json:"refused,omitempty"`
	// Probes is the attack probe check of targets with a WAF.
	Probes *ProbeResult `json:"attack_probes,omitempty"`
}

// ProbeResult is how a WAF target answered the attack probes.
type ProbeResult struct {
	Sent    int      `json:"sent"`
	Refused int      `json:"refused"`
	Missed  []string `json:"missed,omitempty"`
}

// Comparison is a target against the bare (or coraza) proxy. Each value is the median
// over rounds of the per-round value (target and bare measured minutes
// apart at most), which cancels slow drift better than comparing the two
// median rounds.
type Comparison struct {
	ThroughputRatio float64 `json:"throughput_ratio"` // target req/s / reference req/s
	P50AddedMs      float64 `json:"p50_added_ms"`
	P99AddedMs      float64 `json:"p99_added_ms"`
	P999AddedMs     float64 `json:"p99_9_added_ms"`
	SUTCPURatio     float64 `json:"sut_cpu_ratio,omitempty"` // CPU per request, target / reference
}

// Skip is a target that was not measured.
type Skip struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

func buildReport(o *options, wl *workload, targets []*target, skipped []Skip) *Report {
	rep := &Report{
		Mode: o.mode, Duration: o.duration.String(), Warmup: o.warmup.String(), Rounds: o.rounds,
		Workload: wl.name, Requests: wl.desc, RespBytes: o.respBytes,
		GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(),
		GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		Skipped: skipped,
	}
	if len(wl.kinds) > 1 {
		rep.Kinds = wl.kinds
	}
	if wl.name == workloadSingle {
		rep.Method, rep.Path, rep.PostBytes = wl.reqs[0].method, wl.reqs[0].path, o.postBytes
	}
	if o.mode == modeRate {
		rep.Rate, rep.MaxSenders = o.rate, o.maxSenders
	} else {
		rep.Concurrency = o.concurrency
	}
	var bare, cz *target
	for _, t := range targets {
		switch t.kind {
		case "bare":
			bare = t
		case "coraza":
			cz = t
		}
	}
	for _, t := range targets {
		tr := TargetReport{Name: t.name, Kind: t.kind, Profile: t.profile, Description: t.desc, Rounds: t.rounds, Refused: t.refused}
		if i := medianRound(t.rounds, o.mode); i >= 0 {
			tr.Result = t.rounds[i]
		}
		if bare != nil {
			tr.VsBare = compare(t.rounds, bare.rounds)
		}
		if cz != nil && (t.kind == "apiguard" || t.kind == "coraza") {
			tr.VsCoraza = compare(t.rounds, cz.rounds)
		}
		if t.waf {
			tr.Probes = &ProbeResult{Sent: t.probes, Refused: t.probesRefused, Missed: t.probesMissed}
		}
		rep.Targets = append(rep.Targets, tr)
	}
	return rep
}

// compare computes the per-round comparison medians of t against bare.
func compare(t, bare []Summary) *Comparison {
	n := min(len(t), len(bare))
	if n == 0 {
		return nil
	}
	var ratio, p50, p99, p999, cpu []float64
	for i := range n {
		if bare[i].RPS > 0 {
			ratio = append(ratio, t[i].RPS/bare[i].RPS)
		}
		p50 = append(p50, t[i].P50Ms-bare[i].P50Ms)
		p99 = append(p99, t[i].P99Ms-bare[i].P99Ms)
		p999 = append(p999, t[i].P999Ms-bare[i].P999Ms)
		if bare[i].SUTCPUUsPerReq > 0 && t[i].SUTCPUUsPerReq > 0 {
			cpu = append(cpu, t[i].SUTCPUUsPerReq/bare[i].SUTCPUUsPerReq)
		}
	}
	c := &Comparison{
		ThroughputRatio: medianFloat(ratio),
		P50AddedMs:      medianFloat(p50),
		P99AddedMs:      medianFloat(p99),
		P999AddedMs:     medianFloat(p999),
	}
	if len(cpu) > 0 {
		c.SUTCPURatio = medianFloat(cpu)
	}
	if math.IsNaN(c.ThroughputRatio) {
		c.ThroughputRatio = 0
	}
	return c
}

// fmtMs formats milliseconds with about three significant digits.
func fmtMs(v float64) string {
	switch {
	case v < 1:
		return fmt.Sprintf("%.3fms", v)
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 100:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.0fms", v)
	}
}

func fmtCPU(us float64) string {
	if us <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fµs", us)
}

// printReport writes the human-readable table.
func printReport(w io.Writer, rep *Report) {
	rate := rep.Mode == modeRate
	head := fmt.Sprintf("mode=%s concurrency=%d", rep.Mode, rep.Concurrency)
	if rate {
		head = fmt.Sprintf("mode=%s rate=%g/s max-senders=%d", rep.Mode, rep.Rate, rep.MaxSenders)
	}
	roundsNote := ""
	if rep.Rounds > 1 {
		roundsNote = " (median round)"
	}
	req := rep.Requests
	if req == "" { // a report from before workloads
		req = rep.Method + " " + rep.Path
		if rep.PostBytes > 0 {
			req += fmt.Sprintf(" (%d-byte JSON body)", rep.PostBytes)
		}
	}
	fmt.Fprintf(w, "%s duration=%s warmup=%s rounds=%d%s  %s  GOMAXPROCS=%d NumCPU=%d  %s %s/%s\n",
		head, rep.Duration, rep.Warmup, rep.Rounds, roundsNote, req, rep.GOMAXPROCS, rep.NumCPU, rep.GoVersion, rep.GOOS, rep.GOARCH)

	nameW := len("target")
	for _, t := range rep.Targets {
		nameW = max(nameW, len(t.Name))
	}
	withCZ := false
	for _, t := range rep.Targets {
		withCZ = withCZ || t.VsCoraza != nil
	}
	first := "req/s"
	last := "vs bare  p99 vs bare"
	czHead := "vs coraza"
	if rate {
		first = "achieved"
		last = "rate     p99 vs bare"
		czHead = "p99 vs coraza"
	}
	if withCZ {
		last = fmt.Sprintf("%-20s  %s", last, czHead)
	}
	fmt.Fprintf(w, "%-*s %9s %8s %8s %8s %8s %8s %7s %8s  %s\n", nameW, "target", first, "p50", "p90", "p99", "p99.9", "max", "errors", "cpu/req", last)
	for _, t := range rep.Targets {
		s := t.Result
		var col string
		if rate {
			col = "-"
			if s.RateAchieved != nil {
				col = map[bool]string{true: "ok", false: "MISSED"}[*s.RateAchieved]
			}
		} else {
			col = "-"
			if t.VsBare != nil && t.VsBare.ThroughputRatio > 0 {
				col = fmt.Sprintf("%.1f%%", 100*t.VsBare.ThroughputRatio)
			}
		}
		p99 := ""
		if t.VsBare != nil && t.Kind != "bare" {
			p99 = fmt.Sprintf("%+.2f ms", t.VsBare.P99AddedMs)
		}
		line := fmt.Sprintf("%-*s %9.0f %8s %8s %8s %8s %8s %7d %8s  %-7s  %-11s", nameW, t.Name, s.RPS,
			fmtMs(s.P50Ms), fmtMs(s.P90Ms), fmtMs(s.P99Ms), fmtMs(s.P999Ms), fmtMs(s.MaxMs),
			s.Errors, fmtCPU(s.SUTCPUUsPerReq), col, p99)
		if c := t.VsCoraza; c != nil && t.Kind != "coraza" {
			if rate {
				line += fmt.Sprintf("  %+.2f ms", c.P99AddedMs)
			} else {
				line += fmt.Sprintf("  %.2fx", c.ThroughputRatio)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}

	fmt.Fprintln(w)
	for _, t := range rep.Targets {
		c := t.VsBare
		if c == nil || t.Kind != "apiguard" {
			continue
		}
		cpu := ""
		if c.SUTCPURatio > 0 {
			cpu = fmt.Sprintf("; CPU/req %.0f%% of bare", 100*c.SUTCPURatio)
		}
		if rate {
			fmt.Fprintf(w, "%s: p99 added vs bare: %+.2f ms (p50 %+.2f ms, p99.9 %+.2f ms)%s\n",
				t.Name, c.P99AddedMs, c.P50AddedMs, c.P999AddedMs, cpu)
		} else {
			fmt.Fprintf(w, "%s / bare = %.1f%% req/s; p99 added vs bare: %+.2f ms (p50 %+.2f ms)%s\n",
				t.Name, 100*c.ThroughputRatio, c.P99AddedMs, c.P50AddedMs, cpu)
		}
	}
	var cz *TargetReport
	for i := range rep.Targets {
		if rep.Targets[i].Kind == "coraza" {
			cz = &rep.Targets[i]
		}
	}
	for _, t := range rep.Targets {
		c := t.VsCoraza
		if c == nil || cz == nil || t.Kind == "coraza" {
			continue
		}
		cpu := ""
		if c.SUTCPURatio > 0 {
			cpu = fmt.Sprintf("; CPU/req %.0f%% of coraza (%s vs %s)", 100*c.SUTCPURatio, fmtCPU(t.Result.SUTCPUUsPerReq), fmtCPU(cz.Result.SUTCPUUsPerReq))
		}
		if rate {
			fmt.Fprintf(w, "%s vs coraza: p99 %s vs %s (%+.2f ms), p50 %s vs %s (%+.2f ms)%s\n",
				t.Name, fmtMs(t.Result.P99Ms), fmtMs(cz.Result.P99Ms), c.P99AddedMs,
				fmtMs(t.Result.P50Ms), fmtMs(cz.Result.P50Ms), c.P50AddedMs, cpu)
		} else {
			fmt.Fprintf(w, "%s / coraza = %.2fx req/s; p99 %+.2f ms (p50 %+.2f ms)%s\n",
				t.Name, c.ThroughputRatio, c.P99AddedMs, c.P50AddedMs, cpu)
		}
	}
	printKinds(w, rep, nameW)
	for _, t := range rep.Targets {
		if p := t.Probes; p != nil {
			fmt.Fprintf(w, "%s: %d of %d attack probes refused (403)", t.Name, p.Refused, p.Sent)
			if len(p.Missed) > 0 {
				fmt.Fprintf(w, "  WARNING, let through: %s", strings.Join(p.Missed, "; "))
			}
			fmt.Fprintln(w)
		}
		for _, r := range t.Refused {
			fmt.Fprintf(w, "%s refused a benign request of the workload: %s\n", t.Name, r)
		}
	}
	for _, t := range rep.Targets {
		if t.Result.Errors > 0 {
			fmt.Fprintf(w, "%s errors: %s\n", t.Name, fmtKinds(t.Result.ErrorKinds))
		}
		if rate && t.Result.RateAchieved != nil && !*t.Result.RateAchieved {
			fmt.Fprintf(w, "%s: target rate NOT achieved (%.0f of %g req/s)\n", t.Name, t.Result.RPS, rep.Rate)
		}
		if rate && t.Result.SenderPoolFull > 0 {
			fmt.Fprintf(w, "%s: all %d senders were busy for %d requests (the target fell behind); their wait is in the latencies\n",
				t.Name, rep.MaxSenders, t.Result.SenderPoolFull)
		}
		if rate && t.Result.SchedLagP99Ms > 1 {
			fmt.Fprintf(w, "%s: the load generator's scheduler ran late (p99 %s, max %s: CPU starvation); latencies include it\n",
				t.Name, fmtMs(t.Result.SchedLagP99Ms), fmtMs(t.Result.SchedLagMaxMs))
		}
	}
	var other []float64
	for _, t := range rep.Targets {
		for _, r := range t.Rounds {
			if r.OtherCPUCores >= 0 {
				other = append(other, r.OtherCPUCores)
			}
		}
	}
	if len(other) > 0 {
		hi := slices.Max(other)
		warn := ""
		if hi > 0.25 {
			warn = "  WARNING: the machine was not quiet; compare only numbers from the same run"
		}
		fmt.Fprintf(w, "other load (CPU outside the benchmark, incl. steal): median %.2f cores, max %.2f cores%s\n", medianFloat(other), hi, warn)
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "SKIPPED %s: %s\n", s.Name, firstLine(s.Reason))
	}
	if rate {
		fmt.Fprintln(w, "latency is measured from each request's scheduled time (queueing included); achieved = successful responses / max(duration, time to last response)")
	}
	if rep.Rounds > 1 {
		fmt.Fprintln(w, "vs bare / added: median over rounds of the per-round comparison; cpu/req: CPU time of the process under test per request")
	} else {
		fmt.Fprintln(w, "cpu/req: CPU time of the process under test (upstream for direct, the proxy otherwise) per request")
	}
}

// printKinds prints, for a workload mix, the median round's latency of each
// kind of request per target.
func printKinds(w io.Writer, rep *Report, nameW int) {
	if len(rep.Kinds) < 2 {
		return
	}
	colW := 16
	for _, k := range rep.Kinds {
		colW = max(colW, len(k))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-*s", nameW, "p50 / p99 by request")
	for _, k := range rep.Kinds {
		fmt.Fprintf(w, "  %-*s", colW, k)
	}
	fmt.Fprintln(w)
	for _, t := range rep.Targets {
		if len(t.Result.ByKind) == 0 {
			continue
		}
		line := fmt.Sprintf("%-*s", nameW, t.Name)
		for _, k := range t.Result.ByKind {
			cell := fmtMs(k.P50Ms) + " / " + fmtMs(k.P99Ms)
			if k.Errors > 0 {
				cell += fmt.Sprintf(" (%d err)", k.Errors)
			}
			line += fmt.Sprintf("  %-*s", colW, cell)
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	fmt.Fprintln(w)
}

func fmtKinds(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
