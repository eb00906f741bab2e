package kcluster

// The partition side of transactions (KIP-98), as Kafka's
// ProducerStateManager and TransactionIndex: every replica, leader and
// follower alike, tracks the transactions open on its partition (producer
// id → offset of the transaction's first batch) from the batches it
// appends, and ends them at their control batches (the markers the
// transaction coordinator writes with WriteTxnMarkers). An abort marker
// adds an entry to the log's aborted-transaction index (segment's
// AddAbortedTxn, in the broker's pebble index). The last stable offset is
// the high watermark, or the first offset of the oldest transaction that
// is still open or whose marker is not yet below the high watermark.
// read_committed fetches stop there and carry the aborted transactions of
// the range they return, so clients drop those records. All of it is
// rebuilt by scanning the log when a replica opens or truncates, so a new
// leader knows every open transaction.

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/segment"
)

const (
	attrTransactional = 0x10
	attrControl       = 0x20
)

// txnTracker is guarded by the owning replica's mu.
type txnTracker struct {
	ongoing   map[int64]int64 // producer id → first offset of its open transaction
	completed []completedTxn  // ended, marker possibly not yet below the hw
}

type completedTxn struct {
	pid, first, marker int64
}

func (t *txnTracker) reset() {
	t.ongoing = map[int64]int64{}
	t.completed = nil
}

// controlType returns the type of a control batch's record (0 abort, 1
// commit), or false when the batch is not a readable control batch.
func controlType(batch []byte) (kmsg.ControlRecordKeyType, bool) {
	typ, _, ok := readMarker(batch)
	return typ, ok
}

// readMarker returns a control batch's type and, for a transaction marker,
// its coordinator epoch (-1 if unreadable).
func readMarker(batch []byte) (kmsg.ControlRecordKeyType, int32, bool) {
	if len(batch) <= segment.BatchHeaderSize || int16(binary.BigEndian.Uint16(batch[21:]))&7 != 0 {
		return 0, -1, false
	}
	var rec kmsg.Record
	if err := rec.ReadFrom(batch[segment.BatchHeaderSize:]); err != nil {
		return 0, -1, false
	}
	var k kmsg.ControlRecordKey
	if err := k.ReadFrom(rec.Key); err != nil {
		return 0, -1, false
	}
	var v kmsg.EndTxnMarker
	if err := v.ReadFrom(rec.Value); err != nil {
		return k.Type, -1, true
	}
	return k.Type, v.CoordinatorEpoch, true
}

// trackTxnLocked applies one appended batch (offsets assigned) to the
// open transactions. It returns the index entry to add when the batch is
// an abort marker ending an open transaction.
func (r *partition) trackTxnLocked(h segment.BatchHeader, batch []byte) (segment.AbortedTxn, bool) {
	if h.Attributes&attrTransactional == 0 || h.ProducerID < 0 {
		return segment.AbortedTxn{}, false
	}
	t := &r.mu.txns
	if t.ongoing == nil {
		t.reset()
	}
	if h.Attributes&attrControl == 0 {
		if _, ok := t.ongoing[h.ProducerID]; !ok {
			t.ongoing[h.ProducerID] = h.BaseOffset
		}
		return segment.AbortedTxn{}, false
	}
	typ, coordEpoch, ok := readMarker(batch)
	if e := r.mu.producers[h.ProducerID]; e != nil && ok && coordEpoch > e.coordEpoch {
		e.coordEpoch = coordEpoch
	}
	first, open := t.ongoing[h.ProducerID]
	delete(t.ongoing, h.ProducerID)
	if !open {
		return segment.AbortedTxn{}, false
	}
	t.completed = append(t.completed, completedTxn{h.ProducerID, first, h.BaseOffset})
	if ok && typ == kmsg.ControlRecordKeyTypeAbort {
		return segment.AbortedTxn{ProducerID: h.ProducerID, FirstOffset: first, LastOffset: h.BaseOffset}, true
	}
	return segment.AbortedTxn{}, false
}

