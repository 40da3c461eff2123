package openapi

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/pb33f/libopenapi/datamodel/high/base"
)

// schema is a compiled JSON Schema: the subset of OpenAPI 3.0 and 3.1
// (2020-12) keywords that constrain instances, with the values decoded once
// at load so the hot path never touches YAML.
type schema struct {
	types                typeSet // 0: any type
	enum                 []any
	hasConst             bool
	constv               any
	min, max, xmin, xmax *float64
	multipleOf           *float64
	minLen, maxLen       int64 // maxLen -1: none
	pattern              *regexp.Regexp
	format               string
	items                *schema
	itemsFalse           bool
	prefix               []*schema
	minItems, maxItems   int64
	unique               bool
	props                map[string]*schema
	required             []string
	addl                 *schema
	addlFalse            bool
	patProps             []patProp
	minProps, maxProps   int64
	allOf, anyOf, oneOf  []*schema
	not                  *schema
	ifS, thenS, elseS    *schema
	readOnly, writeOnly  bool
	never                bool // the boolean schema false

	// Derived after compilation (schemas may be recursive through $ref).
	known   map[string]*schema // properties declared here or by allOf/anyOf/oneOf members
	dict    bool               // additionalProperties is a schema: a map, its keys are data
	itemsOf *schema            // items here or in an allOf member, for response pruning
	ro, wo  bool               // readOnly/writeOnly here or in an allOf member
	typed   bool               // a string valid here is not free text
}

type patProp struct {
	re *regexp.Regexp
	s  *schema
}

type typeSet uint8

const (
	tNull typeSet = 1 << iota
	tBool
	tInt
	tNum
	tStr
	tArr
	tObj
)

var typeNames = map[string]typeSet{"null": tNull, "boolean": tBool, "integer": tInt, "number": tNum, "string": tStr, "array": tArr, "object": tObj}

func (t typeSet) String() string {
	var parts []string
	for _, n := range []string{"null", "boolean", "integer", "number", "string", "array", "object"} {
		if t&typeNames[n] != 0 {
			parts = append(parts, n)
		}
	}
	return strings.Join(parts, " or ")
}

// typedFormats are string formats that leave no room for free text, so
// injection inspection may skip values that validated against them.
var typedFormats = map[string]bool{"uuid": true, "date": true, "date-time": true, "email": true, "ipv4": true, "ipv6": true}

type compiler struct {
	byRef map[string]*schema
	all   []*schema
	errs  []string
}

func newCompiler() *compiler { return &compiler{byRef: map[string]*schema{}} }

// proxy compiles a schema reference once per $ref, so recursive schemas
// compile to a cyclic graph instead of looping.
func (c *compiler) proxy(sp *base.SchemaProxy, at string) *schema {
	if sp == nil {
		return nil
	}
	if sp.IsReference() {
		ref := sp.GetReference()
		if s, ok := c.byRef[ref]; ok {
			return s
		}
		s := &schema{}
		c.byRef[ref] = s
		c.fill(s, sp, ref)
		return s
	}
	s := &schema{}
	c.fill(s, sp, at)
	return s
}

func (c *compiler) errf(at, format string, args ...any) {
	c.errs = append(c.errs, at+": "+fmt.Sprintf(format, args...))
}

