package kcluster

// The transaction APIs of the transaction coordinator (KIP-98; KIP-360
// producer epoch bumps; KIP-588 PRODUCER_FENCED; KIP-890 part 1, partition
// leaders verifying a transaction before its first write, and part 2,
// transactions v2):
//
//   - AddPartitionsToTxn v0-v5: v0-v3 from producers; v4-v5 (batched)
//     from partition leaders, VerifyOnly to check that a transactional
//     write belongs to an ongoing transaction (a partition that does not:
//     TRANSACTION_ABORTABLE), or, for a Produce v12+ or TxnOffsetCommit v5
//     (KIP-890 part 2), to add its partition to the transaction.
//   - AddOffsetsToTxn v0-v4: adds the group's __consumer_offsets partition.
//   - EndTxn v0-v5: PrepareCommit / PrepareAbort, answered once written;
//     the markers follow (txn_markers.go). v5 is transactions v2 (KIP-890
//     part 2): every end bumps the producer epoch, answered with the
//     producer id and epoch to use next (a new producer id when the epoch
//     is exhausted), retries are recognized by the epoch they carry, and
//     an abort with no transaction open is allowed (it bumps the epoch).
//   - WriteTxnMarkers v1-v2 (v0 removed in Kafka 4, KIP-896): served by
//     partition leaders, sent by coordinators; v2 carries each marker's
//     transaction version (KIP-1228), and a leader refuses a version 2
//     marker whose epoch is not above the producer's.
//
// InitProducerId with a transactional id is in api_initproducerid.go.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	reg(0, 5, (*broker).handleAddPartitionsToTxn)
	reg(0, 4, (*broker).handleAddOffsetsToTxn)
	reg(0, 5, (*broker).handleEndTxn)
	reg(1, 2, (*broker).handleWriteTxnMarkers)
}

// checkProducerLocked is the coordinator's check of a request's producer
// id and epoch against the transaction's.
func checkProducerLocked(m *txnMeta, pid int64, epoch int16) error {
	switch {
	case m == nil || m.pid != pid:
		return kerr.InvalidProducerIDMapping
	case m.epoch != epoch:
		return kerr.ProducerFenced
	}
	return nil
}

// addPartitions adds ps to id's transaction, a change made at transaction
// version tv (Kafka's handleAddPartitionsToTransaction), or, verifyOnly,
// checks they are in it (handleVerifyPartitionsInTransaction), and
// returns an error per partition. waitPrepared, for a partition leader's
// add (transactions v2), waits for a transaction of the id that is still
// being completed (its markers in flight) up to the add retry bound before
// answering CONCURRENT_TRANSACTIONS: Kafka's leader retries the add
// itself for that long (add.partitions.to.txn.retry.backoff.max.ms); here
// the coordinator waits for the completion instead of the leader sleeping
// its backoff.
func (b *broker) addPartitions(id string, pid int64, epoch int16, ps []topicPartition, verifyOnly bool, tv int16, waitPrepared bool) map[topicPartition]error {
	out := make(map[topicPartition]error, len(ps))
	// Unknown partitions fail the request; the others are not
	// attempted (Kafka's KafkaApis).
	var unknown bool
	for _, p := range ps {
		if !b.topicPartitionExists(p.topic, p.partition) {
			out[p] = kerr.UnknownTopicOrPartition
			unknown = true
		}
	}
	if unknown {
		for _, p := range ps {
			if out[p] == nil {
				out[p] = kerr.OperationNotAttempted
			}
		}
		return out
	}
	var deadline time.Time
	if waitPrepared {
		deadline = time.Now().Add(min(b.cfg.txn.addRetryMax, b.cfg.txn.requestTimeout))
	}
	for {
		var wait <-chan struct{}
		err := b.txns.withTxn(id, func(ts *txnShard, m *txnMeta) error {
			if err := checkProducerLocked(m, pid, epoch); err != nil {
				return err
			}
			if m.sending || m.state == kmsg.TransactionStatePrepareCommit || m.state == kmsg.TransactionStatePrepareAbort {
				if !verifyOnly && waitPrepared {
					wait = ts.completions()
				}
				return kerr.ConcurrentTransactions
			}
			if m.state == kmsg.TransactionStatePrepareEpochFence || m.state == kmsg.TransactionStateDead {
				return kerr.InvalidTxnState
			}
			if verifyOnly {
				for _, p := range ps {
					if _, in := m.parts[p]; in {
						out[p] = nil
					} else {
						out[p] = kerr.TransactionAbortable
					}
				}
				return nil
			}
			nm := m.clone()
			added := false
			for _, p := range ps {
				if _, in := nm.parts[p]; !in {
					nm.parts[p] = struct{}{}
					added = true
				}
			}
			if !added && m.state == kmsg.TransactionStateOngoing {
				return nil
			}
			if m.state != kmsg.TransactionStateOngoing {
				nm.state = kmsg.TransactionStateOngoing
				nm.startTs = time.Now().UnixMilli()
			}
			nm.tv = tv
			if err := ts.writeLocked(nm); err != nil {
				return err
			}
			ts.txns[id] = nm
			return nil
		})
		if wait != nil && errors.Is(err, kerr.ConcurrentTransactions) {
			if d := time.Until(deadline); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-wait:
					t.Stop()
					continue
				case <-t.C:
				case <-b.ctx.Done():
					t.Stop()
				}
			}
		}
		if err != nil {
			for _, p := range ps {
				out[p] = err
			}
			return out
		}
		for _, p := range ps {
			if _, ok := out[p]; !ok {
				out[p] = nil
			}
		}
		return out
	}
}

