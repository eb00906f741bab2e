package kcluster

import (
	"math/bits"
	"sync"
)

// bufPool keeps large buffers for reuse across the cluster's connections:
// request frames and responses over smallBuf (in practice produce requests
// and fetch responses) and the record batches a fetch reads from a log. A
// stream of them then neither allocates nor zeroes a buffer each time.
// Buffers come in power-of-two classes from minPooled up; a buffer goes
// back to the class it came from. It is safe for concurrent use.
type bufPool struct{ classes [numClasses]sync.Pool }

const (
	smallBuf   = 1 << 20  // a connection keeps frame buffers up to this size
	minPooled  = 64 << 10 // smaller buffers are left to the allocator
	numClasses = 11       // minPooled << 10 = 64 MiB: larger ones are not kept
	readBuf    = 4 << 10  // a connection's read buffer: small frames come whole in one read
)

// class returns the smallest class holding n bytes (numClasses if none).
func class(n int) int {
	if n <= minPooled {
		return 0
	}
	return min(bits.Len(uint(n-1)/minPooled), numClasses)
}

// get returns n bytes, not zeroed.
func (p *bufPool) get(n int) []byte {
	c := class(n)
	if n < minPooled || c == numClasses {
		return make([]byte, n)
	}
	if bp, _ := p.classes[c].Get().(*[]byte); bp != nil {
		return (*bp)[:n]
	}
	return make([]byte, n, minPooled<<c)
}

// put gives b, from get, back for reuse; nothing may use b afterwards.
// Buffers that get did not take from a class (too small or too large, or
// grown by an append since) are left to the garbage collector.
func (p *bufPool) put(b []byte) {
	c := class(cap(b))
	if c == numClasses || cap(b) != minPooled<<c {
		return
	}
	b = b[:0]
	p.classes[c].Put(&b)
}

// giveBack returns pooled buffers nothing refers to any more.
func (b *broker) giveBack(bufs [][]byte) {
	for _, buf := range bufs {
		b.c.bufs.put(buf)
	}
}
