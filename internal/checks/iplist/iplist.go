// Package iplist allows or denies requests by client address (CIDR lists).
package iplist

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
)

// Config is the iplist check's configuration.
type Config struct {
	pipeline.Options `yaml:",inline"`
	// Allow, when not empty, admits only these addresses or CIDRs.
	Allow []string `yaml:"allow,omitempty"`
	// Deny refuses these addresses or CIDRs; deny wins over allow.
	Deny []string `yaml:"deny,omitempty"`
}

// Validate reports unparsable entries.
func (c *Config) Validate(path string, errs *field.Errors) {
	c.Options.Validate(path, errs)
	for name, list := range map[string][]string{"allow": c.Allow, "deny": c.Deny} {
		for i, s := range list {
			if _, err := parsePrefix(s); err != nil {
				errs.Add(field.Index(field.Join(path, name), i), "not an IP address or CIDR: %q", s)
			}
		}
	}
}

// List is the built check.
type List struct {
	allow, deny ranges
	hasAllow    bool
}

var _ pipeline.Check = (*List)(nil)

// New builds the check from a validated config.
func New(cfg Config) (*List, error) {
	allow, err := buildRanges(cfg.Allow)
	if err != nil {
		return nil, err
	}
	deny, err := buildRanges(cfg.Deny)
	if err != nil {
		return nil, err
	}
	return &List{allow: allow, deny: deny, hasAllow: len(cfg.Allow) > 0}, nil
}

// Name implements pipeline.Check.
func (*List) Name() string { return "iplist" }

var (
	deniedVerdict     = pipeline.Verdict{Action: pipeline.Deny, Status: http.StatusForbidden, Reason: "ip-denied", Detail: "requests from this address are denied"}
	notAllowedVerdict = pipeline.Verdict{Action: pipeline.Deny, Status: http.StatusForbidden, Reason: "ip-not-allowed", Detail: "requests from this address are not allowed on this route"}
)

// Check implements pipeline.Check.
func (l *List) Check(_ context.Context, req *pipeline.Request) (pipeline.Verdict, error) {
	ip := req.ClientIP.Unmap()
	if l.deny.contains(ip) {
		return deniedVerdict, nil
	}
	if l.hasAllow && !l.allow.contains(ip) {
		return notAllowedVerdict, nil
	}
	return pipeline.Allowed, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ranges is a sorted list of disjoint address ranges: lookups are a binary
// search, so lists of thousands of CIDRs cost O(log n) per request.
type ranges []addrRange

type addrRange struct{ lo, hi netip.Addr }

func buildRanges(list []string) (ranges, error) {
	var rs ranges
	for _, s := range list {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, err
		}
		rs = append(rs, addrRange{p.Addr(), lastAddr(p)})
	}
	slices.SortFunc(rs, func(a, b addrRange) int { return a.lo.Compare(b.lo) })
	merged := rs[:0]
	for _, r := range rs {
		if n := len(merged); n > 0 && merged[n-1].lo.BitLen() == r.lo.BitLen() && r.lo.Compare(merged[n-1].hi) <= 0 {
			if r.hi.Compare(merged[n-1].hi) > 0 {
				merged[n-1].hi = r.hi
			}
			continue
		}
		merged = append(merged, r)
	}
	return merged, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func (rs ranges) contains(ip netip.Addr) bool {
	if len(rs) == 0 || !ip.IsValid() {
		return false
	}
	// First range whose lo is greater than ip; the candidate is the one before.
	i, _ := slices.BinarySearchFunc(rs, ip, func(r addrRange, t netip.Addr) int {
		if r.lo.Compare(t) <= 0 {
			return -1
		}
		return 1
	})
	if i == 0 {
		return false
	}
	r := rs[i-1]
	return r.lo.BitLen() == ip.BitLen() && ip.Compare(r.hi) <= 0
}
