package state

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configure the Redis backend. Zero values take the defaults.
type RedisOptions struct {
	// Addrs: one address = standalone; several, or Cluster = true, = Redis
	// Cluster (redis.NewUniversalClient).
	Addrs    []string
	Cluster  bool
	Username string
	Password string
	DB       int
	// KeyPrefix starts every key and channel name (default "apiguard:"), so
	// several deployments can share one Redis.
	KeyPrefix    string
	DialTimeout  time.Duration // default 2s
	ReadTimeout  time.Duration // default 500ms
	WriteTimeout time.Duration // default 500ms
	PoolSize     int           // default go-redis's: 10 per CPU
	TLS          bool
	// Clock is only used for what the client computes (Scan's ExpiresAt).
	// GCRA time comes from the Redis server (TIME), so instances with
	// skewed clocks agree.
	Clock Clock
}

// Redis is the Backend shared by gateway instances. Every decision is one
// round trip running a Lua script (EVALSHA, falling back to EVAL when the
// server lost its script cache), so a decision is atomic without WATCH
// retries, and GCRA's now is the server's TIME, common to all instances.
//
// Keys: limit i of RateLimit/Charge key k is prefix+"{k}:i" (one hash tag,
// so all limits of a decision share a Redis Cluster slot and one script can
// touch them); counters are prefix+"n:"+k, concurrency slots prefix+"c:"+k,
// key-value entries prefix+"v:"+k and channels prefix+"ch:"+name.
//
// Every call is bounded by DialTimeout+ReadTimeout+WriteTimeout (or the
// caller's earlier deadline) and returns an error, never hangs, when Redis
// is down; the client reconnects by itself once Redis is back.
type Redis struct {
	c       redis.UniversalClient
	cluster *redis.ClusterClient // nil when standalone
	prefix  string
	timeout time.Duration
	clock   Clock
}

var _ Backend = (*Redis)(nil)
var _ Backend = (*Memory)(nil)

// NewRedis returns a Redis backend. It does not contact Redis, so it does
// not fail when Redis is down: the client connects on first use and
// reconnects by itself; Ping reports health.
func NewRedis(o RedisOptions) (*Redis, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("state: RedisOptions.Addrs is empty")
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = "apiguard:"
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 500 * time.Millisecond
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 500 * time.Millisecond
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	uo := &redis.UniversalOptions{
		Addrs:         o.Addrs,
		IsClusterMode: o.Cluster,
		Username:      o.Username,
		Password:      o.Password,
		DB:            o.DB,
		DialTimeout:   o.DialTimeout,
		ReadTimeout:   o.ReadTimeout,
		WriteTimeout:  o.WriteTimeout,
		PoolSize:      o.PoolSize,
		// One retry covers a pooled connection that died with a restarted
		// server; more would only stretch a call past its timeout.
		MaxRetries: 1,
		// One dial per attempt: go-redis's default of 5 dials 100ms apart
		// turned "connection refused" into an 800ms stall per call. A
		// gateway wants the error at once, to apply its failure policy.
		DialerRetries: 1,
		// Honour the caller's (shorter) deadline on the socket too.
		ContextTimeoutEnabled: true,
	}
	if o.TLS {
		uo.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if len(o.Addrs) == 1 && !o.Cluster {
			if host, _, err := net.SplitHostPort(o.Addrs[0]); err == nil {
				uo.TLSConfig.ServerName = host
			}
		}
	}
	r := &Redis{
		c:       redis.NewUniversalClient(uo),
		prefix:  o.KeyPrefix,
		timeout: o.DialTimeout + o.ReadTimeout + o.WriteTimeout,
		clock:   o.Clock,
	}
	r.cluster, _ = r.c.(*redis.ClusterClient)
	return r, nil
}

// op bounds one call.
func (r *Redis) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.timeout)
}

