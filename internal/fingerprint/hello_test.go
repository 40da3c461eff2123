package fingerprint

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// replayConn feeds recorded client bytes to a real tls.Server and discards
// whatever the server writes back.
type replayConn struct {
	r *bytes.Reader
}

func (c *replayConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *replayConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *replayConn) Close() error                { return nil }
func (c *replayConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443} }
func (c *replayConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
}
func (c *replayConn) SetDeadline(time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }

var errStopHandshake = errors.New("stop after ClientHello")

// replayHello runs raw through crypto/tls's server handshake and returns
// the ClientHelloInfo it built, aborting the handshake right after
// GetConfigForClient. nil means crypto/tls rejected the bytes.
func replayHello(raw []byte) *tls.ClientHelloInfo {
	var got *tls.ClientHelloInfo
	srv := tls.Server(&replayConn{r: bytes.NewReader(raw)}, &tls.Config{
		GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			got = chi
			return nil, errStopHandshake
		},
	})
	_ = srv.Handshake()
	return got
}

func mustReplay(t testing.TB, raw []byte) *tls.ClientHelloInfo {
	t.Helper()
	chi := replayHello(raw)
	if chi == nil {
		t.Fatal("crypto/tls did not accept the recorded ClientHello")
	}
	return chi
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wireHello is the test's own parse of a ClientHello, written apart from
// the package code (strings, fmt, sort) so that the two cross-check.
type wireHello struct {
	legacy    uint16
	ciphers   []uint16
	exts      []uint16
	sigalgs   []uint16
	versions  []uint16
	hasVers   bool
	alpnFirst []byte
}

// parseWireHello parses TLS records holding a ClientHello. It returns an
// error for anything it does not understand; it must never panic.
func parseWireHello(b []byte) (*wireHello, error) {
	var msg []byte
	complete := func() bool { return len(msg) >= 4 && len(msg) >= 4+(int(msg[1])<<16|int(msg[2])<<8|int(msg[3])) }
	for len(b) >= 5 && !complete() {
		if b[0] != 22 {
			return nil, errors.New("not a handshake record")
		}
		n := int(binary.BigEndian.Uint16(b[3:5]))
		if len(b) < 5+n {
			return nil, errors.New("short record")
		}
		msg = append(msg, b[5:5+n]...)
		b = b[5+n:]
	}
	if len(msg) < 4 || msg[0] != 1 {
		return nil, errors.New("not a ClientHello")
	}
	n := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
	if len(msg) < 4+n {
		return nil, errors.New("short ClientHello")
	}
	s := &reader{b: msg[4 : 4+n]}
	h := &wireHello{legacy: s.u16()}
	s.skip(32)
	s.skip(int(s.u8()))
	cs := s.bytes(int(s.u16()))
	for i := 0; i+1 < len(cs); i += 2 {
		h.ciphers = append(h.ciphers, binary.BigEndian.Uint16(cs[i:]))
	}
	s.skip(int(s.u8()))
	if s.err == nil && len(s.b) > 0 {
		exts := &reader{b: s.bytes(int(s.u16()))}
		for exts.err == nil && len(exts.b) > 0 {
			typ := exts.u16()
			data := &reader{b: exts.bytes(int(exts.u16()))}
			if exts.err != nil {
				break
			}
			h.exts = append(h.exts, typ)
			switch typ {
			case 0x000d:
				l := data.bytes(int(data.u16()))
				for i := 0; i+1 < len(l); i += 2 {
					h.sigalgs = append(h.sigalgs, binary.BigEndian.Uint16(l[i:]))
				}
			case 0x002b:
				h.hasVers = true
				l := data.bytes(int(data.u8()))
				for i := 0; i+1 < len(l); i += 2 {
					h.versions = append(h.versions, binary.BigEndian.Uint16(l[i:]))
				}
			case 0x0010:
				l := &reader{b: data.bytes(int(data.u16()))}
				h.alpnFirst = l.bytes(int(l.u8()))
			}
		}
		if exts.err != nil {
			return nil, exts.err
		}
	}
	if s.err != nil {
		return nil, s.err
	}
	return h, nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.err = errors.New("truncated")
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}
func (r *reader) skip(n int) { r.bytes(n) }
func (r *reader) u8() uint8 {
	b := r.bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}
func (r *reader) u16() uint16 {
	b := r.bytes(2)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func grease(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

// naiveJA4 computes JA4 straight from the spec's wording.
func naiveJA4(h *wireHello) (string, string) {
	hexes := func(l []uint16, drop func(uint16) bool) []string {
		var out []string
		for _, v := range l {
			if !grease(v) && (drop == nil || !drop(v)) {
				out = append(out, fmt.Sprintf("%04x", v))
			}
		}
		return out
	}
	hash := func(s string, empty bool) string {
		if empty {
			return "000000000000"
		}
		sum := sha256.Sum256([]byte(s))
		return hex.EncodeToString(sum[:])[:12]
	}
	ver := h.legacy
	if h.hasVers {
		ver = 0
		for _, v := range h.versions {
			if !grease(v) && v > ver {
				ver = v
			}
		}
	}
	vs := map[uint16]string{0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3"}[ver]
	if vs == "" {
		vs = "00"
	}
	sni := "i"
	if slices.Contains(h.exts, 0) {
		sni = "d"
	}
	alpn := "00"
	if p := h.alpnFirst; len(p) > 0 {
		an := func(c byte) bool {
			return strings.ContainsRune("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", rune(c))
		}
		if an(p[0]) && an(p[len(p)-1]) {
			alpn = string([]byte{p[0], p[len(p)-1]})
		} else {
			x := hex.EncodeToString(p)
			alpn = x[:1] + x[len(x)-1:]
		}
	}
	ciphers := hexes(h.ciphers, nil)
	allExts := hexes(h.exts, nil)
	exts := hexes(h.exts, func(v uint16) bool { return v == 0 || v == 0x10 })
	sigs := hexes(h.sigalgs, nil)
	sort.Strings(ciphers)
	sort.Strings(exts)
	count := func(n int) string { return fmt.Sprintf("%02d", min(n, 99)) }
	proto := "t"
	if slices.Contains(h.exts, 0x0039) {
		proto = "q" // quic_transport_parameters
	}
	a := proto + vs + sni + count(len(ciphers)) + count(len(allExts)) + alpn
	c := strings.Join(exts, ",")
	if len(sigs) > 0 {
		c += "_" + strings.Join(sigs, ",")
	}
	b := strings.Join(ciphers, ",")
	return a + "_" + hash(b, len(ciphers) == 0) + "_" + hash(c, len(exts) == 0), a + "_" + b + "_" + c
}

// TestGoKeepsGREASE pins the crypto/tls behaviour JA4 depends on:
// ClientHelloInfo lists GREASE values as sent, so the package must (and
// does) filter them.
func TestGoKeepsGREASE(t *testing.T) {
	t.Parallel()
	chi := mustReplay(t, readTestdata(t, "chromium.hello"))
	for name, l := range map[string][]uint16{
		"CipherSuites": chi.CipherSuites, "Extensions": chi.Extensions, "SupportedVersions": chi.SupportedVersions,
	} {
		if !slices.ContainsFunc(l, grease) {
			t.Errorf("%s: no GREASE value in %04x; JA4's filtering is then untested", name, l)
		}
	}
	w, err := parseWireHello(readTestdata(t, "chromium.hello"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.exts, chi.Extensions) {
		t.Errorf("Extensions are not in wire order:\nwire %04x\ngo   %04x", w.exts, chi.Extensions)
	}
}
