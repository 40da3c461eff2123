package authz

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"

	"github.com/apiguard/apiguard/internal/pipeline"
)

// activation resolves the CEL variables of one request. It is pooled and
// reused: values are computed only when an expression reads them, and the
// maps are views over the request (no copies) unless an expression iterates
// over them.
type activation struct {
	req    *pipeline.Request
	params []param // the matched rule's template parameters

	query       url.Values // parsed on first use
	queryParsed bool

	headers, queryMap, paramMap, claims lazyMap

	// The upstream's answer, for response_allow expressions.
	respStatus int
	respJSON   any
}

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) reset(req *pipeline.Request) {
	a.req = req
	a.params = a.params[:0]
	a.query, a.queryParsed = nil, false
	a.headers = lazyMap{act: a, kind: mapHeaders}
	a.queryMap = lazyMap{act: a, kind: mapQuery}
	a.paramMap = lazyMap{act: a, kind: mapParams}
	a.claims = lazyMap{act: a, kind: mapClaims}
	a.respStatus, a.respJSON = 0, nil
}

// Parent implements interpreter.Activation.
func (*activation) Parent() interpreter.Activation { return nil }

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	r, id := a.req.HTTP, &a.req.Identity
	switch name {
	case varMethod:
		return types.String(r.Method), true
	case varPath:
		return types.String(r.URL.Path), true
	case varQuery:
		return &a.queryMap, true
	case varHeaders:
		return &a.headers, true
	case varHost:
		return types.String(r.Host), true
	case varParams:
		return &a.paramMap, true
	case varSub:
		return types.String(id.Subject), true
	case varClaims:
		return &a.claims, true
	case varAPIKey:
		return types.String(id.APIKey), true
	case varScopes:
		return types.NewStringList(types.DefaultTypeAdapter, id.Scopes), true
	case varCertSubject:
		return types.String(id.CertSubject), true
	case varApp:
		return types.String(id.App), true
	case varDevice:
		return types.String(id.Device), true
	case varAuthenticated:
		return types.Bool(authenticated(id)), true
	case varRespStatus:
		return types.Int(a.respStatus), true
	case varRespJSON:
		return types.DefaultTypeAdapter.NativeToValue(a.respJSON), true
	}
	return nil, false
}

type mapKind uint8

const (
	mapHeaders mapKind = iota // request headers, case-insensitive names
	mapQuery                  // query parameters
	mapParams                 // template parameters
	mapClaims                 // identity claims: map(string, dyn)
)

// lazyMap is a CEL map(string, string) over the request's headers, query
// or template parameters, or the map(string, dyn) of the identity's claims.
// Lookups read the request directly; iteration, size, equality and
// conversion build a plain map first (claims are wrapped as they are).
type lazyMap struct {
	act  *activation
	kind mapKind
}

var _ traits.Mapper = (*lazyMap)(nil)

// lookup returns the first value under key.
func (m *lazyMap) lookup(key string) (string, bool) {
	a := m.act
	switch m.kind {
	case mapHeaders:
		h := a.req.HTTP.Header
		if v, ok := h[key]; ok && len(v) > 0 { // already canonical
			return v[0], true
		}
		for k, v := range h {
			if len(v) > 0 && strings.EqualFold(k, key) {
				return v[0], true
			}
		}
	case mapQuery:
		if !a.queryParsed {
			a.query, _ = url.ParseQuery(a.req.HTTP.URL.RawQuery)
			a.queryParsed = true
		}
		if v := a.query[key]; len(v) > 0 {
			return v[0], true
		}
	case mapParams:
		for _, p := range a.params {
			if p.name == key {
				return p.value, true
			}
		}
	}
	return "", false
}

// native builds the whole map.
func (m *lazyMap) native() map[string]string {
	a := m.act
	switch m.kind {
	case mapHeaders:
		out := make(map[string]string, len(a.req.HTTP.Header))
		for k, v := range a.req.HTTP.Header {
			if len(v) > 0 {
				lk := strings.ToLower(k)
				if _, dup := out[lk]; !dup || k == http.CanonicalHeaderKey(k) {
					out[lk] = v[0]
				}
			}
		}
		return out
	case mapQuery:
		m.lookup("") // parse
		out := make(map[string]string, len(a.query))
		for k, v := range a.query {
			if len(v) > 0 {
				out[k] = v[0]
			}
		}
		return out
	default:
		out := make(map[string]string, len(a.params))
		for _, p := range a.params {
			out[p.name] = p.value
		}
		return out
	}
}

func (m *lazyMap) plain() traits.Mapper {
	if m.kind == mapClaims {
		return types.NewStringInterfaceMap(types.DefaultTypeAdapter, m.act.req.Identity.Claims)
	}
	return types.NewStringStringMap(types.DefaultTypeAdapter, m.native())
}

// Find implements traits.Mapper.
func (m *lazyMap) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		if types.IsUnknownOrError(key) {
			return key, false
		}
		return nil, false
	}
	if m.kind == mapClaims {
		v, found := m.act.req.Identity.Claims[string(k)]
		if !found {
			return nil, false
		}
		return types.DefaultTypeAdapter.NativeToValue(v), true
	}
	v, found := m.lookup(string(k))
	if !found {
		return nil, false
	}
	return types.String(v), true
}

// Get implements traits.Indexer.
func (m *lazyMap) Get(key ref.Val) ref.Val {
	v, found := m.Find(key)
	if found {
		return v
	}
	if v != nil {
		return v
	}
	return types.NewErr("no such key: %v", key)
}

// Contains implements traits.Container.
func (m *lazyMap) Contains(key ref.Val) ref.Val {
	v, found := m.Find(key)
	if !found && v != nil {
		return v
	}
	return types.Bool(found)
}

// Iterator implements traits.Iterable.
func (m *lazyMap) Iterator() traits.Iterator { return m.plain().Iterator() }

// Size implements traits.Sizer.
func (m *lazyMap) Size() ref.Val { return m.plain().Size() }

// ConvertToNative implements ref.Val.
func (m *lazyMap) ConvertToNative(typeDesc reflect.Type) (any, error) {
	return m.plain().ConvertToNative(typeDesc)
}

// ConvertToType implements ref.Val.
func (m *lazyMap) ConvertToType(typeVal ref.Type) ref.Val {
	switch typeVal {
	case types.MapType:
		return m
	case types.TypeType:
		return types.MapType
	}
	return types.NewErr("type conversion error from '%s' to '%s'", types.MapType, typeVal)
}

// Equal implements ref.Val.
func (m *lazyMap) Equal(other ref.Val) ref.Val { return m.plain().Equal(other) }

// Type implements ref.Val.
func (m *lazyMap) Type() ref.Type { return types.MapType }

// Value implements ref.Val.
func (m *lazyMap) Value() any {
	if m.kind == mapClaims {
		return m.act.req.Identity.Claims
	}
	return m.native()
}
