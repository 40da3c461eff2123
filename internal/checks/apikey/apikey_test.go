package apikey

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/apiguard/apiguard/internal/state"
	"github.com/apiguard/apiguard/internal/testutil"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestGenerateAndParse(t *testing.T) {
	t.Parallel()
	plain, k := Generate("ci", []string{"orders:read"}, time.Hour, time.Now())
	if !strings.HasPrefix(plain, Prefix) || len(plain) < 60 {
		t.Fatalf("key %q lacks the prefix or entropy", plain)
	}
	id, secret, ok := parse(plain)
	if !ok || id != k.ID || !k.matches(secret) || k.matches(secret+"x") {
		t.Fatalf("parse/match: %v %q", ok, id)
	}
	if strings.Contains(string(k.Hash), secret) {
		t.Fatal("the stored hash contains the secret")
	}
	for _, bad := range []string{"", "agk_", "agk_id", "agk__secret", "xyz_id_secret", Prefix + strings.Repeat("a", 200)} {
		if _, _, ok := parse(bad); ok {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
}

// stores runs fn against SQLite and real PostgreSQL.
func stores(t *testing.T, fn func(t *testing.T, open func() *Store)) {
	for _, tc := range []struct{ driver, dsn string }{
		{"sqlite", filepath.Join(t.TempDir(), "events.db")},
		{"postgres", ""},
	} {
		t.Run(tc.driver, func(t *testing.T) {
			dsn := tc.dsn
			if tc.driver == "postgres" {
				dsn = testutil.Postgres(t)
			}
			fn(t, func() *Store {
				s, err := OpenStore(context.Background(), tc.driver, dsn)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Close() })
				return s
			})
		})
	}
}

func TestStore(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		_, a := Generate("a", []string{"x", "y"}, 0, time.Now())
		_, b := Generate("b", nil, time.Hour, time.Now().Add(time.Second))
		if err := s.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := s.Revoke(ctx, a.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := s.Revoke(ctx, a.ID, time.Now()); err != ErrNotFound {
			t.Fatalf("second revoke: %v", err)
		}
		list, err := open().List(ctx) // a second connection sees the same keys
		if err != nil || len(list) != 2 {
			t.Fatalf("list: %v %v", list, err)
		}
		if list[0].Name != "a" || list[0].RevokedAt.IsZero() || strings.Join(list[0].Scopes, ",") != "x,y" || string(list[0].Hash) != string(a.Hash) {
			t.Fatalf("a: %+v", list[0])
		}
		if list[1].Name != "b" || !list[1].RevokedAt.IsZero() || list[1].ExpiresAt.IsZero() {
			t.Fatalf("b: %+v", list[1])
		}
	})
}

func TestCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := OpenStore(ctx, "sqlite", filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	good, gk := Generate("partner", []string{"orders:read"}, time.Hour, now)
	expired, ek := Generate("old", []string{"orders:read"}, time.Minute, now.Add(-time.Hour))
	revoked, rk := Generate("leaked", []string{"orders:read"}, 0, now)
	narrow, nk := Generate("narrow", []string{"products:read"}, 0, now)
	for _, k := range []Key{gk, ek, rk, nk} {
		if err := s.Create(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.Revoke(ctx, rk.ID, now)
	keys, err := NewKeys(s, nil, time.Hour, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	chk := New(Config{Scopes: []string{"orders:read"}}, keys)
	bearer := New(Config{Header: "Authorization"}, keys)

	cases := []struct {
		desc   string
		chk    *Check
		header string
		value  string
		reason string
	}{
		{"valid", chk, "X-Api-Key", good, ""},
		{"missing", chk, "X-Api-Key", "", "unauthorized"},
		{"wrong secret", chk, "X-Api-Key", good[:len(good)-2] + "aa", "api-key-invalid"},
		{"unknown id answers the same", chk, "X-Api-Key", Prefix + "zzzzzzzz_" + strings.Repeat("a", 52), "api-key-invalid"},
		{"garbage", chk, "X-Api-Key", "hunter2", "api-key-invalid"},
		{"expired", chk, "X-Api-Key", expired, "api-key-expired"},
		{"revoked", chk, "X-Api-Key", revoked, "api-key-revoked"},
		{"scope missing", chk, "X-Api-Key", narrow, "insufficient-scope"},
		{"authorization ApiKey scheme", bearer, "Authorization", "ApiKey " + good, ""},
		{"authorization Bearer scheme", bearer, "Authorization", "Bearer " + good, ""},
		{"a JWT bearer is not ours", bearer, "Authorization", "Bearer eyJhbGciOi.x.y", "unauthorized"},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.value != "" {
			r.Header.Set(tc.header, tc.value)
		}
		req := &pipeline.Request{HTTP: r}
		v, err := tc.chk.Check(ctx, req)
		if err != nil || v.Reason != tc.reason {
			t.Errorf("%s: %+v %v", tc.desc, v, err)
			continue
		}
		if tc.reason == "" && (req.Identity.APIKey != "partner" || req.Identity.Scopes[0] != "orders:read") {
			t.Errorf("%s: identity %+v", tc.desc, req.Identity)
		}
		if r.Header.Get(tc.header) != "" && tc.header == "X-Api-Key" {
			t.Errorf("%s: the key was forwarded upstream", tc.desc)
		}
		if tc.reason != "" && strings.Contains(v.Detail, tc.value) && tc.value != "" {
			t.Errorf("%s: the detail echoes the key", tc.desc)
		}
	}
}

// TestRevocationReachesInstances: two gateway instances (two key views)
// share a database and Redis; a revocation announced on the change feed
// takes effect on both within a second, without waiting for the poll.
func TestRevocationReachesInstances(t *testing.T) {
	t.Parallel()
	addr := testutil.Redis(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")
	var views []*Keys
	var backends []state.Backend
	prefix := "t" + time.Now().Format("150405.000000") + ":"
	for range 2 {
		s, err := OpenStore(ctx, "sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		b, err := state.NewRedis(state.RedisOptions{Addrs: []string{addr}, KeyPrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		backends = append(backends, b)
		if len(views) == 0 {
			_, k := Generate("mobile-app", nil, 0, time.Now())
			if err := s.Create(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		v, err := NewKeys(s, b, time.Hour, quiet) // the poll never fires during the test
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = v.Close() })
		views = append(views, v)
	}
	time.Sleep(100 * time.Millisecond) // subscriptions established
	var id string
	for k := range *views[0].byID.Load() {
		id = k
	}
	admin, _ := OpenStore(ctx, "sqlite", path)
	defer admin.Close()
	if err := admin.Revoke(ctx, id, time.Now()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	Announce(ctx, backends[0])
	for _, v := range views {
		for (*v.byID.Load())[id].RevokedAt.IsZero() {
			if time.Since(start) > time.Second {
				t.Fatal("revocation did not reach an instance within 1s")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	t.Logf("revocation reached both instances in %v", time.Since(start).Round(time.Millisecond))
}
