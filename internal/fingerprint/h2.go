package fingerprint

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http2/hpack"
)

// Bounds of the HTTP/2 capture. The client's first flight (preface,
// SETTINGS, WINDOW_UPDATE, PRIORITY, HEADERS) is a few hundred bytes; the
// rest of the window lets JA4H see the header order of the first requests.
const (
	h2CaptureLimit  = 16 << 10
	h2MaxSettings   = 32
	h2MaxPriorities = 32
	h2MaxBlocks     = 32 // header blocks remembered for JA4H
	h2MaxNames      = 64 // header names remembered per block
)

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// HTTP/2 frame types and flags (RFC 9113 section 6).
const (
	h2FrameHeaders      = 0x1
	h2FramePriority     = 0x2
	h2FrameSettings     = 0x4
	h2FrameWindowUpdate = 0x8
	h2FrameContinuation = 0x9

	h2FlagAck        = 0x1
	h2FlagEndHeaders = 0x4
	h2FlagPadded     = 0x8
	h2FlagPriority   = 0x20
)

// HTTP2Fingerprint is the Akamai HTTP/2 fingerprint of a connection
// (Shuster and Segal, Black Hat EU 2017):
//
//	SETTINGS|WINDOW_UPDATE|PRIORITY|pseudo-header order
//	1:65536;2:0;4:6291456;6:262144|15663105|0|m,a,s,p
//
// SETTINGS are the first non-ACK SETTINGS frame's id:value pairs in the
// order sent; WINDOW_UPDATE is the first connection-level increment sent
// before the first HEADERS frame ("00" when none); PRIORITY lists the
// PRIORITY frames sent before the first HEADERS frame as
// stream:exclusive:dependency:weight with the weight as 1-256 ("0" when
// none); the last part is the pseudo-header order of the first HEADERS.
type HTTP2Fingerprint struct {
	Akamai string
	// PseudoHeaderOrder is the last part alone, e.g. "m,a,s,p".
	PseudoHeaderOrder string
}

// h2Block is one decoded request header block.
type h2Block struct {
	method, path string
	pseudo       []byte   // 'm', 'a', 's', 'p' in wire order
	names        []string // regular header names in wire order, as sent
	used         bool     // already matched to a request by JA4H
}

// h2Capture buffers the client's first bytes and parses them on demand.
// write runs on the connection's read goroutine; readers (handlers) lock.
type h2Capture struct {
	stopped atomic.Bool // nothing more to capture: Read skips the lock

	mu       sync.Mutex
	buf      []byte // captured bytes not parsed yet
	captured int
	p        h2Parser
	fp       *HTTP2Fingerprint
}

func newH2Capture() *h2Capture { return &h2Capture{} }

func (c *h2Capture) write(b []byte) {
	if c.stopped.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	room := h2CaptureLimit - c.captured
	if room <= 0 || c.p.failed {
		c.stopped.Store(true)
		return
	}
	if len(b) > room {
		b = b[:room]
	}
	c.buf = append(c.buf, b...)
	c.captured += len(b)
	if c.captured >= h2CaptureLimit {
		// Parse now so the window's bytes are not kept for the
		// connection's lifetime.
		c.stopped.Store(true)
		c.parseLocked()
	}
}

// parseLocked consumes whatever complete frames are buffered. Once the
// capture has stopped, a trailing partial frame can never complete, so the
// buffer is released.
func (c *h2Capture) parseLocked() {
	if len(c.buf) > 0 && !c.p.failed {
		n := c.p.feed(c.buf)
		c.buf = c.buf[:copy(c.buf, c.buf[n:])]
	}
	if c.p.failed || c.stopped.Load() {
		c.stopped.Store(true)
		c.buf = nil
	}
}

func (c *h2Capture) fingerprint() *HTTP2Fingerprint {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fp == nil {
		c.parseLocked()
		c.fp = c.p.fingerprint()
	}
	return c.fp
}

// headerNames returns the wire-order header names of the first unused
// request block with this method and path, and marks it used.
func (c *h2Capture) headerNames(method, path string) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.parseLocked()
	for i := range c.p.blocks {
		b := &c.p.blocks[i]
		if !b.used && b.method == method && b.path == path {
			b.used = true
			return b.names, true
		}
	}
	return nil, false
}

