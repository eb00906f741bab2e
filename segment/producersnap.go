package segment

import (
	"encoding/binary"
	"errors"

	"github.com/cockroachdb/pebble/v2"
)

// Producer-state snapshots (Kafka's <offset>.snapshot files) live in the
// store's pebble index under kind 'p', keyed by the offset they were taken
// at: a snapshot at offset X holds the state after every batch below X.
// They are truncated with the log. The encoding is the caller's.
const kindProducerSnap = 'p'

// SaveProducerSnapshot stores a snapshot taken at offset (at most the log
// end) and drops older ones. Not synced: a snapshot lost in a crash only
// means a longer scan on the next open.
func (l *Log) SaveProducerSnapshot(offset int64, data []byte) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.closed {
		return ErrClosed
	}
	if offset > l.mu.leo {
		return ErrOffsetMismatch
	}
	b := l.s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(l.prefix(kindProducerSnap), l.key(kindProducerSnap, uint64(offset)), nil); err != nil {
		return err
	}
	b.Set(l.key(kindProducerSnap, uint64(offset)), data, nil)
	return b.Commit(pebble.NoSync)
}

// ProducerSnapshot returns the latest snapshot at or below the log end,
// or offset -1 when there is none. Snapshots above the log end (left by a
// crash that cut the log shorter) are deleted.
func (l *Log) ProducerSnapshot() (int64, []byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.closed {
		return -1, nil, ErrClosed
	}
	stale := l.key(kindProducerSnap, uint64(l.mu.leo)+1)
	if found, err := l.hasKeys(stale, l.prefix(kindProducerSnap+1)); err != nil {
		return -1, nil, err
	} else if found {
		if err := l.s.db.DeleteRange(stale, l.prefix(kindProducerSnap+1), pebble.NoSync); err != nil {
			return -1, nil, err
		}
	}
	it, err := l.s.db.NewIter(&pebble.IterOptions{LowerBound: l.prefix(kindProducerSnap), UpperBound: stale})
	if err != nil {
		return -1, nil, err
	}
	off, data := int64(-1), []byte(nil)
	if it.Last() {
		k := it.Key()
		off = int64(binary.BigEndian.Uint64(k[len(k)-8:]))
		data = append([]byte(nil), it.Value()...)
	}
	return off, data, errors.Join(err, it.Close())
}

// deleteSnapshotsAfter drops snapshots taken after off (Truncate(off)
// keeps a snapshot at off itself: it describes only batches below off).
func (l *Log) deleteSnapshotsAfter(b *pebble.Batch, off int64) error {
	return b.DeleteRange(l.key(kindProducerSnap, uint64(off)+1), l.prefix(kindProducerSnap+1), nil)
}
