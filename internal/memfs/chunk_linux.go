//go:build linux

package memfs

import (
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of an x86-64 or arm64 transparent huge page.
const hugePage = 2 << 20

// freeChunks keeps up to maxFreeChunks chunks that this process's file
// systems gave back, for the next chunk any of them needs. It is the one
// piece of package state: an allocator cache, like the Go heap's own, that
// no option or test can change and that changes nothing a cluster does,
// only how fast its memory is. Memory the process already touched is
// cheap to write again; memory mapped afresh costs a page fault per huge
// page, and on a virtual machine whose balloon takes freed memory back
// from the guest (free page reporting) a fault at the host too: writing a
// log into such memory ran at about 0.4 GB/s on a 2-core test machine,
// against 7 GB/s into reused chunks. Cached chunks are MADV_FREE, so the
// kernel may still reclaim them under memory pressure.
var freeChunks struct {
	sync.Mutex
	c [][]byte
}

const maxFreeChunks = 128 // 256 MiB

// allocChunk returns n bytes; they are zero only if n is below maxChunk.
// Full-size chunks are mapped outside the Go heap: a broker's stored data
// then neither counts toward the garbage collector's heap target (which
// would let the heap grow to twice the data held) nor gets scanned.
// Smaller chunks come from the heap.
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
	if n == maxChunk {
		freeChunks.Lock()
		if k := len(freeChunks.c); k > 0 {
			b := freeChunks.c[k-1]
			freeChunks.c[k-1] = nil
			freeChunks.c = freeChunks.c[:k-1]
			freeChunks.Unlock()
			return b, true
		}
		freeChunks.Unlock()
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

// freeChunk releases a chunk from allocChunk that was mapped: into the
// cache while it has room, else back to the system.
func freeChunk(b []byte) {
	if len(b) == maxChunk {
		freeChunks.Lock()
		if len(freeChunks.c) < maxFreeChunks {
			_ = unix.Madvise(b, unix.MADV_FREE)
			freeChunks.c = append(freeChunks.c, b)
			freeChunks.Unlock()
			return
		}
		freeChunks.Unlock()
	}
	unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b)))
}
