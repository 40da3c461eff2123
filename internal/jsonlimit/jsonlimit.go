// Package jsonlimit validates JSON request bodies incrementally and limits
// their nesting depth and element count (OWASP API4, "hefty" requests).
//
// The Scanner is a streaming validator: it is fed the body chunk by chunk and
// reports the first error as soon as the bytes seen so far prove it, so a
// 10 MiB body of "[[[[..." is refused at the byte that opens the level past
// Limits.MaxDepth, without buffering the rest. It keeps no copy of the input:
// its state is a few integers plus a bit-stack with one bit per open
// container (object or array).
//
// Validity is exactly that of encoding/json.Valid (one top-level value with
// optional surrounding whitespace), with two deliberate notes:
//
//   - Invalid UTF-8 inside strings is accepted, as encoding/json.Valid does;
//     the gateway's later validation layers deal with UTF-8.
//   - encoding/json.Valid refuses documents nested deeper than 10000 levels;
//     the Scanner only refuses depth through Limits.MaxDepth (0 = unlimited).
//
// Errors never contain input bytes, because the gateway returns them to
// clients, who may be attackers.
package jsonlimit

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"strconv"
)

// Limits bounds a JSON document. A zero or negative field means unlimited.
type Limits struct {
	// MaxDepth is the maximum nesting of objects and arrays: "1" is depth 0,
	// "[]" and "{}" depth 1, "[[]]" and `{"a":[]}` depth 2.
	MaxDepth int
	// MaxElements is the maximum total count of values: every scalar,
	// object and array counts 1; object keys do not count. "[1,[2]]" has 4.
	MaxElements int
}

var (
	// ErrTooDeep is returned at the byte that opens a level past MaxDepth.
	ErrTooDeep = errors.New("jsonlimit: nesting too deep")
	// ErrTooManyElements is returned at the first byte of the value that
	// takes the element count past MaxElements.
	ErrTooManyElements = errors.New("jsonlimit: too many elements")

	errWriteAfterClose = errors.New("jsonlimit: write after Close")
)

// SyntaxError reports invalid JSON. Like encoding/json.SyntaxError, Offset
// is the number of input bytes read when the error was detected: the
// offending byte counts, and an incomplete document reports the total length.
// Msg describes the error without quoting input.
type SyntaxError struct {
	Offset int64
	Msg    string
}

func (e *SyntaxError) Error() string {
	return "jsonlimit: " + e.Msg + " (offset " + strconv.FormatInt(e.Offset, 10) + ")"
}

// Scanner states. The zero state is "expecting the top-level value".
const (
	stValue    uint8 = iota // expecting a value (top level, after ':' or after ',' in an array)
	stArrFirst              // after '[': a value or ']'
	stObjFirst              // after '{': a key or '}'
	stObjKey                // after ',' in an object: a key
	stColon                 // after a key: ':'
	stAfter                 // after a value inside a container: ',' or the closer
	stEnd                   // after the top-level value: whitespace only
	stStr                   // inside a string (key or value: see Scanner.key)
	stEsc                   // after '\' in a string
	stU1                    // expecting the 1st..4th hex digit of \uXXXX
	stU2
	stU3
	stU4
	stNeg   // after '-': a digit
	stZero  // after a leading '0' (number may end)
	stInt   // in integer digits (number may end)
	stDot   // after '.': a digit
	stFrac  // in fraction digits (number may end)
	stE     // after 'e' or 'E': sign or digit
	stESign // after the exponent sign: a digit
	stExp   // in exponent digits (number may end)
	stLit   // inside true, false or null
)

// literals holds true, false and null back to back; a literal in progress is
// the range litPos..litEnd of it.
const literals = "truefalsenull"

// inlineLevels is how many nesting levels the Scanner's fixed bit-stack
// holds; deeper levels (only possible with MaxDepth > inlineLevels or 0)
// spill into a slice that grows one word per 64 levels.
const inlineLevels = 1024

