package kcluster

import (
	"math"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kcluster/kcluster/segment"
)

// Idempotent producers (KIP-98, KIP-360), as Kafka's ProducerStateManager:
// every replica keeps, per producer id, the producer epoch and the last
// five batches' sequence ranges and offsets, updated on every append
// (leader and follower alike), so a new leader already knows every producer.
// The leader checks each idempotent batch: a retried batch is answered with
// its original offset and not appended again; an older epoch gets
// INVALID_PRODUCER_EPOCH; a gap gets OUT_OF_ORDER_SEQUENCE_NUMBER. The
// state is rebuilt from batch headers when a replica opens or truncates.

const producerBatchesKept = 5

type producerBatch struct {
	firstSeq, lastSeq       int32
	firstOffset, lastOffset int64
}

type producerEntry struct {
	epoch   int16
	batches []producerBatch // oldest first, at most producerBatchesKept
	// coordEpoch is the transaction coordinator epoch of the producer's
	// last marker (-1 before any); markers from an older coordinator
	// are refused (txn_replica.go).
	coordEpoch int32
	// lastTs is the timestamp of the producer's last batch (its max
	// timestamp) or marker, as Kafka's ProducerStateEntry keeps it and
	// DescribeProducers reports it.
	lastTs int64
}

// producerState is guarded by the owning replica's mu.
type producerState map[int64]*producerEntry

func lastSeqOf(h segment.BatchHeader) int32 {
	s := int64(h.BaseSequence) + int64(h.LastOffsetDelta)
	if s > math.MaxInt32 {
		s -= math.MaxInt32 + 1
	}
	return int32(s)
}

// check validates an idempotent batch against the state. It returns the
// original batch's first offset when the batch is a retry of one already
// appended.
func (ps producerState) check(h segment.BatchHeader) (dupOffset int64, dup bool, err error) {
	e := ps[h.ProducerID]
	if e == nil {
		return 0, false, nil // unknown producer: any sequence (KIP-360)
	}
	if h.ProducerEpoch < e.epoch {
		return 0, false, kerr.InvalidProducerEpoch
	}
	if h.ProducerEpoch > e.epoch {
		if h.BaseSequence != 0 {
			return 0, false, kerr.OutOfOrderSequenceNumber
		}
		return 0, false, nil
	}
	last := lastSeqOf(h)
	for _, b := range e.batches {
		if b.firstSeq == h.BaseSequence && b.lastSeq == last {
			return b.firstOffset, true, nil
		}
	}
	if n := len(e.batches); n > 0 {
		want := e.batches[n-1].lastSeq + 1
		if e.batches[n-1].lastSeq == math.MaxInt32 {
			want = 0
		}
		if h.BaseSequence != want {
			return 0, false, kerr.OutOfOrderSequenceNumber
		}
	}
	return 0, false, nil
}

// update records an appended batch (offsets assigned).
func (ps producerState) update(h segment.BatchHeader) {
	if h.ProducerID < 0 {
		return
	}
	e := ps[h.ProducerID]
	if e == nil || h.ProducerEpoch > e.epoch {
		coordEpoch := int32(-1)
		if e != nil {
			coordEpoch = e.coordEpoch
		}
		e = &producerEntry{epoch: h.ProducerEpoch, coordEpoch: coordEpoch}
		ps[h.ProducerID] = e
	}
	e.lastTs = h.MaxTimestamp
	if h.BaseSequence < 0 {
		return // transactional markers and non-idempotent batches
	}
	if len(e.batches) == producerBatchesKept {
		e.batches = append(e.batches[:0], e.batches[1:]...)
	}
	e.batches = append(e.batches, producerBatch{h.BaseSequence, lastSeqOf(h), h.BaseOffset, h.LastOffset()})
}

// rebuildProducersLocked loads the latest producer snapshot
// (producers_snapshot.go) and replays the batch headers after it.
func (r *partition) rebuildProducersLocked() error {
	off, end := r.loadProducerSnapshotLocked(), r.log.LogEndOffset()
	from := off
	ps := r.mu.producers
	var aborted []segment.AbortedTxn
	for off < end {
		data, err := r.log.Read(off, 1<<20, end)
		if err != nil {
			return err
		}
		if len(data) == 0 {
			break
		}
		for len(data) > 0 {
			h, err := segment.ParseBatchHeader(data)
			if err != nil {
				return err
			}
			ps.update(h)
			if h.TotalSize() <= len(data) {
				if a, ok := r.trackTxnLocked(h, data[:h.TotalSize()]); ok {
					aborted = append(aborted, a)
				}
			}
			off = h.LastOffset() + 1
			data = data[h.TotalSize():]
		}
	}
	r.mu.producers = ps
	// The batches are the source of truth for the aborted-transaction
	// index: an entry lost in a crash, or one past a truncation, is
	// repaired here.
	return r.log.ResetAbortedTxns(from, aborted)
}
