package kcluster

// Producer-state snapshots (Kafka's ProducerStateManager snapshots): at
// every high-watermark checkpoint whose log end moved, and on a controlled
// shutdown, a replica stores its producer state and open transactions as
// of its log end in its log's pebble index (segment.SaveProducerSnapshot,
// through the broker's vfs.FS). Opening or truncating a replica loads the
// latest snapshot at or below the log end and scans only the batches after
// it, instead of the whole log. The encoding is kcluster's own (Kafka's
// snapshot file format is not a protocol message): a version byte, then
// big-endian fields.

import (
	"encoding/binary"
	"errors"
)

// producerSnapshotVersion 2 adds each producer's last timestamp; version
// 1 snapshots load with none (-1).
const producerSnapshotVersion = 2

var errBadSnapshot = errors.New("malformed producer snapshot")

// encodeProducerSnapshotLocked encodes the producer state and the open
// transactions.
func (r *partition) encodeProducerSnapshotLocked() []byte {
	b := []byte{producerSnapshotVersion}
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.mu.producers)))
	for pid, e := range r.mu.producers {
		b = binary.BigEndian.AppendUint64(b, uint64(pid))
		b = binary.BigEndian.AppendUint16(b, uint16(e.epoch))
		b = binary.BigEndian.AppendUint32(b, uint32(e.coordEpoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.lastTs))
		b = append(b, byte(len(e.batches)))
		for _, pb := range e.batches {
			b = binary.BigEndian.AppendUint32(b, uint32(pb.firstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(pb.lastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(pb.firstOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(pb.lastOffset))
		}
	}
	t := &r.mu.txns
	b = binary.BigEndian.AppendUint32(b, uint32(len(t.ongoing)))
	for pid, first := range t.ongoing {
		b = binary.BigEndian.AppendUint64(b, uint64(pid))
		b = binary.BigEndian.AppendUint64(b, uint64(first))
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(t.completed)))
	for _, c := range t.completed {
		b = binary.BigEndian.AppendUint64(b, uint64(c.pid))
		b = binary.BigEndian.AppendUint64(b, uint64(c.first))
		b = binary.BigEndian.AppendUint64(b, uint64(c.marker))
	}
	return b
}

// decodeProducerSnapshot is the inverse of encodeProducerSnapshotLocked.
func decodeProducerSnapshot(b []byte) (producerState, txnTracker, error) {
	var t txnTracker
	t.reset()
	ps := producerState{}
	bad := func() (producerState, txnTracker, error) { return nil, txnTracker{}, errBadSnapshot }
	if len(b) < 1 || b[0] < 1 || b[0] > producerSnapshotVersion {
		return bad()
	}
	withTs := b[0] >= 2
	b = b[1:]
	u32 := func() (uint32, bool) {
		if len(b) < 4 {
			return 0, false
		}
		v := binary.BigEndian.Uint32(b)
		b = b[4:]
		return v, true
	}
	u64 := func() (int64, bool) {
		if len(b) < 8 {
			return 0, false
		}
		v := binary.BigEndian.Uint64(b)
		b = b[8:]
		return int64(v), true
	}
	n, ok := u32()
	if !ok || int(n) > len(b)/15 {
		return bad()
	}
	for i := uint32(0); i < n; i++ {
		pid, ok := u64()
		if !ok || len(b) < 7 {
			return bad()
		}
		e := &producerEntry{epoch: int16(binary.BigEndian.Uint16(b)), coordEpoch: int32(binary.BigEndian.Uint32(b[2:])), lastTs: -1}
		b = b[6:]
		if withTs {
			if e.lastTs, ok = u64(); !ok || len(b) < 1 {
				return bad()
			}
		}
		nb := int(b[0])
		b = b[1:]
		if nb > producerBatchesKept || len(b) < nb*24 {
			return bad()
		}
		for j := 0; j < nb; j++ {
			e.batches = append(e.batches, producerBatch{
				firstSeq: int32(binary.BigEndian.Uint32(b)), lastSeq: int32(binary.BigEndian.Uint32(b[4:])),
				firstOffset: int64(binary.BigEndian.Uint64(b[8:])), lastOffset: int64(binary.BigEndian.Uint64(b[16:])),
			})
			b = b[24:]
		}
		ps[pid] = e
	}
	if n, ok = u32(); !ok || int(n) > len(b)/16 {
		return bad()
	}
	for i := uint32(0); i < n; i++ {
		pid, _ := u64()
		first, _ := u64()
		t.ongoing[pid] = first
	}
	if n, ok = u32(); !ok || int(n) > len(b)/24 {
		return bad()
	}
	for i := uint32(0); i < n; i++ {
		pid, _ := u64()
		first, _ := u64()
		marker, _ := u64()
		t.completed = append(t.completed, completedTxn{pid, first, marker})
	}
	if len(b) != 0 {
		return bad()
	}
	return ps, t, nil
}

// snapshotProducersLocked stores a snapshot at the log end if the log
// grew or shrank since the last one.
func (r *partition) snapshotProducersLocked() {
	leo := r.log.LogEndOffset()
	if leo == r.mu.snapshotAt {
		return
	}
	if err := r.log.SaveProducerSnapshot(leo, r.encodeProducerSnapshotLocked()); err != nil {
		r.b.log.Warn("saving producer snapshot", "topic", r.topic, "partition", r.part, "err", err)
		return
	}
	r.mu.snapshotAt = leo
}

// loadProducerSnapshotLocked installs the latest usable snapshot and
// returns the offset to scan from (the log start when there is none).
func (r *partition) loadProducerSnapshotLocked() int64 {
	start := r.log.LogStartOffset()
	off, data, err := r.log.ProducerSnapshot()
	if err != nil {
		r.b.log.Warn("reading producer snapshot", "topic", r.topic, "partition", r.part, "err", err)
	}
	if err != nil || off < 0 || off < start {
		// None, or older than the log start (retention deleted the
		// batches after it): scan the whole log.
		r.mu.producers = producerState{}
		r.mu.txns.reset()
		return start
	}
	ps, t, err := decodeProducerSnapshot(data)
	if err != nil {
		r.b.log.Warn("ignoring producer snapshot", "topic", r.topic, "partition", r.part, "err", err)
		r.mu.producers = producerState{}
		r.mu.txns.reset()
		return start
	}
	r.mu.producers, r.mu.txns = ps, t
	r.mu.snapshotAt = off
	return off
}
