package openapi

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// A small JSON parser of our own: encoding/json accepts duplicate keys
// (last wins) and silently replaces invalid UTF-8, and both are request
// smuggling tricks when the upstream parser disagrees. It also keeps each
// value's byte span so a response can be rewritten without re-encoding.

type kind uint8

const (
	kNull kind = iota
	kBool
	kNumber
	kString
	kArray
	kObject
)

func (k kind) String() string {
	return [...]string{"null", "boolean", "number", "string", "array", "object"}[k]
}

type value struct {
	k          kind
	b          bool
	s          string // decoded string, or the number's literal
	arr        []value
	obj        []member
	start, end int  // span in the source
	dirty      bool // the subtree lost members
}

type member struct {
	key        string
	keyStart   int
	val        value
	removeFlag bool
}

const maxDepth = 64

var (
	errDepth = errors.New("nested too deeply")
	errUTF8  = errors.New("invalid UTF-8 in a string")
)

type parser struct {
	b   []byte
	i   int
	err error
	// Members and items collect on shared stacks and are copied out at
	// their exact size, so containers do not each grow by doubling.
	ms []member
	vs []value
}

// parseJSON parses one JSON document; the error says where and why, never
// quoting the input.
func parseJSON(b []byte) (value, error) {
	p := parser{b: b}
	p.ws()
	v := p.value(0)
	if p.err == nil {
		p.ws()
		if p.i != len(p.b) {
			p.fail("unexpected data after the document")
		}
	}
	if p.err != nil {
		return value{}, p.err
	}
	return v, nil
}

func (p *parser) fail(msg string) {
	if p.err == nil {
		p.err = errors.New(msg + " at offset " + strconv.Itoa(p.i))
	}
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) value {
	if depth > maxDepth {
		if p.err == nil {
			p.err = errDepth
		}
		return value{}
	}
	if p.i >= len(p.b) {
		p.fail("unexpected end of JSON")
		return value{}
	}
	start := p.i
	var v value
	switch c := p.b[p.i]; {
	case c == '{':
		v = p.object(depth)
	case c == '[':
		v = p.array(depth)
	case c == '"':
		v = value{k: kString, s: p.str()}
	case c == 't':
		v = value{k: kBool, b: true}
		p.lit("true")
	case c == 'f':
		v = value{k: kBool}
		p.lit("false")
	case c == 'n':
		p.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		v = value{k: kNumber, s: p.num()}
	default:
		p.fail("unexpected character")
	}
	v.start, v.end = start, p.i
	return v
}

func (p *parser) lit(s string) {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		p.fail("invalid literal")
		return
	}
	p.i += len(s)
}

func (p *parser) object(depth int) value {
	p.i++ // {
	v := value{k: kObject}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return v
	}
	base := len(p.ms)
	defer func() { p.ms = p.ms[:base] }()
	var seen map[string]struct{} // past a few members, so duplicates stay O(n)
	for p.err == nil {
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			p.fail("expected a property name")
			break
		}
		ks := p.i
		k := p.str()
		if p.dup(base, k, &seen) {
			p.i = ks
			p.fail("duplicate property name")
			return v
		}
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			p.fail("expected ':'")
			break
		}
		p.i++
		p.ws()
		val := p.value(depth + 1)
		p.ms = append(p.ms, member{key: k, keyStart: ks, val: val})
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			v.obj = append([]member(nil), p.ms[base:]...)
			return v
		}
		p.fail("expected ',' or '}'")
	}
	return v
}

func (p *parser) array(depth int) value {
	p.i++ // [
	v := value{k: kArray}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return v
	}
	base := len(p.vs)
	defer func() { p.vs = p.vs[:base] }()
	for p.err == nil {
		p.ws()
		item := p.value(depth + 1)
		p.vs = append(p.vs, item)
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			v.arr = append([]value(nil), p.vs[base:]...)
			return v
		}
		p.fail("expected ',' or ']'")
	}
	return v
}

// dup reports whether k is already a member of the object being parsed
// (its members are p.ms[base:]).
func (p *parser) dup(base int, k string, seen *map[string]struct{}) bool {
	ms := p.ms[base:]
	if len(ms) < 16 {
		for i := range ms {
			if ms[i].key == k {
				return true
			}
		}
		return false
	}
	if *seen == nil {
		*seen = make(map[string]struct{}, 2*len(ms))
		for i := range ms {
			(*seen)[ms[i].key] = struct{}{}
		}
	}
	if _, ok := (*seen)[k]; ok {
		return true
	}
	(*seen)[k] = struct{}{}
	return false
}

func (p *parser) num() string {
	s := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		p.fail("invalid number")
		return ""
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			p.fail("invalid number")
			return ""
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			p.fail("invalid number")
			return ""
		}
	}
	return view(p.b[s:p.i])
}

// view aliases b without copying. Parsed trees live only for one check
// call, never escape it (details and typed keys are built separately), and
// the body is not modified meanwhile, so the aliasing is safe and saves an
// allocation per string.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// str parses a string literal, rejecting invalid UTF-8, raw control
// characters and unpaired surrogate escapes.
func (p *parser) str() string {
	p.i++ // opening quote
	s := p.i
	// Fast path: no escapes.
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			raw := p.b[s:p.i]
			p.i++
			if !utf8.Valid(raw) {
				p.i = s
				p.err = errUTF8
				return ""
			}
			return view(raw)
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			p.fail("control character in a string")
			return ""
		}
		p.i++
	}
	buf := append([]byte(nil), p.b[s:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(buf) {
				p.err = errUTF8
				return ""
			}
			return string(buf)
		case c < 0x20:
			p.fail("control character in a string")
			return ""
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		p.i++
		if p.i >= len(p.b) {
			break
		}
		e := p.b[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return ""
			}
			if utf16.IsSurrogate(r) {
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					p.i += 2
					r2, ok := p.hex4()
					if !ok {
						return ""
					}
					r = utf16.DecodeRune(r, r2)
				} else {
					r = utf8.RuneError
				}
				if r == utf8.RuneError {
					p.fail("unpaired surrogate in a string")
					return ""
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			p.fail("invalid escape in a string")
			return ""
		}
	}
	p.fail("unterminated string")
	return ""
}

func (p *parser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		p.fail("invalid \\u escape")
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
	if err != nil {
		p.fail("invalid \\u escape")
		return 0, false
	}
	p.i += 4
	return rune(n), true
}

// appendPruned writes v from src, leaving out dropped members. Untouched
// subtrees are copied byte for byte.
func appendPruned(dst, src []byte, v *value) []byte {
	if !v.dirty {
		return append(dst, src[v.start:v.end]...)
	}
	switch v.k {
	case kObject:
		dst = append(dst, '{')
		n := 0
		for i := range v.obj {
			m := &v.obj[i]
			if m.removeFlag {
				continue
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			// key literal through the end of its value keeps the original spelling
			dst = append(dst, src[m.keyStart:m.val.start]...)
			dst = appendPruned(dst, src, &m.val)
		}
		return append(dst, '}')
	case kArray:
		dst = append(dst, '[')
		for i := range v.arr {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendPruned(dst, src, &v.arr[i])
		}
		return append(dst, ']')
	}
	return append(dst, src[v.start:v.end]...)
}
