//go:build race

package compat

// raceEnabled reports whether the test binary runs with the race detector;
// the kcat test then builds cmd/kcluster with it too.
const raceEnabled = true
