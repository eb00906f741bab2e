package segment

import (
	"encoding/binary"
	"sort"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kcluster/kcluster/internal/invariants"
)

// The leader-epoch cache (KIP-101): where each leader epoch starts in
// the log, kept in the index and truncated with the log.

// AssignEpoch records that epoch starts at startOffset. An epoch not
// greater than the latest known is ignored.
func (l *Log) AssignEpoch(epoch int32, startOffset int64) (err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if l.mu.failed != nil {
		return l.mu.failed
	}
	defer l.failOnIOErrorLocked(&err)
	return l.assignEpochLocked(epoch, startOffset)
}

func (l *Log) assignEpochLocked(epoch int32, startOffset int64) error {
	if n := len(l.mu.epochs); n > 0 && epoch <= l.mu.epochs[n-1].Epoch {
		return nil
	}
	if err := l.s.db.Set(l.key('e', uint64(epoch)), binary.BigEndian.AppendUint64(nil, uint64(startOffset)), pebble.NoSync); err != nil {
		return err
	}
	l.mu.epochs = append(l.mu.epochs, EpochEntry{epoch, startOffset})
	if invariants.Enabled {
		if msg := CheckEpochs(l.mu.epochs, l.mu.leo); msg != "" {
			l.violatedLocked(msg)
		}
	}
	return nil
}

// truncateEpochsLocked drops epochs starting at or after the new end,
// except that an epoch which started exactly there... is dropped too: the
// data it described is gone.
func (l *Log) truncateEpochsLocked(end int64) error {
	n := len(l.mu.epochs)
	for n > 0 && l.mu.epochs[n-1].StartOffset >= end && l.mu.epochs[n-1].StartOffset > l.mu.start {
		if err := l.s.db.Delete(l.key('e', uint64(l.mu.epochs[n-1].Epoch)), pebble.NoSync); err != nil {
			return err
		}
		n--
	}
	l.mu.epochs = l.mu.epochs[:n]
	return nil
}

// EpochEntries returns a copy of the leader-epoch cache.
func (l *Log) EpochEntries() []EpochEntry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return append([]EpochEntry(nil), l.mu.epochs...)
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch as Kafka's leader-epoch
// cache does: for the latest epoch, (epoch, log end); for an epoch above
// every known one, (-1, -1); otherwise the largest known epoch not above
// the requested one (or the requested one itself, when it is below every
// known epoch) and the start offset of the first epoch above it.
func (l *Log) EndOffsetForEpoch(epoch int32) (int32, int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	es := l.mu.epochs
	if epoch < 0 || len(es) == 0 {
		return -1, -1
	}
	if es[len(es)-1].Epoch == epoch {
		return epoch, l.mu.leo
	}
	hi := sort.Search(len(es), func(i int) bool { return es[i].Epoch > epoch })
	if hi == len(es) {
		return -1, -1
	}
	if hi == 0 {
		return epoch, es[0].StartOffset
	}
	return es[hi-1].Epoch, es[hi].StartOffset
}