func (b *broker) handleAddPartitionsToTxn(req *kmsg.AddPartitionsToTxnRequest, r *request) (*kmsg.AddPartitionsToTxnResponse, error) {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version >= 4 {
		for _, tx := range req.Transactions {
			var ps []topicPartition
			for _, t := range tx.Topics {
				for _, p := range t.Partitions {
					ps = append(ps, topicPartition{t.Topic, p})
				}
			}
			// A leader's add is transactions v2's (a Produce v12+ or
			// TxnOffsetCommit v5), as Kafka's KafkaApis records it.
			res := b.addPartitions(tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, ps, tx.VerifyOnly, tv2, true)
			rt := kmsg.NewAddPartitionsToTxnResponseTransaction()
			rt.TransactionalID = tx.TransactionalID
			for _, t := range tx.Topics {
				rtt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
				rtt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
					rp.Partition, rp.ErrorCode = p, errCode(res[topicPartition{t.Topic, p}])
					rtt.Partitions = append(rtt.Partitions, rp)
				}
				rt.Topics = append(rt.Topics, rtt)
			}
			resp.Transactions = append(resp.Transactions, rt)
		}
		return resp, nil
	}
	var ps []topicPartition
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			ps = append(ps, topicPartition{t.Topic, p})
		}
	}
	res := b.addPartitions(req.TransactionalID, req.ProducerID, req.ProducerEpoch, ps, false, tv0, false)
	for _, t := range req.Topics {
		rt := kmsg.NewAddPartitionsToTxnResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition = p
			err := res[topicPartition{t.Topic, p}]
			if req.Version < 2 && errors.Is(err, kerr.ProducerFenced) {
				err = kerr.InvalidProducerEpoch // PRODUCER_FENCED is v2+ (KIP-588)
			}
			rp.ErrorCode = errCode(err)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func (b *broker) handleAddOffsetsToTxn(req *kmsg.AddOffsetsToTxnRequest, r *request) (*kmsg.AddOffsetsToTxnResponse, error) {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	if !b.groups.rt.ensureTopic() {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp, nil
	}
	p := topicPartition{offsetsTopic, b.groups.rt.partitionFor(req.Group)}
	err := b.addPartitions(req.TransactionalID, req.ProducerID, req.ProducerEpoch, []topicPartition{p}, false, tv0, false)[p]
	if req.Version < 2 && errors.Is(err, kerr.ProducerFenced) {
		err = kerr.InvalidProducerEpoch
	}
	resp.ErrorCode = errCode(err)
	return resp, nil
}

// errNeedPid is returned under a shard's lock by a transition that needs a
// new producer id and found none spare: the caller gets one from the
// controller without the lock, and tries again.
var errNeedPid = errors.New("kcluster: a new producer id is needed")

// withPid runs fn (a withTxn) until it no longer needs a new producer id,
// getting one from the controller between tries.
func (b *broker) withPid(fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		if !errors.Is(err, errNeedPid) {
			return err
		}
		if attempt == 2 {
			return kerr.ConcurrentTransactions // ids taken by others meanwhile: the client retries
		}
		pid, err := b.nextProducerID()
		if err != nil {
			if errors.Is(err, errNoController) {
				err = kerr.CoordinatorNotAvailable
			}
			return err
		}
		b.txns.spare.put(pid)
	}
}

