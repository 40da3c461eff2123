package detect

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Synthetic traffic with ground truth. Every event carries the actor that
// produced it; genuine actors are labelled "genuine", attacks by name.

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

type event struct {
	actor string
	o     Observation
}

type world struct {
	rng    *rand.Rand
	events []event
}

func newWorld(seed uint64) *world {
	return &world{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (w *world) add(actor string, o Observation) { w.events = append(w.events, event{actor, o}) }

// sorted returns the events in time order (stable for equal times).
func (w *world) sorted() []event {
	ev := slices.Clone(w.events)
	slices.SortStableFunc(ev, func(a, b event) int { return a.o.Time.Compare(b.o.Time) })
	return ev
}

// lognormal draws exp(N(ln median, sigma)).
func (w *world) lognormal(median time.Duration, sigma float64) time.Duration {
	return time.Duration(float64(median) * math.Exp(sigma*w.rng.NormFloat64()))
}

func (w *world) uniform(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(w.rng.Int64N(int64(hi-lo)+1))
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// Browser fingerprints shared by many genuine users, and tools.
var (
	chrome  = [2]string{"t13d1516h2_8daaf6152771_02713d6af862", "ge11cr15enus_a1b2c3d4e5f6_9f8e7d6c5b4a"}
	firefox = [2]string{"t13d1715h2_5b57614c22b0_3d5424432f57", "ge11cr13enus_b2c3d4e5f6a1_8e7d6c5b4a9f"}
	safari  = [2]string{"t13d2014h2_a09f3c656075_14788d8d241b", "ge20cr11enus_c3d4e5f6a1b2_7d6c5b4a9f8e"}
	pyreq   = [2]string{"t13d1812h1_85036bcba153_375ca2c5e164", "ge11nn05enus_9ed1ff1f7b03_000000000000"}
)

// tool is the fingerprint of one attack's client program: attacks do not
// share tools, so each finding is attributable to one attack.
func tool(name string) [2]string {
	h := fnv64a(name)
	return [2]string{
		fmt.Sprintf("t13d%02d11h1_%012x_%012x", h%30, h>>16&0xffffffffffff, h&0xffffffffffff),
		fmt.Sprintf("ge11nn%02denus_%012x_000000000000", h%13, h>>8&0xffffffffffff),
	}
}

// shop is the API: product catalogue, orders, cart, checkout, transfers.
type shop struct {
	products int
	popular  []int // rank -> product id, a permutation, so popular ids are scattered
}

func newShop(w *world, products int) *shop {
	s := &shop{products: products, popular: make([]int, products)}
	for i := range s.popular {
		s.popular[i] = i + 1
	}
	w.rng.Shuffle(len(s.popular), func(i, j int) { s.popular[i], s.popular[j] = s.popular[j], s.popular[i] })
	return s
}

// pick draws a product id with Zipf-like popularity.
func (s *shop) pick(w *world) int {
	r := int(math.Floor(math.Pow(float64(s.products), w.rng.Float64()))) - 1
	return s.popular[min(max(r, 0), s.products-1)]
}

func get(t time.Time, a netip.Addr, fp [2]string, path, tmpl string, params map[string]string, status int) Observation {
	return Observation{Time: t, IP: a, JA4: fp[0], JA4H: fp[1], Method: "GET", Path: path, Template: tmpl, PathParams: params, Status: status, Route: "api"}
}

func product(t time.Time, a netip.Addr, fp [2]string, id, status int) Observation {
	s := strconv.Itoa(id)
	return get(t, a, fp, "/api/products/"+s, "/api/products/{id}", map[string]string{"id": s}, status)
}

func order(t time.Time, a netip.Addr, fp [2]string, id, status int) Observation {
	s := strconv.Itoa(id)
	return get(t, a, fp, "/api/orders/"+s, "/api/orders/{id}", map[string]string{"id": s}, status)
}

func post(t time.Time, a netip.Addr, fp [2]string, path string, status int) Observation {
	return Observation{Time: t, IP: a, JA4: fp[0], JA4H: fp[1], Method: "POST", Path: path, Template: path, Status: status, Route: "api"}
}

func login(t time.Time, a netip.Addr, fp [2]string, user string, ok bool) Observation {
	o := post(t, a, fp, "/api/login", 200)
	if !ok {
		o.Status = 401
	}
	o.Login = &LoginAttempt{Username: user, Success: ok}
	return o
}

// persona is one genuine person.
type persona struct {
	name   string // "" browses anonymously
	ip     netip.Addr
	fp     [2]string
	orders []int
	pace   time.Duration // median think time; default 10s
}

// flowRules are the business flows of the shop.
var flowRules = []FlowRule{
	{Name: "checkout_after_cart", Step: "POST /api/checkout", After: []string{"POST /api/cart"}, Within: "30m", Score: 60},
	{Name: "transfer_after_login", Step: "POST /api/transfer", After: []string{"login|POST /api/auth/step-up"}, Within: "5m", Score: 70},
	{Name: "confirm_sequence", Step: "POST /api/orders/confirm", After: []string{"POST /api/cart", "POST /api/checkout"}, Within: "30m"},
}

// browse simulates one genuine session from start: optional login (with a
// typo one time in ten), then pages separated by log-normal think times
// (median 10s, sigma 1), each page one to three API calls fired together.
func (w *world) browse(s *shop, p persona, start time.Time, pages int) {
	const actor = "genuine"
	t := start
	fp := p.fp
	// JA4H's last section hashes cookie values: per person.
	fp[1] += fmt.Sprintf("_%012x", fnv64a(p.name+p.ip.String())&0xffffffffffff)
	anon := fmt.Sprintf("anon-%x", w.rng.Uint64())
	session, subject := anon, ""
	cart := false
	var lastAuth time.Time
	at := func(o Observation) Observation {
		o.Session, o.Subject = session, subject
		return o
	}
	doLogin := func() {
		if w.rng.IntN(10) == 0 {
			w.add(actor, at(login(t, p.ip, fp, p.name, false)))
			t = t.Add(w.uniform(4*time.Second, 15*time.Second))
		}
		w.add(actor, at(login(t, p.ip, fp, p.name, true)))
		session, subject, lastAuth = fmt.Sprintf("jti-%x", w.rng.Uint64()), p.name, t
	}
	loginAt := -1
	if p.name != "" {
		loginAt = w.rng.IntN(4) // a few anonymous pages first, sometimes filling the cart
	}
	last := s.pick(w)
	for i := range pages {
		if i == loginAt {
			doLogin()
		}
		burst := func(o Observation) {
			w.add(actor, at(o))
			t = t.Add(w.uniform(5*time.Millisecond, 250*time.Millisecond))
		}
		switch r := w.rng.IntN(100); {
		case r < 40:
			id := s.pick(w)
			if w.rng.IntN(5) == 0 {
				id = last + 1 // "next product"
			}
			last = id
			status := 200
			if w.rng.IntN(50) == 0 {
				status = 404 // stale link
			}
			burst(product(t, p.ip, fp, id, status))
			if w.rng.IntN(2) == 0 {
				sid := strconv.Itoa(id)
				burst(get(t, p.ip, fp, "/api/products/"+sid+"/reviews", "/api/products/{id}/reviews", map[string]string{"id": sid}, 200))
			}
		case r < 55:
			burst(get(t, p.ip, fp, "/api/products", "/api/products", nil, 200))
		case r < 65:
			burst(get(t, p.ip, fp, "/api/cart", "/api/cart", nil, 200))
		case r < 75:
			burst(post(t, p.ip, fp, "/api/cart", 201))
			cart = true
		case r < 82:
			if cart && subject != "" {
				burst(post(t, p.ip, fp, "/api/checkout", 200))
				burst(post(t, p.ip, fp, "/api/orders/confirm", 200))
				cart = false
			}
		case r < 90:
			if subject != "" && len(p.orders) > 0 {
				burst(order(t, p.ip, fp, p.orders[w.rng.IntN(len(p.orders))], 200))
			}
		case r < 95:
			if subject != "" {
				if t.Sub(lastAuth) > 4*time.Minute {
					burst(post(t, p.ip, fp, "/api/auth/step-up", 200))
					lastAuth = t
				}
				burst(post(t, p.ip, fp, "/api/transfer", 200))
			}
		default:
			if subject != "" {
				burst(get(t, p.ip, fp, "/api/me", "/api/me", nil, 200))
			}
		}
		pace := p.pace
		if pace == 0 {
			pace = 10 * time.Second
		}
		t = t.Add(min(w.lognormal(pace, 1), 5*time.Minute))
	}
}

// population adds genuine traffic: n people with their own addresses, and
// an office NAT where nat people (logged in and anonymous) share one
// address and browser builds.
func (w *world) population(s *shop, n, nat int, span time.Duration) {
	browsers := [][2]string{chrome, firefox, safari}
	office := ip("198.51.100.7")
	for i := range n + nat {
		p := persona{
			name: fmt.Sprintf("user%03d", i),
			fp:   browsers[w.rng.IntN(len(browsers))],
			ip:   netip.AddrFrom4([4]byte{byte(81 + i%40), byte(i / 40), byte(w.rng.IntN(250)), byte(1 + w.rng.IntN(250))}),
		}
		if i%7 == 3 {
			p.name = "" // browses without an account
		}
		if i >= n {
			p.ip = office
			p.fp = browsers[i%2] // a managed fleet: two builds
		}
		for range 3 {
			p.orders = append(p.orders, 100000+w.rng.IntN(900000))
		}
		start := t0.Add(w.uniform(0, span/3))
		w.browse(s, p, start, 30+w.rng.IntN(60))
	}
}

// run feeds events in time order to e and returns every finding with the
// actor whose request produced it and that actor's request count so far.
type hit struct {
	actor string
	n     int // the actor's requests so far, including this one
	at    time.Duration
	f     Finding
}

type result struct {
	hits   []hit
	counts map[string]int
	start  map[string]time.Time
}

func run(t testing.TB, e *Engine, clock *fakeClock, events []event, after func(ev event)) *result {
	t.Helper()
	r := &result{counts: map[string]int{}, start: map[string]time.Time{}}
	for _, ev := range events {
		clock.set(ev.o.Time)
		r.counts[ev.actor]++
		if _, ok := r.start[ev.actor]; !ok {
			r.start[ev.actor] = ev.o.Time
		}
		for _, f := range e.Observe(ev.o) {
			r.hits = append(r.hits, hit{ev.actor, r.counts[ev.actor], ev.o.Time.Sub(r.start[ev.actor]), f})
		}
		if after != nil {
			after(ev)
		}
	}
	return r
}

// first returns the first finding of actor by detector (and rule, when
// not ""), and whether there was one.
func (r *result) first(actor, detector, rule string) (hit, bool) {
	for _, h := range r.hits {
		if h.actor == actor && h.f.Detector == detector && (rule == "" || h.f.Rule == rule) {
			return h, true
		}
	}
	return hit{}, false
}

// fakeClock is the injected clock; tests set it to each event's time.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) set(t time.Time)     { c.t = t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }

func newTestEngine(t testing.TB, cfg Config, clock *fakeClock) *Engine {
	t.Helper()
	if len(cfg.Flow.Rules) == 0 {
		cfg.Flow.Rules = flowRules
	}
	e, err := New(cfg, Options{Clock: clock.now, MaxKeys: 20000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}
