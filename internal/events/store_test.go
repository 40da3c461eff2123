package events

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/apiguard/apiguard/internal/testutil"
)

// backend names a store implementation and, given a test, returns a func
// that opens a store on one location private to that test: calling it again
// reopens the same database.
type backend struct {
	name     string
	location func(t testing.TB) func() (Store, error)
}

var backends = []backend{
	{"sqlite", func(t testing.TB) func() (Store, error) {
		path := filepath.Join(t.TempDir(), "data", "events.db")
		return func() (Store, error) { return OpenSQLite(path) }
	}},
	{"postgres", func(t testing.TB) func() (Store, error) {
		dsn := testutil.Postgres(t)
		return func() (Store, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return OpenPostgres(ctx, dsn)
		}
	}},
}

// forEachBackend runs fn against every backend with a fresh, open store.
func forEachBackend(t *testing.T, fn func(t *testing.T, s Store, reopen func() Store)) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			open := be.location(t)
			reopen := func() Store {
				t.Helper()
				s, err := open()
				if err != nil {
					t.Fatalf("open %s: %v", be.name, err)
				}
				t.Cleanup(func() { _ = s.Close() })
				return s
			}
			fn(t, reopen(), reopen)
		})
	}
}

func write(t *testing.T, s Store, evs ...Event) {
	t.Helper()
	if err := s.Write(context.Background(), evs); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

func query(t *testing.T, s Store, f Filter) []Event {
	t.Helper()
	got, err := s.Query(context.Background(), f)
	if err != nil {
		t.Fatalf("Query(%+v): %v", f, err)
	}
	return got
}

var ignoreID = cmpopts.IgnoreFields(Event{}, "ID")

func TestStoreRoundTrip(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s Store, _ func() Store) {
		minimal := Event{Kind: KindSystem}
		unicode := Event{Time: time.Unix(0, 1).UTC(), Kind: KindAudit, Detail: "ünïcödé ✓ 'quote' \"dq\" \x01",
			Attrs: map[string]string{"": "empty key", "k": ""}}
		negative := Event{Time: time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC), Kind: KindConfig, Score: -5, Status: -1}
		want := []Event{fullEvent(), minimal, unicode, negative}
		write(t, s, want...)

		got := query(t, s, Filter{})
		slices.Reverse(got) // newest first -> insertion order
		if diff := cmp.Diff(want, got, ignoreID); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
		for i := 1; i < len(got); i++ {
			if got[i].ID <= got[i-1].ID || got[0].ID <= 0 {
				t.Fatalf("IDs not positive and increasing with insertion: %d then %d", got[i-1].ID, got[i].ID)
			}
		}
		if got[0].Time.Location() != time.UTC {
			t.Errorf("times come back in %v, want UTC", got[0].Time.Location())
		}
		if err := s.Write(context.Background(), nil); err != nil {
			t.Errorf("empty Write: %v", err)
		}
	})
}

// A batch larger than one multi-row INSERT keeps order and content across
// the statement boundaries.
func TestStoreRoundTripLargeBatch(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s Store, _ func() Store) {
		want := make([]Event, 2*sqliteRowsPerInsert+5)
		for i := range want {
			want[i] = fullEvent()
			want[i].RequestID = fmt.Sprint("r", i)
			want[i].Score = i
		}
		write(t, s, want...)
		got := query(t, s, Filter{Limit: len(want) + 1})
		slices.Reverse(got)
		if diff := cmp.Diff(want, got, ignoreID); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	})
}

// filterFixture is a small, varied event set: index i has Time base+i min.
var filterBase = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func filterFixture() []Event {
	at := func(i int) time.Time { return filterBase.Add(time.Duration(i) * time.Minute) }
	return []Event{
		{Time: at(0), Kind: KindRequest, RequestID: "r0", Route: "api", ClientIP: "10.0.0.1", Status: 200},
		{Time: at(1), Kind: KindVerdict, RequestID: "r1", Route: "api", ClientIP: "10.0.0.1", Check: "iplist", Action: "deny", Reason: "blocked"},
		{Time: at(2), Kind: KindRequest, RequestID: "r1", Route: "api", ClientIP: "10.0.0.1", Status: 403},
		{Time: at(3), Kind: KindVerdict, RequestID: "r3", Route: "login", ClientIP: "10.0.0.2", Check: "ratelimit", Action: "would-deny", Reason: "rate"},
		{Time: at(4), Kind: KindRequest, RequestID: "r3", Route: "login", ClientIP: "10.0.0.2", Status: 200},
		{Time: at(5), Kind: KindConfig, Detail: "reloaded"},
		{Time: at(6), Kind: KindVerdict, RequestID: "r6", Route: "login", ClientIP: "10.0.0.1", Check: "ratelimit", Action: "deny", Reason: "rate"},
		{Time: at(7), Kind: KindAudit, Detail: "unblock"},
	}
}

