package decision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/state"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newMemStore(t *testing.T, c *clock, o Options) (*Store, *state.Memory) {
	t.Helper()
	mem := state.NewMemory(state.MemoryOptions{Clock: c.Now})
	t.Cleanup(func() { _ = mem.Close() })
	o.Clock = c.Now
	s, err := NewStore(mem, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, mem
}

func mustAdd(t testing.TB, s *Store, d Decision) Decision {
	t.Helper()
	got, err := s.Add(context.Background(), d)
	if err != nil {
		t.Fatalf("Add(%+v): %v", d, err)
	}
	return got
}

func dec(key string, a Action, source string, expires time.Time) Decision {
	return Decision{Key: key, Action: a, Source: source, Reason: "test", Expires: expires}
}

func TestMatchOrder(t *testing.T) {
	t.Parallel()
	c := newClock()
	exp := c.Now().Add(time.Hour)
	later := c.Now().Add(2 * time.Hour)
	type add struct {
		key    string
		action Action
		source string
		exp    time.Time
	}
	for _, tc := range []struct {
		desc       string
		adds       []add
		keys       []string
		wantAction Action
		wantSource string
		wantKey    string
	}{
		{"nothing", nil, []string{"ip:192.0.2.1"}, 0, "", ""},
		{"block beats throttle", []add{
			{"ip:192.0.2.1", Throttle, "scraping", exp}, {"key:acme", Block, "stuffing", exp},
		}, []string{"ip:192.0.2.1", "key:acme"}, Block, "stuffing", "key:acme"},
		{"challenge beats throttle", []add{
			{"ip:192.0.2.1", Throttle, "scraping", exp}, {"fp:t13", Challenge, "bot", exp},
		}, []string{"ip:192.0.2.1", "fp:t13"}, Challenge, "bot", "fp:t13"},
		{"manual allow beats detector block", []add{
			{"ip:192.0.2.1", Block, "stuffing", exp}, {"key:partner", Allow, SourceManual, exp},
		}, []string{"ip:192.0.2.1", "key:partner"}, Allow, SourceManual, "key:partner"},
		{"manual allow beats manual block", []add{
			{"ip:192.0.2.1", Block, SourceManual, exp}, {"net:192.0.2.0/24", Allow, SourceManual, exp},
		}, []string{"ip:192.0.2.1"}, Allow, SourceManual, "net:192.0.2.0/24"},
		{"detector allow overrides nothing", []add{
			{"ip:192.0.2.1", Throttle, "scraping", exp}, {"ip:192.0.2.1", Allow, "goodbot", exp},
		}, []string{"ip:192.0.2.1"}, Throttle, "scraping", "ip:192.0.2.1"},
		{"detector allow alone matches", []add{
			{"ip:192.0.2.1", Allow, "goodbot", exp},
		}, []string{"ip:192.0.2.1"}, Allow, "goodbot", "ip:192.0.2.1"},
		{"same action: manual first", []add{
			{"ip:192.0.2.1", Block, "stuffing", later}, {"ip:192.0.2.1", Block, SourceManual, exp},
		}, []string{"ip:192.0.2.1"}, Block, SourceManual, "ip:192.0.2.1"},
		{"same action and class: later expiry", []add{
			{"ip:192.0.2.1", Block, "a", exp}, {"country:KP", Block, "b", later},
		}, []string{"ip:192.0.2.1", "country:KP"}, Block, "b", "country:KP"},
		{"other keys do not match", []add{
			{"sub:alice", Block, SourceManual, exp}, {"dev:d1", Block, SourceManual, exp},
		}, []string{"sub:bob", "dev:d2", "key:alice"}, 0, "", ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			s, _ := newMemStore(t, c, Options{})
			for _, a := range tc.adds {
				mustAdd(t, s, dec(a.key, a.action, a.source, a.exp))
			}
			got, ok := s.Match(tc.keys...)
			if ok != (tc.wantAction != 0) || got.Action != tc.wantAction || got.Source != tc.wantSource || got.Key != tc.wantKey {
				t.Fatalf("Match = %v %s/%s/%s, want %s/%s/%s", ok, got.Action, got.Source, got.Key, tc.wantAction, tc.wantSource, tc.wantKey)
			}
			// Key order must not matter.
			rev := make([]string, len(tc.keys))
			for i, k := range tc.keys {
				rev[len(tc.keys)-1-i] = k
			}
			if got2, _ := s.Match(rev...); got2.ID != got.ID {
				t.Fatalf("reversed keys pick %s, want %s", got2.ID, got.ID)
			}
		})
	}
}