// applyTxnLocked is trackTxnLocked for a new append: an abort goes into
// the log's index.
func (r *partition) applyTxnLocked(h segment.BatchHeader, batch []byte) {
	if a, ok := r.trackTxnLocked(h, batch); ok {
		if err := r.log.AddAbortedTxn(a); err != nil {
			r.b.log.Warn("indexing aborted transaction", "topic", r.topic, "partition", r.part, "err", err)
		}
	}
}

// lsoLocked is the last stable offset.
func (r *partition) lsoLocked() int64 {
	lso := r.mu.hw
	t := &r.mu.txns
	for _, first := range t.ongoing {
		lso = min(lso, first)
	}
	keep := t.completed[:0]
	for _, c := range t.completed {
		if c.marker >= r.mu.hw {
			keep = append(keep, c)
			lso = min(lso, c.first)
		}
	}
	t.completed = keep
	return lso
}

// hasOpenTxnLocked reports whether producer pid has a transaction open on
// this partition at epoch (Kafka's hasOngoingTransaction): at transactions
// v2 the epoch moves with every transaction, and a write of the next one
// must not slip into the previous one, whose marker has not arrived yet.
func (r *partition) hasOpenTxnLocked(pid int64, epoch int16) bool {
	_, ok := r.mu.txns.ongoing[pid]
	e := r.mu.producers[pid]
	return ok && e != nil && e.epoch == epoch
}

// txnGuard is a partition leader's record of a transaction verification
// (KIP-890 part 1, Kafka's VerificationGuard). A produce's append must
// present the guard it got: one created for a verification holds only
// while no marker for the producer was appended since; one for a
// transaction that was already open (open set) holds while it still is.
type txnGuard struct {
	pid  int64
	open bool
	// prev is the first offset of an earlier transaction of the producer
	// still open on the partition when the verification began (-1:
	// none): at transactions v2 the next transaction's first write can
	// be verified (its partition added) while the previous one's marker
	// is on its way. That marker ends the earlier transaction, not the
	// one verified, and leaves the guard standing; any other marker
	// voids it.
	prev int64
}

// beginVerification returns the guard for a transactional write of pid at
// epoch, and whether its transaction is open already (nothing to verify).
func (r *partition) beginVerification(pid int64, epoch int16) (*txnGuard, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hasOpenTxnLocked(pid, epoch) {
		return &txnGuard{pid: pid, open: true}, true
	}
	g := &txnGuard{pid: pid, prev: -1}
	if first, ok := r.mu.txns.ongoing[pid]; ok {
		g.prev = first
	}
	if r.mu.guards == nil {
		r.mu.guards = map[int64]*txnGuard{}
	}
	r.mu.guards[pid] = g
	return g, false
}

// checkTxnGuardLocked checks a produce's guard against the first batch: a
// transactional batch that would open a transaction needs the guard of a
// verification no marker has invalidated since. A nil guard is an internal
// append (the coordinators'), which needs none.
func (r *partition) checkTxnGuardLocked(h segment.BatchHeader, g *txnGuard) error {
	if g == nil || h.Attributes&attrTransactional == 0 || h.Attributes&attrControl != 0 || h.ProducerID != g.pid {
		return nil
	}
	if r.hasOpenTxnLocked(h.ProducerID, h.ProducerEpoch) {
		return nil
	}
	if g.open || r.mu.guards[h.ProducerID] != g {
		return kerr.InvalidTxnState
	}
	delete(r.mu.guards, h.ProducerID) // the append opens the transaction
	return nil
}

// openTxns returns the open transactions (producer id → first offset).
func (r *partition) openTxns() map[int64]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[int64]int64, len(r.mu.txns.ongoing))
	for k, v := range r.mu.txns.ongoing {
		out[k] = v
	}
	return out
}

