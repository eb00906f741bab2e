package kcluster

// TxnOffsetCommit v0-v5 (KIP-98; KIP-447 group generation and member from
// v3; v5, KIP-890 part 2: the group's partition is added to the
// transaction here, the client sends no AddOffsetsToTxn): a transactional
// producer commits a group's offsets as part of its transaction. Once the
// transaction coordinator confirms the group's partition is in the
// transaction (KIP-890 part 1, as for a produce), or adds it (v5), the
// offsets are written to the group's __consumer_offsets partition as a
// transactional batch (the producer's id and epoch) and kept
// pending in the group coordinator; the transaction's commit marker applies
// them to the committed offsets, its abort marker drops them (Kafka's
// GroupMetadata.pendingTransactionalOffsetCommits). Meanwhile OffsetFetch
// with RequireStable (KIP-447) answers UNSTABLE_OFFSET_COMMIT for those
// partitions. Replaying a partition on load does the same from the log.

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { reg(0, 5, (*broker).handleTxnOffsetCommit) }

// txnOffset is one pending transactional offset commit.
type txnOffset struct {
	group string
	tp    topicPartition
	o     offsetEntry
}

// pendingTxnOffsetLocked reports whether a transaction has an uncommitted
// offset for group's topic/partition.
func (gs *groupShard) pendingTxnOffsetLocked(group, topic string, p int32) bool {
	for _, os := range gs.txnOffsets {
		for _, o := range os {
			if o.group == group && o.tp.topic == topic && o.tp.partition == p {
				return true
			}
		}
	}
	return false
}

// completeTxnLocked applies (commit) or drops the pending offsets of
// producer pid, whose transaction's marker is committed.
func (gs *groupShard) completeTxnLocked(pid int64, commit bool) {
	pend := gs.txnOffsets[pid]
	delete(gs.txnOffsets, pid)
	if !commit {
		return
	}
	for _, o := range pend {
		g := gs.getOrCreateLocked(o.group)
		// An offset committed after the transaction's (a plain
		// commit while it was open) stays: Kafka materializes a
		// transactional offset only over an older record.
		if prev, ok := g.offsets[o.tp.topic][o.tp.partition]; ok && prev.recordOffset > o.o.recordOffset {
			continue
		}
		g.setOffset(o.tp.topic, o.tp.partition, o.o)
	}
	gs.gc.b.c.notifyEvent()
}

func (b *broker) handleTxnOffsetCommit(req *kmsg.TxnOffsetCommitRequest, r *request) (*kmsg.TxnOffsetCommitResponse, error) {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	codes := newPartitionCodes(req.Topics, func(t kmsg.TxnOffsetCommitRequestTopic) int { return len(t.Partitions) })
	if req.Version < 3 {
		req.Generation, req.MemberID, req.InstanceID = -1, "", nil
	}
	c, err := b.groups.rt.contextFor(req.Group)
	if err == nil {
		// As a produce (KIP-890): the transaction coordinator must
		// have this partition in the producer's transaction
		// (AddOffsetsToTxn came first), or add it (v5). Asked before
		// taking the group's lock, which heartbeats, joins and the
		// markers of other transactions need meanwhile; the guard
		// fails the append below if a marker ends the transaction in
		// between.
		guard, verr := b.verifyTxn(&req.TransactionalID, c.rep, req.ProducerID, req.ProducerEpoch, txnOffsetCommitTxnOp(req.Version))
		err = c.run(func(gs *groupShard) error {
			return b.txnOffsetCommitLocked(req, gs, gs.groups[req.Group], codes, guard, verr)
		})
	}
	if err != nil {
		code := errCode(err)
		if req.Version < 2 && code == kerr.ProducerFenced.Code {
			code = kerr.InvalidProducerEpoch.Code
		}
		codes.fill(code)
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

// txnOffsetCommitLocked appends a TxnOffsetCommit's offsets to the group's
// partition, with its shard locked, keeps them pending, and sets each
// partition's code; guard and verr are the result of the transaction's
// verification.
func (b *broker) txnOffsetCommitLocked(req *kmsg.TxnOffsetCommitRequest, gs *groupShard, g *group, codes partitionCodes, guard *txnGuard, verr error) error {
	if e := gs.c.rep.producerEpoch(req.ProducerID); e > req.ProducerEpoch {
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
			if codes[i][j] = gs.commitCode(t.Topic, p.Partition, p.Metadata); codes[i][j] != 0 {
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
	// Errors as Kafka's TxnOffsetCommit answers them: a fenced producer
	// is PRODUCER_FENCED, a transaction not (or no longer) open
	// INVALID_TXN_STATE or TRANSACTION_ABORTABLE (v4+), an add while the
	// previous transaction completes CONCURRENT_TRANSACTIONS, the rest as
	// the coordinator's.
	mapErr := func(err error) error {
		switch {
		case errors.Is(err, kerr.InvalidProducerEpoch):
			return kerr.ProducerFenced
		case errors.Is(err, kerr.InvalidTxnState), errors.Is(err, kerr.TransactionAbortable),
			errors.Is(err, kerr.ConcurrentTransactions):
			return err
		}
		return coordinatorAppendError(err)
	}
	err := verr
	var end int64
	if err == nil {
		end, err = gs.c.appendBatchLocked(batch, guard, 0)
	}
	if err != nil {
		for _, a := range ats {
			codes[a.i][a.j] = errCode(mapErr(err))
		}
		return nil
	}
	for k := range pend {
		pend[k].o.recordOffset = end - int64(len(pend)-k)
	}
	gs.txnOffsets[req.ProducerID] = append(gs.txnOffsets[req.ProducerID], pend...)
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

// replayTxnOffset keeps a transactional offset commit of producer pid,
// replayed from the log, pending until its transaction's marker.
func (gs *groupShard) replayTxnOffset(offset, pid int64, key, value []byte) {
	if len(key) < 2 || binary.BigEndian.Uint16(key) > 1 || value == nil {
		return
	}
	var k kmsg.OffsetCommitKey
	var v kmsg.OffsetCommitValue
	if k.ReadFrom(key) != nil || v.ReadFrom(value) != nil {
		return
	}
	gs.txnOffsets[pid] = append(gs.txnOffsets[pid], txnOffset{k.Group, topicPartition{k.Topic, k.Partition}, offsetEntry{
		offset: v.Offset, leaderEpoch: v.LeaderEpoch, metadata: v.Metadata, commitTs: v.CommitTimestamp, expireTs: v.ExpireTimestamp,
		recordOffset: offset,
	}})
}