func TestStoreFilters(t *testing.T) {
	t.Parallel()
	at := func(i int) time.Time { return filterBase.Add(time.Duration(i) * time.Minute) }
	tests := []struct {
		name string
		f    Filter
		want []int // fixture indexes, newest first
	}{
		{"all", Filter{}, []int{7, 6, 5, 4, 3, 2, 1, 0}},
		{"since inclusive", Filter{Since: at(5)}, []int{7, 6, 5}},
		{"until exclusive", Filter{Until: at(2)}, []int{1, 0}},
		{"window", Filter{Since: at(2), Until: at(4)}, []int{3, 2}},
		{"one kind", Filter{Kinds: []Kind{KindVerdict}}, []int{6, 3, 1}},
		{"two kinds", Filter{Kinds: []Kind{KindConfig, KindAudit}}, []int{7, 5}},
		{"route", Filter{Route: "login"}, []int{6, 4, 3}},
		{"client ip", Filter{ClientIP: "10.0.0.1"}, []int{6, 2, 1, 0}},
		{"check", Filter{Check: "ratelimit"}, []int{6, 3}},
		{"action", Filter{Action: "deny"}, []int{6, 1}},
		{"reason", Filter{Reason: "rate"}, []int{6, 3}},
		{"request id", Filter{RequestID: "r1"}, []int{2, 1}},
		{"combined", Filter{Kinds: []Kind{KindVerdict}, ClientIP: "10.0.0.1", Since: at(1)}, []int{6, 1}},
		{"limit", Filter{Limit: 3}, []int{7, 6, 5}},
		{"no match", Filter{Route: "nope"}, nil},
		{"no match kind", Filter{Kinds: []Kind{"nope"}}, nil},
	}
	forEachBackend(t, func(t *testing.T, s Store, _ func() Store) {
		fixture := filterFixture()
		write(t, s, fixture...)
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var want []Event
				for _, i := range tc.want {
					want = append(want, fixture[i])
				}
				got := query(t, s, tc.f)
				if diff := cmp.Diff(want, got, ignoreID, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("Query (-want +got):\n%s", diff)
				}
				n, err := s.Count(context.Background(), tc.f)
				if err != nil {
					t.Fatal(err)
				}
				wantN := len(tc.want)
				if tc.f.Limit > 0 {
					wantN = len(fixture) // Count ignores Limit
				}
				if n != int64(wantN) {
					t.Errorf("Count = %d, want %d", n, wantN)
				}
			})
		}
	})
}

func TestStorePaging(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s Store, _ func() Store) {
		const n, page = 25, 10
		var all []Event
		for i := range n {
			all = append(all, seqEvent(i))
		}
		write(t, s, all...)
		f := Filter{Kinds: []Kind{KindRequest}, Limit: page}
		var sizes []int
		var got []Event
		for range n {
			p := query(t, s, f)
			if len(p) == 0 {
				break
			}
			sizes = append(sizes, len(p))
			got = append(got, p...)
			f.BeforeID = p[len(p)-1].ID
		}
		if diff := cmp.Diff([]int{10, 10, 5}, sizes); diff != "" {
			t.Errorf("page sizes (-want +got):\n%s", diff)
		}
		slices.Reverse(got)
		if diff := cmp.Diff(all, got, ignoreID); diff != "" {
			t.Errorf("pages do not cover every event once (-want +got):\n%s", diff)
		}
		c, err := s.Count(context.Background(), Filter{BeforeID: got[5].ID})
		if err != nil || c != 5 {
			t.Errorf("Count(BeforeID) = %d, %v; want 5", c, err)
		}
	})
}

func TestStorePrune(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s Store, _ func() Store) {
		// Several prune chunks of old events, so the chunk loop runs.
		switch s := s.(type) {
		case *sqliteStore:
			s.pruneChunk = 7
		case *postgresStore:
			s.pruneChunk = 7
		}
		old := make([]Event, 7*3+2)
		for i := range old {
			old[i] = Event{Time: filterBase.Add(-time.Duration(i+1) * time.Second), Kind: KindRequest}
		}
		write(t, s, old...)
		keep := filterFixture()
		write(t, s, keep...)
		write(t, s, Event{Kind: KindSystem}) // zero time counts as oldest

		n, err := s.Prune(context.Background(), filterBase)
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(len(old)+1) {
			t.Errorf("Prune deleted %d, want %d", n, len(old)+1)
		}
		got := query(t, s, Filter{Limit: maxQueryLimit})
		slices.Reverse(got)
		if diff := cmp.Diff(keep, got, ignoreID); diff != "" {
			t.Errorf("after prune (-want +got):\n%s", diff)
		}
		if n, err := s.Prune(context.Background(), filterBase); n != 0 || err != nil {
			t.Errorf("second Prune = %d, %v; want 0, nil", n, err)
		}
	})
}

