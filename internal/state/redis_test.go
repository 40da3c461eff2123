package state

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/redis/go-redis/v9"
)

// TestRedisKeyLayout: the limits of one decision are prefix+"{key}:i",
// one hash tag, so they share a Cluster slot; the stored tat is integer
// nanoseconds and the key expires when the bucket is full again.
func TestRedisKeyLayout(t *testing.T) {
	prefix := randPrefix()
	r := newRedisForTest(t, prefix)
	ctx := context.Background()
	before := time.Now()
	if _, err := r.RateLimit(ctx, "user:42", []Limit{five, tenPer}, 1, nil); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	for i, span := range []time.Duration{400 * ms, time.Second} {
		k := prefix + "{user:42}:" + strconv.Itoa(i)
		v, err := r.c.Get(ctx, k).Result()
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		tat, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("%s = %q: %v", k, v, err)
		}
		// Same machine: the server's TIME is this clock.
		if lo, hi := before.Add(span).UnixNano()-int64(time.Second), after.Add(span).UnixNano()+int64(time.Second); tat < lo || tat > hi {
			t.Errorf("%s tat = %d, want within [%d, %d]", k, tat, lo, hi)
		}
		pttl, err := r.c.PTTL(ctx, k).Result()
		if err != nil || pttl <= 0 || pttl > span+time.Millisecond {
			t.Errorf("%s PTTL = %v, %v; want (0, %v]", k, pttl, err, span)
		}
	}
	slot0, _ := r.c.ClusterKeySlot(ctx, prefix+"{user:42}:0").Result()
	slot1, _ := r.c.ClusterKeySlot(ctx, prefix+"{user:42}:1").Result()
	if slot0 != slot1 {
		// CLUSTER KEYSLOT works on standalone servers only with
		// cluster support compiled in; equal (or both 0) is what matters.
		t.Errorf("limits of one key in slots %d and %d", slot0, slot1)
	}
}

// TestRedisSharedAcrossInstances: two gateway instances (two clients) see
// one state and one change feed.
func TestRedisSharedAcrossInstances(t *testing.T) {
	prefix := randPrefix()
	a := newRedisForTest(t, prefix)
	b := newRedisForTest(t, prefix)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 3 {
		if d, err := a.RateLimit(ctx, "shared", []Limit{burst3}, 1, nil); err != nil || !d.Allowed {
			t.Fatal(d, err)
		}
	}
	d, err := b.RateLimit(ctx, "shared", []Limit{burst3}, 1, nil)
	if err != nil || d.Allowed {
		t.Fatalf("instance b admitted after a drained the bucket: %+v %v", d, err)
	}
	if ok, _ := a.PutNX(ctx, "nonce", []byte("1"), time.Minute); !ok {
		t.Fatal("first PutNX failed")
	}
	if ok, _ := b.PutNX(ctx, "nonce", []byte("1"), time.Minute); ok {
		t.Fatal("nonce reused across instances")
	}
	ch, err := b.Subscribe(ctx, "decisions")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, "decisions", []byte("block k1")); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-ch:
		if string(msg) != "block k1" {
			t.Errorf("got %q", msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("message from instance a not delivered to b")
	}
}

