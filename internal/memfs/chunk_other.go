//go:build !unix

package memfs

// allocChunk returns n zeroed bytes from the heap.
func allocChunk(n int) ([]byte, bool) { return make([]byte, n), false }

// freeChunk is never called: no chunk is mapped.
func freeChunk([]byte) {}
