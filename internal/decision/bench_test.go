package decision

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/state"
)

// benchStore holds 10k decisions: 6000 ip, 2000 net (IPv4 /20 to /29,
// IPv6 /48 to /64), 2000 of the other kinds.
func benchStore(b *testing.B) *Store {
	mem := state.NewMemory(state.MemoryOptions{})
	b.Cleanup(func() { _ = mem.Close() })
	s, err := NewStore(mem, Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	add := func(key string, a Action) {
		if _, err := s.Add(ctx, Decision{Key: key, Action: a, Source: "bench", Expires: exp}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 6000 {
		add(fmt.Sprintf("ip:100.%d.%d.%d", i>>16&255, i>>8&255, i&255), Block)
	}
	for i := range 1000 {
		add(fmt.Sprintf("net:10.%d.%d.0/%d", i>>4, (i&15)<<4, 20+i%10), Throttle)
		add(fmt.Sprintf("net:2001:db8:%x::/%d", i, 48+i%17), Challenge)
	}
	kinds := []string{"fp", "key", "sub", "dev"}
	for i := range 2000 {
		add(fmt.Sprintf("%s:v%d", kinds[i%4], i), Challenge)
	}
	if s.Len() != 10000 {
		b.Fatalf("Len = %d", s.Len())
	}
	return s
}

func BenchmarkMatch10k(b *testing.B) {
	s := benchStore(b)
	hitIP := netip.MustParseAddr("100.0.1.2")
	missIP := netip.MustParseAddr("198.51.100.1")
	netIP := netip.MustParseAddr("10.3.16.5") // in net:10.3.16.0/29
	v6 := netip.MustParseAddr("2001:db8:5::1")
	for _, bc := range []struct {
		name string
		fn   func() bool
	}{
		{"MatchIP/ip-hit", func() bool { _, ok := s.MatchIP(hitIP); return ok }},
		{"MatchIP/miss", func() bool { _, ok := s.MatchIP(missIP); return !ok }},
		{"MatchIP/net-hit", func() bool { _, ok := s.MatchIP(netIP); return ok }},
		{"MatchIP/v6-net-hit", func() bool { _, ok := s.MatchIP(v6); return ok }},
		{"MatchIP/miss+3keys", func() bool {
			_, ok := s.MatchIP(missIP, "key:partner", "fp:t13d1516h2_8daaf6152771_b186095e22b6", "country:DE")
			return !ok
		}},
		{"Match/key-hit", func() bool { _, ok := s.Match("sub:v2"); return ok }},
		{"Match/ip-key", func() bool { _, ok := s.Match("ip:100.0.1.2"); return ok }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if !bc.fn() {
				b.Fatal("unexpected result")
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					bc.fn()
				}
			})
		})
	}
}

// BenchmarkAdd10k is the cost of a change with 10k decisions held (one
// shard copied).
func BenchmarkAdd10k(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := s.Add(ctx, Decision{Key: fmt.Sprintf("ip:100.%d.%d.%d", i>>16&255, i>>8&255, i&255), Action: Block, Source: "bench", Expires: exp}); err != nil {
			b.Fatal(err)
		}
	}
}
