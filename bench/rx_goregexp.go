//go:build waf_goregexp

package main

// With -tags waf_goregexp the coraza target keeps Coraza's stock @rx
// operator (Go regexp). apiguard is built separately, without the tag.
const corazaRx = "stock Go-regexp @rx"
