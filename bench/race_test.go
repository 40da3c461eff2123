//go:build race

package main

// raceEnabled skips the in-process WAF test under the race detector, where
// building a CRS WAF takes several seconds.
const raceEnabled = true
