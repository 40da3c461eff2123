package detect

import (
	"hash/maphash"
	"math"
	"time"
)

// actors estimates, per ip: and net: key, how many distinct actors
// (subject, else device, else API key, else fingerprint) used it in the
// last window: two half-window buckets of a 64-bit linear-counting map,
// 40 bytes per key. See NATConfig.
type actors struct {
	t        *table[string, actorState]
	width    int64
	maxScale float64
	seed     maphash.Seed
}

type actorState struct {
	n    [2]int64
	bits [2]uint64
}

func newActors(c NATConfig, maxKeys int, seed maphash.Seed) *actors {
	if c.Enabled != nil && !*c.Enabled {
		return nil
	}
	w := durOr(c.Window, 10*time.Minute)
	hash := func(k string) uint64 { return maphash.String(seed, k) }
	return &actors{
		t:        newTable[string, actorState](intOr(c.MaxKeys, maxKeys), w, hash, cloneString),
		width:    max(w/2, 1),
		maxScale: float64(intOr(c.MaxScale, 8)),
		seed:     seed,
	}
}

// observe records the actor of c and sets c.scale for ip and net.
func (a *actors) observe(c *obsCtx, o *Observation) {
	id := c.id.keys[KindSubject]
	for _, k := range [...]Kind{KindDevice, KindAPIKey, KindFP} {
		if id != "" {
			break
		}
		id = c.id.keys[k]
	}
	var h uint64
	switch {
	case id == c.id.keys[KindFP] && o.Login != nil && o.Login.Success && o.Login.Username != "":
		// A successful login has no subject yet; its username is the
		// subject of the requests that follow, so it is the same actor.
		id = "sub:" + clip(o.Login.Username)
		h = maphash.String(a.seed, id)
	case id != "":
		h = maphash.String(a.seed, id)
	}
	cur := bucketOf(c.now, a.width)
	for _, k := range [...]Kind{KindIP, KindNet} {
		key := c.id.keys[k]
		if key == "" {
			continue
		}
		s := a.t.lock(key)
		st, fresh := a.t.upsert(s, key, c.now)
		if fresh {
			*st = actorState{}
		}
		i := slotOf(cur, 2)
		if st.n[i] != cur {
			st.n[i], st.bits[i] = cur, 0
		}
		if id != "" {
			st.bits[i] |= 1 << (h & 63)
		}
		var all uint64
		for j := range st.n {
			if live(st.n[j], cur, 2) {
				all |= st.bits[j]
			}
		}
		s.mu.Unlock()
		n := math.Round(linearCount(popcount(all), 64))
		c.scale[k] = min(max(n, 1), a.maxScale)
	}
}
