//go:build race

package invariants

// Race reports whether the race detector is compiled in (go test -race).
const Race = true
