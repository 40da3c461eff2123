package fingerprint

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// framerAkamai computes the Akamai fingerprint with x/net's Framer and
// MetaHeadersFrame decoding, an implementation independent of h2Parser.
func framerAkamai(t *testing.T, b []byte) (string, []string) {
	t.Helper()
	if !bytes.HasPrefix(b, []byte(http2.ClientPreface)) {
		t.Fatal("no client preface")
	}
	fr := http2.NewFramer(nil, bytes.NewReader(b[len(http2.ClientPreface):]))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var settings, prio []string
	wu := "00"
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("framer: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() && settings == nil {
				settings = []string{}
				_ = f.ForeachSetting(func(s http2.Setting) error {
					settings = append(settings, fmt.Sprintf("%d:%d", s.ID, s.Val))
					return nil
				})
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 && wu == "00" {
				wu = fmt.Sprint(f.Increment)
			}
		case *http2.PriorityFrame:
			excl := 0
			if f.Exclusive {
				excl = 1
			}
			prio = append(prio, fmt.Sprintf("%d:%d:%d:%d", f.StreamID, excl, f.StreamDep, int(f.Weight)+1))
		case *http2.MetaHeadersFrame:
			var pseudo, names []string
			for _, hf := range f.Fields {
				if strings.HasPrefix(hf.Name, ":") {
					pseudo = append(pseudo, hf.Name[1:2])
				} else {
					names = append(names, hf.Name)
				}
			}
			p := "0"
			if len(prio) > 0 {
				p = strings.Join(prio, ",")
			}
			return strings.Join(settings, ";") + "|" + wu + "|" + p + "|" + strings.Join(pseudo, ","), names
		}
	}
}

func TestHTTP2RecordedClients(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file, akamai string
	}{
		// Chromium 156. Chrome's well-known value, published for current
		// Chrome by e.g. browserleaks/tls.peet.ws echo output.
		{"chromium.plain", "1:65536;2:0;4:6291456;6:262144|15663105|0|m,a,s,p"},
		// curl 7.88.1 with nghttp2 1.52 (newer curls send other values).
		{"curl_http2.plain", "3:100;4:33554432;2:0|33488897|0|m,p,s,a"},
		// Go 1.26 net/http client.
		{"go_client.plain", goH2Akamai},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			b := readTestdata(t, tt.file)
			fp, ok := ParseHTTP2ClientPreface(b)
			if !ok || fp.Akamai != tt.akamai {
				t.Errorf("Akamai = %q (ok %v), want %q", fp.Akamai, ok, tt.akamai)
			}
			oracle, names := framerAkamai(t, b)
			if fp.Akamai != oracle {
				t.Errorf("x/net Framer gives %q", oracle)
			}
			if want := tt.akamai[strings.LastIndexByte(tt.akamai, '|')+1:]; fp.PseudoHeaderOrder != want {
				t.Errorf("PseudoHeaderOrder = %q, want %q", fp.PseudoHeaderOrder, want)
			}

			// Byte-at-a-time through the capture gives the same result,
			// and the header names in wire order.
			c := newH2Capture()
			for i := range b {
				c.write(b[i : i+1])
				if i == len(b)/2 && c.fingerprint() != nil && !strings.HasPrefix(tt.file, "go") {
					// Half a stream cannot have completed the first HEADERS
					// of these recordings (the Go one is small enough to).
					t.Error("fingerprint before the HEADERS frame was complete")
				}
			}
			got := c.fingerprint()
			if got == nil || *got != fp {
				t.Errorf("incremental capture = %+v, want %+v", got, fp)
			}
			gotNames, ok := c.headerNames("GET", "/")
			if !ok || !slices.Equal(gotNames, names) {
				t.Errorf("header names = %q (ok %v), want %q", gotNames, ok, names)
			}
			if _, ok := c.headerNames("GET", "/"); ok {
				t.Error("a header block was matched to two requests")
			}
		})
	}
}

func TestHTTP2Malformed(t *testing.T) {
	t.Parallel()
	chrome := readTestdata(t, "chromium.plain")
	settingsOnly := chrome[:len(http2.ClientPreface)+9+24]
	tests := []struct {
		desc string
		b    []byte
	}{
		{"empty", nil},
		{"not a preface", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"preface only", []byte(http2.ClientPreface)},
		{"truncated HEADERS", chrome[:len(chrome)-10]},
		{"no HEADERS yet", settingsOnly},
		{"SETTINGS with a bad length", append([]byte(http2.ClientPreface), 0, 0, 5, 4, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5)},
		{"CONTINUATION without HEADERS", append([]byte(http2.ClientPreface), 0, 0, 1, 9, 4, 0, 0, 0, 1, 0x82)},
		{"HEADERS padding longer than the frame", append([]byte(http2.ClientPreface), 0, 0, 2, 1, 0x0c, 0, 0, 0, 1, 9, 0x82)},
		{"bad HPACK index", append([]byte(http2.ClientPreface), 0, 0, 1, 1, 4, 0, 0, 0, 1, 0xff)},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			if fp, ok := ParseHTTP2ClientPreface(tt.b); ok {
				t.Errorf("got %+v from malformed input", fp)
			}
		})
	}
}