// TestRedisNoScript: after SCRIPT FLUSH (a restarted or failed-over server)
// EVALSHA fails with NOSCRIPT and the call falls back to EVAL.
func TestRedisNoScript(t *testing.T) {
	r := newRedisForTest(t, "")
	ctx := context.Background()
	if _, err := r.RateLimit(ctx, "k", []Limit{five}, 1, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	d, err := r.RateLimit(ctx, "k", []Limit{five}, 1, nil)
	if err != nil || d.Results[0].Remaining != 3 {
		t.Fatalf("after SCRIPT FLUSH: %+v %v", d, err)
	}
	for _, f := range []func() error{
		func() error { _, err := r.Acquire(ctx, "k", 1, time.Minute); return err },
		func() error { return r.Release(ctx, "k") },
		func() error { _, err := r.Incr(ctx, "k", 1, time.Minute); return err },
	} {
		if err := r.c.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if err := f(); err != nil {
			t.Fatalf("after SCRIPT FLUSH: %v", err)
		}
	}
}

// TestRedisScanClock: ExpiresAt is computed with the client's Clock.
func TestRedisScanClock(t *testing.T) {
	addr := testutil.Redis(t)
	fixed := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	r, err := NewRedis(RedisOptions{Addrs: []string{addr}, KeyPrefix: randPrefix(), Clock: func() time.Time { return fixed }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	if err := r.Put(ctx, "x", []byte("1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	defer r.Delete(ctx, "x")
	es, err := r.Scan(ctx, "", 10)
	if err != nil || len(es) != 1 {
		t.Fatalf("Scan = %+v, %v", es, err)
	}
	if d := es[0].ExpiresAt.Sub(fixed); d <= 50*time.Second || d > time.Minute {
		t.Errorf("ExpiresAt - clock = %v, want ~1m", d)
	}
}

// TestRedisDownAtStart: NewRedis succeeds without Redis; calls fail fast
// with errors.
func TestRedisDownAtStart(t *testing.T) {
	addr := freeAddr(t)
	r, err := NewRedis(RedisOptions{Addrs: []string{addr}, DialTimeout: 200 * ms, ReadTimeout: 200 * ms, WriteTimeout: 200 * ms})
	if err != nil {
		t.Fatalf("NewRedis with Redis down: %v", err)
	}
	defer r.Close()
	start := time.Now()
	if err := r.Ping(context.Background()); err == nil {
		t.Fatal("Ping succeeded with nothing listening")
	}
	if _, err := r.RateLimit(context.Background(), "k", []Limit{five}, 1, nil); err == nil {
		t.Fatal("RateLimit succeeded with nothing listening")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("failing calls took %v", el)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := r.Subscribe(ctx, "c")
	if err != nil {
		t.Fatalf("Subscribe with Redis down: %v", err)
	}
	cancel()
	waitClosed(t, ch)
	if _, err := NewRedis(RedisOptions{}); err == nil {
		t.Error("NewRedis without Addrs succeeded")
	}
}

// TestRedisConcurrentHammer: many instances (clients) and goroutines on one
// key admit exactly Burst.
func TestRedisConcurrentHammer(t *testing.T) {
	prefix := randPrefix()
	clients := []*Redis{newRedisForTest(t, prefix), newRedisForTest(t, prefix), newRedisForTest(t, prefix)}
	lim := []Limit{{Count: 1, Period: time.Hour, Burst: 250}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for g := range 48 {
		wg.Go(func() {
			c := clients[g%len(clients)]
			res := make([]Result, 1)
			n := 0
			for range 20 {
				d, err := c.RateLimit(context.Background(), "hot", lim, 1, res)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					n++
				}
			}
			mu.Lock()
			admitted += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if admitted != 250 {
		t.Fatalf("admitted %d of 960 attempts, want exactly Burst 250", admitted)
	}
}

// --- Redis processes owned by the tests: testutil.StartRedisServer ---

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// TestRedisFault starts its own redis-server, then: kills it (every call
// returns an error within the timeouts), restarts it on the same port
// (calls succeed again within 2s, the subscription resumes), and freezes
// it with SIGSTOP (a server that accepts but never answers: calls still
// return within the timeouts).
func TestRedisFault(t *testing.T) {
	srv := testutil.StartRedisServer(t)
	addr := srv.Addr

	const dial, read, write = 300 * ms, 300 * ms, 300 * ms
	bound := dial + read + write + 300*ms // the call timeout plus scheduling slack
	r, err := NewRedis(RedisOptions{Addrs: []string{addr}, DialTimeout: dial, ReadTimeout: read, WriteTimeout: write, KeyPrefix: randPrefix()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	subCtx, cancelSub := context.WithCancel(ctx)
	defer cancelSub()
	feed, err := r.Subscribe(subCtx, "feed")
	if err != nil {
		t.Fatal(err)
	}
	lim := []Limit{{Count: 100, Period: time.Second, Burst: 100}}
	if d, err := r.RateLimit(ctx, "k", lim, 1, nil); err != nil || !d.Allowed {
		t.Fatalf("before the fault: %+v %v", d, err)
	}

	ops := map[string]func() error{
		"Ping":      func() error { return r.Ping(ctx) },
		"RateLimit": func() error { _, err := r.RateLimit(ctx, "k", lim, 1, nil); return err },
		"Charge":    func() error { _, err := r.Charge(ctx, "k", lim, 1, nil); return err },
		"Acquire":   func() error { _, err := r.Acquire(ctx, "k", 5, time.Minute); return err },
		"Release":   func() error { return r.Release(ctx, "k") },
		"Incr":      func() error { _, err := r.Incr(ctx, "k", 1, time.Minute); return err },
		"Put":       func() error { return r.Put(ctx, "k", []byte("v"), time.Minute) },
		"PutNX":     func() error { _, err := r.PutNX(ctx, "k2", []byte("v"), time.Minute); return err },
		"Get":       func() error { _, _, err := r.Get(ctx, "k"); return err },
		"Delete":    func() error { return r.Delete(ctx, "k") },
		"Scan":      func() error { _, err := r.Scan(ctx, "", 10); return err },
		"Publish":   func() error { return r.Publish(ctx, "feed", []byte("x")) },
	}
	allFail := func(phase string) {
		t.Helper()
		for name, op := range ops {
			start := time.Now()
			err := op()
			el := time.Since(start)
			if err == nil {
				t.Errorf("%s: %s succeeded", phase, name)
			}
			if el > bound {
				t.Errorf("%s: %s took %v, beyond the %v bound", phase, name, el, bound)
			}
			t.Logf("%s: %-9s -> error after %6.1fms: %v", phase, name, float64(el.Microseconds())/1000, err)
		}
	}

	// 1. Kill: connection refused.
	srv.Kill()
	allFail("killed")

	// 2. Restart on the same port: recovered within 2s.
	restarted := time.Now()
	srv.Start()
	ready := time.Since(restarted)
	var recovered time.Duration
	for {
		_, err1 := r.RateLimit(ctx, "k", lim, 1, nil)
		err2 := r.Ping(ctx)
		if err1 == nil && err2 == nil {
			recovered = time.Since(restarted)
			break
		}
		if time.Since(restarted) > 2*time.Second+ready {
			t.Fatalf("calls still failing %v after the restart: %v / %v", time.Since(restarted), err1, err2)
		}
		time.Sleep(10 * ms)
	}
	t.Logf("restart: server answered PING after %v; backend calls succeeded %v after restart", ready, recovered)
	for name, op := range ops {
		if err := op(); err != nil {
			t.Errorf("after restart: %s: %v", name, err)
		}
	}
	// The subscription resumes by itself (messages sent while it was
	// down are lost: pub/sub is at most once).
	other, err := NewRedis(RedisOptions{Addrs: []string{addr}, KeyPrefix: r.prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	resumed := false
	for deadline := time.Now().Add(5 * time.Second); !resumed && time.Now().Before(deadline); {
		if err := other.Publish(ctx, "feed", []byte("after-restart")); err != nil {
			t.Fatal(err)
		}
		select {
		case msg := <-feed:
			resumed = string(msg) == "after-restart"
		case <-time.After(100 * ms):
		}
	}
	if !resumed {
		t.Fatal("subscription did not resume after the restart")
	}
	t.Logf("subscription resumed %v after restart", time.Since(restarted))

	// 3. Freeze: the kernel still accepts connections but nothing answers.
	srv.Signal(syscall.SIGSTOP)
	allFail("frozen")
	srv.Signal(syscall.SIGCONT)
	thawed := time.Now()
	for {
		if _, err := r.RateLimit(ctx, "k", lim, 1, nil); err == nil {
			break
		}
		if time.Since(thawed) > 2*time.Second {
			t.Fatal("calls still failing 2s after SIGCONT")
		}
		time.Sleep(10 * ms)
	}
	t.Logf("thawed: calls succeeded %v after SIGCONT", time.Since(thawed))
}

// TestRedisCluster starts a three-master Redis Cluster of child processes
// and checks what depends on it: multi-limit decisions (one hash tag, no
// CROSSSLOT), Scan over every master, Ping of every master, pub/sub.
func TestRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node Redis Cluster")
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skipf("redis-cli not installed: %v", err)
	}
	var addrs []string
	for range 3 {
		srv := testutil.StartRedisServer(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
		addrs = append(addrs, srv.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	r, err := NewRedis(RedisOptions{Addrs: addrs, KeyPrefix: "apiguard-cluster-test:"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	// Wait for every node to agree the cluster is up.
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok := true
		for _, a := range addrs {
			c := redis.NewClient(&redis.Options{Addr: a})
			info, err := c.ClusterInfo(ctx).Result()
			c.Close()
			ok = ok && err == nil && strings.Contains(info, "cluster_state:ok")
		}
		if ok && r.Ping(ctx) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("cluster not ready")
		}
		time.Sleep(100 * ms)
	}

	lim := []Limit{burst3, tenPer, twoPer}
	for i := range 50 {
		key := fmt.Sprintf("client-%d", i) // spread over the three masters
		d, err := r.RateLimit(ctx, key, lim, 1, nil)
		if err != nil {
			t.Fatalf("RateLimit(%s) in cluster: %v", key, err)
		}
		if !d.Allowed || d.Results[2].Remaining != 1 {
			t.Fatalf("RateLimit(%s): %+v", key, d)
		}
		d, _ = r.RateLimit(ctx, key, lim, 2, nil)
		if d.Allowed || d.Results[1].Remaining != 9 {
			t.Fatalf("multi-limit denial in cluster charged something: %+v", d)
		}
		if err := r.Put(ctx, "block:"+key, []byte(key), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	es, err := r.Scan(ctx, "block:", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 50 {
		t.Fatalf("Scan over 3 masters found %d entries, want 50", len(es))
	}
	per := map[string]int{}
	var mu sync.Mutex
	_ = r.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		n, err := c.DBSize(ctx).Result()
		mu.Lock()
		per[c.Options().Addr] = int(n)
		mu.Unlock()
		return err
	})
	t.Logf("keys per master: %v", per)
	es, err = r.Scan(ctx, "block:", 7)
	if err != nil || len(es) != 7 {
		t.Fatalf("Scan limit 7: %d, %v", len(es), err)
	}
	if ok, err := r.Acquire(ctx, "slots", 1, time.Minute); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if n, err := r.Incr(ctx, "n", 2, time.Minute); err != nil || n != 2 {
		t.Fatal(n, err)
	}
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := r.Subscribe(subCtx, "feed")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Publish(ctx, "feed", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		if string(m) != "hi" {
			t.Errorf("got %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pub/sub delivery in cluster mode")
	}
}