func (c *compiler) fill(s *schema, sp *base.SchemaProxy, at string) {
	c.all = append(c.all, s)
	h := sp.Schema()
	s.maxLen, s.maxItems, s.maxProps = -1, -1, -1
	if h == nil {
		if err := sp.GetBuildError(); err != nil {
			c.errf(at, "schema does not build: %v", err)
		}
		return
	}
	if vn := sp.GetValueNode(); vn != nil && vn.Tag == "!!bool" {
		s.never = vn.Value == "false"
		return
	}
	for _, t := range h.Type {
		ts, ok := typeNames[t]
		if !ok {
			c.errf(at, "unknown type %q", t)
		}
		s.types |= ts
	}
	if h.Nullable != nil && *h.Nullable && s.types != 0 {
		s.types |= tNull
	}
	for _, n := range h.Enum {
		var x any
		if err := n.Decode(&x); err != nil {
			c.errf(at, "enum value does not decode: %v", err)
			continue
		}
		s.enum = append(s.enum, normalize(x))
	}
	if h.Nullable != nil && *h.Nullable && len(s.enum) > 0 && !slices.Contains(s.enum, nil) {
		s.enum = append(s.enum, nil) // 3.0: nullable extends enum
	}
	if h.Const != nil {
		var x any
		if err := h.Const.Decode(&x); err != nil {
			c.errf(at, "const does not decode: %v", err)
		}
		s.hasConst, s.constv = true, normalize(x)
	}
	s.min, s.max, s.multipleOf = h.Minimum, h.Maximum, h.MultipleOf
	if e := h.ExclusiveMinimum; e != nil {
		if e.IsA() {
			if e.A && s.min != nil { // 3.0 boolean form
				s.xmin, s.min = s.min, nil
			}
		} else {
			v := e.B
			s.xmin = &v
		}
	}
	if e := h.ExclusiveMaximum; e != nil {
		if e.IsA() {
			if e.A && s.max != nil {
				s.xmax, s.max = s.max, nil
			}
		} else {
			v := e.B
			s.xmax = &v
		}
	}
	if h.MinLength != nil {
		s.minLen = *h.MinLength
	}
	if h.MaxLength != nil {
		s.maxLen = *h.MaxLength
	}
	if h.Pattern != "" {
		re, err := regexp.Compile(h.Pattern)
		if err != nil {
			c.errf(at, "pattern %q is not supported (RE2 syntax): %v", h.Pattern, err)
		}
		s.pattern = re
	}
	s.format = h.Format
	if h.Items != nil {
		if h.Items.IsA() {
			s.items = c.proxy(h.Items.A, at+"/items")
		} else if !h.Items.B {
			s.itemsFalse = true
		}
	}
	for i, p := range h.PrefixItems {
		s.prefix = append(s.prefix, c.proxy(p, at+"/prefixItems/"+strconv.Itoa(i)))
	}
	if h.MinItems != nil {
		s.minItems = *h.MinItems
	}
	if h.MaxItems != nil {
		s.maxItems = *h.MaxItems
	}
	s.unique = h.UniqueItems != nil && *h.UniqueItems
	if h.Properties != nil {
		s.props = make(map[string]*schema, h.Properties.Len())
		for k, p := range h.Properties.FromOldest() {
			s.props[k] = c.proxy(p, at+"/properties/"+k)
		}
	}
	s.required = h.Required
	if a := h.AdditionalProperties; a != nil {
		if a.IsA() {
			s.addl = c.proxy(a.A, at+"/additionalProperties")
		} else if !a.B {
			s.addlFalse = true
		}
	}
	if h.PatternProperties != nil {
		for k, p := range h.PatternProperties.FromOldest() {
			re, err := regexp.Compile(k)
			if err != nil {
				c.errf(at, "patternProperties %q is not supported (RE2 syntax): %v", k, err)
				continue
			}
			s.patProps = append(s.patProps, patProp{re, c.proxy(p, at+"/patternProperties/"+k)})
		}
	}
	if h.MinProperties != nil {
		s.minProps = *h.MinProperties
	}
	if h.MaxProperties != nil {
		s.maxProps = *h.MaxProperties
	}
	list := func(ps []*base.SchemaProxy, kw string) []*schema {
		var out []*schema
		for i, p := range ps {
			out = append(out, c.proxy(p, at+"/"+kw+"/"+strconv.Itoa(i)))
		}
		return out
	}
	s.allOf, s.anyOf, s.oneOf = list(h.AllOf, "allOf"), list(h.AnyOf, "anyOf"), list(h.OneOf, "oneOf")
	s.not = c.proxy(h.Not, at+"/not")
	s.ifS, s.thenS, s.elseS = c.proxy(h.If, at+"/if"), c.proxy(h.Then, at+"/then"), c.proxy(h.Else, at+"/else")
	s.readOnly = h.ReadOnly != nil && *h.ReadOnly
	s.writeOnly = h.WriteOnly != nil && *h.WriteOnly
	s.typed = len(s.enum) > 0 || s.hasConst || s.pattern != nil || typedFormats[s.format]
}

// finish derives the aggregate views once every schema is filled.
func (c *compiler) finish() {
	for _, s := range c.all {
		s.known = map[string]*schema{}
		seen := map[*schema]bool{}
		var collect func(x *schema, viaAllOf bool)
		collect = func(x *schema, viaAllOf bool) {
			if x == nil || seen[x] {
				return
			}
			seen[x] = true
			for k, p := range x.props {
				if _, ok := s.known[k]; !ok {
					s.known[k] = p
				}
			}
			if x.addl != nil || len(x.patProps) > 0 {
				s.dict = true
			}
			if viaAllOf {
				s.ro = s.ro || x.readOnly
				s.wo = s.wo || x.writeOnly
				if s.itemsOf == nil {
					s.itemsOf = x.items
				}
			}
			for _, m := range x.allOf {
				collect(m, viaAllOf)
			}
			for _, m := range x.anyOf {
				collect(m, false)
			}
			for _, m := range x.oneOf {
				collect(m, false)
			}
		}
		collect(s, true)
	}
}

// normalize turns YAML-decoded values into JSON's model: float64 numbers,
// map[string]any objects.
func normalize(x any) any {
	switch v := x.(type) {
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case uint64:
		return float64(v)
	case float32:
		return float64(v)
	case []any:
		out := make([]any, len(v))
		for i := range v {
			out[i] = normalize(v[i])
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = normalize(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[fmt.Sprint(k)] = normalize(e)
		}
		return out
	}
	return x
}

// equal compares a parsed JSON value with a decoded spec value.
func equal(v *value, x any) bool {
	switch v.k {
	case kNull:
		return x == nil
	case kBool:
		b, ok := x.(bool)
		return ok && b == v.b
	case kString:
		s, ok := x.(string)
		return ok && s == v.s
	case kNumber:
		f, ok := x.(float64)
		n, err := strconv.ParseFloat(v.s, 64)
		return ok && err == nil && f == n
	case kArray:
		a, ok := x.([]any)
		if !ok || len(a) != len(v.arr) {
			return false
		}
		for i := range a {
			if !equal(&v.arr[i], a[i]) {
				return false
			}
		}
		return true
	case kObject:
		m, ok := x.(map[string]any)
		if !ok || len(m) != len(v.obj) {
			return false
		}
		for i := range v.obj {
			e, ok := m[v.obj[i].key]
			if !ok || !equal(&v.obj[i].val, e) {
				return false
			}
		}
		return true
	}
	return false
}

func isInteger(f float64) bool { return f == math.Trunc(f) && !math.IsInf(f, 0) }
