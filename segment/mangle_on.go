//go:build race || invariants

package segment

// writesMayModify reports whether a vfs.File.Write may modify its argument:
// pebble's MemFS flips every byte it was given in race and invariants
// builds (to catch callers that reuse a buffer pebble still holds).
const writesMayModify = true