func TestStoreMigrationsIdempotentAndReopenKeepsData(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s Store, reopen func() Store) {
		write(t, s, fullEvent())
		// Migrating an up-to-date database again is a no-op.
		m, ok := s.(interface{ migrate(context.Context) error })
		if !ok {
			t.Fatalf("%T has no migrate method", s)
		}
		for range 2 {
			if err := m.migrate(context.Background()); err != nil {
				t.Fatalf("migrate again: %v", err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2 := reopen()
		write(t, s2, Event{Kind: KindSystem, Detail: "second"})
		got := query(t, s2, Filter{})
		if len(got) != 2 || got[0].Detail != "second" {
			t.Fatalf("after reopen got %+v", got)
		}
		if diff := cmp.Diff(fullEvent(), got[1], ignoreID); diff != "" {
			t.Errorf("event from before reopen (-want +got):\n%s", diff)
		}
		if got[0].ID <= got[1].ID {
			t.Errorf("ID after reopen %d not above %d", got[0].ID, got[1].ID)
		}
		if n, want := countMigrations(t, s2), len(migrations("")); n != want {
			t.Errorf("schema_migrations has %d rows, want %d (one per migration, applied once)", n, want)
		}
	})
}

func countMigrations(t *testing.T, s Store) int {
	t.Helper()
	var n int
	var err error
	switch s := s.(type) {
	case *sqliteStore:
		err = s.db.QueryRow("SELECT count(*) FROM schema_migrations").Scan(&n)
	case *postgresStore:
		err = s.pool.QueryRow(context.Background(), "SELECT count(*) FROM schema_migrations").Scan(&n)
	default:
		t.Fatalf("unknown store %T", s)
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStoreAsBusSink(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s Store, _ func() Store) {
		const n = 1300
		b := testBus(BusOptions{QueueSize: 2 * n, BatchSize: 512, FlushEvery: 10 * time.Millisecond}, nil)
		b.AddSink(s, func(e *Event) bool { return e.Kind == KindRequest })
		for i := range n {
			b.Publish(seqEvent(i))
			b.Publish(Event{Kind: KindSystem})
		}
		if err := closeBus(t, b, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		c, err := s.Count(context.Background(), Filter{})
		if err != nil || c != n || b.Dropped() != 0 {
			t.Errorf("Count = %d, %v, dropped %d; want %d, nil, 0", c, err, b.Dropped(), n)
		}
	})
}

func TestStartRetention(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s Store, _ func() Store) {
		now := time.Now()
		write(t, s,
			Event{Time: now.Add(-3 * time.Hour), Kind: KindRequest},
			Event{Time: now.Add(-2 * time.Hour), Kind: KindRequest},
			Event{Time: now.Add(-time.Minute), Kind: KindRequest},
		)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		StartRetention(ctx, s, time.Hour, 10*time.Millisecond, nil)
		waitFor(t, "retention", func() bool {
			n, err := s.Count(context.Background(), Filter{})
			return err == nil && n == 1
		})
	})
}

func TestOpenSQLiteErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(dir, "ro")
	if err := os.Mkdir(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, wantErr string
		skipRoot            bool
	}{
		{"empty", "", "empty path", false},
		{"question mark", filepath.Join(dir, "a?b.db"), "plain file path", false},
		{"uri", "file:" + filepath.Join(dir, "a.db"), "plain file path", false},
		{"memory", ":memory:", "plain file path", false},
		{"parent is a file", filepath.Join(file, "sub", "events.db"), "create directory", false},
		// Root ignores directory permissions, so this only runs as a user.
		{"read-only dir", filepath.Join(readOnly, "events.db"), "is not writable", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.skipRoot && os.Geteuid() == 0 {
				t.Skip("running as root")
			}
			s, err := OpenSQLite(tc.path)
			if err == nil {
				_ = s.Close()
				t.Fatalf("OpenSQLite(%q) succeeded", tc.path)
			}
			if !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "events: sqlite") {
				t.Errorf("error %q, want it to start with %q and contain %q", err, "events: sqlite", tc.wantErr)
			}
		})
	}
}

