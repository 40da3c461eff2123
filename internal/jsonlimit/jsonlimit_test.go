package jsonlimit

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// kind classifies a result so table cases can state what they expect.
type kind int

const (
	ok kind = iota
	syntax
	tooDeep
	tooMany
)

func (k kind) String() string {
	return [...]string{"ok", "syntax", "tooDeep", "tooMany"}[k]
}

func kindOf(err error) kind {
	var se *SyntaxError
	switch {
	case err == nil:
		return ok
	case errors.Is(err, ErrTooDeep):
		return tooDeep
	case errors.Is(err, ErrTooManyElements):
		return tooMany
	case errors.As(err, &se):
		return syntax
	}
	panic("unexpected error type: " + err.Error())
}

type testCase struct {
	doc    string
	limits Limits
	want   kind
	n      int // for errors: bytes accepted before the offending byte; -1 = don't check
}

var validDocs = []string{
	`0`, `-0`, `1`, `-1`, `123`, `1.5`, `-0.0`, `0e0`, `0E+1`, `1e-7`, `12.34E56`, `-9.0e+009`,
	`""`, `"a"`, `"\"\\\/\b\f\n\r\t"`, `"\u0000\uFFFF\uabcd\uD800"`, `"é日本🎉"`, "\"\x7f\"",
	"\"\xff\xfe invalid utf-8 is accepted like encoding/json.Valid\"",
	`true`, `false`, `null`,
	`[]`, `{}`, `[[]]`, `{"a":{}}`, `[1,2,3]`, `[1, "a", true, false, null, {}, []]`,
	`{"a":1,"b":[1,2,{"c":null}],"d":{"e":"f"}}`, `{"a":1,"a":2}`,
	" \t\r\n{ \"a\" \t:\n 1 ,\r \"b\" : [ ] } \t\r\n",
	` 1 `, "1\n", `[0,-0,0.0,1e1]`, `[1e1,2]`, `{"":""}`, `[[[[[[[[[[]]]]]]]]]]`,
}