func TestCIDRMatching(t *testing.T) {
	t.Parallel()
	c := newClock()
	s, _ := newMemStore(t, c, Options{})
	exp := c.Now().Add(time.Hour)
	mustAdd(t, s, dec("net:10.0.0.0/24", Block, "scanner", exp))
	mustAdd(t, s, dec("net:10.0.0.0/8", Throttle, "scanner", exp))
	mustAdd(t, s, dec("net:2001:db8:1::/48", Challenge, "bot", exp))
	mustAdd(t, s, dec("ip:10.9.9.9", Challenge, "bot", exp))
	mustAdd(t, s, dec("net:0.0.0.0/0", Allow, "goodbot", exp)) // the weakest rank: matches only what nothing else does
	for _, tc := range []struct {
		ip   string
		want Action
		key  string
	}{
		{"10.0.0.5", Block, "net:10.0.0.0/24"},
		{"::ffff:10.0.0.255", Block, "net:10.0.0.0/24"},
		{"10.0.1.5", Throttle, "net:10.0.0.0/8"},
		{"10.9.9.9", Challenge, "ip:10.9.9.9"},
		{"2001:db8:1:ffff::1", Challenge, "net:2001:db8:1::/48"},
		{"2001:db8:2::1", 0, ""},
		{"192.0.2.1", Allow, "net:0.0.0.0/0"},
	} {
		ip := netip.MustParseAddr(tc.ip)
		got, ok := s.MatchIP(ip)
		if ok != (tc.want != 0) || got.Action != tc.want || got.Key != tc.key {
			t.Errorf("MatchIP(%s) = %v %s %s, want %s %s", tc.ip, ok, got.Action, got.Key, tc.want, tc.key)
		}
		if got2, _ := s.Match(IPKey(ip)); got2.ID != got.ID {
			t.Errorf("Match(%s) picks %s, MatchIP %s", IPKey(ip), got2.Key, got.Key)
		}
	}
	// A net key matches the networks containing it.
	if got, _ := s.Match("net:10.0.0.0/25"); got.Key != "net:10.0.0.0/24" {
		t.Errorf("Match(net:10.0.0.0/25) = %s", got.Key)
	}
	if got, _ := s.Match("net:10.0.0.0/16"); got.Key != "net:10.0.0.0/8" {
		t.Errorf("Match(net:10.0.0.0/16) = %s", got.Key)
	}
	// MatchIP with other keys.
	mustAdd(t, s, dec("key:partner", Allow, SourceManual, exp))
	if got, _ := s.MatchIP(netip.MustParseAddr("10.0.0.5"), "key:partner"); got.Action != Allow {
		t.Errorf("manual allow on the key did not override the network block: %+v", got)
	}
	if _, ok := s.MatchIP(netip.Addr{}, "key:nobody"); ok {
		t.Error("zero address matched")
	}
	// Deleting the /24 leaves the /8.
	if err := s.Delete(t.Context(), "net:10.0.0.9/24"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.MatchIP(netip.MustParseAddr("10.0.0.5")); got.Key != "net:10.0.0.0/8" {
		t.Errorf("after delete: %s", got.Key)
	}
}

func TestExpiryWithoutResync(t *testing.T) {
	t.Parallel()
	c := newClock()
	s, mem := newMemStore(t, c, Options{})
	d := mustAdd(t, s, dec("ip:192.0.2.1", Block, "stuffing", c.Now().Add(10*time.Second)))
	mustAdd(t, s, dec("ip:192.0.2.1", Throttle, "scraping", c.Now().Add(time.Minute)))
	if got, _ := s.Match("ip:192.0.2.1"); got.ID != d.ID {
		t.Fatalf("before expiry: %+v", got)
	}
	c.Advance(10 * time.Second) // exactly at expiry: no longer in force
	if got, _ := s.Match("ip:192.0.2.1"); got.Action != Throttle {
		t.Fatalf("at expiry: %+v", got)
	}
	c.Advance(time.Minute)
	if got, ok := s.Match("ip:192.0.2.1"); ok {
		t.Fatalf("after expiry: %+v", got)
	}
	// The backend expired them too, and a resync sweeps the snapshot.
	if _, found, _ := mem.Get(t.Context(), "decisions/"+d.ID); found {
		t.Fatal("backend still holds the expired decision")
	}
	if s.Len() != 2 {
		t.Fatalf("Len before sweep = %d", s.Len())
	}
	if err := s.resync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 0 {
		t.Fatalf("Len after sweep = %d", s.Len())
	}
}

func TestAddDeleteList(t *testing.T) {
	t.Parallel()
	c := newClock()
	s, mem := newMemStore(t, c, Options{})
	ctx := t.Context()
	exp := c.Now().Add(time.Hour)
	a := mustAdd(t, s, dec("ip:192.0.2.1", Block, "stuffing", exp))
	c.Advance(time.Second)
	b := mustAdd(t, s, dec("ip:::ffff:192.0.2.1", Throttle, "scraping", exp))
	c.Advance(time.Second)
	m := mustAdd(t, s, Decision{ID: "manual-1", Key: "country:kp", Action: Block, Source: SourceManual, Expires: exp})
	if b.Key != "ip:192.0.2.1" || m.Key != "country:KP" || m.ID != "manual-1" {
		t.Fatalf("not canonical: %q %q %q", b.Key, m.Key, m.ID)
	}

	// Re-adding the same key, action and source refreshes, not duplicates.
	c.Advance(time.Second)
	a2 := mustAdd(t, s, dec("ip:192.0.2.1", Block, "stuffing", exp.Add(time.Hour)))
	if a2.ID != a.ID || s.Len() != 3 {
		t.Fatalf("re-add: id %s (was %s), %d decisions", a2.ID, a.ID, s.Len())
	}

	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range list {
		ids = append(ids, d.ID)
	}
	// Newest first: a2 (refreshed last), manual-1, b.
	if fmt.Sprint(ids) != fmt.Sprint([]string{a.ID, "manual-1", b.ID}) {
		t.Fatalf("List order %v", ids)
	}
	if !list[0].Expires.Equal(exp.Add(time.Hour)) {
		t.Fatalf("refreshed expiry not stored: %v", list[0].Expires)
	}

	// The returned maps are the caller's own.
	withEv := mustAdd(t, s, Decision{Key: "sub:alice", Action: Challenge, Source: "ato", Expires: exp, Evidence: map[string]string{"n": "1"}})
	withEv.Evidence["n"] = "tampered"
	if got, _ := s.Match("sub:alice"); got.Evidence["n"] != "1" {
		t.Fatalf("snapshot shares the returned map: %v", got.Evidence)
	}

	// Delete by ID, then by key (every decision of the key).
	if err := s.Delete(ctx, "manual-1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Match("country:KP"); ok {
		t.Fatal("deleted decision still matches")
	}
	if err := s.Delete(ctx, "manual-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if err := s.Delete(ctx, "ip:::ffff:192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Match("ip:192.0.2.1"); ok {
		t.Fatal("decisions of the deleted key still match")
	}
	for _, id := range []string{a.ID, b.ID} {
		if _, found, _ := mem.Get(ctx, "decisions/"+id); found {
			t.Fatalf("%s still in the backend", id)
		}
	}
	if err := s.Delete(ctx, "ip:192.0.2.99"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete of an unknown key: %v", err)
	}
	for _, bad := range []string{"bogus:key", "not an id"} {
		if err := s.Delete(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Delete(%q): %v", bad, err)
		}
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d", s.Len())
	}

	// Invalid decisions are refused before touching the backend.
	if _, err := s.Add(ctx, dec("ip:nope", Block, "x", exp)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid add: %v", err)
	}
}

// Two Stores on one memory backend: the change feed in-process.
func TestTwoStoresMemory(t *testing.T) {
	t.Parallel()
	c := newClock()
	mem := state.NewMemory(state.MemoryOptions{})
	t.Cleanup(func() { _ = mem.Close() })
	a, b := startPair(t, mem, Options{Clock: c.Now, ResyncInterval: time.Hour})
	testPropagation(t, c, a, b)
}

func startPair(t *testing.T, b state.Backend, o Options) (*Store, *Store) {
	t.Helper()
	var out [2]*Store
	for i := range out {
		s, err := NewStore(b, o)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		out[i] = s
	}
	return out[0], out[1]
}

// eventually polls cond for up to limit and reports how long it took.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

// testPropagation: an Add on a is seen by b within 1s, a delete likewise.
// With a long ResyncInterval this can only be the change feed.
func testPropagation(t *testing.T, c *clock, a, b *Store) {
	t.Helper()
	ctx := t.Context()
	d := mustAdd(t, a, dec("net:198.51.100.0/24", Block, "scanner", c.Now().Add(time.Hour)))
	took := eventually(t, time.Second, "add on A seen by B", func() bool {
		got, ok := b.MatchIP(netip.MustParseAddr("198.51.100.7"))
		return ok && got.ID == d.ID && got.Action == Block
	})
	t.Logf("add propagated in %v", took)
	if err := b.Delete(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	took = eventually(t, time.Second, "delete on B seen by A", func() bool {
		_, ok := a.MatchIP(netip.MustParseAddr("198.51.100.7"))
		return !ok
	})
	t.Logf("delete propagated in %v", took)
}

// A change whose feed message is lost (here: written to the backend
// directly) appears at the next resync, and so does a removal.
func TestResyncAfterMissedPublish(t *testing.T) {
	t.Parallel()
	mem := state.NewMemory(state.MemoryOptions{})
	t.Cleanup(func() { _ = mem.Close() })
	testResync(t, mem, "decisions/")
}

func testResync(t *testing.T, b state.Backend, prefix string) {
	t.Helper()
	ctx := t.Context()
	s, err := NewStore(b, Options{Prefix: prefix, ResyncInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	d := Decision{Key: "fp:t13d1516h2", Action: Challenge, Source: "bot", Expires: time.Now().Add(time.Hour)}
	if err := d.normalize(time.Now()); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(d)
	if err := b.Put(ctx, prefix+d.ID, raw, time.Hour); err != nil {
		t.Fatal(err)
	}
	// Garbage next to it is skipped, not fatal.
	if err := b.Put(ctx, prefix+"junk", []byte("{not json"), time.Hour); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 3*time.Second, "unannounced decision picked up by resync", func() bool {
		got, ok := s.Match("fp:t13d1516h2")
		return ok && got.ID == d.ID
	})
	t.Logf("resync picked it up after %v", took)
	if at, err := s.Synced(); err != nil || at.IsZero() {
		t.Fatalf("Synced() = %v, %v", at, err)
	}
	if err := b.Delete(ctx, prefix+d.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "unannounced removal picked up by resync", func() bool {
		_, ok := s.Match("fp:t13d1516h2")
		return !ok
	})
}

// Changes applied while a resync's Scan runs survive the reconciliation
// even though the Scan result predates them.
func TestResyncReplaysConcurrentChanges(t *testing.T) {
	t.Parallel()
	c := newClock()
	mem := state.NewMemory(state.MemoryOptions{Clock: c.Now})
	t.Cleanup(func() { _ = mem.Close() })
	gb := &gatedScan{Backend: mem, entered: make(chan struct{}), release: make(chan struct{})}
	s, err := NewStore(gb, Options{Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	old := mustAdd(t, s, dec("ip:192.0.2.1", Block, "x", c.Now().Add(time.Hour)))
	done := make(chan error)
	go func() { done <- s.resync(context.Background()) }()
	<-gb.entered // the Scan has read the backend: it holds old, not new
	added := mustAdd(t, s, dec("ip:192.0.2.2", Block, "x", c.Now().Add(time.Hour)))
	// Simulate a delete that the backend saw before the Scan but this
	// Store learns of during it (a feed message).
	s.apply([]change{{id: old.ID}})
	close(gb.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Match("ip:192.0.2.2"); !ok {
		t.Fatalf("decision %s added during the scan was lost", added.ID)
	}
	if _, ok := s.Match("ip:192.0.2.1"); ok {
		t.Fatal("decision deleted during the scan came back")
	}
}

type gatedScan struct {
	state.Backend
	entered, release chan struct{}
}

func (g *gatedScan) Scan(ctx context.Context, prefix string, limit int) ([]state.Entry, error) {
	es, err := g.Backend.Scan(ctx, prefix, limit)
	close(g.entered)
	<-g.release
	return es, err
}

func TestCap(t *testing.T) {
	t.Parallel()
	c := newClock()
	s, _ := newMemStore(t, c, Options{MaxDecisions: 3})
	ctx := t.Context()
	exp := c.Now().Add(time.Hour)
	for i := range 3 {
		mustAdd(t, s, dec(fmt.Sprintf("sub:u%d", i), Throttle, "scraping", exp.Add(time.Duration(i)*time.Minute)))
	}
	if _, err := s.Add(ctx, dec("sub:u3", Throttle, "scraping", exp)); !errors.Is(err, ErrFull) {
		t.Fatalf("4th throttle: %v", err)
	}
	// Refreshing a kept decision is always possible.
	mustAdd(t, s, dec("sub:u0", Throttle, "scraping", exp.Add(time.Hour)))
	// A block outranks the throttles: it displaces the lowest-ranked, the
	// throttle expiring first (u1, since u0 was just extended).
	mustAdd(t, s, dec("ip:192.0.2.1", Block, SourceManual, exp))
	if s.Len() != 3 {
		t.Fatalf("Len = %d", s.Len())
	}
	if _, ok := s.Match("sub:u1"); ok {
		t.Fatal("the lowest-ranked decision was kept")
	}
	for _, k := range []string{"sub:u0", "sub:u2", "ip:192.0.2.1"} {
		if _, ok := s.Match(k); !ok {
			t.Fatalf("%s not kept", k)
		}
	}
	// A resync sees 4 in the backend and keeps the same 3.
	if err := s.resync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Match("sub:u1"); ok || s.Len() != 3 {
		t.Fatalf("after resync: u1 kept %v, Len %d", ok, s.Len())
	}
}

// Match runs concurrently with writers (for -race) and always sees a
// consistent snapshot.
func TestConcurrentMatch(t *testing.T) {
	t.Parallel()
	c := newClock()
	s, _ := newMemStore(t, c, Options{})
	exp := c.Now().Add(time.Hour)
	mustAdd(t, s, dec("net:10.0.0.0/8", Block, SourceManual, exp))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			ip := netip.MustParseAddr("10.1.2.3")
			for {
				select {
				case <-stop:
					return
				default:
				}
				if got, ok := s.MatchIP(ip, "key:k1", "country:DE"); !ok || got.Action != Block {
					t.Errorf("MatchIP = %v %+v", ok, got)
					return
				}
			}
		})
	}
	for i := range 200 {
		mustAdd(t, s, dec(fmt.Sprintf("net:10.%d.0.0/16", i%250), Throttle, "scraping", exp))
		mustAdd(t, s, dec(fmt.Sprintf("key:k%d", i), Challenge, "bot", exp))
	}
	close(stop)
	wg.Wait()
}

func TestMatchDoesNotAllocate(t *testing.T) {
	c := newClock()
	s, _ := newMemStore(t, c, Options{})
	exp := c.Now().Add(time.Hour)
	mustAdd(t, s, dec("net:10.0.0.0/8", Block, SourceManual, exp))
	mustAdd(t, s, dec("key:acme", Throttle, "x", exp))
	mustAdd(t, s, dec("ip:2001:db8::1", Challenge, "x", exp))
	ip := netip.MustParseAddr("10.1.2.3")
	var d Decision
	if n := testing.AllocsPerRun(200, func() {
		d, _ = s.MatchIP(ip, "key:acme", "country:DE", "fp:x")
		d, _ = s.Match("ip:2001:db8::1", "key:acme")
	}); n != 0 {
		t.Fatalf("Match allocates %v times", n)
	}
	_ = d
}

func TestFeedRobustness(t *testing.T) {
	t.Parallel()
	c := newClock()
	mem := state.NewMemory(state.MemoryOptions{})
	t.Cleanup(func() { _ = mem.Close() })
	a, b := startPair(t, mem, Options{Clock: c.Now, ResyncInterval: time.Hour})
	ctx := t.Context()
	for _, msg := range []string{
		"", "{", `{"op":"put"}`, `{"op":"put","decision":{"id":"x","key":"nope","action":"block"}}`,
		`{"op":"del","ids":["does-not-exist"]}`, `{"op":"what"}`, `[]`,
	} {
		if err := mem.Publish(ctx, "decisions/feed", []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	// The feed still works after the garbage.
	testPropagation(t, c, a, b)
	// An already-expired put deletes what the receiver holds.
	d := mustAdd(t, b, dec("dev:d1", Block, "x", c.Now().Add(time.Hour)))
	eventually(t, 3*time.Second, "add seen", func() bool { _, ok := a.Match("dev:d1"); return ok })
	expired := d
	expired.Expires = c.Now().Add(-time.Second)
	raw, _ := json.Marshal(message{Op: "put", From: "someone-else", Decision: &expired})
	if err := mem.Publish(ctx, "decisions/feed", raw); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "expired put removes", func() bool { _, ok := a.Match("dev:d1"); return !ok })
}

func TestStartTwiceAndOptions(t *testing.T) {
	t.Parallel()
	mem := state.NewMemory(state.MemoryOptions{})
	t.Cleanup(func() { _ = mem.Close() })
	if _, err := NewStore(nil, Options{}); err == nil {
		t.Fatal("nil backend accepted")
	}
	if _, err := NewStore(mem, Options{ResyncInterval: -1}); err == nil {
		t.Fatal("negative interval accepted")
	}
	s, err := NewStore(mem, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err == nil {
		t.Fatal("second Start accepted")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
