package kcluster

import "sync"

// bufPool keeps large buffers (request frames and responses over smallBuf,
// which in practice are produce requests and fetch responses) for reuse
// across the cluster's connections, so a stream of them neither allocates
// nor zeroes a new buffer each time. Smaller buffers stay with their
// connection. It is safe for concurrent use.
type bufPool struct{ p sync.Pool }

const (
	smallBuf  = 1 << 20  // a connection keeps buffers up to this size
	maxPooled = 64 << 20 // larger buffers are left to the garbage collector
)

// get returns n bytes, not zeroed.
func (p *bufPool) get(n int) []byte {
	if bp, _ := p.p.Get().(*[]byte); bp != nil && cap(*bp) >= n {
		return (*bp)[:n]
	}
	return make([]byte, n)
}

// put gives b back for reuse; nothing may use b afterwards. Buffers of
// smallBuf or less, or over maxPooled, are not kept.
func (p *bufPool) put(b []byte) {
	if cap(b) <= smallBuf || cap(b) > maxPooled {
		return
	}
	b = b[:0]
	p.p.Put(&b)
}
