package ratelimit

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Sample is one client's request count on one route in one time bucket of
// a window (from the event store's Rates).
type Sample struct {
	Route  string
	Client string
	Count  int64
}

// WindowStats are per-client peak counts in one window size, across the
// clients of a route: for each client its busiest bucket, then quantiles
// over clients.
type WindowStats struct {
	Window             time.Duration
	P50, P90, P99, Max int64
}

// Suggestion is the recommendation for one route.
type Suggestion struct {
	Route   string
	Clients int
	Windows []WindowStats
	// Limits are the suggested limits, as config would write them.
	Limits []LimitSpec
}

// Suggest turns per-window samples into per-route suggestions. The
// suggested limits are twice the peak of the busiest 1% of clients (p99 of
// per-client peaks), rounded up to a readable number: the clients above
// that are outliers (scripts, or attackers the gateway already stopped), and
// the factor two leaves room for genuine growth. Windows: the shortest sets
// the burst, the others the rates.
func Suggest(samples map[time.Duration][]Sample) []Suggestion {
	windows := make([]time.Duration, 0, len(samples))
	for w := range samples {
		windows = append(windows, w)
	}
	slices.Sort(windows)

	byRoute := map[string]*Suggestion{}
	clients := map[string]map[string]bool{}
	for _, w := range windows {
		peaks := map[string]map[string]int64{} // route -> client -> peak
		for _, s := range samples[w] {
			if peaks[s.Route] == nil {
				peaks[s.Route] = map[string]int64{}
			}
			peaks[s.Route][s.Client] = max(peaks[s.Route][s.Client], s.Count)
			if clients[s.Route] == nil {
				clients[s.Route] = map[string]bool{}
			}
			clients[s.Route][s.Client] = true
		}
		for route, perClient := range peaks {
			sg := byRoute[route]
			if sg == nil {
				sg = &Suggestion{Route: route}
				byRoute[route] = sg
			}
			vals := make([]int64, 0, len(perClient))
			for _, v := range perClient {
				vals = append(vals, v)
			}
			slices.Sort(vals)
			sg.Windows = append(sg.Windows, WindowStats{Window: w, P50: quantile(vals, .5), P90: quantile(vals, .9), P99: quantile(vals, .99), Max: vals[len(vals)-1]})
		}
	}
	out := make([]Suggestion, 0, len(byRoute))
	for route, sg := range byRoute {
		sg.Clients = len(clients[route])
		sg.Limits = suggestLimits(sg.Windows)
		out = append(out, *sg)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Route < out[j].Route })
	return out
}

// suggestLimits: the shortest window gives the burst; every longer window a
// rate at twice its p99 peak. Floors keep a quiet route from getting a
// limit a single page load would hit.
func suggestLimits(ws []WindowStats) []LimitSpec {
	if len(ws) == 0 {
		return nil
	}
	burst := niceCeil(max(2*ws[0].P99, 10))
	var out []LimitSpec
	for i, w := range ws {
		if i == 0 && len(ws) > 1 {
			continue
		}
		count := niceCeil(max(2*w.P99, 10*int64(max(1, w.Window/time.Minute))))
		l := LimitSpec{Rate: fmt.Sprintf("%d/%s", count, rateUnit(w.Window))}
		if len(out) == 0 {
			l.Burst = min(burst, count)
		}
		out = append(out, l)
	}
	return out
}

func rateUnit(w time.Duration) string {
	switch w {
	case time.Second:
		return "s"
	case time.Minute:
		return "m"
	case time.Hour:
		return "h"
	case 24 * time.Hour:
		return "d"
	}
	return strings.TrimSuffix(w.String(), "0s")
}

func quantile(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// niceCeil rounds up to 1, 2, 2.5 or 5 times a power of ten.
func niceCeil(v int64) int64 {
	if v <= 1 {
		return 1
	}
	p := int64(1)
	for p*10 <= v {
		p *= 10
	}
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if c := int64(m * float64(p)); c >= v {
			return c
		}
	}
	return 10 * p
}