// Scanner validates one JSON document incrementally. Feed it with Write and
// finish with Close. The zero Scanner is ready to use with no limits; Reset
// readies it for another document, so Scanners can be pooled. Once warm, a
// Scanner does not allocate, except to return a *SyntaxError.
//
// A Scanner is not safe for concurrent use.
type Scanner struct {
	limits    Limits
	maxDepth  int // limits, 0 when unlimited
	maxElems  int
	depth     int   // open containers
	count     int   // values seen
	off       int64 // bytes consumed by earlier Writes
	err       error // sticky first error
	state     uint8
	key       bool // the string in progress is an object key
	obj       bool // the innermost open container is an object
	closed    bool
	litPos    uint8
	litEnd    uint8
	stack     [inlineLevels / 64]uint64 // bit per level: 1 = object, 0 = array
	deepStack []uint64                  // levels >= inlineLevels
}

// NewScanner returns a Scanner for one document under l.
func NewScanner(l Limits) *Scanner {
	s := new(Scanner)
	s.Reset(l)
	return s
}

// Reset discards all state and readies s for a new document under l. It
// keeps the spill stack's memory for reuse, unless l bounds the depth to
// less than that memory serves (so a pooled Scanner does not keep what an
// unlimited document once grew).
func (s *Scanner) Reset(l Limits) {
	deep := s.deepStack[:0]
	if l.MaxDepth > 0 && cap(deep) > (l.MaxDepth-inlineLevels+63)/64 {
		deep = nil
	}
	*s = Scanner{limits: l, deepStack: deep}
	s.maxDepth, s.maxElems = max(l.MaxDepth, 0), max(l.MaxElements, 0)
}

// Limits reports the limits s enforces.
func (s *Scanner) Limits() Limits { return s.limits }

// Check validates the complete document data under l.
func Check(data []byte, l Limits) error {
	var s Scanner
	s.Reset(l)
	if _, err := s.Write(data); err != nil {
		return err
	}
	return s.Close()
}

// push opens nesting level s.depth (0-based) as an object or an array.
func (s *Scanner) push(obj bool) {
	lv := s.depth
	s.depth++
	var w *uint64
	if lv < inlineLevels {
		w = &s.stack[lv>>6]
	} else {
		i := (lv - inlineLevels) >> 6
		if i == len(s.deepStack) {
			s.deepStack = append(s.deepStack, 0)
		}
		w = &s.deepStack[i]
	}
	bit := uint64(1) << (lv & 63)
	if obj {
		*w |= bit
	} else {
		*w &^= bit
	}
	s.obj = obj
}

// pop closes the innermost nesting level.
func (s *Scanner) pop() {
	s.depth--
	if s.depth > 0 {
		s.obj = s.inObject()
	}
}

// inObject reports whether the innermost open container is an object.
// It must only be called with s.depth > 0.
func (s *Scanner) inObject() bool {
	lv := s.depth - 1
	var w uint64
	if lv < inlineLevels {
		w = s.stack[lv>>6]
	} else {
		w = s.deepStack[(lv-inlineLevels)>>6]
	}
	return w>>(lv&63)&1 != 0
}

