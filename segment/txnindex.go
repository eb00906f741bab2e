package segment

import (
	"encoding/binary"

	"github.com/cockroachdb/pebble/v2"
)

// AbortedTxn is one entry of a log's aborted-transaction index (Kafka's
// TransactionIndex, .txnindex): producer ProducerID's transaction spanned
// FirstOffset through LastOffset, the offset of its abort marker.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64
	LastOffset  int64
}

// The index lives in the store's pebble index under kind 'x', keyed by the
// abort marker's offset, so it is truncated with the log and read in
// offset order.
const kindAborted = 'x'

// AddAbortedTxn records an aborted transaction whose abort marker is at
// t.LastOffset (already appended). The entry is not synced; a crash that
// loses it is repaired by ResetAbortedTxns when the log is reopened and its
// batches are scanned.
func (l *Log) AddAbortedTxn(t AbortedTxn) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.closed {
		return ErrClosed
	}
	return l.s.db.Set(l.key(kindAborted, uint64(t.LastOffset)), abortedValue(t), pebble.NoSync)
}

func abortedValue(t AbortedTxn) []byte {
	v := binary.BigEndian.AppendUint64(nil, uint64(t.ProducerID))
	return binary.BigEndian.AppendUint64(v, uint64(t.FirstOffset))
}

// ResetAbortedTxns replaces the entries whose marker is at or after from
// with ts (after a scan of the log's batches from there: the batches are
// the source of truth).
func (l *Log) ResetAbortedTxns(from int64, ts []AbortedTxn) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.closed {
		return ErrClosed
	}
	cur, err := l.abortedLocked(from, -1)
	if err != nil {
		return err
	}
	// Entries past the log end were left by a crash that cut the log
	// (recovery does not go through Truncate): later appends would
	// otherwise revive them.
	stale := l.key(kindAborted, uint64(l.mu.leo))
	if found, err := l.hasKeys(stale, l.prefix(kindAborted+1)); err != nil {
		return err
	} else if found {
		if err := l.s.db.DeleteRange(stale, l.prefix(kindAborted+1), pebble.NoSync); err != nil {
			return err
		}
	}
	if len(cur) == len(ts) {
		same := true
		for i := range ts {
			if cur[i] != ts[i] {
				same = false
				break
			}
		}
		if same {
			return nil
		}
	}
	b := l.s.db.NewBatch()
	defer b.Close()
	if len(cur) > 0 {
		if err := b.DeleteRange(l.key(kindAborted, uint64(max(from, 0))), l.prefix(kindAborted+1), nil); err != nil {
			return err
		}
	}
	for _, t := range ts {
		b.Set(l.key(kindAborted, uint64(t.LastOffset)), abortedValue(t), nil)
	}
	return b.Commit(pebble.NoSync)
}

// AbortedTxns returns the aborted transactions that a fetch from offset
// from up to (not including) upTo must know of: those whose abort marker
// is at or after from and whose first offset is below upTo, in marker
// order. upTo < 0 means no upper bound.
func (l *Log) AbortedTxns(from, upTo int64) ([]AbortedTxn, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.closed {
		return nil, ErrClosed
	}
	return l.abortedLocked(from, upTo)
}

func (l *Log) abortedLocked(from, upTo int64) ([]AbortedTxn, error) {
	if from < 0 {
		from = 0
	}
	it, err := l.s.db.NewIter(&pebble.IterOptions{LowerBound: l.key(kindAborted, uint64(from)), UpperBound: l.prefix(kindAborted + 1)})
	if err != nil {
		return nil, err
	}
	var out []AbortedTxn
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(v) < 16 {
			continue
		}
		t := AbortedTxn{
			ProducerID:  int64(binary.BigEndian.Uint64(v)),
			FirstOffset: int64(binary.BigEndian.Uint64(v[8:])),
			LastOffset:  int64(binary.BigEndian.Uint64(k[len(k)-8:])),
		}
		if t.LastOffset >= l.mu.leo {
			break // past a truncation the index has not caught up with
		}
		if upTo >= 0 && t.FirstOffset >= upTo {
			continue
		}
		out = append(out, t)
	}
	return out, it.Close()
}

// deleteAbortedFrom drops index entries whose marker is at or after off.
func (l *Log) deleteAbortedFrom(b *pebble.Batch, off int64) error {
	return b.DeleteRange(l.key(kindAborted, uint64(off)), l.prefix(kindAborted+1), nil)
}
