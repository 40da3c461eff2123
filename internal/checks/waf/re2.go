//go:build !waf_goregexp

// Build with -tags waf_goregexp to keep Coraza's own Go-regexp operator
// (the stock baseline the benchmarks compare against).

package waf

import (
	"regexp"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	re2 "github.com/wasilibs/go-re2"
)

// The CRS is hundreds of large alternations, which Go's regexp evaluates
// by backtracking; RE2's DFA (here compiled to WebAssembly and run by
// wazero, no cgo) matches them in linear time. Registering "rx" replaces
// Coraza's own operator for every WAF of this process.
func init() {
	plugins.RegisterOperator("rx", newRE2Operator)
}

type matcher interface {
	MatchString(string) bool
	FindStringSubmatch(string) []string
}

type rxOperator struct{ re matcher }

func newRE2Operator(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	// Coraza compiles rx patterns in dot-all, multi-line mode (ModSecurity
	// compatibility); keep its semantics.
	pattern := "(?sm)" + o.Arguments
	if re, err := re2.Compile(pattern); err == nil {
		return &rxOperator{re: re}, nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	return &rxOperator{re: re}, nil
}

func (o *rxOperator) Evaluate(tx plugintypes.TransactionState, value string) bool {
	if !tx.Capturing() {
		return o.re.MatchString(value)
	}
	m := o.re.FindStringSubmatch(value)
	if m == nil {
		return false
	}
	for i, c := range m {
		if i == 9 {
			break
		}
		tx.CaptureField(i, c)
	}
	return true
}