// h2Parser is an incremental parser of the client side of an HTTP/2
// connection. It never allocates more than the bounds above allow and
// stops at the first malformed frame.
type h2Parser struct {
	prefaceDone bool
	failed      bool

	settings     []h2Setting
	haveSettings bool
	windowUpdate uint32
	priorities   []h2Priority
	sawHeaders   bool // a HEADERS frame started: the Akamai prefix is complete
	firstPseudo  []byte
	firstDone    bool

	dec       *hpack.Decoder
	cur       *h2Block // block being decoded; nil between blocks
	curStream uint32
	blocks    []h2Block
}

type h2Setting struct {
	id  uint16
	val uint32
}

type h2Priority struct {
	stream, dep uint32
	excl        bool
	weight      uint16
}

// feed parses the complete frames at the start of b and returns how many
// bytes it consumed; a trailing partial frame waits for more bytes.
func (p *h2Parser) feed(b []byte) int {
	off := 0
	if !p.prefaceDone {
		if len(b) < len(h2Preface) {
			if !strings.HasPrefix(h2Preface, string(b)) {
				p.failed = true
			}
			return 0
		}
		if string(b[:len(h2Preface)]) != h2Preface {
			p.failed = true
			return 0
		}
		p.prefaceDone = true
		off = len(h2Preface)
	}
	for !p.failed && len(b)-off >= 9 {
		length := int(b[off])<<16 | int(b[off+1])<<8 | int(b[off+2])
		if len(b)-off-9 < length {
			if length > h2CaptureLimit {
				p.failed = true // cannot complete inside the window
			}
			break
		}
		typ, flags := b[off+3], b[off+4]
		stream := binary.BigEndian.Uint32(b[off+5:]) & 0x7fffffff
		p.frame(typ, flags, stream, b[off+9:off+9+length])
		off += 9 + length
	}
	return off
}

func (p *h2Parser) frame(typ, flags byte, stream uint32, payload []byte) {
	if p.cur != nil && typ != h2FrameContinuation {
		p.failed = true // RFC 9113 6.10: CONTINUATION must follow
		return
	}
	switch typ {
	case h2FrameSettings:
		if flags&h2FlagAck != 0 || p.haveSettings {
			return
		}
		if len(payload)%6 != 0 || stream != 0 {
			p.failed = true
			return
		}
		p.haveSettings = true
		for i := 0; i+6 <= len(payload) && len(p.settings) < h2MaxSettings; i += 6 {
			p.settings = append(p.settings, h2Setting{
				id:  binary.BigEndian.Uint16(payload[i:]),
				val: binary.BigEndian.Uint32(payload[i+2:]),
			})
		}
	case h2FrameWindowUpdate:
		if len(payload) != 4 {
			p.failed = true
			return
		}
		if stream == 0 && !p.sawHeaders && p.windowUpdate == 0 {
			p.windowUpdate = binary.BigEndian.Uint32(payload) & 0x7fffffff
		}
	case h2FramePriority:
		if len(payload) != 5 {
			p.failed = true
			return
		}
		if !p.sawHeaders && len(p.priorities) < h2MaxPriorities {
			p.priorities = append(p.priorities, readPriority(stream, payload))
		}
	case h2FrameHeaders:
		p.sawHeaders = true
		frag, ok := headersFragment(flags, payload)
		if !ok {
			p.failed = true
			return
		}
		p.startBlock(stream)
		p.fragment(frag, flags&h2FlagEndHeaders != 0)
	case h2FrameContinuation:
		if p.cur == nil || stream != p.curStream {
			p.failed = true
			return
		}
		p.fragment(payload, flags&h2FlagEndHeaders != 0)
	}
}

func readPriority(stream uint32, b []byte) h2Priority {
	dep := binary.BigEndian.Uint32(b)
	return h2Priority{stream: stream, excl: dep>>31 == 1, dep: dep & 0x7fffffff, weight: uint16(b[4]) + 1}
}

// headersFragment strips padding and the priority block from a HEADERS
// payload.
func headersFragment(flags byte, b []byte) ([]byte, bool) {
	pad := 0
	if flags&h2FlagPadded != 0 {
		if len(b) < 1 {
			return nil, false
		}
		pad = int(b[0])
		b = b[1:]
	}
	if flags&h2FlagPriority != 0 {
		if len(b) < 5 {
			return nil, false
		}
		b = b[5:]
	}
	if pad > len(b) {
		return nil, false
	}
	return b[:len(b)-pad], true
}

