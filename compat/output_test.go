package compat

import (
	"bytes"
	"sync"
)

// boundedOutput collects a child process's output up to max bytes. The
// first write past that calls over (once), which may stop the process, and
// the rest is dropped: a child that floods its output fails its test
// instead of growing the test process until the machine runs out of memory.
type boundedOutput struct {
	mu       sync.Mutex
	b        bytes.Buffer
	max      int
	over     func()
	exceeded bool
}

func (o *boundedOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.exceeded {
		return len(p), nil
	}
	if o.b.Len()+len(p) > o.max {
		o.exceeded = true
		if o.over != nil {
			o.over()
		}
		return len(p), nil
	}
	return o.b.Write(p)
}

func (o *boundedOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// Exceeded reports whether the output passed max.
func (o *boundedOutput) Exceeded() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.exceeded
}