// endTxn is EndTxn: it ends producer pid's transaction at epoch, at
// transaction version tv (from the request's version, as Kafka's), and
// returns the producer id and epoch the producer uses next.
func (b *broker) endTxn(id string, pid int64, epoch int16, commit bool, tv int16) (int64, int16, error) {
	outPid, outEpoch := int64(-1), int16(-1)
	err := b.withPid(func() error {
		return b.txns.withTxn(id, func(ts *txnShard, m *txnMeta) error {
			if m == nil {
				return kerr.InvalidProducerIDMapping
			}
			if tv < tv2 {
				return ts.endTxnV1Locked(m, pid, epoch, commit)
			}
			var err error
			outPid, outEpoch, err = ts.endTxnV2Locked(m, pid, epoch, commit)
			return err
		})
	})
	if err != nil {
		return -1, -1, err
	}
	return outPid, outEpoch, nil
}

// endTxnV1Locked is Kafka's endTransactionWithTV1: the epoch must be the
// transaction's, and a retry is recognized by the state it left. While a
// transaction completes (its markers in flight: Kafka's pending Complete
// state) the answer is CONCURRENT_TRANSACTIONS.
func (ts *txnShard) endTxnV1Locked(m *txnMeta, pid int64, epoch int16, commit bool) error {
	if m.pid != pid {
		return kerr.InvalidProducerIDMapping
	}
	if m.epoch != epoch {
		return kerr.ProducerFenced
	}
	if m.sending {
		return kerr.ConcurrentTransactions
	}
	prepare, complete := kmsg.TransactionStatePrepareAbort, kmsg.TransactionStateCompleteAbort
	if commit {
		prepare, complete = kmsg.TransactionStatePrepareCommit, kmsg.TransactionStateCompleteCommit
	}
	switch m.state {
	case kmsg.TransactionStateOngoing:
		_, err := ts.prepareEndLocked(m, commit, tv0, -1, false)
		return err
	case prepare:
		return kerr.ConcurrentTransactions // a retry: the markers are on their way
	case complete:
		return nil // a retry of an EndTxn that completed
	case kmsg.TransactionStateDead, kmsg.TransactionStatePrepareEpochFence:
		return kerr.UnknownServerError
	}
	return kerr.InvalidTxnState
}

// endTxnV2Locked is Kafka's endTransaction at transaction version 2 (KIP-890
// part 2). Every end bumps the epoch, so a retry carries the epoch before
// the bump (or, when the bump exhausted the epoch and rotated the producer
// id, the previous id at epoch 32766), and the current epoch is the next
// transaction's:
//
//	               abort              commit
//	               retry   current    retry   current
//	Empty          FENCED  bump       FENCED  INVALID_TXN_STATE
//	CompleteAbort  none    bump       ITS     ITS
//	CompleteCommit ITS     bump       none    ITS
//
// ("bump": an abort with no partition, written and completed, whose epoch
// is bumped; "none": answered with the current id and epoch.) While the
// previous transaction completes (its markers in flight: Kafka's pending
// Complete state) the answer is CONCURRENT_TRANSACTIONS before the epoch
// is checked (KAFKA-18464): an abort sent right after a commit, at the
// epoch the commit answered, waits for the commit instead of being fenced
// by it. It returns the id and epoch the producer uses next.
func (ts *txnShard) endTxnV2Locked(m *txnMeta, pid int64, epoch int16, commit bool) (int64, int16, error) {
	retryOnOverflow := m.prevPid == pid && epoch == 32767-1 && m.epoch == 0
	retryOnBump := int(m.epoch) == int(epoch)+1
	if m.pid != pid && !retryOnOverflow {
		return -1, -1, kerr.InvalidProducerIDMapping
	}
	if m.sending {
		return -1, -1, kerr.ConcurrentTransactions
	}
	var valid bool
	switch m.state {
	case kmsg.TransactionStatePrepareCommit, kmsg.TransactionStatePrepareAbort:
		valid = retryOnBump
	case kmsg.TransactionStateCompleteCommit, kmsg.TransactionStateCompleteAbort:
		valid = retryOnBump || retryOnOverflow || epoch == m.epoch
	default:
		valid = epoch == m.epoch
	}
	if !valid {
		return -1, -1, kerr.ProducerFenced
	}
	retry := retryOnBump || retryOnOverflow
	end := func(noPartitionAdded bool) (int64, int16, error) {
		next := int64(-1)
		if epochExhausted(m.epoch) {
			if next = ts.tc.spare.take(); next < 0 {
				return -1, -1, errNeedPid
			}
		}
		nm, err := ts.prepareEndLocked(m, commit, tv2, next, noPartitionAdded)
		if err != nil {
			return -1, -1, err
		}
		c := completed(nm)
		return c.pid, c.epoch, nil
	}
	switch m.state {
	case kmsg.TransactionStateOngoing:
		return end(false)
	case kmsg.TransactionStateCompleteCommit:
		switch {
		case commit && retry:
			return m.pid, m.epoch, nil
		case !commit && !retry:
			return end(true)
		}
	case kmsg.TransactionStateCompleteAbort:
		switch {
		case !commit && retry:
			return m.pid, m.epoch, nil
		case !commit:
			return end(true)
		}
	case kmsg.TransactionStatePrepareCommit:
		if commit {
			return -1, -1, kerr.ConcurrentTransactions
		}
	case kmsg.TransactionStatePrepareAbort:
		if !commit {
			return -1, -1, kerr.ConcurrentTransactions
		}
	case kmsg.TransactionStateEmpty:
		if !commit {
			return end(true)
		}
	case kmsg.TransactionStateDead, kmsg.TransactionStatePrepareEpochFence:
		return -1, -1, kerr.UnknownServerError
	}
	return -1, -1, kerr.InvalidTxnState
}