func (p *h2Parser) startBlock(stream uint32) {
	if p.dec == nil {
		// The table size is the client's to choose up to what the server
		// advertised (4 KiB unless configured otherwise); allow more rather
		// than lose the order. Literal strings cannot exceed the window,
		// so what the decoder holds stays bounded by the capture.
		p.dec = hpack.NewDecoder(4096, p.emit)
		p.dec.SetAllowedMaxDynamicTableSize(64 << 10)
		p.dec.SetMaxStringLength(h2CaptureLimit)
	}
	p.cur = &h2Block{}
	p.curStream = stream
}

func (p *h2Parser) emit(f hpack.HeaderField) {
	b := p.cur
	if b == nil {
		return
	}
	if strings.HasPrefix(f.Name, ":") {
		switch f.Name {
		case ":method":
			b.method = f.Value
			b.pseudo = append(b.pseudo, 'm')
		case ":authority":
			b.pseudo = append(b.pseudo, 'a')
		case ":scheme":
			b.pseudo = append(b.pseudo, 's')
		case ":path":
			b.path = f.Value
			b.pseudo = append(b.pseudo, 'p')
		}
		return
	}
	if len(b.names) < h2MaxNames {
		b.names = append(b.names, f.Name)
	}
}

func (p *h2Parser) fragment(frag []byte, end bool) {
	if _, err := p.dec.Write(frag); err != nil {
		p.failed = true
		p.cur = nil
		return
	}
	if !end {
		return
	}
	if err := p.dec.Close(); err != nil {
		p.failed = true
		p.cur = nil
		return
	}
	if !p.firstDone {
		p.firstDone = true
		p.firstPseudo = p.cur.pseudo
	}
	if len(p.blocks) < h2MaxBlocks {
		p.blocks = append(p.blocks, *p.cur)
	}
	p.cur = nil
}

// fingerprint renders the Akamai string once the first header block is
// decoded; nil before that.
func (p *h2Parser) fingerprint() *HTTP2Fingerprint {
	if !p.firstDone {
		return nil
	}
	var s bytes.Buffer
	for i, st := range p.settings {
		if i > 0 {
			s.WriteByte(';')
		}
		s.WriteString(strconv.FormatUint(uint64(st.id), 10))
		s.WriteByte(':')
		s.WriteString(strconv.FormatUint(uint64(st.val), 10))
	}
	s.WriteByte('|')
	if p.windowUpdate == 0 {
		s.WriteString("00")
	} else {
		s.WriteString(strconv.FormatUint(uint64(p.windowUpdate), 10))
	}
	s.WriteByte('|')
	if len(p.priorities) == 0 {
		s.WriteByte('0')
	}
	for i, pr := range p.priorities {
		if i > 0 {
			s.WriteByte(',')
		}
		excl := 0
		if pr.excl {
			excl = 1
		}
		s.WriteString(strconv.FormatUint(uint64(pr.stream), 10) + ":" + strconv.Itoa(excl) + ":" +
			strconv.FormatUint(uint64(pr.dep), 10) + ":" + strconv.Itoa(int(pr.weight)))
	}
	s.WriteByte('|')
	order := pseudoOrder(p.firstPseudo)
	s.WriteString(order)
	return &HTTP2Fingerprint{Akamai: s.String(), PseudoHeaderOrder: order}
}

func pseudoOrder(b []byte) string {
	out := make([]byte, 0, 2*len(b))
	for i, c := range b {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	return string(out)
}

// ParseHTTP2ClientPreface computes the Akamai fingerprint from the first
// bytes a client sent on an HTTP/2 connection (after TLS), for offline use
// on recorded traffic. ok is false when the bytes do not hold a valid
// preface and a complete first HEADERS block.
func ParseHTTP2ClientPreface(b []byte) (fp HTTP2Fingerprint, ok bool) {
	var p h2Parser
	if len(b) > h2CaptureLimit {
		b = b[:h2CaptureLimit]
	}
	p.feed(b)
	f := p.fingerprint()
	if f == nil {
		return HTTP2Fingerprint{}, false
	}
	return *f, true
}
