package detect

import (
	"strconv"
	"testing"
	"time"
)

func TestScrape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc    string
		path    func(w *world, i int) (string, string) // path, method
		n       int
		gap     time.Duration
		flagged int // request of the first finding; 0 none
	}{
		{"walks every product", func(_ *world, i int) (string, string) { return "/api/products/" + strconv.Itoa(i), "GET" }, 400, 500 * time.Millisecond, 100},
		{"walks slowly: under the volume per window", func(_ *world, i int) (string, string) { return "/api/products/" + strconv.Itoa(i), "GET" }, 300, 7 * time.Second, 0},
		{"busy but repetitive (dashboard refresh)", func(w *world, i int) (string, string) {
			return []string{"/api/cart", "/api/me", "/api/products", "/api/orders"}[i%4] + "/" + strconv.Itoa(w.rng.IntN(20)), "GET"
		}, 400, 500 * time.Millisecond, 0},
		{"writes are not scraping", func(_ *world, i int) (string, string) { return "/api/cart/" + strconv.Itoa(i), "POST" }, 400, 500 * time.Millisecond, 0},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			w := newWorld(31)
			u := newUnit(t, only(DetectorScrape))
			first, best := 0, 0
			var f Finding
			for i := range tc.n {
				p, m := tc.path(w, i)
				o := get(time.Time{}, ip("198.18.2.2"), pyreq, p, "/x/{id}", nil, 200)
				o.Method = m
				if got, ok := find(u.do(tc.gap, o), DetectorScrape, "unique_resources"); ok {
					if first == 0 {
						first, f = i+1, got
					}
					best = max(best, got.Score)
				}
			}
			if first != tc.flagged && (tc.flagged == 0 || first == 0 || first > tc.flagged+3) {
				t.Fatalf("first finding at request %d, want %d: %v", first, tc.flagged, f.Evidence)
			}
			if first > 0 {
				t.Logf("flagged at %d, best score %d: %v %v", first, best, f.Evidence, f.Thresholds)
				if f.Score != scrapeBase || best < BlockScore {
					t.Errorf("scores %d..%d, want %d rising to >= %d with volume", f.Score, best, scrapeBase, BlockScore)
				}
			}
		})
	}
}

// TestScrapeNAT: 20 people browsing distinct products from one office
// address look like one scraper by volume and ratio; the actor count
// raises the volume threshold.
func TestScrapeNAT(t *testing.T) {
	t.Parallel()
	w := newWorld(32)
	u := newUnit(t, only(DetectorScrape))
	for i := range 400 {
		o := product(time.Time{}, ip("198.51.100.7"), chrome, 1+w.rng.IntN(5000), 200)
		o.Subject = "staff" + strconv.Itoa(i%20)
		if fs := u.do(time.Second, o); len(fs) > 0 {
			t.Fatalf("office flagged at request %d: %+v", i+1, fs[0])
		}
	}
}