// gcraScript evaluates GCRA for every limit of a decision atomically.
//
// KEYS[i]: the key of limit i. ARGV[1]: "1" for Charge (always charge),
// "0" for RateLimit (charge only if every limit admits). ARGV[2]: "1" when
// cost > 0. Per limit i, ARGV[3i], ARGV[3i+1], ARGV[3i+2]: T, τ and cost*T
// in nanoseconds (computed in Go, exact).
//
// Lua numbers are float64, exact for integers up to 2^53, while a Unix time
// in nanoseconds is ~2^61. So tat is stored as a decimal string
// "<seconds><9 digits of nanoseconds>" and the script only ever computes
// d = tat-now from the two halves: every value the script does arithmetic
// on is then a difference of at most 2^53 ns (Limit validation bounds τ),
// i.e. exact. The key expires when the bucket is full again (tat), so an
// idle client costs Redis nothing.
//
// Returns {allowed, remaining_1, reset_1, retry_1, ...} in nanoseconds.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local ns = tonumber(t[1])
local nn = tonumber(t[2]) * 1000
local charge = ARGV[1] == '1'
local positive = ARGV[2] == '1'
local n = #KEYS
local d = {}
local ok = true
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  local di = 0
  if v and #v > 9 then
    local s = tonumber(string.sub(v, 1, -10)) or 0
    local f = tonumber(string.sub(v, -9)) or 0
    di = (s - ns) * 1000000000 + (f - nn)
    if di < 0 then di = 0 end
  end
  d[i] = di
  if di + tonumber(ARGV[3*i+2]) > tonumber(ARGV[3*i+1]) then ok = false end
end
local write = (ok or charge) and positive
local out = {0}
local within = true
for i = 1, n do
  local T = tonumber(ARGV[3*i])
  local tau = tonumber(ARGV[3*i+1])
  local need = d[i] + tonumber(ARGV[3*i+2])
  local after = d[i]
  if write then
    after = need
    if after > 4e18 then after = 4e18 end
    local total = nn + after
    local q = math.floor(total / 1000000000)
    local f = total - q * 1000000000
    if f < 0 then q = q - 1; f = f + 1000000000 end
    if f >= 1000000000 then q = q + 1; f = f - 1000000000 end
    redis.call('SET', KEYS[i], string.format('%d%09d', ns + q, f), 'PX', math.ceil(after / 1000000))
  end
  local rem = 0
  if after < tau then
    rem = math.floor((tau - after) / T)
    if rem * T > tau - after then rem = rem - 1 end
  end
  local retry = 0
  if charge then
    if after > tau then retry = after - tau; within = false end
  elseif not ok and need > tau then
    retry = need - tau
  end
  out[3*i-1] = rem
  out[3*i] = after
  out[3*i+1] = retry
end
if (charge and within) or (not charge and ok) then out[1] = 1 end
return out
`)

// acquireScript: INCR with a cap; the count expires ttl after the last
// Acquire. ARGV: max, ttl in ms (0: never).
var acquireScript = redis.NewScript(`
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
if tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('PERSIST', KEYS[1])
end
return 1
`)

// releaseScript: DECR that never goes below zero and deletes at zero.
var releaseScript = redis.NewScript(`
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c <= 1 then
  redis.call('DEL', KEYS[1])
  return 0
