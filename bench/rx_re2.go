//go:build !waf_goregexp

package main

// The coraza target's CRS runs on the same RE2 @rx operator as apiguard's
// waf check: importing the package registers it for every Coraza WAF of
// the process (see internal/checks/waf/re2.go), so the comparison is
// between the two ways of feeding the CRS, not between regexp engines.
// Build with -tags waf_goregexp for Coraza's stock Go-regexp operator.
import _ "github.com/apiguard/apiguard/internal/checks/waf"

const corazaRx = "RE2 @rx, as apiguard"
