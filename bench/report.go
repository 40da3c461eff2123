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
	Method      string         `json:"method"`
	Path        string         `json:"path"`
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
}

// Comparison is a target against the bare proxy. Each value is the median
// over rounds of the per-round value (target and bare measured minutes
// apart at most), which cancels slow drift better than comparing the two
// median rounds.
type Comparison struct {
	ThroughputRatio float64 `json:"throughput_ratio"` // target req/s / bare req/s
	P50AddedMs      float64 `json:"p50_added_ms"`
	P99AddedMs      float64 `json:"p99_added_ms"`
	P999AddedMs     float64 `json:"p99_9_added_ms"`
	SUTCPURatio     float64 `json:"sut_cpu_ratio,omitempty"` // CPU per request, target / bare
}

// Skip is a target that was not measured.
type Skip struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

func buildReport(o *options, targets []*target, skipped []Skip) *Report {
	rep := &Report{
		Mode: o.mode, Duration: o.duration.String(), Warmup: o.warmup.String(), Rounds: o.rounds,
		Method: "GET", Path: o.path, PostBytes: o.postBytes, RespBytes: o.respBytes,
		GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(),
		GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		Skipped: skipped,
	}
	if o.postBytes > 0 {
		rep.Method = "POST"
	}
	if o.mode == modeRate {
		rep.Rate, rep.MaxSenders = o.rate, o.maxSenders
	} else {
		rep.Concurrency = o.concurrency
	}
	var bare *target
	for _, t := range targets {
		if t.kind == "bare" {
			bare = t
		}
	}
	for _, t := range targets {
		tr := TargetReport{Name: t.name, Kind: t.kind, Profile: t.profile, Description: t.desc, Rounds: t.rounds}
		if i := medianRound(t.rounds, o.mode); i >= 0 {
			tr.Result = t.rounds[i]
		}
		if bare != nil {
			tr.VsBare = compare(t.rounds, bare.rounds)
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
	req := rep.Method + " " + rep.Path
	if rep.PostBytes > 0 {
		req += fmt.Sprintf(" (%d-byte JSON body)", rep.PostBytes)
	}
	fmt.Fprintf(w, "%s duration=%s warmup=%s rounds=%d%s  %s  GOMAXPROCS=%d NumCPU=%d  %s %s/%s\n",
		head, rep.Duration, rep.Warmup, rep.Rounds, roundsNote, req, rep.GOMAXPROCS, rep.NumCPU, rep.GoVersion, rep.GOOS, rep.GOARCH)

	nameW := len("target")
	for _, t := range rep.Targets {
		nameW = max(nameW, len(t.Name))
	}
	first := "req/s"
	last := "vs bare  p99 vs bare"
	if rate {
		first = "achieved"
		last = "rate     p99 vs bare"
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
		fmt.Fprintf(w, "%-*s %9.0f %8s %8s %8s %8s %8s %7d %8s  %-7s  %s\n", nameW, t.Name, s.RPS,
			fmtMs(s.P50Ms), fmtMs(s.P90Ms), fmtMs(s.P99Ms), fmtMs(s.P999Ms), fmtMs(s.MaxMs),
			s.Errors, fmtCPU(s.SUTCPUUsPerReq), col, p99)
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
