package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// Summary is what the demo reports after the traffic run. With --json it is
// printed as is.
type Summary struct {
	Scenarios []ScenarioResult `json:"scenarios"`
	Gateway   GatewaySummary   `json:"gateway"`
	// DurationS is how long the traffic ran, in seconds.
	DurationS float64 `json:"duration_s"`
}

// GatewaySummary is the gateway's own view (Gateway.Stats).
type GatewaySummary struct {
	Requests int64   `json:"requests"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
}

func newSummary(results []ScenarioResult, gs GatewayStats, ran time.Duration) Summary {
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 } // ms, 3 decimals
	return Summary{
		Scenarios: results,
		Gateway:   GatewaySummary{Requests: gs.Requests, P50Ms: ms(gs.P50), P99Ms: ms(gs.P99)},
		DurationS: math.Round(ran.Seconds()*10) / 10,
	}
}

func (s Summary) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("demo: write summary: %w", err)
	}
	return nil
}

// writeTable prints the summary for people.
func (s Summary) writeTable(w io.Writer) error {
	nameW := len("SCENARIO")
	for _, r := range s.Scenarios {
		nameW = max(nameW, len(r.Name))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Traffic summary (%.1fs)\n\n", s.DurationS)
	row := "%-*s  %-7s  %8s  %7s  %6s  %12s  %s\n"
	fmt.Fprintf(&b, row, nameW, "SCENARIO", "KIND", "REQUESTS", "ALLOWED", "DENIED", "FIRST DENIAL", "DENIED BY")
	total := map[Kind][2]int64{} // requests, denied
	for _, r := range s.Scenarios {
		first := "-"
		if r.FirstDeniedAfterS != nil {
			first = fmt.Sprintf("%.2fs", *r.FirstDeniedAfterS)
		}
		fmt.Fprintf(&b, row, nameW, r.Name, r.Kind,
			fmt.Sprint(r.Requests), fmt.Sprint(r.Allowed), fmt.Sprint(r.Denied), first, deniedBy(r.DeniedBy))
		t := total[r.Kind]
		total[r.Kind] = [2]int64{t[0] + r.Requests, t[1] + r.Denied}
	}
	b.WriteString("\n")
	for _, k := range []Kind{Genuine, Attack} {
		if t, ok := total[k]; ok {
			fmt.Fprintf(&b, "%-8s %d of %d requests denied (%s)\n", string(k)+":", t[1], t[0], percent(t[1], t[0]))
		}
	}
	fmt.Fprintf(&b, "%-8s %d requests, p50 %.2fms, p99 %.2fms\n", "gateway:", s.Gateway.Requests, s.Gateway.P50Ms, s.Gateway.P99Ms)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("demo: write summary: %w", err)
	}
	return nil
}

// deniedBy renders {"ip-denied": 3, "body-too-large": 1} as
// "ip-denied 3, body-too-large 1", most frequent first.
func deniedBy(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func percent(n, of int64) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
}
