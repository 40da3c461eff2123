package openapi

import (
	"math"
	"net/mail"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// walker validates one value against a compiled schema. It keeps the first
// error (pointer and reason) and the pointers of values proven typed.
type walker struct {
	request bool // readOnly properties are refused
	reject  bool // additional_properties: reject
	quiet   int  // > 0 inside anyOf/oneOf/not/if trials: failures are expected
	// ptr is the key prefix (json:, query:NAME) followed by the RFC 6901
	// pointer; base is where the pointer starts. Typed keys are ptr as is.
	ptr    []byte
	base   int
	errPtr string
	errMsg string
	typed  []string
}

func (w *walker) fail(msg string) bool {
	if w.quiet == 0 && w.errMsg == "" {
		w.errPtr, w.errMsg = string(w.ptr[w.base:]), msg
	}
	return false
}

func (w *walker) push(tok string) int {
	n := len(w.ptr)
	w.ptr = append(w.ptr, '/')
	for i := 0; i < len(tok); i++ { // RFC 6901 escaping
		switch tok[i] {
		case '~':
			w.ptr = append(w.ptr, '~', '0')
		case '/':
			w.ptr = append(w.ptr, '~', '1')
		default:
			w.ptr = append(w.ptr, tok[i])
		}
	}
	return n
}

func (w *walker) pushIndex(i int) int {
	n := len(w.ptr)
	w.ptr = append(w.ptr, '/')
	w.ptr = strconv.AppendInt(w.ptr, int64(i), 10)
	return n
}

func (w *walker) markTyped() { w.typed = append(w.typed, string(w.ptr)) }

// reset starts a walk of the value named by prefix.
func (w *walker) reset(prefix string) {
	w.ptr = append(w.ptr[:0], prefix...)
	w.base = len(prefix)
	w.typed, w.errMsg, w.errPtr = w.typed[:0], "", ""
}

// walk reports whether v is valid against s. top is false when s is a
// member of allOf/anyOf/oneOf of the schema that owns v: the strict
// undeclared-property check then runs once, at the owner, over the union
// of what its members declare.
func (w *walker) walk(s *schema, v *value, top bool) bool {
	mark := len(w.typed)
	ok := w.check(s, v, top)
	if !ok {
		w.typed = w.typed[:mark]
	}
	return ok
}

func (w *walker) check(s *schema, v *value, top bool) bool {
	if s == nil {
		if top {
			w.free(v)
		}
		return true
	}
	if s.never {
		return w.fail("not allowed")
	}
	if s.types != 0 && !s.types.accepts(v) {
		return w.fail("must be " + s.types.String())
	}
	typed := false
	switch v.k {
	case kNull, kBool:
		typed = true
	case kNumber:
		f, err := strconv.ParseFloat(v.s, 64)
		if err != nil || math.IsInf(f, 0) {
			return w.fail("number out of range")
		}
		if s.types != 0 && s.types&tNum == 0 && !isInteger(f) {
			return w.fail("must be an integer")
		}
		if !w.number(s, f) {
			return false
		}
		typed = true
	case kString:
		if !w.str(s, v.s) {
			return false
		}
		typed = s.typed
	case kArray:
		if !w.array(s, v) {
			return false
		}
	case kObject:
		if !w.object(s, v, top) {
			return false
		}
	}
	if len(s.enum) > 0 {
		found := false
		for _, e := range s.enum {
			if equal(v, e) {
				found = true
				break
			}
		}
		if !found {
			return w.fail(enumMsg(s.enum))
		}
	}
	if s.hasConst && !equal(v, s.constv) {
		return w.fail(enumMsg([]any{s.constv}))
	}
	for _, m := range s.allOf {
		if !w.walk(m, v, false) {
			return false
		}
		typed = typed || (v.k == kString && m.typed)
	}
	if len(s.anyOf) > 0 {
		w.quiet++
		ok := false
		for _, m := range s.anyOf {
			if w.walk(m, v, false) {
				ok = true
				typed = typed || (v.k == kString && m.typed)
				break
			}
		}
		w.quiet--
		if !ok {
			return w.fail("does not match any of the allowed schemas (anyOf)")
		}
	}
	if len(s.oneOf) > 0 {
		w.quiet++
		n := 0
		for _, m := range s.oneOf {
			mark := len(w.typed)
			if w.walk(m, v, false) {
				n++
				typed = typed || (v.k == kString && m.typed)
				if n > 1 {
					w.typed = w.typed[:mark]
				}
			}
		}
		w.quiet--
		if n != 1 {
			return w.fail("must match exactly one of the allowed schemas (oneOf), matches " + strconv.Itoa(n))
		}
	}
	if s.not != nil {
		w.quiet++
		mark := len(w.typed)
		matched := w.walk(s.not, v, false)
		w.typed = w.typed[:mark]
		w.quiet--
		if matched {
			return w.fail("matches a schema it must not (not)")
		}
	}
	if s.ifS != nil {
		w.quiet++
		mark := len(w.typed)
		cond := w.walk(s.ifS, v, false)
		w.typed = w.typed[:mark]
		w.quiet--
		if cond && !w.walk(s.thenS, v, false) || !cond && !w.walk(s.elseS, v, false) {
			return false
		}
	}
	if typed && top {
		w.markTyped()
	}
	return true
}

// free walks a value no schema constrains: only its scalars can be typed.
// Undeclared members are only reachable when the schema allows them.
func (w *walker) free(v *value) {
	switch v.k {
	case kNull, kBool, kNumber:
		w.markTyped()
	case kArray:
		for i := range v.arr {
			n := w.pushIndex(i)
			w.free(&v.arr[i])
			w.ptr = w.ptr[:n]
		}
	case kObject:
		for i := range v.obj {
			n := w.push(v.obj[i].key)
			w.free(&v.obj[i].val)
			w.ptr = w.ptr[:n]
		}
	}
}

func (t typeSet) accepts(v *value) bool {
	switch v.k {
	case kNull:
		return t&tNull != 0
	case kBool:
		return t&tBool != 0
	case kNumber:
		if t&tNum != 0 {
			return true
		}
		if t&tInt != 0 {
			return true // integrality is checked with the value
		}
		return false
	case kString:
		return t&tStr != 0
	case kArray:
		return t&tArr != 0
	case kObject:
		return t&tObj != 0
	}
	return false
}

func (w *walker) number(s *schema, f float64) bool {
	switch {
	case s.min != nil && f < *s.min:
		return w.fail("must be >= " + fmtNum(*s.min))
	case s.xmin != nil && f <= *s.xmin:
		return w.fail("must be > " + fmtNum(*s.xmin))
	case s.max != nil && f > *s.max:
		return w.fail("must be <= " + fmtNum(*s.max))
	case s.xmax != nil && f >= *s.xmax:
		return w.fail("must be < " + fmtNum(*s.xmax))
	case s.multipleOf != nil && *s.multipleOf > 0 && !isInteger(f / *s.multipleOf):
		return w.fail("must be a multiple of " + fmtNum(*s.multipleOf))
	case s.format == "int32" && (f < math.MinInt32 || f > math.MaxInt32):
		return w.fail("out of range for int32")
	case s.format == "int64" && (f < math.MinInt64 || f >= math.MaxInt64):
		return w.fail("out of range for int64")
	}
	return true
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func (w *walker) str(s *schema, str string) bool {
	if s.minLen > 0 || s.maxLen >= 0 {
		n := int64(utf8.RuneCountInString(str))
		if n < s.minLen {
			return w.fail("must be at least " + strconv.FormatInt(s.minLen, 10) + " characters")
		}
		if s.maxLen >= 0 && n > s.maxLen {
			return w.fail("must be at most " + strconv.FormatInt(s.maxLen, 10) + " characters")
		}
	}
	if s.pattern != nil && !s.pattern.MatchString(str) {
		return w.fail("does not match the required pattern")
	}
	if s.format != "" && !validFormat(s.format, str) {
		return w.fail("not a valid " + s.format)
	}
	return true
}

func (w *walker) array(s *schema, v *value) bool {
	n := int64(len(v.arr))
	if n < s.minItems {
		return w.fail("must have at least " + strconv.FormatInt(s.minItems, 10) + " items")
	}
	if s.maxItems >= 0 && n > s.maxItems {
		return w.fail("must have at most " + strconv.FormatInt(s.maxItems, 10) + " items")
	}
	for i := range v.arr {
		var is *schema
		switch {
		case i < len(s.prefix):
			is = s.prefix[i]
		case s.itemsFalse:
			return w.fail("must have at most " + strconv.Itoa(len(s.prefix)) + " items")
		default:
			is = s.items
		}
		p := w.pushIndex(i)
		ok := w.walk(is, &v.arr[i], true)
		w.ptr = w.ptr[:p]
		if !ok {
			return false
		}
	}
	if s.unique && !unique(v.arr) {
		return w.fail("items must be unique")
	}
	return true
}

func (w *walker) object(s *schema, v *value, top bool) bool {
	n := int64(len(v.obj))
	if n < s.minProps {
		return w.fail("must have at least " + strconv.FormatInt(s.minProps, 10) + " properties")
	}
	if s.maxProps >= 0 && n > s.maxProps {
		return w.fail("must have at most " + strconv.FormatInt(s.maxProps, 10) + " properties")
	}
	for _, r := range s.required {
		found := false
		for i := range v.obj {
			if v.obj[i].key == r {
				found = true
				break
			}
		}
		if !found {
			return w.fail("missing required property " + strconv.Quote(r))
		}
	}
	for i := range v.obj {
		m := &v.obj[i]
		p := w.push(m.key)
		ok := w.member(s, m, top)
		w.ptr = w.ptr[:p]
		if !ok {
			return false
		}
	}
	return true
}

func (w *walker) member(s *schema, m *member, top bool) bool {
	ps, declared := s.props[m.key]
	if declared {
		if w.request && (ps != nil && (ps.readOnly || ps.ro)) {
			return w.fail("read-only property")
		}
		return w.walk(ps, &m.val, true)
	}
	matched := false
	for _, pp := range s.patProps {
		if pp.re.MatchString(m.key) {
			matched = true
			if !w.walk(pp.s, &m.val, true) {
				return false
			}
		}
	}
	if matched {
		return true
	}
	switch {
	case s.addlFalse:
		return w.fail("property not allowed")
	case s.addl != nil:
		return w.walk(s.addl, &m.val, true)
	}
	if !top {
		return true // the owner walks it
	}
	if k, ok := s.known[m.key]; ok {
		if w.request && k != nil && (k.readOnly || k.ro) {
			return w.fail("read-only property")
		}
		return true // declared by an allOf/anyOf/oneOf member, walked there
	}
	if w.reject && !s.dict {
		return w.fail("property not declared by the schema")
	}
	w.free(&m.val)
	return true
}

// unique reports whether items are pairwise distinct. Long arrays compare
// scalars through a map and structured items pairwise only when few, so a
// hostile body cannot make this quadratic.
func unique(items []value) bool {
	if len(items) <= 64 {
		for i := range items {
			for j := i + 1; j < len(items); j++ {
				if sameValue(&items[i], &items[j]) {
					return false
				}
			}
		}
		return true
	}
	seen := make(map[string]struct{}, len(items))
	for i := range items {
		it := &items[i]
		if it.k == kArray || it.k == kObject {
			continue
		}
		key := string(rune('0'+it.k)) + it.s
		if it.k == kNumber {
			f, _ := strconv.ParseFloat(it.s, 64)
			key = "n" + fmtNum(f)
		} else if it.k == kBool && it.b {
			key = "t"
		}
		if _, ok := seen[key]; ok {
			return false
		}
		seen[key] = struct{}{}
	}
	return true
}

// sameValue is JSON equality of two parsed values (uniqueItems).
func sameValue(a, b *value) bool {
	if a.k != b.k {
		return false
	}
	switch a.k {
	case kNull:
		return true
	case kBool:
		return a.b == b.b
	case kString:
		return a.s == b.s
	case kNumber:
		x, _ := strconv.ParseFloat(a.s, 64)
		y, _ := strconv.ParseFloat(b.s, 64)
		return x == y
	case kArray:
		if len(a.arr) != len(b.arr) {
			return false
		}
		for i := range a.arr {
			if !sameValue(&a.arr[i], &b.arr[i]) {
				return false
			}
		}
		return true
	case kObject:
		if len(a.obj) != len(b.obj) {
			return false
		}
	next:
		for i := range a.obj {
			for j := range b.obj {
				if a.obj[i].key == b.obj[j].key {
					if !sameValue(&a.obj[i].val, &b.obj[j].val) {
						return false
					}
					continue next
				}
			}
			return false
		}
		return true
	}
	return false
}

func enumMsg(vals []any) string {
	if len(vals) > 10 {
		return "must be one of the allowed values"
	}
	var b strings.Builder
	b.WriteString("must be one of: ")
	for i, v := range vals {
		if i > 0 {
			b.WriteString(", ")
		}
		switch x := v.(type) {
		case string:
			b.WriteString(strconv.Quote(x))
		case float64:
			b.WriteString(fmtNum(x))
		case bool:
			b.WriteString(strconv.FormatBool(x))
		case nil:
			b.WriteString("null")
		default:
			b.WriteString("(structured value)")
		}
	}
	return b.String()
}

func validFormat(f, s string) bool {
	switch f {
	case "uuid":
		return validUUID(s)
	case "date":
		_, err := time.Parse(time.DateOnly, s)
		return err == nil
	case "date-time":
		_, err := time.Parse(time.RFC3339Nano, s)
		return err == nil && len(s) >= len("2006-01-02T15:04:05Z")
	case "email":
		a, err := mail.ParseAddress(s)
		return err == nil && a.Address == s && a.Name == ""
	case "ipv4":
		a, err := netip.ParseAddr(s)
		return err == nil && a.Is4()
	case "ipv6":
		a, err := netip.ParseAddr(s)
		return err == nil && a.Is6() && a.Zone() == ""
	}
	return true // other formats are annotations
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// safePointer renders a JSON pointer for a client-facing detail. Object
// keys come from the client, so anything beyond plain name characters is
// quoted and truncated rather than echoed.
func safePointer(p string) string {
	if p == "" {
		return ""
	}
	if len(p) <= 64 {
		clean := true
		for i := 0; i < len(p); i++ {
			c := p[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("/_-.~", c) >= 0) {
				clean = false
				break
			}
		}
		if clean {
			return " " + p
		}
	}
	return " " + quoteTrunc(p)
}

// quoteTrunc quotes s in ASCII, cut to 32 bytes at a rune boundary.
func quoteTrunc(s string) string {
	if len(s) > 32 {
		n := 32
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	return strconv.QuoteToASCII(s)
}
