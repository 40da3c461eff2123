package keyattest

// A minimal DER reader. encoding/asn1 cannot express "SEQUENCE of optional
// [n] EXPLICIT fields, skip the unknown ones" without reflection tricks, and
// cryptobyte is not yet a direct dependency of this module; the subset needed
// here (definite lengths, high tag numbers) is small enough to own.

const (
	classUniversal = 0x00
	classContext   = 0x80

	tagBoolean     = 1
	tagInteger     = 2
	tagOctetString = 4
	tagNull        = 5
	tagEnumerated  = 10
	tagSequence    = 16
	tagSet         = 17
)

type header struct {
	class       byte
	constructed bool
	number      uint32
}

// readTLV splits one element off b. Lengths may be non-minimal (some
// attestation encoders are BER-ish there, and it creates no ambiguity inside
// a signed blob); indefinite lengths are refused.
func readTLV(b []byte) (h header, content, rest []byte, ok bool) {
	if len(b) < 2 {
		return h, nil, nil, false
	}
	id := b[0]
	i := 1
	h.class = id & 0xc0
	h.constructed = id&0x20 != 0
	h.number = uint32(id & 0x1f)
	if h.number == 0x1f {
		// High-tag-number form: base-128, at most 4 bytes (KeyMint tags
		// are < 2^28, so anything longer is garbage).
		h.number = 0
		for k := 0; ; k++ {
			if k == 4 || i >= len(b) {
				return h, nil, nil, false
			}
			c := b[i]
			i++
			if k == 0 && c == 0x80 {
				return h, nil, nil, false // leading zero group
			}
			h.number = h.number<<7 | uint32(c&0x7f)
			if c&0x80 == 0 {
				break
			}
		}
		if h.number < 0x1f {
			return h, nil, nil, false
		}
	}
	if i >= len(b) {
		return h, nil, nil, false
	}
	l := int(b[i])
	i++
	if l&0x80 != 0 {
		n := l & 0x7f
		if n == 0 || n > 3 { // indefinite, or > 16 MiB: never legitimate here
			return h, nil, nil, false
		}
		l = 0
		for ; n > 0; n-- {
			if i >= len(b) {
				return h, nil, nil, false
			}
			l = l<<8 | int(b[i])
			i++
		}
	}
	if l > len(b)-i {
		return h, nil, nil, false
	}
	return h, b[i : i+l], b[i+l:], true
}

// readUniversal reads one element that must be the given universal tag.
func readUniversal(b []byte, tag uint32, constructed bool) (content, rest []byte, ok bool) {
	h, content, rest, ok := readTLV(b)
	if !ok || h.class != classUniversal || h.number != tag || h.constructed != constructed {
		return nil, nil, false
	}
	return content, rest, true
}

// parseInt decodes a two's-complement INTEGER/ENUMERATED body of up to 8 bytes.
func parseInt(c []byte) (int64, bool) {
	if len(c) == 0 || len(c) > 8 {
		return 0, false
	}
	v := int64(int8(c[0])) // sign-extend
	for _, x := range c[1:] {
		v = v<<8 | int64(x)
	}
	return v, true
}

func readInt(b []byte, tag uint32) (v int64, rest []byte, ok bool) {
	c, rest, ok := readUniversal(b, tag, false)
	if !ok {
		return 0, nil, false
	}
	v, ok = parseInt(c)
	return v, rest, ok
}
