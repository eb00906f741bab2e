package segment

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Removing data from a log: truncation after a batch (a diverged or
// unacknowledged suffix), all of it, or before an offset (retention,
// DeleteRecords).

// Truncate removes every batch at or after offset, which must be a batch
// boundary or the log end. Used by followers whose log diverged.
func (l *Log) Truncate(offset int64) (err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if l.mu.failed != nil {
		return l.mu.failed
	}
	defer l.failOnIOErrorLocked(&err)
	if offset >= l.mu.leo {
		if offset == l.mu.leo {
			return nil
		}
		return fmt.Errorf("%w: truncate to %d past log end %d", ErrOffsetMismatch, offset, l.mu.leo)
	}
	if offset < l.mu.start {
		return fmt.Errorf("%w: truncate to %d below log start %d", ErrOffsetMismatch, offset, l.mu.start)
	}
	s, pos, err := l.findLocked(offset)
	if err != nil {
		return err
	}
	if pos < s.size {
		hdr := make([]byte, BatchHeaderSize)
		if _, err := s.f.ReadAt(hdr, pos); err != nil {
			return err
		}
		h, err := ParseBatchHeader(hdr)
		if err != nil {
			return err
		}
		if h.BaseOffset != offset {
			return fmt.Errorf("%w: %d is inside batch %d-%d", ErrOffsetMismatch, offset, h.BaseOffset, h.LastOffset())
		}
	}
	// Drop later segments entirely.
	for len(l.mu.segs) > 0 && l.mu.segs[len(l.mu.segs)-1] != s {
		last := l.mu.segs[len(l.mu.segs)-1]
		if err := l.s.fs.Remove(last.path); err != nil {
			return err
		}
		last.f.Close()
		l.mu.segs = l.mu.segs[:len(l.mu.segs)-1]
	}
	if err := l.cutFileLocked(s, pos); err != nil {
		return err
	}
	b := l.s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(l.key('o', uint64(offset)), l.prefix('o'+1), nil); err != nil {
		return err
	}
	if err := l.deleteTimeFromLocked(b, offset); err != nil {
		return err
	}
	if err := l.deleteAbortedFrom(b, offset); err != nil {
		return err
	}
	if err := l.deleteSnapshotsAfter(b, offset); err != nil {
		return err
	}
	// Synced: once appends reuse the cut positions, a stale entry that
	// survived a crash would point into the new batches.
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	l.mu.leo = offset
	l.mu.tail = l.mu.tail[:0]
	l.mu.sinceIndex = l.opts.IndexIntervalBytes // index the next batch
	return l.truncateEpochsLocked(offset)
}

// TruncateFully drops all data; the log restarts empty at offset.
func (l *Log) TruncateFully(offset int64) (err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if l.mu.failed != nil {
		return l.mu.failed
	}
	defer l.failOnIOErrorLocked(&err)
	for len(l.mu.segs) > 0 {
		s := l.mu.segs[len(l.mu.segs)-1]
		if err := l.s.fs.Remove(s.path); err != nil {
			return err
		}
		s.f.Close()
		l.mu.segs = l.mu.segs[:len(l.mu.segs)-1]
	}
	b := l.s.db.NewBatch()
	defer b.Close()
	for _, k := range []byte{'o', 't', 'e', 'h', kindAborted, kindProducerSnap} {
		if err := b.DeleteRange(l.prefix(k), l.prefix(k+1), nil); err != nil {
			return err
		}
	}
	b.Set(l.key('m', 0), binary.BigEndian.AppendUint64(nil, uint64(offset)), nil)
	// Synced, as in Truncate: the new segment may reuse a base offset.
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	l.mu.start, l.mu.leo = offset, offset
	l.mu.maxTS, l.mu.maxTSOffset = -1, -1
	l.mu.epochs = nil
	return l.rollLocked(offset)
}

// DeleteBefore advances the log start offset to offset (never past the log
// end) and deletes segments entirely below it.
func (l *Log) DeleteBefore(offset int64) (err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if l.mu.failed != nil {
		return l.mu.failed
	}
	defer l.failOnIOErrorLocked(&err)
	if offset <= l.mu.start {
		return nil
	}
	if offset > l.mu.leo {
		return fmt.Errorf("%w: log start %d past log end %d", ErrOffsetMismatch, offset, l.mu.leo)
	}
	b := l.s.db.NewBatch()
	defer b.Close()
	b.Set(l.key('m', 0), binary.BigEndian.AppendUint64(nil, uint64(offset)), nil)
	for len(l.mu.segs) > 1 && l.mu.segs[1].base <= offset {
		s := l.mu.segs[0]
		if err := b.DeleteRange(l.key('o', uint64(s.base)), l.key('o', uint64(l.mu.segs[1].base)), nil); err != nil {
			return err
		}
		if err := l.s.fs.Remove(s.path); err != nil {
			return err
		}
		s.f.Close()
		l.mu.segs = l.mu.segs[1:]
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	l.mu.start = offset
	return nil
}