func TestSQLitePragmas(t *testing.T) {
	t.Parallel()
	s, err := OpenSQLite(filepath.Join(t.TempDir(), "e.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db := s.(*sqliteStore).db
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "1", "busy_timeout": "5000"} {
		var got string
		if err := db.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
}

func TestFilterLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want int }{
		{0, 100}, {-1, 100}, {1, 1}, {10000, 10000}, {10001, 10000},
	} {
		if got := (Filter{Limit: tc.in}).limit(); got != tc.want {
			t.Errorf("Filter{Limit: %d}.limit() = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestStoreQueryLimitClamp(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s Store, _ func() Store) {
		evs := make([]Event, 150)
		for i := range evs {
			evs[i] = Event{Time: filterBase, Kind: KindRequest, RequestID: fmt.Sprint(i)}
		}
		write(t, s, evs...)
		if got := len(query(t, s, Filter{})); got != defaultQueryLimit {
			t.Errorf("default limit returned %d, want %d", got, defaultQueryLimit)
		}
	})
}

func TestStoreRates(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s Store, _ func() Store) {
		base := time.Unix(1_699_999_980, 0) // on a minute boundary
		var evs []Event
		add := func(route, ip string, at time.Duration, n int, action string) {
			for i := range n {
				evs = append(evs, Event{Time: base.Add(at + time.Duration(i)*time.Millisecond), Kind: KindRequest, Route: route, ClientIP: ip, Action: action})
			}
		}
		add("api", "192.0.2.1", 0, 5, "allow")
		add("api", "192.0.2.1", 61*time.Second, 3, "allow")
		add("api", "192.0.2.2", 10*time.Second, 2, "allow")
		add("api", "192.0.2.2", 20*time.Second, 7, "deny") // excluded below
		add("login", "192.0.2.1", 5*time.Second, 1, "allow")
		evs = append(evs, Event{Time: base, Kind: KindVerdict, Route: "api", ClientIP: "192.0.2.9", Action: "deny"})
		write(t, s, evs...)

		got, err := s.Rates(context.Background(), Filter{Kinds: []Kind{KindRequest}, NotAction: "deny"}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		type key struct {
			route, ip string
			start     int64
		}
		m := map[key]int64{}
		for _, b := range got {
			m[key{b.Route, b.ClientIP, b.Start.Unix()}] = b.Count
		}
		want := map[key]int64{
			{"api", "192.0.2.1", base.Unix()}:      5,
			{"api", "192.0.2.1", base.Unix() + 60}: 3,
			{"api", "192.0.2.2", base.Unix()}:      2,
			{"login", "192.0.2.1", base.Unix()}:    1,
		}
		if diff := cmp.Diff(want, m, cmp.AllowUnexported(key{})); diff != "" {
			t.Errorf("rates (-want +got):\n%s", diff)
		}
	})
}

func TestRollups(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		base := time.Unix(1_699_999_980, 0)
		now := base
		sink := NewRollupSink(s, 10*time.Second)
		sink.now = func() time.Time { return now }
		var batch []Event
		for i := range 1000 { // a flood from one client: one rollup row per bucket
			batch = append(batch, Event{Time: base.Add(time.Duration(i) * 15 * time.Millisecond), Kind: KindRequest, Route: "api",
				ClientIP: "192.0.2.1", Method: "GET", Status: 200, Action: "allow", Latency: time.Millisecond})
		}
		batch = append(batch,
			Event{Time: base, Kind: KindRequest, Route: "api", ClientIP: "192.0.2.2", Status: 429, Action: "deny"},
			Event{Time: base, Kind: KindVerdict, Route: "api", ClientIP: "192.0.2.2", Check: "ratelimit", Action: "deny", Reason: "rate-limited"})
		if err := sink.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
		// The verdict is stored at once, one row; requests wait for their bucket.
		if n, _ := s.Count(ctx, Filter{}); n != 1 {
			t.Fatalf("raw rows after Write: %d, want the verdict only", n)
		}
		now = base.Add(time.Minute)
		if err := sink.FlushComplete(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := s.Rates(ctx, Filter{Kinds: []Kind{KindRequest}, NotAction: "deny"}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ClientIP != "192.0.2.1" || got[0].Count != 1000 {
			t.Fatalf("rates from rollups: %+v", got)
		}
		// Verdict-only filters do not count rollups.
		got, _ = s.Rates(ctx, Filter{Kinds: []Kind{KindVerdict}}, time.Minute)
		if len(got) != 1 || got[0].Count != 1 {
			t.Fatalf("verdict rates: %+v", got)
		}
		if _, err := s.Prune(ctx, base.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Rates(ctx, Filter{}, time.Minute); len(got) != 0 {
			t.Fatalf("rollups survived prune: %+v", got)
		}
	})
}
