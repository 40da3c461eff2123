package ratelimit

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNiceCeil(t *testing.T) {
	t.Parallel()
	for in, want := range map[int64]int64{0: 1, 1: 1, 3: 5, 10: 10, 11: 20, 21: 25, 26: 50, 99: 100, 101: 200, 240: 250, 4999: 5000, 5001: 10000} {
		if got := niceCeil(in); got != want {
			t.Errorf("niceCeil(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	// 100 genuine clients peaking at 1..100 requests a minute, one scraper
	// at 5000: the scraper must not drag the suggestion up.
	var minute, tenSec []Sample
	for i := 1; i <= 100; i++ {
		c := fmt.Sprintf("192.0.2.%d", i)
		minute = append(minute, Sample{Route: "api", Client: c, Count: int64(i)}, Sample{Route: "api", Client: c, Count: 1})
		tenSec = append(tenSec, Sample{Route: "api", Client: c, Count: int64(i/4 + 1)})
	}
	minute = append(minute, Sample{Route: "api", Client: "203.0.113.9", Count: 5000})
	tenSec = append(tenSec, Sample{Route: "api", Client: "203.0.113.9", Count: 900})
	got := Suggest(map[time.Duration][]Sample{10 * time.Second: tenSec, time.Minute: minute})
	want := []Suggestion{{
		Route: "api", Clients: 101,
		Windows: []WindowStats{
			{Window: 10 * time.Second, P50: 13, P90: 23, P99: 26, Max: 900},
			{Window: time.Minute, P50: 51, P90: 91, P99: 100, Max: 5000},
		},
		Limits: []LimitSpec{{Rate: "200/m", Burst: 100}},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Suggest (-want +got):\n%s", diff)
	}
	if _, _, err := ParseRate(got[0].Limits[0].Rate); err != nil {
		t.Fatalf("suggested rate does not parse: %v", err)
	}
}
