package segment

// Recovery when a log opens after a crash: the segments are cut at the
// last whole batch and the index is made to agree with them.

import (
	"encoding/binary"

	"github.com/cockroachdb/pebble/v2"
)

// recoverLocked checks the active segment from its last index entry, cuts
// it at the first invalid batch, and makes the index agree.
func (l *Log) recoverLocked() error {
	active := l.mu.segs[len(l.mu.segs)-1]
	pos, off := int64(0), active.base
	// Start from the last offset index entry inside the active segment.
	it, err := l.s.db.NewIter(&pebble.IterOptions{LowerBound: l.key('o', uint64(active.base)), UpperBound: l.prefix('o' + 1)})
	if err != nil {
		return err
	}
	hdr := make([]byte, BatchHeaderSize)
	for ok := it.Last(); ok; ok = it.Prev() {
		v := it.Value()
		seg, p := int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))
		if seg != active.base || p >= active.size {
			continue
		}
		// Trust an entry only if the batch it names is there: a stale
		// entry (its deletion lost in a crash) would otherwise cut
		// valid data.
		k := it.Key()
		key := int64(binary.BigEndian.Uint64(k[len(k)-8:]))
		if _, err := active.f.ReadAt(hdr, p); err != nil {
			continue
		}
		if h, err := ParseBatchHeader(hdr); err != nil || h.BaseOffset != key {
			continue
		}
		pos, off = p, key
		break
	}
	if err := it.Close(); err != nil {
		return err
	}
	b := l.s.db.NewBatch()
	defer b.Close()
	// Time index entries at or after the scan start are rebuilt by the
	// scan; the running max must start from the entries before it, or a
	// batch below an earlier maximum would get an entry out of order.
	if err := l.deleteTimeFromLocked(b, off); err != nil {
		return err
	}
	// Scan forward, validating whole batches.
	var buf []byte
	var scanned []EpochEntry // leader epochs of the scanned batches, as Kafka's recovery rebuilds its cache
	sinceIndex := int64(0)
	for pos < active.size {
		if _, err := active.f.ReadAt(hdr, pos); err != nil {
			break
		}
		h, err := ParseBatchHeader(hdr)
		if err != nil || h.BaseOffset != off || pos+int64(h.TotalSize()) > active.size {
			break
		}
		if cap(buf) < h.TotalSize() {
			buf = make([]byte, h.TotalSize())
		}
		buf = buf[:h.TotalSize()]
		if _, err := active.f.ReadAt(buf, pos); err != nil {
			break
		}
		if _, err := ValidateBatch(buf); err != nil {
			break
		}
		if sinceIndex == 0 || sinceIndex >= l.opts.IndexIntervalBytes {
			l.putIndex(b, off, active.base, pos)
			sinceIndex = 0
		}
		sinceIndex += int64(h.TotalSize())
		l.putTime(b, h)
		if n := len(scanned); h.PartitionLeaderEpoch >= 0 && (n == 0 || h.PartitionLeaderEpoch > scanned[n-1].Epoch) {
			scanned = append(scanned, EpochEntry{h.PartitionLeaderEpoch, h.BaseOffset})
		}
		pos += int64(h.TotalSize())
		off = h.LastOffset() + 1
	}
	if pos < active.size {
		l.s.log.Warn("segment: truncating torn or corrupt tail", "log", l.name, "segment", active.base, "valid", pos, "size", active.size)
		if err := l.cutFileLocked(active, pos); err != nil {
			return err
		}
	}
	l.mu.leo = off
	l.mu.sinceIndex = sinceIndex
	// Drop index entries past the valid end (time entries past it went
	// before the scan).
	if err := b.DeleteRange(l.key('o', uint64(off)), l.prefix('o'+1), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	// Epochs past the valid end go (their data is lost); epochs of
	// batches that survived but whose cache entries did not (a power
	// cut after the data was synced, before the index was) come back.
	if err := l.truncateEpochsLocked(off); err != nil {
		return err
	}
	for _, e := range scanned {
		if err := l.assignEpochLocked(e.Epoch, e.StartOffset); err != nil {
			return err
		}
	}
	return nil
}