func TestHTTP2CaptureIsBounded(t *testing.T) {
	t.Parallel()
	b := readTestdata(t, "chromium.plain")
	c := newH2Capture()
	c.write(b)
	// A DATA frame far larger than the window follows.
	big := append([]byte{0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1}, make([]byte, 64<<10)...)
	c.write(big)
	c.write(big)
	if c.captured > h2CaptureLimit {
		t.Errorf("captured %d bytes, limit %d", c.captured, h2CaptureLimit)
	}
	if !c.stopped.Load() {
		t.Error("capture did not stop at the limit")
	}
	if fp := c.fingerprint(); fp == nil || fp.PseudoHeaderOrder != "m,a,s,p" {
		t.Errorf("fingerprint lost: %+v", fp)
	}
	if c.buf != nil {
		t.Errorf("%d bytes still buffered after the capture stopped", len(c.buf))
	}
}

// FuzzHTTP2Capture feeds arbitrary client bytes, split at an arbitrary
// point, through the capture and checks it never panics and agrees with
// the one-shot parser.
func FuzzHTTP2Capture(f *testing.F) {
	for _, name := range []string{"chromium.plain", "curl_http2.plain", "go_client.plain"} {
		f.Add(readTestdata(f, name), uint16(40))
	}
	f.Add([]byte(http2.ClientPreface+"\x00\x00\x00\x04\x00\x00\x00\x00\x00"), uint16(3))
	f.Fuzz(func(t *testing.T, b []byte, split uint16) {
		want, ok := ParseHTTP2ClientPreface(b)
		c := newH2Capture()
		s := min(int(split), len(b))
		c.write(b[:s])
		_ = c.fingerprint() // parse the first part on its own
		c.write(b[s:])
		got := c.fingerprint()
		if ok != (got != nil) || (got != nil && *got != want) {
			t.Fatalf("incremental %+v, one-shot %+v (ok %v)", got, want, ok)
		}
		if ok && strings.Count(want.Akamai, "|") != 3 {
			t.Fatalf("malformed Akamai string %q", want.Akamai)
		}
		_, _ = c.headerNames("GET", "/")
	})
}

// TestHTTP2Priorities writes the frames Firefox sent before version 91
// (PRIORITY frames for its dependency tree) and compares with the Akamai
// fingerprint published for it in the Akamai white paper era and by
// fingerprinting tools since:
// 1:65536;4:131072;5:16384|12517377|3:0:0:201,5:0:0:101,7:0:0:1,9:0:7:1,11:0:3:1,13:0:0:241|m,p,a,s
func TestHTTP2Priorities(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	buf.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&buf, nil)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(fr.WriteSettings(http2.Setting{ID: 1, Val: 65536}, http2.Setting{ID: 4, Val: 131072}, http2.Setting{ID: 5, Val: 16384}))
	// Only the first connection-level WINDOW_UPDATE counts.
	must(fr.WriteWindowUpdate(3, 99))
	must(fr.WriteWindowUpdate(0, 12517377))
	must(fr.WriteWindowUpdate(0, 5))
	for _, p := range []struct {
		stream, dep uint32
		weight      uint8
		excl        bool
	}{{3, 0, 200, false}, {5, 0, 100, false}, {7, 0, 0, false}, {9, 7, 0, false}, {11, 3, 0, false}, {13, 0, 240, false}} {
		must(fr.WritePriority(p.stream, http2.PriorityParam{StreamDep: p.dep, Weight: p.weight, Exclusive: p.excl}))
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":path", "/"}, {":authority", "a.example"}, {":scheme", "https"}, {"user-agent", "x"}} {
		must(enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}))
	}
	// The header block is split over HEADERS and CONTINUATION, with
	// padding and a priority block, to cover those paths.
	block := hb.Bytes()
	must(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 15, BlockFragment: block[:3], EndStream: true, PadLength: 4,
		Priority: http2.PriorityParam{StreamDep: 13, Weight: 41, Exclusive: true}}))
	must(fr.WriteContinuation(15, true, block[3:]))
	// A PRIORITY frame after the first HEADERS is not part of the fingerprint.
	must(fr.WritePriority(17, http2.PriorityParam{StreamDep: 15, Exclusive: true}))

	const want = "1:65536;4:131072;5:16384|12517377|3:0:0:201,5:0:0:101,7:0:0:1,9:0:7:1,11:0:3:1,13:0:0:241|m,p,a,s"
	fp, ok := ParseHTTP2ClientPreface(buf.Bytes())
	if !ok || fp.Akamai != want {
		t.Errorf("Akamai = %q (ok %v), want %q", fp.Akamai, ok, want)
	}
	if oracle, _ := framerAkamai(t, buf.Bytes()); oracle != want {
		t.Errorf("x/net Framer gives %q", oracle)
	}

	// The exclusive bit is rendered as 1.
	buf.Reset()
	buf.WriteString(http2.ClientPreface)
	must(fr.WriteSettings())
	must(fr.WritePriority(3, http2.PriorityParam{StreamDep: 1, Weight: 15, Exclusive: true}))
	must(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: block, EndHeaders: true}))
	if fp, _ := ParseHTTP2ClientPreface(buf.Bytes()); fp.Akamai != "|00|3:1:1:16|m,p,a,s" {
		t.Errorf("Akamai = %q, want |00|3:1:1:16|m,p,a,s", fp.Akamai)
	}
}
