package metadata

import (
	"context"
	"errors"
	"sync"
)

// Entry is one record of the log at its offset.
type Entry struct {
	Offset int64
	Record Record
}

// ErrLogClosed is returned by Log methods after Close.
var ErrLogClosed = errors.New("metadata: log closed")

// Log is the metadata log. Records appended are never changed; readers must
// treat them as immutable.
type Log interface {
	// Append appends records atomically and returns the offset of the
	// last one once it is committed.
	Append(ctx context.Context, recs ...Record) (int64, error)
	// Read returns up to max committed entries starting at offset from,
	// blocking until at least one exists or ctx is done.
	Read(ctx context.Context, from int64, max int) ([]Entry, error)
	// End returns the offset after the last committed entry.
	End() int64
	// Close releases blocked readers with ErrLogClosed.
	Close()
}

// committed is a list of committed records that readers wait on, the part
// MemLog and RaftLog share. All state sits in mu; changed is closed and
// replaced on every append so readers wait on an event, not a poll.
type committed struct {
	mu struct {
		sync.Mutex
		entries []Entry
		changed chan struct{}
		closed  bool
	}
}

func (c *committed) init() { c.mu.changed = make(chan struct{}) }

// add appends records and returns the offset of the last one.
func (c *committed) add(recs ...Record) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return 0, ErrLogClosed
	}
	for _, r := range recs {
		c.mu.entries = append(c.mu.entries, Entry{Offset: int64(len(c.mu.entries)), Record: r})
	}
	close(c.mu.changed)
	c.mu.changed = make(chan struct{})
	return int64(len(c.mu.entries)) - 1, nil
}

// Read implements Log.
func (c *committed) Read(ctx context.Context, from int64, max int) ([]Entry, error) {
	for {
		c.mu.Lock()
		if c.mu.closed {
			c.mu.Unlock()
			return nil, ErrLogClosed
		}
		if from < int64(len(c.mu.entries)) {
			end := int64(len(c.mu.entries))
			if max > 0 && end-from > int64(max) {
				end = from + int64(max)
			}
			out := c.mu.entries[from:end:end]
			c.mu.Unlock()
			return out, nil
		}
		ch := c.mu.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// End implements Log.
func (c *committed) End() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(len(c.mu.entries))
}

// closeReaders releases blocked readers with ErrLogClosed.
func (c *committed) closeReaders() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.mu.closed {
		c.mu.closed = true
		close(c.mu.changed)
	}
}

// MemLog is the single-node in-memory metadata log: committed on append.
type MemLog struct{ committed }

// NewMemLog returns an empty in-memory log.
func NewMemLog() *MemLog {
	l := new(MemLog)
	l.init()
	return l
}

// Append implements Log.
func (l *MemLog) Append(_ context.Context, recs ...Record) (int64, error) {
	return l.add(recs...)
}

// Close implements Log.
func (l *MemLog) Close() { l.closeReaders() }