// Write feeds the next chunk of the document. It returns the first error as
// soon as the bytes seen so far prove it: a *SyntaxError, ErrTooDeep or
// ErrTooManyElements. n is the number of bytes accepted; on error it is the
// index in p of the offending byte. Errors are sticky: later calls to Write
// and Close return the same error.
func (s *Scanner) Write(p []byte) (n int, err error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.closed {
		return 0, errWriteAfterClose
	}
	st := s.state
	i := 0
	var msg string
loop:
	for i < len(p) {
		c := p[i]
		switch st {
		case stStr:
			i = skipPlain(p, i)
			if i == len(p) {
				break loop
			}
			switch p[i] {
			case '"':
				i++
				if s.key {
					st = stColon
				} else {
					st = s.after()
				}
			case '\\':
				i++
				st = stEsc
			default: // control character
				msg = "invalid control character in string literal"
				break loop
			}

		case stAfter:
			for isSpace(c) {
				if i++; i == len(p) {
					break loop
				}
				c = p[i]
			}
			obj := s.obj
			switch {
			case c == ',':
				if obj {
					st = stObjKey
				} else {
					st = stValue
				}
			case c == '}' && obj, c == ']' && !obj:
				s.pop()
				st = s.after()
			case obj:
				msg = "invalid character after object key:value pair"
				break loop
			default:
				msg = "invalid character after array element"
				break loop
			}
			i++

		case stValue, stArrFirst:
			for isSpace(c) {
				if i++; i == len(p) {
					break loop
				}
				c = p[i]
			}
			if c == ']' && st == stArrFirst {
				s.pop()
				st = s.after()
				i++
				continue
			}
			// Start of a value: check the byte before counting it, so a
			// syntax error is never reported as a limit.
			if !valueStart[c] {
				msg = "invalid character looking for beginning of value"
				break loop
			}
			if s.count++; s.count > s.maxElems && s.maxElems > 0 {
				err = ErrTooManyElements
				break loop
			}
			switch c {
			case '"':
				// Fast path: the whole string is plain and in p.
				s.key = false
				i++
				j := i
				if j+8 <= len(p) { // skipPlain, inlined by hand
					if m := special(binary.LittleEndian.Uint64(p[j:])); m != 0 {
						j += bits.TrailingZeros64(m) >> 3
					} else {
						j = skipPlainLong(p, j+8)
					}
				} else {
					j = skipPlainLong(p, j)
				}
				if j < len(p) && p[j] == '"' {
					i = j + 1
					st = s.after()
				} else {
					i = j
					st = stStr
				}
				continue
			case '{', '[':
				if s.depth >= s.maxDepth && s.maxDepth > 0 {
					err = ErrTooDeep
					break loop
				}
				s.push(c == '{')
				if c == '{' {
					st = stObjFirst
				} else {
					st = stArrFirst
				}
			case '-':
				st = stNeg
			case '0':
				st = stZero
			case '1', '2', '3', '4', '5', '6', '7', '8', '9':
				st = stInt
			case 't', 'f', 'n':
				var lit string
				switch c {
				case 't':
					lit, s.litPos, s.litEnd = "true", 1, 4
				case 'f':
					lit, s.litPos, s.litEnd = "false", 5, 9
				default:
					lit, s.litPos, s.litEnd = "null", 10, 13
				}
				if len(p)-i >= len(lit) && string(p[i:i+len(lit)]) == lit {
					i += len(lit)
					st = s.after()
					continue
				}
				st = stLit
			}
			i++

		case stObjFirst, stObjKey:
			for isSpace(c) {
				if i++; i == len(p) {
					break loop
				}
				c = p[i]
			}
			switch {
			case c == '"':
				// Fast path: the whole key is plain and in p, and
				// so is the colon right after it.
				s.key = true
				i++
				j := i
				// skipPlain, inlined by hand: keys are the hottest path.
				if j+8 <= len(p) {
					if m := special(binary.LittleEndian.Uint64(p[j:])); m != 0 {
						j += bits.TrailingZeros64(m) >> 3
					} else {
						j = skipPlainLong(p, j+8)
					}
				} else {
					j = skipPlainLong(p, j)
				}
				if j < len(p) && p[j] == '"' {
					i = j + 1
					st = stColon
					if i < len(p) && p[i] == ':' {
						i++
						st = stValue
					}
				} else {
					i = j
					st = stStr
				}
				continue
			case c == '}' && st == stObjFirst:
				s.pop()
				st = s.after()
			default:
				msg = "invalid character looking for beginning of object key string"
				break loop
			}
			i++

		case stColon:
			for isSpace(c) {
				if i++; i == len(p) {
					break loop
				}
				c = p[i]
			}
			if c != ':' {
				msg = "invalid character after object key"
				break loop
			}
			st = stValue
			i++

		case stEnd:
			for isSpace(c) {
				if i++; i == len(p) {
					break loop
				}
				c = p[i]
			}
			msg = "invalid character after top-level value"
			break loop

		case stEsc:
			switch c {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				st = stStr
			case 'u':
				st = stU1
			default:
				msg = "invalid character in string escape code"
				break loop
			}
			i++

		case stU1, stU2, stU3, stU4:
			if !isHex(c) {
				msg = "invalid character in \\u hexadecimal character escape"
				break loop
			}
			if st == stU4 {
				st = stStr
			} else {
				st++
			}
			i++

		case stNeg:
			switch {
			case c == '0':
				st = stZero
			case '1' <= c && c <= '9':
				st = stInt
			default:
				msg = "invalid character in numeric literal"
				break loop
			}
			i++

		case stInt, stFrac, stExp:
			for isDigit(c) {
				if i++; i == len(p) {
					break loop
				}
				c = p[i]
			}
			fallthrough
		case stZero:
			switch {
			case c == '.' && (st == stZero || st == stInt):
				st = stDot
				i++
			case (c == 'e' || c == 'E') && st != stExp:
				st = stE
				i++
			default:
				// The number ended; c belongs to what follows it.
				st = s.after()
			}

		case stDot:
			if !isDigit(c) {
				msg = "invalid character after decimal point in numeric literal"
				break loop
			}
			st = stFrac
			i++

		case stE, stESign:
			switch {
			case isDigit(c):
				st = stExp
			case st == stE && (c == '+' || c == '-'):
				st = stESign
			default:
				msg = "invalid character in exponent of numeric literal"
				break loop
			}
			i++

		case stLit:
			if c != literals[s.litPos] {
				msg = "invalid character in literal"
				break loop
			}
			i++
			if s.litPos++; s.litPos == s.litEnd {
				st = s.after()
			}
		}
	}
	s.state = st
	if msg != "" {
		err = &SyntaxError{Offset: s.off + int64(i) + 1, Msg: msg}
	}
	if err != nil {
		s.err = err
		s.off += int64(i)
		return i, err
	}
	s.off += int64(len(p))
	return len(p), nil
}