end
return redis.call('DECR', KEYS[1])
`)

// incrScript: INCRBY whose expiry is set only by the call that creates the
// counter, like Memory. ARGV: delta, ttl in ms (0: never).
var incrScript = redis.NewScript(`
local fresh = redis.call('EXISTS', KEYS[1]) == 0
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if fresh and tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v
`)

// RateLimit implements Backend (see gcraScript). Clock steps: now is the
// server's TIME and tat never decreases, so a server clock stepping back
// (or a failover to a replica whose clock is behind) makes keys stricter,
// never grants more than Burst; a step forward makes buckets full, at most
// Burst. RetryAfter is rounded up to whole microseconds, TIME's resolution,
// so a client that waits exactly RetryAfter is admitted.
func (r *Redis) RateLimit(ctx context.Context, key string, limits []Limit, cost int64, res []Result) (Decision, error) {
	return r.gcra(ctx, key, limits, cost, res, false)
}

// Charge implements Backend.
func (r *Redis) Charge(ctx context.Context, key string, limits []Limit, cost int64, res []Result) (Decision, error) {
	return r.gcra(ctx, key, limits, cost, res, true)
}

func (r *Redis) gcra(ctx context.Context, key string, limits []Limit, cost int64, res []Result, charge bool) (Decision, error) {
	if err := checkLimits(key, limits, cost); err != nil {
		return Decision{}, err
	}
	n := len(limits)
	res = results(res, n)
	if n == 0 {
		return Decision{Allowed: true, Results: res}, nil
	}
	keys := make([]string, n)
	args := make([]any, 2+3*n)
	args[0], args[1] = "0", "0"
	if charge {
		args[0] = "1"
	}
	if cost > 0 {
		args[1] = "1"
	}
	base := r.prefix + "{" + key + "}:"
	for i := range limits {
		t, _ := emissionOf(&limits[i])
		keys[i] = base + strconv.Itoa(i)
		args[2+3*i] = t
		args[3+3*i] = t * limits[i].Burst
		args[4+3*i] = mulSat(cost, t)
	}
	ctx, cancel := r.op(ctx)
	defer cancel()
	vals, err := gcraScript.Run(ctx, r.c, keys, args...).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("state: redis rate limit: %w", err)
	}
	if len(vals) != 1+3*n {
		return Decision{}, fmt.Errorf("state: redis rate limit: script returned %d values, want %d", len(vals), 1+3*n)
	}
	for i := range res {
		res[i] = Result{
			Remaining:  vals[1+3*i],
			ResetAfter: time.Duration(vals[2+3*i]),
			RetryAfter: roundUpMicro(vals[3+3*i]),
		}
	}
	return Decision{Allowed: vals[0] == 1, Results: res}, nil
}

func roundUpMicro(ns int64) time.Duration {
	if ns <= 0 {
		return 0
	}
	return time.Duration((ns + 999) / 1000 * 1000)
}

// Acquire implements Backend. The slot count expires ttl after the last
// Acquire (ttl <= 0: never), which bounds slots whose Release never comes.
func (r *Redis) Acquire(ctx context.Context, key string, max int64, ttl time.Duration) (bool, error) {
	if key == "" {
		return false, ErrEmptyKey
	}
	ctx, cancel := r.op(ctx)
	defer cancel()
	v, err := acquireScript.Run(ctx, r.c, []string{r.prefix + "c:" + key}, max, ttlMillis(ttl)).Int64()
	if err != nil {
		return false, fmt.Errorf("state: redis acquire: %w", err)
	}
	return v == 1, nil
}

// Release implements Backend.
func (r *Redis) Release(ctx context.Context, key string) error {
	if key == "" {
		return ErrEmptyKey
	}
	ctx, cancel := r.op(ctx)
	defer cancel()
	if err := releaseScript.Run(ctx, r.c, []string{r.prefix + "c:" + key}).Err(); err != nil {
		return fmt.Errorf("state: redis release: %w", err)
	}
	return nil
}

// Incr implements Backend.
func (r *Redis) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if key == "" {
		return 0, ErrEmptyKey
	}
	ctx, cancel := r.op(ctx)
	defer cancel()
	v, err := incrScript.Run(ctx, r.c, []string{r.prefix + "n:" + key}, delta, ttlMillis(ttl)).Int64()
	if err != nil {
		return 0, fmt.Errorf("state: redis incr: %w", err)
	}
	return v, nil
}

func (r *Redis) kvKey(key string) string { return r.prefix + "v:" + key }

// Put implements Backend. TTLs are rounded up to whole milliseconds.
func (r *Redis) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if key == "" {
		return ErrEmptyKey
	}
	ctx, cancel := r.op(ctx)
	defer cancel()
	if err := r.c.Set(ctx, r.kvKey(key), value, time.Duration(ttlMillis(ttl))*time.Millisecond).Err(); err != nil {
		return fmt.Errorf("state: redis put: %w", err)
	}
	return nil
}

// PutNX implements Backend (SET NX PX: one atomic command).
func (r *Redis) PutNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if key == "" {
		return false, ErrEmptyKey
	}
	ctx, cancel := r.op(ctx)
	defer cancel()
	ok, err := r.c.SetNX(ctx, r.kvKey(key), value, time.Duration(ttlMillis(ttl))*time.Millisecond).Result()
	if err != nil {
		return false, fmt.Errorf("state: redis putnx: %w", err)
	}
	return ok, nil
}

// Get implements Backend.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, bool, error) {
	ctx, cancel := r.op(ctx)
	defer cancel()
	v, err := r.c.Get(ctx, r.kvKey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state: redis get: %w", err)
	}
	return v, true, nil
}

// Delete implements Backend.
func (r *Redis) Delete(ctx context.Context, key string) error {
	ctx, cancel := r.op(ctx)
	defer cancel()
	if err := r.c.Del(ctx, r.kvKey(key)).Err(); err != nil {
		return fmt.Errorf("state: redis delete: %w", err)
	}
	return nil
}

// Scan implements Backend with SCAN MATCH (on every master in Cluster
// mode), then GET and PTTL of each batch in one pipeline. Each round trip
// has its own timeout. SCAN may return a key twice; Scan reports it once.
func (r *Redis) Scan(ctx context.Context, prefix string, limit int) ([]Entry, error) {
	if limit <= 0 {
		limit = DefaultScanLimit
	}
	match := globEscape(r.kvKey(prefix)) + "*"
	strip := len(r.kvKey(""))
	var (
		mu   sync.Mutex
		out  []Entry
		seen = make(map[string]struct{})
	)
	full := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(out) >= limit
	}
	scanNode := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for !full() {
			cctx, cancel := r.op(ctx)
			keys, next, err := c.Scan(cctx, cursor, match, 512).Result()
			cancel()
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				cctx, cancel := r.op(ctx)
				gets := make([]*redis.StringCmd, len(keys))
				ttls := make([]*redis.DurationCmd, len(keys))
				_, err := c.Pipelined(cctx, func(p redis.Pipeliner) error {
					for i, k := range keys {
						gets[i] = p.Get(cctx, k)
						ttls[i] = p.PTTL(cctx, k)
					}
					return nil
				})
				cancel()
				if err != nil && !errors.Is(err, redis.Nil) {
					return err
				}
				now := r.clock()
				mu.Lock()
				for i, k := range keys {
					v, err := gets[i].Bytes()
					if err != nil || len(out) >= limit {
						continue // expired since SCAN saw it
					}
					if _, dup := seen[k]; dup {
						continue
					}
					seen[k] = struct{}{}
					e := Entry{Key: k[strip:], Value: v}
					if d := ttls[i].Val(); d > 0 {
						e.ExpiresAt = now.Add(d)
					}
					out = append(out, e)
				}
				mu.Unlock()
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
		return nil
	}
	var err error
	if r.cluster != nil {
		err = r.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return scanNode(ctx, c)
		})
	} else {
		err = scanNode(ctx, r.c)
	}
	if err != nil {
		return nil, fmt.Errorf("state: redis scan: %w", err)
	}
	return out, nil
}

// globEscape quotes SCAN MATCH's special characters.
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for _, c := range []byte(s) {
		switch c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Publish implements Backend.
func (r *Redis) Publish(ctx context.Context, channel string, msg []byte) error {
	ctx, cancel := r.op(ctx)
	defer cancel()
	if err := r.c.Publish(ctx, r.prefix+"ch:"+channel, msg).Err(); err != nil {
		return fmt.Errorf("state: redis publish: %w", err)
	}
	return nil
}

// Subscribe implements Backend with a go-redis PubSub, which reconnects and
// resubscribes by itself. Subscribe waits (within the call timeout) for
// Redis to confirm the subscription, so a message published after it
// returns is delivered; if Redis is down it still returns the channel,
// which starts delivering once Redis is back. Messages published while the
// connection is down are lost (Redis pub/sub is at most once).
func (r *Redis) Subscribe(ctx context.Context, channel string) (<-chan []byte, error) {
	ps := r.c.Subscribe(ctx, r.prefix+"ch:"+channel)
	cctx, cancel := r.op(ctx)
	_, _ = ps.Receive(cctx) // the subscription confirmation (or an error the channel recovers from)
	cancel()
	in := ps.Channel(redis.WithChannelSize(subBuffer))
	out := make(chan []byte, subBuffer)
	go func() {
		defer close(out)
		defer ps.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case msg, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- []byte(msg.Payload):
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// Ping implements Backend: in Cluster mode every master must answer, since
// a down master takes its slots' keys with it.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := r.op(ctx)
	defer cancel()
	var err error
	if r.cluster != nil {
		err = r.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.Ping(ctx).Err()
		})
	} else {
		err = r.c.Ping(ctx).Err()
	}
	if err != nil {
		return fmt.Errorf("state: redis ping: %w", err)
	}
	return nil
}

// Name implements Backend.
func (r *Redis) Name() string { return "redis" }

// Close implements Backend.
func (r *Redis) Close() error { return r.c.Close() }
