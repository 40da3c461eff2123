//go:build race

package testutil

// Race reports whether the race detector is on. Under it the CRS, whose
// RE2 runs as compiled WebAssembly, is ~30x slower, so tests that drive
// real traffic through the WAF for a fixed time give it longer.
const Race = true
