package metadata

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Entry is one record of the log at its offset. Size is the length of
// the record's wire form, what the snapshot triggers count. Raw is that
// wire form (EncodeRecord's bytes) where the log keeps it, so that serving
// the record to every broker does not encode it again; nil where it does
// not. Readers must not change it.
type Entry struct {
	Offset int64
	Record Record
	Size   int
	Raw    []byte
}

// ErrLogClosed is returned by Log methods after Close.
var ErrLogClosed = errors.New("metadata: log closed")

// ErrBelowLogStart is wrapped by Read's error for an offset the log has
// dropped behind a snapshot: the reader must load the snapshot
// (LatestSnapshot) and read on from its end (Kafka's fetch answer with a
// SnapshotId).
var ErrBelowLogStart = errors.New("metadata: offset below the log start; load the snapshot")

// Log is the metadata log. Records appended are never changed; readers must
// treat them as immutable.
type Log interface {
	// Append appends records atomically and returns the offset of the
	// last one once it is committed.
	Append(ctx context.Context, recs ...Record) (int64, error)
	// Read returns up to max committed entries starting at offset from,
	// blocking until at least one exists or ctx is done. Below Start it
	// returns ErrBelowLogStart.
	Read(ctx context.Context, from int64, max int) ([]Entry, error)
	// End returns the offset after the last committed entry.
	End() int64
	// Start returns the log start offset: the first entry Read returns;
	// the records below it are in LatestSnapshot.
	Start() int64
	// LatestSnapshot returns the newest snapshot, nil if none.
	LatestSnapshot() *Snapshot
	// Compact makes sn the latest snapshot and drops the entries it
	// covers. sn must be of the state the log's records build, at a
	// committed offset. A log may decline (a snapshot not newer than
	// its latest, or not at an entry boundary of the Raft log), and
	// may do it later (RaftLog persists it from its Run goroutine).
	Compact(sn *Snapshot)
	// Close releases blocked readers with ErrLogClosed.
	Close()
}

// committed is a list of committed records that readers wait on, the part
// MemLog and RaftLog share. All state sits in mu; changed is closed and
// replaced on every append so readers wait on an event, not a poll. The
// list begins at start: the records before it are in snap.
type committed struct {
	mu struct {
		sync.Mutex
		start   int64
		entries []Entry
		snap    *Snapshot
		changed chan struct{}
		closed  bool
	}
}

func (c *committed) init() { c.mu.changed = make(chan struct{}) }

// add appends records (raws[i] is recs[i]'s wire form) and returns the
// offset of the last one.
func (c *committed) add(recs []Record, raws [][]byte) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return 0, ErrLogClosed
	}
	for i, r := range recs {
		c.mu.entries = append(c.mu.entries, Entry{Offset: c.mu.start + int64(len(c.mu.entries)), Record: r, Size: len(raws[i]), Raw: raws[i]})
	}
	c.wakeLocked()
	return c.endLocked() - 1, nil
}

// wakeLocked wakes the readers waiting for a change. After closeReaders
// the channel is closed for good (a compaction racing the log's close
// must not close it twice).
func (c *committed) wakeLocked() {
	if c.mu.closed {
		return
	}
	close(c.mu.changed)
	c.mu.changed = make(chan struct{})
}

func (c *committed) endLocked() int64 { return c.mu.start + int64(len(c.mu.entries)) }

// Read implements Log.
func (c *committed) Read(ctx context.Context, from int64, max int) ([]Entry, error) {
	for {
		c.mu.Lock()
		if c.mu.closed {
			c.mu.Unlock()
			return nil, ErrLogClosed
		}
		if from < c.mu.start {
			start := c.mu.start
			c.mu.Unlock()
			return nil, fmt.Errorf("%w: offset %d, log start %d", ErrBelowLogStart, from, start)
		}
		if end := c.endLocked(); from < end {
			if max > 0 && end-from > int64(max) {
				end = from + int64(max)
			}
			out := c.mu.entries[from-c.mu.start : end-c.mu.start : end-c.mu.start]
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
	return c.endLocked()
}

// Start implements Log.
func (c *committed) Start() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.start
}

// LatestSnapshot implements Log.
func (c *committed) LatestSnapshot() *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.snap
}

// compact makes sn the latest snapshot and drops the entries through the
// previous snapshot's offset, copying the rest so the dropped ones are
// freed. The records since the previous snapshot stay, so a reader whose
// own snapshot is about as recent (a restarting broker) reads only the
// tail, as Kafka keeps metadata log segments past its snapshots
// (metadata.max.retention.*); the log holds at most two snapshot
// intervals. It reports false, changing nothing, for a snapshot not newer
// than the latest or past the end.
func (c *committed) compact(sn *Snapshot) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if (c.mu.snap != nil && sn.Offset <= c.mu.snap.Offset) || sn.Offset >= c.endLocked() {
		return false
	}
	through := int64(-1)
	if c.mu.snap != nil {
		through = c.mu.snap.Offset
	}
	c.mu.snap = sn
	if drop := through + 1 - c.mu.start; drop > 0 {
		c.mu.entries = slices.Clone(c.mu.entries[drop:])
		c.mu.start = through + 1
	}
	c.wakeLocked()
	return true
}

// restore replaces the whole list with a snapshot (a Raft snapshot
// installed from the leader): the log continues after it. Readers below
// the new start get ErrBelowLogStart.
func (c *committed) restore(sn *Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.snap = sn
	c.mu.start = sn.Offset + 1
	c.mu.entries = nil
	c.wakeLocked()
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
	raws := make([][]byte, len(recs))
	for i, r := range recs {
		b, err := EncodeRecord(r)
		if err != nil {
			return 0, err
		}
		raws[i] = b
	}
	return l.add(recs, raws)
}

// Compact implements Log: the snapshot replaces the records it covers at
// once (nothing of the in-memory log is durable).
func (l *MemLog) Compact(sn *Snapshot) { l.compact(sn) }

// Close implements Log.
func (l *MemLog) Close() { l.closeReaders() }
