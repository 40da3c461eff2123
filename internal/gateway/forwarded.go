package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// trustedProxies decides which forwarded addresses are believed.
type trustedProxies []netip.Prefix

func (t trustedProxies) contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr parses the TCP peer of a request.
func peerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(r.RemoteAddr)
	return a.Unmap()
}

// clientIP resolves the client address: the peer, unless the peer is a
// trusted proxy, in which case the X-Forwarded-For chain (or Forwarded
// for=) is walked from the right and the first untrusted address wins. A
// client can put anything at the left of the chain, so only addresses added
// by trusted hops count.
func (t trustedProxies) clientIP(r *http.Request) (client netip.Addr, peerTrusted bool) {
	peer := peerAddr(r)
	if len(t) == 0 || !t.contains(peer) {
		return peer, false
	}
	client = peer
	chain := r.Header.Values("X-Forwarded-For")
	if len(chain) == 0 {
		chain = forwardedFor(r.Header.Values("Forwarded"))
		if len(chain) == 0 {
			return peer, true
		}
	}
	for i := len(chain) - 1; i >= 0; i-- {
		items := strings.Split(chain[i], ",")
		for j := len(items) - 1; j >= 0; j-- {
			a, ok := parseForwardedAddr(items[j])
			if !ok {
				return client, true // garbage: stop at the last address we could believe
			}
			client = a
			if !t.contains(a) {
				return a, true
			}
		}
	}
	return client, true
}

// parseForwardedAddr accepts "1.2.3.4", "1.2.3.4:5678", "[2001:db8::1]:80",
// "2001:db8::1" and the quoted forms of the Forwarded header.
func parseForwardedAddr(s string) (netip.Addr, bool) {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	if s == "" {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if strings.HasPrefix(s, "[") {
		if i := strings.IndexByte(s, ']'); i > 0 {
			if a, err := netip.ParseAddr(s[1:i]); err == nil {
				return a.Unmap(), true
			}
		}
	}
	return netip.Addr{}, false
}

// forwardedFor extracts the for= values of RFC 7239 Forwarded headers, in order.
func forwardedFor(values []string) []string {
	var out []string
	for _, v := range values {
		for _, elem := range strings.Split(v, ",") {
			for _, pair := range strings.Split(elem, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(k, "for") {
					out = append(out, val)
				}
			}
		}
	}
	return out
}

// setForwarded writes X-Forwarded-For/-Proto/-Host and Forwarded on the
// outbound request. Inbound forwarding headers survive only when the peer
// is a trusted proxy; otherwise a client could forge its own history.
func setForwarded(in, out *http.Request, peerTrusted bool, tlsListener bool) {
	peer := peerAddr(in)
	proto := "http"
	if in.TLS != nil || tlsListener {
		proto = "https"
	}
	host := in.Host

	xff := peer.String()
	fwd := forwardedElement(peer, host, proto)
	if peerTrusted {
		if prior := in.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			xff = strings.Join(prior, ", ") + ", " + xff
		}
		if prior := in.Header.Values("Forwarded"); len(prior) > 0 {
			fwd = strings.Join(prior, ", ") + ", " + fwd
		}
		if p := in.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
			proto = p
		}
		if h := in.Header.Get("X-Forwarded-Host"); h != "" && validHost(h) {
			host = h
		}
	}
	out.Header.Set("X-Forwarded-For", xff)
	out.Header.Set("X-Forwarded-Proto", proto)
	if host != "" {
		out.Header.Set("X-Forwarded-Host", host)
	}
	out.Header.Set("Forwarded", fwd)
}

func forwardedElement(peer netip.Addr, host, proto string) string {
	var b strings.Builder
	b.WriteString("for=")
	if peer.Is6() {
		b.WriteString(`"[` + peer.String() + `]"`)
	} else {
		b.WriteString(peer.String())
	}
	if host != "" && validHost(host) {
		b.WriteString(`;host="` + host + `"`)
	}
	b.WriteString(";proto=" + proto)
	return b.String()
}

// validHost accepts host[:port] made of characters a host may have, so a
// forwarded value cannot smuggle quotes or separators.
func validHost(h string) bool {
	if len(h) == 0 || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_') {
			return false
		}
	}
	return true
}

// hostOnly strips a port from a Host header value.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
}