// after is the state once a value is complete.
func (s *Scanner) after() uint8 {
	if s.depth == 0 {
		return stEnd
	}
	return stAfter
}

// Close reports whether the bytes written form one complete document: it
// returns the sticky error if Write failed, a *SyntaxError if the document
// is incomplete or empty (only whitespace), and nil otherwise. After Close,
// Write fails until Reset.
func (s *Scanner) Close() error {
	if s.closed || s.err != nil {
		return s.err
	}
	s.closed = true
	switch s.state {
	case stEnd:
		return nil
	case stZero, stInt, stFrac, stExp:
		if s.depth == 0 {
			return nil
		}
	}
	s.err = &SyntaxError{Offset: s.off, Msg: "unexpected end of JSON input"}
	return s.err
}

// valueStart marks the bytes that can begin a JSON value.
var valueStart = [256]bool{
	'"': true, '{': true, '[': true, '-': true, 't': true, 'f': true, 'n': true,
	'0': true, '1': true, '2': true, '3': true, '4': true,
	'5': true, '6': true, '7': true, '8': true, '9': true,
}

func isSpace(c byte) bool { return c <= ' ' && (c == ' ' || c == '\t' || c == '\n' || c == '\r') }

func isDigit(c byte) bool { return c-'0' < 10 }

func isHex(c byte) bool { return c-'0' < 10 || (c|0x20)-'a' < 6 }

// skipPlain returns the index of the first byte at or after i that ends the
// plain run of a string: '"', '\\' or a control character (< 0x20), or
// len(p) if there is none. Bytes >= 0x80 are plain: the Scanner, like
// encoding/json.Valid, does not validate UTF-8.
//
// It checks the first 8 bytes itself, small enough to be inlined, since
// most keys and many values of API JSON are that short.
func skipPlain(p []byte, i int) int {
	if i+8 <= len(p) {
		if m := special(binary.LittleEndian.Uint64(p[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	return skipPlainLong(p, i)
}

func skipPlainLong(p []byte, i int) int {
	for ; i+8 <= len(p); i += 8 {
		if m := special(binary.LittleEndian.Uint64(p[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == '"' || c == '\\' {
			return i
		}
	}
	return i
}

// special flags, in bit 7 of each byte, the bytes of x (8 bytes in little
// endian order) that are '"', '\\' or < 0x20. These are the classic "has a
// zero byte" and "has a byte less than" tests: borrows can flag bytes above
// the first hit, but the lowest flagged byte is always exact.
func special(x uint64) uint64 {
	const (
		lo = 0x0101010101010101
		hi = 0x8080808080808080
	)
	q := x ^ ('"' * lo)
	b := x ^ ('\\' * lo)
	return ((q-lo)&^q | (b-lo)&^b | (x-0x20*lo)&^x) & hi
}
