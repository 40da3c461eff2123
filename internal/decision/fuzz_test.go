package decision

import (
	"context"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/state"
)

// Keys carry request data (subjects, fingerprints, addresses), so ParseKey
// and Match see attacker bytes: they must never panic, and the canonical
// form must be a fixed point (stored and looked-up keys agree).
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{
		"ip:192.0.2.1", "ip:::ffff:1.2.3.4", "ip:fe80::1%eth0", "net:10.0.0.7/8", "net:::ffff:10.0.0.0/104",
		"net:192.0.2.1/32", "country:de", "fp:t13d1516h2_8daaf6152771", "sub:ü@example.com", "key:", ":", "ip:1.2.3",
	} {
		f.Add(s)
	}
	mem := state.NewMemory(state.MemoryOptions{})
	defer mem.Close()
	s, err := NewStore(mem, Options{})
	if err != nil {
		f.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	for _, k := range []string{"net:10.0.0.0/8", "net:2001:db8::/32", "ip:192.0.2.1", "country:DE", "sub:x"} {
		if _, err := s.Add(context.Background(), Decision{Key: k, Action: Block, Source: SourceManual, Expires: exp}); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, in string) {
		s.Match(in, in+"x")
		canon, err := ParseKey(in)
		if err != nil {
			return
		}
		again, err := ParseKey(canon)
		if err != nil || again != canon {
			t.Fatalf("ParseKey(%q) = %q, but ParseKey(%q) = %q, %v", in, canon, canon, again, err)
		}
		if d, ok := s.Match(canon); ok {
			if _, ok2 := s.Match(d.Key); !ok2 {
				t.Fatalf("%q matched %q, which does not match itself", canon, d.Key)
			}
		}
	})
}