var invalidDocs = []string{
	``, ` `, "\t\r\n ", `[`, `{`, `]`, `}`, `[}`, `{]`, `[1,]`, `[,1]`, `{,}`, `{"a"}`, `{"a":}`,
	`{"a":1,}`, `{"a" 1}`, `{1:1}`, `{"a":1 "b":2}`, `[1 2]`, `[1:2]`, `{"a",1}`,
	`01`, `-`, `-a`, `+1`, `1.`, `.1`, `1.e1`, `1e`, `1e+`, `1e-a`, `1ee1`, `1.2.3`, `--1`, `0x1`,
	`Infinity`, `NaN`, `-Infinity`, `1 2`, `[] []`, `{}x`, `"a" "b"`, `true false`,
	`"`, `"abc`, `"\`, `"\x"`, `"\u"`, `"\u12"`, `"\u12G4"`, `"\U1234"`, "\"\x00\"", "\"\n\"", "\"\t\"", "\"\x1f\"",
	`t`, `tru`, `truee`, `trUe`, `nul`, `nulll`, `fals`, `falsey`, `True`, `NULL`, `[t]`, `[nul]`,
	`'a'`, `[1,2`, `{"a":1`, `{"a":[1,2}`, `[{"a":1]`, "\xef\xbb\xbf{}", `/* */ 1`, "1\x00",
}

var limitCases = []testCase{
	// Depth: [] is 1, [[]] is 2; the offending byte is the one opening
	// the level past the limit.
	{`[]`, Limits{MaxDepth: 1}, ok, -1},
	{`[[]]`, Limits{MaxDepth: 2}, ok, -1},
	{`[[]]`, Limits{MaxDepth: 1}, tooDeep, 1},
	{`{"a":{"b":[1]}}`, Limits{MaxDepth: 3}, ok, -1},
	{`{"a":{"b":[1]}}`, Limits{MaxDepth: 2}, tooDeep, 10},
	{`[[],[],[[]]]`, Limits{MaxDepth: 2}, tooDeep, 8},
	{`1`, Limits{MaxDepth: 1}, ok, -1},
	{`"[[[[["`, Limits{MaxDepth: 1}, ok, -1},
	{`[{}]`, Limits{MaxDepth: 1}, tooDeep, 1},
	// A limit is only reported on a byte that really opens a value.
	{`[}`, Limits{MaxDepth: 1, MaxElements: 1}, syntax, 1},
	{`[[`, Limits{MaxDepth: 1}, tooDeep, 1},
	{`[x`, Limits{MaxDepth: 1, MaxElements: 1}, syntax, 1},
	// Elements: every value counts 1, keys do not.
	{`1`, Limits{MaxElements: 1}, ok, -1},
	{`[]`, Limits{MaxElements: 1}, ok, -1},
	{`[1]`, Limits{MaxElements: 1}, tooMany, 1},
	{`[1,2,3]`, Limits{MaxElements: 4}, ok, -1},
	{`[1,2,3]`, Limits{MaxElements: 3}, tooMany, 5},
	{`{"a":1,"b":2}`, Limits{MaxElements: 3}, ok, -1},
	{`{"a":1,"b":2}`, Limits{MaxElements: 2}, tooMany, 11},
	{`{"a":{"b":{}}}`, Limits{MaxElements: 3}, ok, -1},
	{`[true,false,null,"s",-1.5e3,{},[]]`, Limits{MaxElements: 8}, ok, -1},
	{`[true,false,null,"s",-1.5e3,{},[]]`, Limits{MaxElements: 7}, tooMany, 31},
	// Both limits: whichever is passed first wins.
	{`[1,[2]]`, Limits{MaxDepth: 1, MaxElements: 2}, tooMany, 3},
	{`[[1,2]]`, Limits{MaxDepth: 1, MaxElements: 2}, tooDeep, 1},
	// Negative limits mean unlimited.
	{`[[[1,2]]]`, Limits{MaxDepth: -1, MaxElements: -5}, ok, -1},
	// Limits do not excuse syntax errors.
	{`[1,2`, Limits{MaxDepth: 5, MaxElements: 5}, syntax, 4},
}

func allCases() []testCase {
	var cs []testCase
	for _, d := range validDocs {
		cs = append(cs, testCase{d, Limits{}, ok, -1})
	}
	for _, d := range invalidDocs {
		cs = append(cs, testCase{d, Limits{}, syntax, -1})
	}
	cs = append(cs, limitCases...)
	// Deep nesting around the inline bit-stack's capacity, with and
	// without limits, mixing objects and arrays.
	for _, d := range []int{63, 64, 65, 1023, 1024, 1025, 1100, 3000} {
		doc := nested(d)
		cs = append(cs,
			testCase{doc, Limits{}, ok, -1},
			testCase{doc, Limits{MaxDepth: d}, ok, -1},
			testCase{doc, Limits{MaxDepth: d - 1}, tooDeep, -1},
		)
	}
	return cs
}

// nested returns a valid document of exactly depth d alternating objects
// and arrays.
func nested(d int) string {
	var b strings.Builder
	for i := range d {
		if i%3 == 1 {
			b.WriteString(`{"k":`)
		} else {
			b.WriteString(`[1,`)
		}
	}
	b.WriteString("2")
	for i := d - 1; i >= 0; i-- {
		if i%3 == 1 {
			b.WriteString(`}`)
		} else {
			b.WriteString(`]`)
		}
	}
	return b.String()
}

// feed writes doc to s in chunks whose sizes next returns and returns the
// total number of bytes accepted and the result.
func feed(s *Scanner, doc []byte, next func() int) (int, error) {
	total := 0
	for len(doc) > 0 {
		k := min(next(), len(doc))
		n, err := s.Write(doc[:k])
		total += n
		if err != nil {
			return total, err
		}
		if n != k {
			panic("short write without error")
		}
		doc = doc[k:]
	}
	return total, s.Close()
}

func sameErr(a, b error) bool {
	var sa, sb *SyntaxError
	if errors.As(a, &sa) && errors.As(b, &sb) {
		return *sa == *sb
	}
	return a == b
}

// checkChunking feeds doc whole, byte by byte and in random chunks and
// requires identical results; it returns the whole-write result.
func checkChunking(t testing.TB, doc []byte, l Limits, seed uint64) (int, error) {
	t.Helper()
	var s Scanner
	s.Reset(l)
	n0, err0 := feed(&s, doc, func() int { return len(doc) })
	if c := Check(doc, l); !sameErr(c, err0) {
		t.Fatalf("Check = %v, one Write = %v", c, err0)
	}
	rng := rand.New(rand.NewPCG(seed, uint64(len(doc))))
	feeds := map[string]func() int{
		"byte-by-byte": func() int { return 1 },
		"random":       func() int { return 1 + rng.IntN(17) },
		"random-large": func() int { return 1 + rng.IntN(200) },
	}
	for name, next := range feeds {
		s.Reset(l) // reuse: Reset must clear everything
		n, err := feed(&s, doc, next)
		if n != n0 || !sameErr(err, err0) {
			t.Fatalf("%s: (%d, %v), one Write: (%d, %v)", name, n, err, n0, err0)
		}
	}
	return n0, err0
}

func TestScanner(t *testing.T) {
	for _, tc := range allCases() {
		name := tc.doc
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		t.Run(name, func(t *testing.T) {
			doc := []byte(tc.doc)
			n, err := checkChunking(t, doc, tc.limits, 1)
			if got := kindOf(err); got != tc.want {
				t.Fatalf("limits %+v: got %v (%v), want %v", tc.limits, got, err, tc.want)
			}
			if tc.want != ok && tc.n >= 0 && n != tc.n {
				t.Errorf("accepted %d bytes before the error, want %d", n, tc.n)
			}
			if tc.limits == (Limits{}) && refDepth(doc) <= 10000 {
				if v := json.Valid(doc); v != (err == nil) {
					t.Fatalf("json.Valid = %v, Scanner: %v", v, err)
				}
				if want := jsonOffset(doc); err != nil && err.(*SyntaxError).Offset != want {
					t.Errorf("offset %d, encoding/json says %d", err.(*SyntaxError).Offset, want)
				}
			}
		})
	}
}

// jsonOffset is the offset encoding/json reports for invalid doc.
func jsonOffset(doc []byte) int64 {
	var raw json.RawMessage
	var se *json.SyntaxError
	if errors.As(json.Unmarshal(doc, &raw), &se) {
		return se.Offset
	}
	return -1
}

func TestErrorsDoNotLeakInput(t *testing.T) {
	for _, d := range invalidDocs {
		err := Check([]byte(d), Limits{})
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Fatalf("%q: %v", d, err)
		}
		// Messages are fixed strings; none may quote the input.
		if strings.ContainsAny(se.Msg, "'\"`") {
			t.Errorf("%q: message %q may quote input", d, se.Msg)
		}
	}
	err := Check([]byte(`"secret`+"\x01"+`"`), Limits{})
	if strings.Contains(err.Error(), "secret") || strings.ContainsRune(err.Error(), 1) {
		t.Errorf("error leaks input: %q", err)
	}
}

// TestRefusesEarly is the point of the package: a huge body of '[' is
// refused at byte MaxDepth+1, in one big Write or fed slowly.
func TestRefusesEarly(t *testing.T) {
	const depth = 100
	body := bytes.Repeat([]byte{'['}, 10<<20)
	s := NewScanner(Limits{MaxDepth: depth})
	n, err := s.Write(body)
	if err != ErrTooDeep || n != depth {
		t.Fatalf("Write = (%d, %v), want (%d, ErrTooDeep)", n, err, depth)
	}
	if n, err := s.Write([]byte("]")); n != 0 || err != ErrTooDeep {
		t.Fatalf("Write after error = (%d, %v)", n, err)
	}
	if err := s.Close(); err != ErrTooDeep {
		t.Fatalf("Close after error = %v", err)
	}

	// Through io.Copy from an endless reader: reading stops at the chunk
	// holding the offending byte.
	s.Reset(Limits{MaxDepth: depth})
	r := &countingReader{}
	_, err = io.CopyBuffer(s, r, make([]byte, 16))
	if err != ErrTooDeep || r.n > depth+16 {
		t.Fatalf("io.Copy read %d bytes, err %v", r.n, err)
	}

	// Elements: an endless flat array.
	s.Reset(Limits{MaxElements: 1000})
	n, err = s.Write([]byte("[" + strings.Repeat("1,", 1<<20)))
	if err != ErrTooManyElements || n != 1+2*999 {
		t.Fatalf("Write = (%d, %v)", n, err)
	}
}

type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '['
	}
	r.n += len(p)
	return len(p), nil
}

func TestCloseAndReset(t *testing.T) {
	var s Scanner // zero value: no limits
	if _, err := s.Write([]byte(`12`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := s.Write([]byte(`3`)); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	s.Reset(Limits{MaxDepth: 1})
	if s.Limits() != (Limits{MaxDepth: 1}) {
		t.Fatalf("Limits = %+v", s.Limits())
	}
	if _, err := s.Write([]byte(`  `)); err != nil {
		t.Fatal(err)
	}
	var se *SyntaxError
	if err := s.Close(); !errors.As(err, &se) || se.Offset != 2 {
		t.Fatalf("Close of whitespace-only = %v", err)
	}
	if err := s.Close(); !errors.As(err, &se) {
		t.Fatalf("second Close = %v", err)
	}
}

func TestSyntaxErrorOffsets(t *testing.T) {
	for _, tc := range []struct {
		doc string
		off int64
	}{
		{`[1,]`, 4}, {`{"a":1 x}`, 8}, {`[1,2`, 4}, {``, 0}, {`01`, 2}, {"\"a\x01\"", 3},
	} {
		err := Check([]byte(tc.doc), Limits{})
		var se *SyntaxError
		if !errors.As(err, &se) || se.Offset != tc.off {
			t.Errorf("%q: %v, want offset %d", tc.doc, err, tc.off)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	doc := []byte(nested(3000) + " ")
	api := apiDoc()
	s := NewScanner(Limits{MaxDepth: 5000})
	run := func() {
		s.Reset(Limits{MaxDepth: 5000})
		if _, err := s.Write(api); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s.Reset(Limits{})
		for i := range doc { // byte-by-byte through the spill stack
			if _, err := s.Write(doc[i : i+1]); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	run() // warm the spill stack
	if a := testing.AllocsPerRun(20, run); a != 0 {
		t.Errorf("%v allocs per run, want 0", a)
	}
	if a := testing.AllocsPerRun(20, func() { _ = Check(api, Limits{MaxDepth: 64, MaxElements: 10000}) }); a != 0 {
		t.Errorf("Check: %v allocs per run, want 0", a)
	}
}

func TestPlainEnd(t *testing.T) {
	// Every position and every kind of stop byte, against the plain loop.
	stops := []byte{'"', '\\', 0x00, 0x1f, '\n'}
	fill := []byte{'a', ' ', 0x7f, 0x80, 0xff, '!', '#', '[', ']', 0x21, 0x5b, 0x5d}
	for n := range 40 {
		for _, f := range fill {
			buf := bytes.Repeat([]byte{f}, n)
			if got := plainEnd(buf, 0); got != n {
				t.Fatalf("fill %#x len %d: %d", f, n, got)
			}
			for pos := range n {
				for _, c := range stops {
					b := bytes.Clone(buf)
					b[pos] = c
					if pos+1 < n {
						b[pos+1] = '"' // a later stop must not win
					}
					if got := plainEnd(b, 0); got != pos {
						t.Fatalf("fill %#x stop %#x at %d of %d: %d", f, c, pos, n, got)
					}
				}
			}
		}
	}
}

// refDepth is the maximum bracket nesting of doc outside strings: a simple
// reference for the depth the Scanner tracks. For an invalid doc it is an
// upper bound of the depth of any valid prefix.
func refDepth(doc []byte) int {
	depth, maxDepth, inStr, esc := 0, 0, false, false
	for _, c := range doc {
		switch {
		case inStr && esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '[' || c == '{':
			depth++
			maxDepth = max(maxDepth, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return maxDepth
}

// refElements counts the values of a valid doc with encoding/json's
// tokenizer: every token but object keys and closing delimiters.
func refElements(doc []byte) int {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	type frame struct{ obj, expectKey bool }
	var stack []frame
	n := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return n
		}
		if err != nil {
			panic(err)
		}
		if d, isDelim := tok.(json.Delim); isDelim && (d == ']' || d == '}') {
			stack = stack[:len(stack)-1]
			continue
		}
		if len(stack) > 0 && stack[len(stack)-1].obj {
			top := &stack[len(stack)-1]
			top.expectKey = !top.expectKey
			if !top.expectKey { // this token is a key
				continue
			}
		}
		n++
		if d, isDelim := tok.(json.Delim); isDelim {
			stack = append(stack, frame{obj: d == '{', expectKey: true})
		}
	}
}

func TestReferences(t *testing.T) {
	for doc, want := range map[string][2]int{
		`1`: {0, 1}, `[]`: {1, 1}, `{"a":[1,{"b":"]]"}]}`: {3, 5}, `{"a":1,"a":2}`: {1, 3}, nested(70): {70, 118},
	} {
		if d, e := refDepth([]byte(doc)), refElements([]byte(doc)); d != want[0] || e != want[1] {
			t.Errorf("%s: depth %d elements %d, want %v", doc, d, e, want)
		}
	}
}

func FuzzScanner(f *testing.F) {
	for _, tc := range allCases() {
		f.Add([]byte(tc.doc), uint8(tc.limits.MaxDepth), uint8(tc.limits.MaxElements), uint64(7))
	}
	f.Add(apiDoc(), uint8(3), uint8(40), uint64(1))
	f.Fuzz(func(t *testing.T, doc []byte, maxDepth, maxElems uint8, seed uint64) {
		deep := refDepth(doc)

		// Unlimited: exactly encoding/json's validity, with its offsets.
		_, err := checkChunking(t, doc, Limits{}, seed)
		valid := err == nil
		if deep <= 10000 { // encoding/json's own nesting limit
			if v := json.Valid(doc); v != valid {
				t.Fatalf("json.Valid = %v, Scanner: %v", v, err)
			}
			if err != nil {
				if want := jsonOffset(doc); err.(*SyntaxError).Offset != want {
					t.Fatalf("offset %d, encoding/json says %d", err.(*SyntaxError).Offset, want)
				}
			}
		}

		// Limited.
		l := Limits{MaxDepth: int(maxDepth), MaxElements: int(maxElems)}
		_, err = checkChunking(t, doc, l, seed)
		switch kindOf(err) {
		case tooDeep:
			if l.MaxDepth == 0 || deep <= l.MaxDepth {
				t.Fatalf("ErrTooDeep with limit %d, real depth %d", l.MaxDepth, deep)
			}
		case tooMany:
			if l.MaxElements == 0 {
				t.Fatal("ErrTooManyElements without a limit")
			}
			if valid && refElements(doc) <= l.MaxElements {
				t.Fatalf("ErrTooManyElements with limit %d, real count %d", l.MaxElements, refElements(doc))
			}
		case syntax:
			if valid {
				t.Fatalf("valid without limits, %v with %+v", err, l)
			}
		case ok:
			if !valid {
				t.Fatal("invalid without limits, valid with limits")
			}
		}
		if valid {
			overDepth := l.MaxDepth > 0 && deep > l.MaxDepth
			overElems := l.MaxElements > 0 && refElements(doc) > l.MaxElements
			if (overDepth || overElems) != (err != nil) {
				t.Fatalf("depth %d elements %d limits %+v: %v", deep, refElements(doc), l, err)
			}
		}
	})
}

// apiDoc is a typical ~1 KB API request body.
func apiDoc() []byte {
	return []byte(`{"id":"ord_8f3a2c1e9b7d4f60","customer":{"id":"cus_41d2a9","name":"Ana María Pérez","email":"ana.perez@example.com","phone":"+34 600 123 456","address":{"line1":"Calle Mayor 12, 3º B","city":"Madrid","postal_code":"28013","country":"ES"}},"items":[{"sku":"SKU-10045","name":"Wireless mouse","quantity":2,"unit_price":24.99,"tags":["electronics","accessories"]},{"sku":"SKU-20981","name":"USB-C hub \"pro\" 7-in-1","quantity":1,"unit_price":59.5,"tags":["electronics"]},{"sku":"SKU-33310","name":"Notebook, A5, dotted","quantity":5,"unit_price":3.2,"tags":[]}],"totals":{"subtotal":125.48,"tax":26.35,"shipping":0,"discount":-10.0,"total":141.83,"currency":"EUR"},"payment":{"method":"card","card":{"brand":"visa","last4":"4242","exp_month":12,"exp_year":2027},"captured":false},"metadata":{"source":"mobile-app","app_version":"5.12.3","session":"b1946ac92492d2347c6235b4d2611184","retry":null,"coupons":["WELCOME10"]},"created_at":"2025-11-22T21:53:04.512Z","notes":"Leave at the door\nRing twice","gift":true,"scores":[0.12,3.5e-3,1e10,-42,7]}`)
}

func benchDocs() []struct {
	name string
	doc  []byte
} {
	var ind bytes.Buffer
	if err := json.Indent(&ind, apiDoc(), "", "  "); err != nil {
		panic(err)
	}
	return []struct {
		name string
		doc  []byte
	}{{"api-1KB", apiDoc()}, {"api-1KB-indented", ind.Bytes()}}
}

// BenchmarkScanner measures the Scanner on a typical API body, whole and
// in 64-byte chunks, next to encoding/json.Valid on the same body as the
// baseline (run back to back, so a loaded machine skews both alike):
//
//	go test -run='^$' -bench=Scanner -benchmem ./internal/jsonlimit
func BenchmarkScanner(b *testing.B) {
	l := Limits{MaxDepth: 64, MaxElements: 10000}
	for _, d := range benchDocs() {
		b.Run(d.name+"/jsonlimit", func(b *testing.B) {
			var s Scanner
			b.SetBytes(int64(len(d.doc)))
			b.ReportAllocs()
			for b.Loop() {
				s.Reset(l)
				if _, err := s.Write(d.doc); err != nil {
					b.Fatal(err)
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(d.name+"/jsonlimit-chunks-64", func(b *testing.B) {
			var s Scanner
			b.SetBytes(int64(len(d.doc)))
			b.ReportAllocs()
			for b.Loop() {
				s.Reset(l)
				for p := d.doc; len(p) > 0; {
					k := min(64, len(p))
					if _, err := s.Write(p[:k]); err != nil {
						b.Fatal(err)
					}
					p = p[k:]
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(d.name+"/encoding-json-Valid", func(b *testing.B) {
			b.SetBytes(int64(len(d.doc)))
			b.ReportAllocs()
			for b.Loop() {
				if !json.Valid(d.doc) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