func (b *broker) handleEndTxn(req *kmsg.EndTxnRequest, r *request) (*kmsg.EndTxnResponse, error) {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	tv := tv0
	if req.Version >= 5 {
		tv = tv2 // the client uses transactions v2, as Kafka's KafkaApis infers it
	}
	pid, epoch, err := b.endTxn(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit, tv)
	if req.Version < 2 && errors.Is(err, kerr.ProducerFenced) {
		err = kerr.InvalidProducerEpoch
	}
	resp.ErrorCode = errCode(err)
	if tv >= tv2 {
		resp.ProducerID, resp.ProducerEpoch = pid, epoch
	}
	return resp, nil
}

// handleWriteTxnMarkers writes the markers a coordinator sends to the
// partitions this broker leads, each answered once the ISR has it. A
// marker on __consumer_offsets also commits or drops the transaction's
// pending offsets in the group coordinator.
func (b *broker) handleWriteTxnMarkers(req *kmsg.WriteTxnMarkersRequest, r *request) (*kmsg.WriteTxnMarkersResponse, error) {
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.txn.requestTimeout)
	defer cancel()
	type wait struct {
		rp   *kmsg.WriteTxnMarkersResponseMarkerTopicPartition
		rep  *partition
		end  int64
		pid  int64
		done bool
	}
	var waits []wait
	for _, mk := range req.Markers {
		rm := kmsg.NewWriteTxnMarkersResponseMarker()
		rm.ProducerID = mk.ProducerID
		for _, t := range mk.Topics {
			rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			rt.Topic = t.Topic
			rt.Partitions = make([]kmsg.WriteTxnMarkersResponseMarkerTopicPartition, len(t.Partitions))
			rm.Topics = append(rm.Topics, rt)
		}
		resp.Markers = append(resp.Markers, rm)
	}
	for i, mk := range req.Markers {
		for j, t := range mk.Topics {
			for k, p := range t.Partitions {
				rp := &resp.Markers[i].Topics[j].Partitions[k]
				rp.Default()
				rp.Partition = p
				rep, err := b.lookupPartition(t.Topic, [16]byte{}, p)
				var end int64
				if err == nil {
					end, err = rep.appendMarker(mk.ProducerID, mk.ProducerEpoch, mk.Committed, mk.CoordinatorEpoch, int16(mk.TransactionVersion))
				}
				rp.ErrorCode = errCode(err)
				if err == nil {
					waits = append(waits, wait{rp: rp, rep: rep, end: end, pid: mk.ProducerID, done: mk.Committed})
				}
			}
		}
	}
	for _, w := range waits {
		if err := w.rep.waitHW(ctx, w.end); err != nil {
			w.rp.ErrorCode = errCode(err)
			continue
		}
		if w.rep.topic == offsetsTopic {
			b.groups.rt.replayMarker(w.rep.part, w.pid, w.done, w.end-1)
		}
	}
	return resp, nil
}
