package decision

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/state"
	"github.com/apiguard/apiguard/internal/testutil"
)

// redisPair connects two backends (two gateway instances) to the shared
// test Redis under a prefix unique to the test, and removes its keys at
// the end.
func redisPair(t *testing.T) (state.Backend, state.Backend, string) {
	t.Helper()
	addr := testutil.Redis(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	keyPrefix := "apiguard-test:" + hex.EncodeToString(b) + ":"
	var out [2]state.Backend
	for i := range out {
		r, err := state.NewRedis(state.RedisOptions{Addrs: []string{addr}, KeyPrefix: keyPrefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		out[i] = r
	}
	prefix := "decisions-" + t.Name() + "/"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		es, _ := out[0].Scan(ctx, "", 10000)
		for _, e := range es {
			_ = out[0].Delete(ctx, e.Key)
		}
	})
	return out[0], out[1], prefix
}

func startOn(t *testing.T, b state.Backend, o Options) *Store {
	t.Helper()
	s, err := NewStore(b, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Two instances on one Redis: an Add on A matches on B within 1s, and a
// Delete on B stops matching on A within 1s. ResyncInterval is an hour,
// so this is the change feed alone.
func TestRedisPropagation(t *testing.T) {
	t.Parallel()
	ba, bb, prefix := redisPair(t)
	o := Options{Prefix: prefix, ResyncInterval: time.Hour}
	a, b := startOn(t, ba, o), startOn(t, bb, o)
	testPropagation(t, &clock{t: time.Now()}, a, b)
}

// A decision written without a feed message (a lost one) reaches B at its
// next resync, and so does its removal.
func TestRedisResyncAfterMissedPublish(t *testing.T) {
	t.Parallel()
	ba, _, prefix := redisPair(t)
	testResync(t, ba, prefix)
}

// A decision stops matching at its expiry on every instance, before any
// resync, and Redis drops it too.
func TestRedisExpiry(t *testing.T) {
	t.Parallel()
	ba, bb, prefix := redisPair(t)
	o := Options{Prefix: prefix, ResyncInterval: time.Hour}
	a, b := startOn(t, ba, o), startOn(t, bb, o)
	ip := netip.MustParseAddr("203.0.113.50")
	expires := time.Now().Add(400 * time.Millisecond)
	d := mustAdd(t, a, Decision{Key: IPKey(ip), Action: Block, Source: "stuffing", Expires: expires})
	eventually(t, time.Second, "seen on B", func() bool { _, ok := b.MatchIP(ip); return ok })
	for _, s := range []*Store{a, b} {
		eventually(t, 2*time.Second, "expired", func() bool { _, ok := s.MatchIP(ip); return !ok })
	}
	if time.Now().Before(d.Expires) {
		t.Fatalf("stopped matching before its expiry %v", d.Expires)
	}
	eventually(t, 2*time.Second, "gone from redis", func() bool {
		_, found, err := ba.Get(t.Context(), prefix+d.ID)
		return err == nil && !found
	})
	list, err := b.List(t.Context())
	if err != nil || len(list) != 0 {
		t.Fatalf("List after expiry: %v, %v", list, err)
	}
}

// A Store started after decisions were made loads them, and List on any
// instance shows the same decisions.
func TestRedisLateJoiner(t *testing.T) {
	t.Parallel()
	ba, bb, prefix := redisPair(t)
	o := Options{Prefix: prefix, ResyncInterval: time.Hour}
	a := startOn(t, ba, o)
	exp := time.Now().Add(time.Hour)
	for _, k := range []string{"key:acme", "country:KP", "net:2001:db8::/32"} {
		mustAdd(t, a, Decision{Key: k, Action: Block, Source: SourceManual, Expires: exp})
	}
	b := startOn(t, bb, o)
	if _, ok := b.MatchIP(netip.MustParseAddr("2001:db8::5"), "key:nobody"); !ok {
		t.Fatal("late joiner did not load the decisions")
	}
	la, err := a.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(la) != 3 || len(lb) != 3 {
		t.Fatalf("List: %d and %d decisions", len(la), len(lb))
	}
	for i := range la {
		if !equal(&la[i], &lb[i]) {
			t.Fatalf("instances disagree: %+v vs %+v", la[i], lb[i])
		}
	}
}
