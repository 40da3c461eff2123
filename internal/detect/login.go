package detect

import (
	"context"
	"hash/maphash"
	"log/slog"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/state"
)

// LoginConfig configures the credential-stuffing and brute-force
// detector, which sees only observations with a Login.
//
// Per client key (Keys, default ip and net), in this instance's memory,
// over Window:
//
//   - brute_force: at least MinFailures failed logins that are at least
//     MinFailureRatio of the key's attempts. Score 70, rising to 90 at
//     twice MinFailures.
//   - stuffing: at least MinUsernames distinct usernames tried, with a
//     failure ratio of at least MinUsernameFailureRatio. Score 90.
//
// Both use ratios: behind a shared NAT, many people log in, most of them
// successfully, so the address sees many attempts and many usernames but
// a low failure ratio; a stuffing list fails almost always.
//
// Through the state backend, so all gateway instances add up:
//
//   - user_failures / user_many_clients (User): failures on one username
//     from anywhere, and the distinct IPs they came from; the finding's
//     key is user:<username> (an account to protect, not a client).
//   - distributed (Distributed): low-and-slow stuffing from many IPs, each
//     under the per-IP thresholds, linked by a shared fingerprint: at
//     least MinFailures failures from at least MinIPs distinct IPs with a
//     failure ratio of at least MinFailureRatio over the window. Score 90
//     on the fp: key. The ratio keeps a popular browser fingerprint, which
//     many genuine users share, from being flagged by their typos.
type LoginConfig struct {
	Common                  `yaml:",inline"`
	Window                  string                 `yaml:"window,omitempty"`                     // default 5m
	MinFailures             int                    `yaml:"min_failures,omitempty"`               // default 10
	MinFailureRatio         float64                `yaml:"min_failure_ratio,omitempty"`          // default 0.8
	MinUsernames            int                    `yaml:"min_usernames,omitempty"`              // default 8
	MinUsernameFailureRatio float64                `yaml:"min_username_failure_ratio,omitempty"` // default 0.5
	User                    UserLoginConfig        `yaml:"user,omitempty"`
	Distributed             DistributedLoginConfig `yaml:"distributed,omitempty"`
}

// UserLoginConfig configures the per-username rules.
type UserLoginConfig struct {
	Enabled     *bool  `yaml:"enabled,omitempty"`
	Window      string `yaml:"window,omitempty"`       // default 15m
	MaxFailures int    `yaml:"max_failures,omitempty"` // default 20
	MaxClients  int    `yaml:"max_clients,omitempty"`  // distinct failing IPs; default 8
}

// DistributedLoginConfig configures the per-fingerprint rule.
type DistributedLoginConfig struct {
	Enabled         *bool   `yaml:"enabled,omitempty"`
	Window          string  `yaml:"window,omitempty"`            // default 15m
	MinFailures     int     `yaml:"min_failures,omitempty"`      // default 30
	MinIPs          int     `yaml:"min_ips,omitempty"`           // default 10
	MinFailureRatio float64 `yaml:"min_failure_ratio,omitempty"` // default 0.7
}

// Validate reports invalid fields under path.
func (c *LoginConfig) Validate(path string, errs *field.Errors) {
	c.Common.validate(path, errs)
	checkDuration(field.Join(path, "window"), c.Window, 10*time.Second, 24*time.Hour, errs)
	checkInt(field.Join(path, "min_failures"), c.MinFailures, 1, 1<<30, errs)
	checkFloat(field.Join(path, "min_failure_ratio"), c.MinFailureRatio, 0, 1, false, errs)
	checkInt(field.Join(path, "min_usernames"), c.MinUsernames, 2, 200, errs)
	checkFloat(field.Join(path, "min_username_failure_ratio"), c.MinUsernameFailureRatio, 0, 1, false, errs)
	up := field.Join(path, "user")
	checkDuration(field.Join(up, "window"), c.User.Window, 10*time.Second, 24*time.Hour, errs)
	checkInt(field.Join(up, "max_failures"), c.User.MaxFailures, 1, 1<<30, errs)
	checkInt(field.Join(up, "max_clients"), c.User.MaxClients, 2, 1<<30, errs)
	dp := field.Join(path, "distributed")
	checkDuration(field.Join(dp, "window"), c.Distributed.Window, 10*time.Second, 24*time.Hour, errs)
	checkInt(field.Join(dp, "min_failures"), c.Distributed.MinFailures, 1, 1<<30, errs)
	checkInt(field.Join(dp, "min_ips"), c.Distributed.MinIPs, 2, 1<<30, errs)
	checkFloat(field.Join(dp, "min_failure_ratio"), c.Distributed.MinFailureRatio, 0, 1, false, errs)
}

const (
	bruteBase        = 70
	bruteScore       = 90
	stuffingScore    = 90
	userFailScore    = 70
	userClientsScore = 80
	distributedScore = 90
	nbLogin          = 4
)

