package detect

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/apiguard/apiguard/internal/state"
	"github.com/apiguard/apiguard/internal/testutil"
)

// Two gateway instances each see half of a distributed attack. Sharing a
// backend, together they see all of it; with private memory, neither
// does.
func TestSharedCountersAcrossInstances(t *testing.T) {
	t.Parallel()
	backends := []struct {
		name string
		make func(t *testing.T) (a, b state.Backend)
	}{
		{"private memory (control)", func(*testing.T) (state.Backend, state.Backend) { return nil, nil }},
		{"shared memory", func(*testing.T) (state.Backend, state.Backend) {
			m := state.NewMemory(state.MemoryOptions{})
			t.Cleanup(func() { _ = m.Close() })
			return m, m
		}},
		{"redis", func(t *testing.T) (state.Backend, state.Backend) {
			addr := testutil.Redis(t)
			prefix := "apiguard-test:" + randHex() + ":"
			var bs [2]state.Backend
			for i := range bs {
				r, err := state.NewRedis(state.RedisOptions{Addrs: []string{addr}, KeyPrefix: prefix})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = r.Close() })
				bs[i] = r
			}
			t.Cleanup(func() { deletePrefix(addr, prefix) })
			return bs[0], bs[1]
		}},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			a, b := be.make(t)
			clock := &fakeClock{t: t0}
			cfg := only(DetectorLogin)
			cfg.Risk.HalfLife = "1h"
			var engines [2]*Engine
			for i, backend := range []state.Backend{a, b} {
				e, err := New(cfg, Options{Clock: clock.now, Backend: backend})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = e.Close() })
				engines[i] = e
			}
			// Low and slow: 40 addresses, one attempt each, spread over
			// both instances; per-username: 24 failures on one account
			// from 12 addresses, alternating instances.
			var found = map[string]bool{}
			for i := range 40 {
				clock.add(10 * time.Second)
				for _, f := range engines[i%2].Observe(login(clock.t, addr(400+i), tool("shared"), fmt.Sprintf("leak%d", i), false)) {
					found[f.Rule] = true
				}
			}
			for i := range 24 {
				clock.add(5 * time.Second)
				for _, f := range engines[i%2].Observe(login(clock.t, addr(500+i%12), tool(fmt.Sprint(i)), "dave", false)) {
					found[f.Rule] = true
				}
			}
			shared := a != nil
			for _, rule := range []string{"distributed", "user_failures", "user_many_clients"} {
				if found[rule] != shared {
					t.Errorf("%s found = %v, want %v", rule, found[rule], shared)
				}
			}
			for _, e := range engines {
				if st := e.Stats(); st.BackendErrors != 0 {
					t.Errorf("backend errors: %+v", st)
				}
			}
			if shared {
				// Risk is per instance: the instance that made the finding
				// scores the fingerprint.
				s0, _ := engines[0].Score(FingerprintKey(tool("shared")[0], tool("shared")[1]))
				s1, _ := engines[1].Score(FingerprintKey(tool("shared")[0], tool("shared")[1]))
				if max(s0, s1) < BlockScore {
					t.Errorf("fingerprint risk %d/%d", s0, s1)
				}
			}
		})
	}
}

func randHex() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// deletePrefix removes a test's keys (counters and marks).
func deletePrefix(addr, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		c.Del(ctx, keys...)
	}
}
