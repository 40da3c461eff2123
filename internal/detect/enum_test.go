package detect

import (
	"fmt"
	"net/url"
	"testing"
	"time"
)

func TestEnumeration(t *testing.T) {
	t.Parallel()
	seq := func(from, n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = from + i
		}
		return out
	}
	shuffled := func(w *world, from, n int) []int {
		ids := seq(from, n)
		w.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		return ids
	}
	sparse := func(w *world, n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = 1 + w.rng.IntN(1_000_000)
		}
		return out
	}
	tests := []struct {
		desc   string
		ids    func(w *world) []int
		opaque bool
		status func(w *world, i int) int
		// want: first score by request "at", and the best score seen.
		at, first, best int
	}{
		{"sequential walk refused (BOLA probe)", func(*world) []int { return seq(5000, 40) }, false,
			func(*world, int) int { return 403 }, 12, 95, 95},
		{"sequential walk allowed (crawl)", func(*world) []int { return seq(5000, 40) }, false,
			func(*world, int) int { return 200 }, 12, enumDense, enumDense},
		{"shuffled dense walk refused", func(w *world) []int { return shuffled(w, 7000, 60) }, false,
			func(w *world, _ int) int { return []int{403, 404}[w.rng.IntN(2)] }, 12, 95, 95},
		{"sparse guessing refused", func(w *world) []int { return sparse(w, 40) }, false,
			func(*world, int) int { return 404 }, 12, enumFailing, enumFailing},
		{"own orders", func(*world) []int { return []int{981234, 455120, 700233, 981234, 455120} }, false,
			func(*world, int) int { return 200 }, 0, 0, 0},
		{"many own objects, scattered, allowed", func(w *world) []int { return sparse(w, 40) }, false,
			func(w *world, _ int) int { return 200 }, 0, 0, 0},
		{"uuid list refused", nil, true, func(*world, int) int { return 404 }, 20, 48, 48}, // 0.5 x min(40+60, 95)
		{"uuid list allowed", nil, true, func(*world, int) int { return 200 }, 20, 20, 20},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			w := newWorld(41)
			u := newUnit(t, only(DetectorEnum))
			var ids []string
			if tc.opaque {
				for i := range 40 {
					ids = append(ids, fmt.Sprintf("%08x-1d2c-4b7a-9e10-%012x", w.rng.Uint32(), i))
				}
			} else {
				for _, id := range tc.ids(w) {
					ids = append(ids, fmt.Sprint(id))
				}
			}
			at, first, best := 0, 0, 0
			var f Finding
			for i, id := range ids {
				o := get(time.Time{}, ip("198.18.3.3"), pyreq, "/api/orders/"+id, "/api/orders/{id}", map[string]string{"id": id}, tc.status(w, i))
				o.Subject = "mallory"
				for _, got := range u.do(w.lognormal(2*time.Second, 0.5), o) {
					if got.Detector != DetectorEnum || got.Key != "sub:mallory" {
						continue
					}
					if at == 0 {
						at, first, f = i+1, got.Score, got
					}
					best = max(best, got.Score)
				}
			}
			if at != tc.at || first != tc.first || best != tc.best {
				t.Fatalf("first score %d at request %d, best %d; want %d at %d, best %d: %v", first, at, best, tc.first, tc.at, tc.best, f.Evidence)
			}
			if at > 0 {
				t.Logf("request %d: %d %v %v", at, first, f.Evidence, f.Thresholds)
				if f.Evidence["template"] != "/api/orders/{id}" || f.Thresholds["min_failure_ratio"] == "" {
					t.Errorf("evidence %v thresholds %v", f.Evidence, f.Thresholds)
				}
			}
		})
	}
}

func TestEnumerationQueryParam(t *testing.T) {
	t.Parallel()
	cfg := only(DetectorEnum)
	cfg.Enum.QueryParams = []string{"invoice"}
	cfg.Enum.Params = []string{"none"} // ignore path parameters
	u := newUnit(t, cfg)
	var got []Finding
	for i := range 20 {
		o := get(time.Time{}, ip("198.18.3.4"), pyreq, "/api/invoices", "/api/invoices", nil, 404)
		o.PathParams = map[string]string{"id": fmt.Sprint(i * 1000)}
		o.Query = url.Values{"invoice": {fmt.Sprint(900 + i)}}
		got = append(got, u.do(time.Second, o)...)
	}
	f, ok := find(got, DetectorEnum, "numeric_ids")
	if !ok || f.Evidence["param"] != "?invoice" || f.Score != 95 {
		t.Fatalf("query enumeration: %+v", got)
	}
}

func TestParseID(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]int64{
		"0": 0, "42": 42, "007": 7, "123456789012345678": 123456789012345678,
		"": -1, "1234567890123456789": -1, "-1": -1, "+1": -1, "1e3": -1, " 1": -1, "１": -1,
		"550e8400-e29b-41d4-a716-446655440000": -1,
	} {
		n, ok := parseID(s)
		if want < 0 && ok || want >= 0 && (!ok || n != uint64(want)) {
			t.Errorf("parseID(%q) = %d, %v; want %d", s, n, ok, want)
		}
	}
}