// encodeControlBatch builds a transaction marker: a control batch of one
// record, key ControlRecordKey, value EndTxnMarker.
func encodeControlBatch(pid int64, epoch int16, commit bool, coordEpoch int32, ts int64) []byte {
	typ := kmsg.ControlRecordKeyTypeAbort
	if commit {
		typ = kmsg.ControlRecordKeyTypeCommit
	}
	k := kmsg.ControlRecordKey{Version: 0, Type: typ}
	v := kmsg.EndTxnMarker{Version: 0, CoordinatorEpoch: coordEpoch}
	return encodeProducerBatch([]kmsg.Record{{Key: k.AppendTo(nil), Value: v.AppendTo(nil)}}, ts, pid, epoch, -1, attrTransactional|attrControl)
}

// encodeProducerBatch builds an uncompressed v2 batch of recs for a
// producer (the transactional offset commits and the markers).
func encodeProducerBatch(recs []kmsg.Record, ts int64, pid int64, epoch int16, seq int32, attrs int16) []byte {
	var raw []byte
	for i := range recs {
		r := &recs[i]
		r.OffsetDelta = int32(i)
		r.Length = 0
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		raw = r.AppendTo(raw)
	}
	b := kmsg.RecordBatch{Magic: 2, Attributes: attrs, LastOffsetDelta: int32(len(recs) - 1), FirstTimestamp: ts, MaxTimestamp: ts,
		ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq, NumRecords: int32(len(recs)), Records: raw, PartitionLeaderEpoch: -1}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], castagnoli))
	return out
}

// appendMarker appends a transaction marker for producer pid as the
// partition's leader and returns the log end after it. A marker from an
// older producer epoch than the partition knows is refused
// (INVALID_PRODUCER_EPOCH), and one from an older coordinator epoch than
// the producer's last marker (TRANSACTION_COORDINATOR_FENCED: a deposed
// coordinator), as Kafka's ProducerAppendInfo does. A marker of
// transaction version tv 2, whose epoch was bumped past its transaction's
// writes, must be above the producer's epoch (KIP-1228): one that is not
// is a late or repeated marker of a transaction already ended.
func (r *partition) appendMarker(pid int64, epoch int16, commit bool, coordEpoch int32, tv int16) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed || r.mu.leader != r.b.id {
		return 0, kerr.NotLeaderForPartition
	}
	if e := r.mu.producers[pid]; e != nil {
		if epoch < e.epoch || tv >= tv2 && epoch == e.epoch {
			return 0, kerr.InvalidProducerEpoch
		}
		if coordEpoch < e.coordEpoch {
			return 0, kerr.TransactionCoordinatorFenced
		}
	}
	batch := encodeControlBatch(pid, epoch, commit, coordEpoch, time.Now().UnixMilli())
	base := r.log.LogEndOffset()
	segment.SetBaseOffset(batch, base)
	segment.SetPartitionLeaderEpoch(batch, r.mu.epoch)
	h, err := segment.ParseBatchHeader(batch)
	if err != nil {
		return 0, kerr.UnknownServerError
	}
	if err := r.log.Append(batch); err != nil {
		r.b.log.Error("append failed", "topic", r.topic, "partition", r.part, "err", err)
		return 0, kerr.KafkaStorageError
	}
	first, open := r.mu.txns.ongoing[pid]
	r.mu.producers.update(h)
	r.applyTxnLocked(h, batch)
	// A verification from before the marker is void, but for the
	// marker of an earlier transaction still open then (txnGuard.prev).
	if g := r.mu.guards[pid]; g != nil && open && g.prev == first {
		g.prev = -1
	} else {
		delete(r.mu.guards, pid)
	}
	r.maybeAdvanceHWLocked()
	r.notify()
	return base + 1, nil
}

// waitMarker writes a marker and waits until the ISR has it.
func (r *partition) writeMarker(ctx context.Context, pid int64, epoch int16, commit bool, coordEpoch int32) error {
	end, err := r.appendMarker(pid, epoch, commit, coordEpoch, tv0)
	if err != nil {
		return err
	}
	return r.waitHW(ctx, end)
}
