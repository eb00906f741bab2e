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

// MemLog is the single-node in-memory metadata log: committed on append.
// All state sits in mu; changed is closed and replaced on every append so
// readers wait on an event, not a poll.
type MemLog struct {
	mu struct {
		sync.Mutex
		entries []Entry
		changed chan struct{}
		closed  bool
	}
}

// NewMemLog returns an empty in-memory log.
func NewMemLog() *MemLog {
	l := new(MemLog)
	l.mu.changed = make(chan struct{})
	return l
}

// Append implements Log.
func (l *MemLog) Append(_ context.Context, recs ...Record) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, ErrLogClosed
	}
	for _, r := range recs {
		l.mu.entries = append(l.mu.entries, Entry{Offset: int64(len(l.mu.entries)), Record: r})
	}
	close(l.mu.changed)
	l.mu.changed = make(chan struct{})
	return int64(len(l.mu.entries)) - 1, nil
}

// Read implements Log.
func (l *MemLog) Read(ctx context.Context, from int64, max int) ([]Entry, error) {
	for {
		l.mu.Lock()
		if l.mu.closed {
			l.mu.Unlock()
			return nil, ErrLogClosed
		}
		if from < int64(len(l.mu.entries)) {
			end := int64(len(l.mu.entries))
			if max > 0 && end-from > int64(max) {
				end = from + int64(max)
			}
			out := l.mu.entries[from:end:end]
			l.mu.Unlock()
			return out, nil
		}
		ch := l.mu.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// End implements Log.
func (l *MemLog) End() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(len(l.mu.entries))
}

// Close implements Log.
func (l *MemLog) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.mu.closed {
		l.mu.closed = true
		close(l.mu.changed)
	}
}
