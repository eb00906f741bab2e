//go:build unix && !linux

package memfs

import "syscall"

// allocChunk returns n bytes (zeroed; the Linux version may reuse chunks
// and does not promise that). Full-size chunks are mapped outside the
// Go heap: a broker's stored data then neither counts toward the garbage
// collector's heap target (which would let the heap grow to twice the data
// held) nor gets scanned. Smaller chunks come from the heap.
func allocChunk(n int) ([]byte, bool) {
	if n < maxChunk {
		return make([]byte, n), false
	}
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, n), false
	}
	return b, true
}

// freeChunk releases a chunk from allocChunk that was mapped.
func freeChunk(b []byte) { syscall.Munmap(b) }
