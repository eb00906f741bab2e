package kcluster

// TxnOffsetCommit v0-v4 (KIP-98; KIP-447 group generation and member from
// v3): a transactional producer commits a group's offsets as part of its
// transaction. Once the transaction coordinator confirms the group's
// partition is in the transaction (KIP-890 part 1, as for a produce), the
// offsets are written to the group's __consumer_offsets partition as a
// transactional batch (the producer's id and epoch) and kept
// pending in the group coordinator; the transaction's commit marker applies
// them to the committed offsets, its abort marker drops them (Kafka's
// GroupMetadata.pendingTransactionalOffsetCommits). Meanwhile OffsetFetch
// with RequireStable (KIP-447) answers UNSTABLE_OFFSET_COMMIT for those
// partitions. Replaying a partition on load does the same from the log.

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { reg(0, 4, (*broker).handleTxnOffsetCommit) }

// txnOffset is one pending transactional offset commit.
type txnOffset struct {
	group string
	tp    topicPartition
	o     offsetEntry
}

// pendingTxnOffsetLocked reports whether a transaction has an uncommitted
// offset for group's topic/partition. Called with cp.mu held.
func (cp *coordPartition) pendingTxnOffsetLocked(group, topic string, p int32) bool {
	for _, os := range cp.mu.txnOffsets {
		for _, o := range os {
			if o.group == group && o.tp.topic == topic && o.tp.partition == p {
				return true
			}
		}
	}
	return false
}

