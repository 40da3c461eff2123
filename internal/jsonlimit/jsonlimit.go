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
	// The loop resumes whatever state the last Write stopped in; the
	// common sequences (key, colon, value, comma, ...) then run through the
	// labeled sections below it without returning to the dispatch. Every
	// section keeps st the state to resume in should p end there.
	st := s.state
	i := 0
	var c byte
	var msg string
loop:
	for i < len(p) {
		c = p[i]
		switch st {
		case stValue:
			goto value
		case stObjKey:
			goto key
		case stColon:
			goto colon
		case stAfter:
			goto after
		case stArrFirst:
			for isSpace(c) {
				if i++; i == len(p) {
					break loop
				}
				c = p[i]
			}
			if c == ']' {
				s.pop()
				i++
				goto done
			}
			st = stValue
			goto value
		case stObjFirst:
			for isSpace(c) {
				if i++; i == len(p) {
					break loop
				}
				c = p[i]
			}
			if c == '}' {
				s.pop()
				i++
				goto done
			}
			st = stObjKey
			goto key
		case stEnd:
			for isSpace(c) {
				if i++; i == len(p) {
					break loop
				}
				c = p[i]
			}
			msg = "invalid character after top-level value"
			break loop
		case stStr, stEsc, stU1, stU2, stU3, stU4:
			var ok bool
			if i, st, ok = scanString(p, i, st); !ok {
				msg = stringErrors[st-stStr]
				break loop
			}
			if st != stDone {
				break loop // p ended inside the string
			}
			if s.key {
				st = stColon
				continue
			}
			goto done
		case stNeg, stZero, stInt, stDot, stFrac, stE, stESign, stExp:
			var ok bool
			if i, st, ok = scanNumber(p, i, st); !ok {
				msg = numberErrors[st-stNeg]
				break loop
			}
			if st != stDone {
				break loop // p ended inside the number
			}
			goto done
		case stLit:
			if c != literals[s.litPos] {
				msg = "invalid character in literal"
				break loop
			}
			i++
			if s.litPos++; s.litPos == s.litEnd {
				goto done
			}
			continue
		}
		panic("jsonlimit: invalid state")

	done: // A value ended just before p[i].
		if s.depth == 0 {
			st = stEnd
			continue
		}
		st = stAfter
		if i == len(p) {
			break loop
		}
		c = p[i]

	after: // st == stAfter, c == p[i]: expecting ',' or the closer.
		for isSpace(c) {
			if i++; i == len(p) {
				break loop
			}
			c = p[i]
		}
		if c == ',' {
			i++
			if s.obj {
				st = stObjKey
			} else {
				st = stValue
			}
			if i == len(p) {
				break loop
			}
			c = p[i]
			if st == stValue {
				goto value
			}
			goto key
		}
		if c == '}' && s.obj || c == ']' && !s.obj {
			s.pop()
			i++
			goto done
		}
		if s.obj {
			msg = "invalid character after object key:value pair"
		} else {
			msg = "invalid character after array element"
		}
		break loop

	key: // st == stObjKey, c == p[i]: expecting a key.
		for isSpace(c) {
			if i++; i == len(p) {
				break loop
			}
			c = p[i]
		}
		if c != '"' {
			msg = "invalid character looking for beginning of object key string"
			break loop
		}
		s.key = true
		i++
		{
			j := i
			if len(p)-j >= 8 { // plainEnd, inlined by hand
				if m := special(binary.LittleEndian.Uint64(p[j:])); m != 0 {
					j += bits.TrailingZeros64(m) >> 3
				} else {
					j = plainEnd(p, j+8)
				}
			} else {
				j = plainEnd(p, j)
			}
			if j == len(p) || p[j] != '"' {
				i, st = j, stStr
				continue
			}
			// Fast path: the key is plain and in p.
			i = j + 1
		}
		st = stColon
		if i == len(p) {
			break loop
		}
		c = p[i]

	colon: // st == stColon, c == p[i]: expecting ':'.
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
		i++
		st = stValue
		if i == len(p) {
			break loop
		}
		c = p[i]

	value: // st == stValue, c == p[i]: expecting a value.
		for isSpace(c) {
			if i++; i == len(p) {
				break loop
			}
			c = p[i]
		}
		{
			// Check the byte before counting it, so a syntax error is
			// never reported as a limit.
			cls := valueClass[c]
			if cls == clsNone {
				msg = "invalid character looking for beginning of value"
				break loop
			}
			if s.count++; s.count > s.maxElems && s.maxElems > 0 {
				err = ErrTooManyElements
				break loop
			}
			switch cls {
			case clsString:
				s.key = false
				i++
				j := i
				if len(p)-j >= 8 { // plainEnd, inlined by hand
					if m := special(binary.LittleEndian.Uint64(p[j:])); m != 0 {
						j += bits.TrailingZeros64(m) >> 3
					} else {
						j = plainEnd(p, j+8)
					}
				} else {
					j = plainEnd(p, j)
				}
				if j == len(p) || p[j] != '"' {
					i, st = j, stStr
					continue
				}
				// Fast path: the string is plain and in p.
				i = j + 1
				goto done
			case clsObject, clsArray:
				if s.depth >= s.maxDepth && s.maxDepth > 0 {
					err = ErrTooDeep
					break loop
				}
				i++
				if cls == clsObject {
					s.push(true)
					st = stObjFirst
				} else {
					s.push(false)
					st = stArrFirst
				}
				continue
			case clsNumber:
				st = stInt
				if c == '-' {
					st = stNeg
				} else if c == '0' {
					st = stZero
				}
				var ok bool
				if i, st, ok = scanNumber(p, i+1, st); !ok {
					msg = numberErrors[st-stNeg]
					break loop
				}
				if st != stDone {
					break loop // p ended inside the number
				}
				goto done
			default: // clsTrue, clsFalse, clsNull
				s.litPos, s.litEnd = literalBounds[cls-clsTrue][0], literalBounds[cls-clsTrue][1]
				lit := literals[s.litPos-1 : s.litEnd]
				if len(p)-i >= len(lit) && string(p[i:i+len(lit)]) == lit {
					i += len(lit)
					goto done
				}
				i++
				st = stLit
				continue
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

// stDone is what scanString and scanNumber return when the token ended.
const stDone uint8 = 0xff

// stringErrors and numberErrors give the message for an invalid byte met in
// each string state (from stStr) and number state (from stNeg).
var (
	stringErrors = [...]string{
		stStr - stStr: "invalid control character in string literal",
		stEsc - stStr: "invalid character in string escape code",
		stU1 - stStr:  "invalid character in \\u hexadecimal character escape",
		stU2 - stStr:  "invalid character in \\u hexadecimal character escape",
		stU3 - stStr:  "invalid character in \\u hexadecimal character escape",
		stU4 - stStr:  "invalid character in \\u hexadecimal character escape",
	}
	numberErrors = [...]string{
		stNeg - stNeg:   "invalid character in numeric literal",
		stDot - stNeg:   "invalid character after decimal point in numeric literal",
		stE - stNeg:     "invalid character in exponent of numeric literal",
		stESign - stNeg: "invalid character in exponent of numeric literal",
	}
)

// scanString continues a string in state st (stStr, stEsc or stU1..stU4)
// at p[i]. It returns the index just past the closing quote and stDone; or
// len(p) and the state to resume in; or, with ok false, the index of the
// invalid byte and the state that refused it.
func scanString(p []byte, i int, st uint8) (_ int, _ uint8, ok bool) {
	switch st {
	case stEsc:
		goto esc
	case stU1, stU2, stU3, stU4:
		goto hex
	}
str:
	if i = plainEnd(p, i); i == len(p) {
		return i, stStr, true
	}
	switch p[i] {
	case '"':
		return i + 1, stDone, true
	case '\\':
		i++
	default: // a control character
		return i, stStr, false
	}
esc:
	if i == len(p) {
		return i, stEsc, true
	}
	switch p[i] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		i++
		goto str
	case 'u':
		i++
		st = stU1
	default:
		return i, stEsc, false
	}
hex:
	for ; st <= stU4; st++ {
		if i == len(p) {
			return i, st, true
		}
		if !isHex(p[i]) {
			return i, st, false
		}
		i++
	}
	goto str
}

// scanNumber continues a number in state st (stNeg..stExp) at p[i]. It
// returns the index of the first byte after the number and stDone; or
// len(p) and the state to resume in (a number can only be known to have
// ended when the next byte arrives, or at Close); or, with ok false, the
// index of the invalid byte and the state that refused it.
func scanNumber(p []byte, i int, st uint8) (_ int, _ uint8, ok bool) {
	switch st {
	case stZero:
		goto zero
	case stInt:
		goto integer
	case stDot:
		goto dot
	case stFrac:
		goto frac
	case stE:
		goto exp
	case stESign:
		goto expSign
	case stExp:
		goto expDigits
	}
	// stNeg
	if i == len(p) {
		return i, stNeg, true
	}
	if p[i] == '0' {
		i++
		goto zero
	}
	if p[i]-'1' > 8 {
		return i, stNeg, false
	}
	i++
integer:
	for i < len(p) && isDigit(p[i]) {
		i++
	}
	if i == len(p) {
		return i, stInt, true
	}
	goto point
zero:
	if i == len(p) {
		return i, stZero, true
	}
point:
	switch p[i] {
	case '.':
		i++
	case 'e', 'E':
		i++
		goto exp
	default:
		return i, stDone, true
	}
dot:
	if i == len(p) {
		return i, stDot, true
	}
	if !isDigit(p[i]) {
		return i, stDot, false
	}
	i++
frac:
	for i < len(p) && isDigit(p[i]) {
		i++
	}
	if i == len(p) {
		return i, stFrac, true
	}
	if p[i] != 'e' && p[i] != 'E' {
		return i, stDone, true
	}
	i++
exp:
	if i == len(p) {
		return i, stE, true
	}
	if p[i] == '+' || p[i] == '-' {
		i++
	}
expSign: // also reached from exp without a sign: both need a digit
	if i == len(p) {
		return i, stESign, true
	}
	if !isDigit(p[i]) {
		return i, stESign, false
	}
	i++
expDigits:
	for i < len(p) && isDigit(p[i]) {
		i++
	}
	if i == len(p) {
		return i, stExp, true
	}
	return i, stDone, true
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

// Value classes: what the first byte of a value starts.
const (
	clsNone uint8 = iota
	clsString
	clsObject
	clsArray
	clsNumber
	clsTrue
	clsFalse
	clsNull
)

// valueClass classifies the bytes that can begin a JSON value.
var valueClass = [256]uint8{
	'"': clsString, '{': clsObject, '[': clsArray, '-': clsNumber,
	'0': clsNumber, '1': clsNumber, '2': clsNumber, '3': clsNumber, '4': clsNumber,
	'5': clsNumber, '6': clsNumber, '7': clsNumber, '8': clsNumber, '9': clsNumber,
	't': clsTrue, 'f': clsFalse, 'n': clsNull,
}

// literalBounds gives, for clsTrue, clsFalse and clsNull, the range of the
// literal's bytes after the first in literals.
var literalBounds = [3][2]uint8{{1, 4}, {5, 9}, {10, 13}}

func isSpace(c byte) bool { return c <= ' ' && (c == ' ' || c == '\t' || c == '\n' || c == '\r') }

func isDigit(c byte) bool { return c-'0' < 10 }

func isHex(c byte) bool { return c-'0' < 10 || (c|0x20)-'a' < 6 }

// plainEnd returns the index of the first byte at or after i that ends the
// plain run of a string: '"', '\\' or a control character (< 0x20), or
// len(p) if there is none. Bytes >= 0x80 are plain: the Scanner, like
// encoding/json.Valid, does not validate UTF-8. Write inlines its first
// 8-byte step by hand for keys and string values, most of which are short.
func plainEnd(p []byte, i int) int {
	for ; len(p)-i >= 8; i += 8 {
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