type loginBucket struct {
	n         int64
	att, fail uint32
	users     bits256
}

type loginState struct {
	b    [nbLogin]loginBucket
	emit [2]emitState // brute_force, stuffing
}

type loginDetector struct {
	t     *table[string, loginState]
	emits *table[string, [2]emitState] // user: and fp: keys of shared rules
	sh    *shared
	keys  kindSet
	width int64
	seed  maphash.Seed
	w     float64

	minFail, minRatio, minUsers, minUserRatio float64

	userOn                  bool
	userWidth               int64
	userMaxFail, userMaxIPs float64

	distOn                                     bool
	distWidth                                  int64
	distMinFail, distMinIPs, distMinRatio      float64
	windowLabel, userWindowLabel, distWinLabel string
}

func newLogin(c LoginConfig, maxKeys int, seed maphash.Seed, be state.Backend, prefix string, timeout time.Duration, logger *slog.Logger) *loginDetector {
	win := durOr(c.Window, 5*time.Minute)
	hash := func(k string) uint64 { return maphash.String(seed, k) }
	d := &loginDetector{
		t:            newTable[string, loginState](c.maxKeys(maxKeys), win, hash, cloneString),
		keys:         kindsOf(c.Keys, setOf(KindIP, KindNet)),
		width:        max(win/nbLogin, 1),
		seed:         seed,
		w:            c.weight(),
		minFail:      float64(intOr(c.MinFailures, 10)),
		minRatio:     floatOr(c.MinFailureRatio, 0.8),
		minUsers:     float64(intOr(c.MinUsernames, 8)),
		minUserRatio: floatOr(c.MinUsernameFailureRatio, 0.5),
		userOn:       c.User.Enabled == nil || *c.User.Enabled,
		userWidth:    durOr(c.User.Window, 15*time.Minute),
		userMaxFail:  float64(intOr(c.User.MaxFailures, 20)),
		userMaxIPs:   float64(intOr(c.User.MaxClients, 8)),
		distOn:       c.Distributed.Enabled == nil || *c.Distributed.Enabled,
		distWidth:    durOr(c.Distributed.Window, 15*time.Minute),
		distMinFail:  float64(intOr(c.Distributed.MinFailures, 30)),
		distMinIPs:   float64(intOr(c.Distributed.MinIPs, 10)),
		distMinRatio: floatOr(c.Distributed.MinFailureRatio, 0.7),
	}
	d.windowLabel = dtoa(time.Duration(win))
	d.userWindowLabel = dtoa(time.Duration(d.userWidth))
	d.distWinLabel = dtoa(time.Duration(d.distWidth))
	d.emits = newTable[string, [2]emitState](c.maxKeys(maxKeys), 2*max(d.userWidth, d.distWidth), hash, cloneString)
	d.sh = newShared(be, prefix, timeout, c.maxKeys(maxKeys), max(d.userWidth, d.distWidth), seed, logger)
	return d
}

func (d *loginDetector) observe(c *obsCtx, o *Observation, out []Finding) []Finding {
	la := o.Login
	user := normUser(la.Username)
	fail := !la.Success
	uh := maphash.String(d.seed, user)
	cur := bucketOf(c.now, d.width)
	for k := range numKinds {
		key := c.id.keys[k]
		if key == "" || !d.keys.has(k) {
			continue
		}
		out = d.local(c, key, cur, fail, uh, out)
	}
	if !d.userOn && !d.distOn {
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.sh.timeout)
	defer cancel()
	ip := c.id.keys[KindIP]
	if d.userOn && fail && user != "" {
		out = d.userRules(ctx, c, user, ip, out)
	}
	if fp := c.id.keys[KindFP]; d.distOn && fp != "" {
		out = d.distributed(ctx, c, fp, ip, fail, out)
	}
	return out
}

func (d *loginDetector) local(c *obsCtx, key string, cur int64, fail bool, uh uint64, out []Finding) []Finding {
	s := d.t.lock(key)
	st, fresh := d.t.upsert(s, key, c.now)
	if fresh {
		*st = loginState{}
	}
	b := &st.b[slotOf(cur, nbLogin)]
	if b.n != cur {
		*b = loginBucket{n: cur}
	}
	b.att = min(b.att+1, 1<<31)
	if fail {
		b.fail = min(b.fail+1, 1<<31)
	}
	b.users.set(uh)
	var att, fails float64
	var users bits256
	for i := range st.b {
		if live(st.b[i].n, cur, nbLogin) {
			att += float64(st.b[i].att)
			fails += float64(st.b[i].fail)
			users.or(&st.b[i].users)
		}
	}
	ratio := fails / att
	nu := min(linearCount(users.ones(), 256), att)
	brute, stuff := 0, 0
	if fail && fails >= d.minFail && ratio >= d.minRatio {
		brute = weigh(ramp(bruteBase, bruteScore-bruteBase, bruteScore, fails/d.minFail), d.w)
		if !st.emit[0].due(c.now, brute, c.cooldown) {
			brute = 0
		}
	}
	if fail && nu >= d.minUsers && ratio >= d.minUserRatio {
		stuff = weigh(stuffingScore, d.w)
		if !st.emit[1].due(c.now, stuff, c.cooldown) {
			stuff = 0
		}
	}
	s.mu.Unlock()
	if brute == 0 && stuff == 0 {
		return out
	}
	ev := func() map[string]string {
		return map[string]string{
			"attempts": ftoa(att), "failures": ftoa(fails), "failure_ratio": ftoa(ratio),
			"usernames": ftoa(nu), "window": d.windowLabel,
		}
	}
	if brute > 0 {
		out = append(out, newFinding(DetectorLogin, "brute_force", key, brute, c.now, ev(),
			map[string]string{"min_failures": ftoa(d.minFail), "min_failure_ratio": ftoa(d.minRatio)}))
	}
	if stuff > 0 {
		out = append(out, newFinding(DetectorLogin, "stuffing", key, stuff, c.now, ev(),
			map[string]string{"min_usernames": ftoa(d.minUsers), "min_username_failure_ratio": ftoa(d.minUserRatio)}))
	}
	return out
}