// completeTxn applies (commit) or drops the pending offsets of producer
// pid on partition p, after its marker was written there at offset.
func (gc *groupCoordinator) completeTxn(p int32, pid int64, commit bool, offset int64) {
	gc.mu.Lock()
	cp := gc.mu.parts[p]
	gc.mu.Unlock()
	if cp == nil {
		return
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.mu.gone {
		return
	}
	if !cp.mu.loaded {
		// The load may have read the log only up to before this
		// marker: then it is applied after the load.
		cp.mu.lateMarkers = append(cp.mu.lateMarkers, txnMarker{pid, commit, offset})
		return
	}
	cp.completeTxnLocked(pid, commit)
}

// txnMarker is a transaction marker written to a coordinated partition.
type txnMarker struct {
	pid    int64
	commit bool
	offset int64
}

// applyLateMarkersLocked applies the markers the load, which read the log
// up to end, did not see.
func (cp *coordPartition) applyLateMarkersLocked(end int64) {
	for _, m := range cp.mu.lateMarkers {
		if m.offset >= end {
			cp.completeTxnLocked(m.pid, m.commit)
		}
	}
	cp.mu.lateMarkers = nil
}

func (cp *coordPartition) completeTxnLocked(pid int64, commit bool) {
	pend := cp.mu.txnOffsets[pid]
	delete(cp.mu.txnOffsets, pid)
	if !commit {
		return
	}
	for _, o := range pend {
		cp.getOrCreateLocked(o.group).setOffset(o.tp.topic, o.tp.partition, o.o)
	}
	cp.gc.b.c.notifyEvent()
}

func (b *broker) handleTxnOffsetCommit(req *kmsg.TxnOffsetCommitRequest, r *request) (*kmsg.TxnOffsetCommitResponse, error) {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	codes := make([][]int16, len(req.Topics))
	for i, t := range req.Topics {
		codes[i] = make([]int16, len(t.Partitions))
	}
	setAll := func(code int16) {
		for i := range codes {
			for j := range codes[i] {
				if codes[i][j] == 0 {
					codes[i][j] = code
				}
			}
		}
	}
	if req.Version < 3 {
		req.Generation, req.MemberID, req.InstanceID = -1, "", nil
	}
	cp, err := b.groups.partitionFor(req.Group)
	if err == nil {
		// As a produce (KIP-890 part 1): the transaction coordinator
		// must have this partition in the producer's transaction
		// (AddOffsetsToTxn came first). Asked before taking the
		// group's lock, which heartbeats, joins and the markers of
		// other transactions need meanwhile; the guard fails the
		// append below if a marker ends the transaction in between.
		guard, verr := b.verifyTxn(&req.TransactionalID, cp.rep, req.ProducerID, req.ProducerEpoch)
		err = cp.withGroup(req.Group, func(cp *coordPartition, g *group) error {
			return b.txnOffsetCommitLocked(req, cp, g, codes, guard, verr)
		})
	}
	if err != nil {
		code := errCode(err)
		if req.Version < 2 && code == kerr.ProducerFenced.Code {
			code = kerr.InvalidProducerEpoch.Code
		}
		setAll(code)
	}
	for i, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for j, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, codes[i][j]
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// txnOffsetCommitLocked writes a TxnOffsetCommit's offsets to the group's
// partition, holding its lock, and sets each partition's code; guard and
// verr are the result of the transaction's verification.
func (b *broker) txnOffsetCommitLocked(req *kmsg.TxnOffsetCommitRequest, cp *coordPartition, g *group, codes [][]int16, guard *txnGuard, verr error) error {
	if e := cp.rep.producerEpoch(req.ProducerID); e > req.ProducerEpoch {
		return kerr.ProducerFenced
	}
	if g == nil {
		if req.Generation >= 0 {
			return kerr.IllegalGeneration
		}
	} else if req.Generation >= 0 || req.MemberID != "" || req.InstanceID != nil {
		// KIP-447: the commit carries the consumer's group
		// metadata, checked as an OffsetCommit's.
		oc := kmsg.NewPtrOffsetCommitRequest()
		oc.Version, oc.Generation, oc.MemberID, oc.InstanceID = 8, req.Generation, req.MemberID, req.InstanceID
		if err := g.validateCommitLocked(oc, true); err != nil {
			return err
		}
	}
	now := time.Now().UnixMilli()
	var recs []kmsg.Record
	var pend []txnOffset
	type at struct{ i, j int }
	var ats []at
	for i, t := range req.Topics {
		for j, p := range t.Partitions {
			switch {
			case !b.topicPartitionExists(t.Topic, p.Partition):
				codes[i][j] = kerr.UnknownTopicOrPartition.Code
				continue
			case p.Metadata != nil && len(*p.Metadata) > int(cp.gc.cfg.metadataMax):
				codes[i][j] = kerr.OffsetMetadataTooLarge.Code
				continue
			}
			o := offsetEntry{offset: p.Offset, leaderEpoch: -1, commitTs: now}
			if req.Version >= 2 {
				o.leaderEpoch = p.LeaderEpoch
			}
			if p.Metadata != nil {
				o.metadata = *p.Metadata
			}
			recs = append(recs, offsetRecord(req.Group, t.Topic, p.Partition, o))
			pend = append(pend, txnOffset{req.Group, topicPartition{t.Topic, p.Partition}, o})
			ats = append(ats, at{i, j})
		}
	}
	if len(recs) == 0 {
		return nil
	}
	batch := encodeProducerBatch(recs, now, req.ProducerID, req.ProducerEpoch, -1, attrTransactional)
	err := verr
	var end int64
	if err == nil {
		_, end, err = cp.rep.appendAsLeaderGuarded(batch, -1, guard)
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(b.ctx, cp.gc.cfg.commitTimeout)
		err = cp.rep.waitHW(ctx, end)
		cancel()
	}
	if err != nil {
		code := errCode(coordinatorAppendError(err))
		switch errCode(err) {
		case kerr.InvalidProducerEpoch.Code:
			code = kerr.ProducerFenced.Code
		case kerr.InvalidTxnState.Code:
			code = kerr.InvalidTxnState.Code
		}
		for _, a := range ats {
			codes[a.i][a.j] = code
		}
		return nil
	}
	if cp.mu.txnOffsets == nil {
		cp.mu.txnOffsets = map[int64][]txnOffset{}
	}
	cp.mu.txnOffsets[req.ProducerID] = append(cp.mu.txnOffsets[req.ProducerID], pend...)
	return nil
}

// producerEpoch returns the epoch the replica knows for pid, or -1.
func (r *partition) producerEpoch(pid int64) int16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.mu.producers[pid]; e != nil {
		return e.epoch
	}
	return -1
}

// txnReplay is a __consumer_offsets replay that holds transactional
// records back until their marker: commit applies them, abort drops them,
// and those still open at the end become the pending offsets.
type txnReplay struct {
	pending map[int64][][2][]byte // producer id → key/value pairs
}

// replayBatches replays the batches of data into groups, honouring
// transactions, and returns the offset after the last batch.
func (tr *txnReplay) replayBatches(d *decompressor, data []byte, apply func(key, value []byte)) (int64, error) {
	var next int64
	for len(data) > 0 {
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(data); err != nil {
			return next, err
		}
		if int(rb.Length)+12 > len(data) {
			return next, errBadRecords
		}
		batch := data[:12+int(rb.Length)]
		data = data[12+int(rb.Length):]
		next = rb.FirstOffset + int64(rb.LastOffsetDelta) + 1
		txn := rb.Attributes&attrTransactional != 0 && rb.ProducerID >= 0
		if rb.Attributes&attrControl != 0 {
			if !txn {
				continue
			}
			typ, ok := controlType(batch)
			if ok && typ == kmsg.ControlRecordKeyTypeCommit {
				for _, kv := range tr.pending[rb.ProducerID] {
					apply(kv[0], kv[1])
				}
			}
			delete(tr.pending, rb.ProducerID)
			continue
		}
		if _, err := d.forEachKV(batch, func(key, value []byte) {
			if txn {
				if tr.pending == nil {
					tr.pending = map[int64][][2][]byte{}
				}
				tr.pending[rb.ProducerID] = append(tr.pending[rb.ProducerID], [2][]byte{key, value})
				return
			}
			apply(key, value)
		}); err != nil {
			return next, err
		}
	}
	return next, nil
}

// open returns the offsets of transactions still open after the replay.
func (tr *txnReplay) open() map[int64][]txnOffset {
	out := map[int64][]txnOffset{}
	for pid, kvs := range tr.pending {
		for _, kv := range kvs {
			if len(kv[0]) < 2 || binary.BigEndian.Uint16(kv[0]) > 1 || kv[1] == nil {
				continue
			}
			var k kmsg.OffsetCommitKey
			var v kmsg.OffsetCommitValue
			if k.ReadFrom(kv[0]) != nil || v.ReadFrom(kv[1]) != nil {
				continue
			}
			out[pid] = append(out[pid], txnOffset{k.Group, topicPartition{k.Topic, k.Partition}, offsetEntry{
				offset: v.Offset, leaderEpoch: v.LeaderEpoch, metadata: v.Metadata, commitTs: v.CommitTimestamp, expireTs: v.ExpireTimestamp,
			}})
		}
	}
	return out
}
