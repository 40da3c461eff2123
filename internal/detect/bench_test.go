package detect

import (
	"fmt"
	"net/netip"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkObserve: every detector on (flows with three rules), fed the
// ground-truth scenario in a loop (time shifted forward every lap):
// browsing, logins (~5%, through the private memory backend), attacks.
//
//	go test -run '^$' -bench . -benchmem ./internal/detect/
func BenchmarkObserve(b *testing.B) {
	events := scenario(1)
	span := events[len(events)-1].o.Time.Sub(events[0].o.Time) + time.Minute
	browse := make([]Observation, 0, len(events))
	for _, ev := range events {
		if ev.o.Login == nil {
			browse = append(browse, ev.o)
		}
	}
	all := make([]Observation, len(events))
	for i, ev := range events {
		all[i] = ev.o
	}
	for _, bc := range []struct {
		name string
		obs  []Observation
	}{{"mixed", all}, {"no-login", browse}} {
		b.Run(bc.name, func(b *testing.B) {
			clock := &fakeClock{t: t0}
			e := newTestEngine(b, Config{}, clock)
			b.ReportAllocs()
			i := 0
			cpu := cpuTime()
			for b.Loop() {
				o := bc.obs[i%len(bc.obs)]
				o.Time = o.Time.Add(time.Duration(i/len(bc.obs)) * span)
				clock.t = o.Time
				e.Observe(o)
				i++
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(i), "cpu-ns/op")
		})
	}
}

// BenchmarkObserveParallel: four observer goroutines on one engine.
func BenchmarkObserveParallel(b *testing.B) {
	events := scenario(1)
	e, err := New(Config{Flow: FlowConfig{Rules: flowRules}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	var next atomic.Int64
	b.SetParallelism(2) // with GOMAXPROCS 2: four goroutines
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	defer func() { b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op") }()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1))
			o := events[i%len(events)].o
			o.Time = time.Now()
			e.Observe(o)
		}
	})
}

// BenchmarkMemoryPerKey measures the heap each tracked client costs, per
// detector and for the whole engine: n distinct clients (own address,
// network, fingerprint and subject), one product page each (two requests),
// plus one login each for the login detector.
func BenchmarkMemoryPerKey(b *testing.B) {
	const n = 20000
	for _, name := range []string{"engine", "nat", DetectorRate, DetectorTiming, DetectorScrape, DetectorEnum, DetectorProbe, DetectorLogin, DetectorFlow} {
		b.Run(name, func(b *testing.B) {
			var perClient, perKey float64
			for b.Loop() {
				cfg := Config{}
				switch name {
				case "engine":
				case "nat":
					cfg = only("")
				default:
					cfg = only(name)
					no := false
					cfg.NAT.Enabled = &no
				}
				cfg.Flow.Rules = flowRules
				clock := &fakeClock{t: t0}
				e, err := New(cfg, Options{Clock: clock.now, MaxKeys: 2 * n})
				if err != nil {
					b.Fatal(err)
				}
				before := heap()
				for i := range n {
					a := netip.AddrFrom4([4]byte{byte(1 + i>>16), byte(i >> 8), byte(i), 1})
					fp := [2]string{"t13d1516h2_8daaf6152771_" + strconv.Itoa(i), "ge11cr15enus_a1b2c3d4e5f6_9f8e7d6c5b4a"}
					clock.add(time.Millisecond)
					sub := fmt.Sprintf("user%06d", i)
					o := product(clock.t, a, fp, i, 200)
					o.Subject, o.Session = sub, "jti-"+sub
					e.Observe(o)
					o = post(clock.t.Add(time.Second), a, fp, "/api/cart", 201)
					o.Subject, o.Session = sub, "jti-"+sub
					e.Observe(o)
					if name == DetectorLogin || name == "engine" {
						e.Observe(login(clock.t, a, fp, sub, i%2 == 0))
					}
				}
				used := float64(heap() - before)
				perClient, perKey = used/n, used/float64(e.trackedKeys())
				runtime.KeepAlive(e)
				_ = e.Close()
			}
			b.ReportMetric(perClient, "B/client")
			b.ReportMetric(perKey, "B/key")
		})
	}
}

// trackedKeys counts the keys held by every table of the engine (not the
// private state backend's).
func (e *Engine) trackedKeys() int {
	n := e.risk.t.len()
	if e.nat != nil {
		n += e.nat.t.len()
	}
	if e.rate != nil {
		n += e.rate.t.len() + e.rate.eps.len()
	}
	if e.timing != nil {
		n += e.timing.t.len()
	}
	if e.scrape != nil {
		n += e.scrape.t.len()
	}
	if e.enum != nil {
		n += e.enum.t.len()
	}
	if e.probe != nil {
		n += e.probe.t.len()
	}
	if e.login != nil {
		n += e.login.t.len() + e.login.emits.len() + e.login.sh.prev.len()
	}
	if e.flow != nil {
		n += e.flow.t.len()
	}
	return max(n, 1)
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
