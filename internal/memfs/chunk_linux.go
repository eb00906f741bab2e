//go:build linux

package memfs

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of an x86-64 or arm64 transparent huge page.
const hugePage = 2 << 20

// allocChunk returns n zeroed bytes. Full-size chunks are mapped outside the
// Go heap: a broker's stored data then neither counts toward the garbage
// collector's heap target (which would let the heap grow to twice the data
// held) nor gets scanned. Smaller chunks come from the heap.
//
// A mapped chunk starts on a huge-page boundary and asks for transparent
// huge pages (MADV_HUGEPAGE; honoured when the system's THP mode is
// "madvise" or "always"): the first write to it then faults once per
// 2 MiB instead of once per 4 KiB page. With 4 KiB pages those faults
// were most of the cost of appending to a log held in memory (writing
// into a fresh chunk ran at about 1.6 GB/s, against 18 GB/s with huge
// pages, on a 2-core x86-64 machine).
func allocChunk(n int) ([]byte, bool) {
	if n < maxChunk {
		return make([]byte, n), false
	}
	// Map a huge page more than needed, then unmap what lies before the
	// first boundary and after the chunk.
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(n+hugePage), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return make([]byte, n), false
	}
	head := (hugePage - uintptr(p)%hugePage) % hugePage
	if head > 0 {
		unix.MunmapPtr(p, head)
	}
	start := unsafe.Add(p, head)
	if tail := hugePage - head; tail > 0 {
		unix.MunmapPtr(unsafe.Add(start, n), tail)
	}
	b := unsafe.Slice((*byte)(start), n)
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // best effort: THP may be off
	return b, true
}

// freeChunk releases a chunk from allocChunk that was mapped.
func freeChunk(b []byte) { unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b))) }
