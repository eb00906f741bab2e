//go:build !invariants

// Package invariants tells whether the costly invariant checks are compiled
// in: they are with the invariants build tag (go test -tags invariants), as
// in pebble, and cost nothing without it, since every check sits behind
// `if invariants.Enabled` and the compiler drops the dead branch.
//
// The tag also turns on pebble's own invariant checks.
package invariants

// Enabled reports whether the invariants build tag is set.
const Enabled = false