// due checks the cooldown of a shared rule (i) for a user: or fp: key.
func (d *loginDetector) due(key string, i int, now int64, score int, cooldown int64) bool {
	s := d.emits.lock(key)
	e, fresh := d.emits.upsert(s, key, now)
	if fresh {
		*e = [2]emitState{}
	}
	ok := e[i].due(now, score, cooldown)
	s.mu.Unlock()
	return ok
}

func (d *loginDetector) userRules(ctx context.Context, c *obsCtx, user, ip string, out []Finding) []Finding {
	name := "login:user:" + user
	fails, err := d.sh.add(ctx, name+":fail", c.now, d.userWidth, 1)
	if err != nil {
		d.sh.fail(err, c.now)
		return out
	}
	ips := 0.0
	if ip != "" {
		isNew, err := d.sh.mark(ctx, name+":seen", ip, d.userWidth)
		if err == nil {
			var delta int64
			if isNew {
				delta = 1
			}
			ips, err = d.sh.add(ctx, name+":ips", c.now, d.userWidth, delta)
		}
		if err != nil {
			d.sh.fail(err, c.now)
		}
	}
	key := "user:" + user
	ev := func() map[string]string {
		return map[string]string{"failures": ftoa(fails), "failing_ips": ftoa(ips), "window": d.userWindowLabel}
	}
	if fails >= d.userMaxFail {
		if score := weigh(userFailScore, d.w); d.due(key, 0, c.now, score, c.cooldown) {
			out = append(out, newFinding(DetectorLogin, "user_failures", key, score, c.now, ev(),
				map[string]string{"max_failures": ftoa(d.userMaxFail)}))
		}
	}
	if ips >= d.userMaxIPs {
		if score := weigh(userClientsScore, d.w); d.due(key, 1, c.now, score, c.cooldown) {
			out = append(out, newFinding(DetectorLogin, "user_many_clients", key, score, c.now, ev(),
				map[string]string{"max_clients": ftoa(d.userMaxIPs)}))
		}
	}
	return out
}

func (d *loginDetector) distributed(ctx context.Context, c *obsCtx, fp, ip string, fail bool, out []Finding) []Finding {
	name := "login:" + fp
	att, err := d.sh.add(ctx, name+":att", c.now, d.distWidth, 1)
	if err != nil {
		d.sh.fail(err, c.now)
		return out
	}
	if !fail {
		return out
	}
	fails, err := d.sh.add(ctx, name+":fail", c.now, d.distWidth, 1)
	if err != nil {
		d.sh.fail(err, c.now)
		return out
	}
	ips := 0.0
	if ip != "" {
		isNew, err := d.sh.mark(ctx, name+":seen", ip, d.distWidth)
		if err == nil {
			var delta int64
			if isNew {
				delta = 1
			}
			ips, err = d.sh.add(ctx, name+":ips", c.now, d.distWidth, delta)
		}
		if err != nil {
			d.sh.fail(err, c.now)
			return out
		}
	}
	ratio := min(fails/max(att, 1), 1)
	if fails < d.distMinFail || ips < d.distMinIPs || ratio < d.distMinRatio {
		return out
	}
	score := weigh(distributedScore, d.w)
	if !d.due(fp, 1, c.now, score, c.cooldown) {
		return out
	}
	return append(out, newFinding(DetectorLogin, "distributed", fp, score, c.now,
		map[string]string{
			"failures": ftoa(fails), "attempts": ftoa(att), "failure_ratio": ftoa(ratio),
			"failing_ips": ftoa(ips), "window": d.distWinLabel,
		},
		map[string]string{
			"min_failures": ftoa(d.distMinFail), "min_ips": ftoa(d.distMinIPs), "min_failure_ratio": ftoa(d.distMinRatio),
		}))
}
