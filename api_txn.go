package kcluster

// The transaction APIs of the transaction coordinator (KIP-98; KIP-360
// producer epoch bumps; KIP-588 PRODUCER_FENCED; KIP-890 part 1 partition
// leaders verifying a transaction before its first write):
//
//   - AddPartitionsToTxn v0-v5: v0-v3 from producers; v4-v5 (batched, with
//     VerifyOnly) from partition leaders checking that a transactional
//     produce belongs to an ongoing transaction.
//   - AddOffsetsToTxn v0-v4: adds the group's __consumer_offsets partition.
//   - EndTxn v0-v4: PrepareCommit / PrepareAbort, answered once written;
//     the markers follow (txn_markers.go). v5 (KIP-890 part 2, epoch
//     bump per transaction) is not served: kcluster advertises no
//     transaction.version feature, so clients use the part 1 flow.
//   - WriteTxnMarkers v0-v1: served by partition leaders, sent by
//     coordinators.
//
// InitProducerId with a transactional id is in api_initproducerid.go.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/segment"
)

func init() {
	reg(0, 5, (*broker).handleAddPartitionsToTxn)
	reg(0, 4, (*broker).handleAddOffsetsToTxn)
	reg(0, 4, (*broker).handleEndTxn)
	reg(0, 1, (*broker).handleWriteTxnMarkers)
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

// initTransactional is InitProducerId for a transactional id (Kafka's
// TransactionCoordinator.handleInitProducerId).
func (b *broker) initTransactional(req *kmsg.InitProducerIDRequest) (int64, int16, error) {
	id := *req.TransactionalID
	if id == "" {
		return -1, -1, kerr.InvalidRequest
	}
	if req.TransactionTimeoutMillis <= 0 || time.Duration(req.TransactionTimeoutMillis)*time.Millisecond > b.cfg.txn.maxTimeout {
		return -1, -1, kerr.InvalidTransactionTimeout
	}
	// A new transactional id needs a producer id; get it before taking
	// the partition's lock (the controller may be slow).
	var fresh int64 = -1
	needFresh := func(m *txnMeta) bool {
		return m == nil || ((m.state == kmsg.TransactionStateEmpty || m.state == kmsg.TransactionStateCompleteCommit ||
			m.state == kmsg.TransactionStateCompleteAbort) && epochExhausted(m.epoch))
	}
	var pid int64
	var epoch int16
	for attempt := 0; ; attempt++ {
		var again bool
		err := b.txns.withTxn(id, func(ts *txnShard, m *txnMeta) error {
			if needFresh(m) && fresh < 0 {
				again = true
				return nil
			}
			if m == nil {
				nm := &txnMeta{id: id, pid: fresh, epoch: 0, lastPid: -1, lastEpoch: -1, timeout: req.TransactionTimeoutMillis,
					state: kmsg.TransactionStateEmpty, parts: map[topicPartition]struct{}{}, startTs: -1}
				if err := ts.writeLocked(nm); err != nil {
					return err
				}
				ts.txns[id] = nm
				pid, epoch = nm.pid, nm.epoch
				return nil
			}
			if m.sending {
				return kerr.ConcurrentTransactions
			}
			retry := false
			if req.ProducerID >= 0 {
				// KIP-360: the producer says which id and epoch it
				// had; a retry of a bump that succeeded (its
				// response lost) gets the current epoch again
				// (Kafka's prepareIncrementProducerEpoch).
				switch {
				case req.ProducerID == m.pid && req.ProducerEpoch == m.epoch:
				case (req.ProducerID == m.lastPid || req.ProducerID == m.pid) && m.lastEpoch >= 0 && req.ProducerEpoch == m.lastEpoch:
					retry = true
				default:
					return kerr.ProducerFenced
				}
			}
			switch m.state {
			case kmsg.TransactionStatePrepareCommit, kmsg.TransactionStatePrepareAbort, kmsg.TransactionStatePrepareEpochFence:
				return kerr.ConcurrentTransactions
			case kmsg.TransactionStateOngoing:
				// Fence the previous producer: abort its transaction
				// with a bumped epoch; the client retries and gets an
				// epoch above that once the abort completes.
				if err := ts.prepareEndLocked(m, false, true); err != nil {
					return err
				}
				return kerr.ConcurrentTransactions
			}
			nm := m.clone()
			switch {
			case retry:
				if m.state == kmsg.TransactionStateEmpty {
					pid, epoch = m.pid, m.epoch
					return nil
				}
			case epochExhausted(m.epoch):
				nm.lastPid, nm.lastEpoch = m.pid, m.epoch
				nm.pid, nm.epoch = fresh, 0
			default:
				nm.lastPid, nm.lastEpoch = m.pid, m.epoch
				nm.epoch++
			}
			nm.timeout = req.TransactionTimeoutMillis
			nm.state = kmsg.TransactionStateEmpty
			nm.parts = map[topicPartition]struct{}{}
			nm.startTs = -1
			if err := ts.writeLocked(nm); err != nil {
				return err
			}
			ts.txns[id] = nm
			pid, epoch = nm.pid, nm.epoch
			return nil
		})
		if err != nil {
			return -1, -1, err
		}
		if !again {
			return pid, epoch, nil
		}
		if attempt > 0 {
			return -1, -1, kerr.ConcurrentTransactions
		}
		if fresh, err = b.nextProducerID(); err != nil {
			if errors.Is(err, errNoController) {
				err = kerr.CoordinatorNotAvailable
			}
			return -1, -1, err
		}
	}
}

// addPartitions adds ps to id's transaction (or, verifyOnly, checks they
// are in it) and returns an error per partition, or a whole-request error.
func (b *broker) addPartitions(id string, pid int64, epoch int16, ps []topicPartition, verifyOnly bool) (map[topicPartition]error, error) {
	out := make(map[topicPartition]error, len(ps))
	if !verifyOnly {
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
			return out, nil
		}
	}
	err := b.txns.withTxn(id, func(ts *txnShard, m *txnMeta) error {
		if err := checkProducerLocked(m, pid, epoch); err != nil {
			return err
		}
		if m.sending || m.state == kmsg.TransactionStatePrepareCommit || m.state == kmsg.TransactionStatePrepareAbort {
			return kerr.ConcurrentTransactions
		}
		if m.state == kmsg.TransactionStatePrepareEpochFence || m.state == kmsg.TransactionStateDead {
			return kerr.InvalidTxnState
		}
		if verifyOnly {
			for _, p := range ps {
				_, in := m.parts[p]
				if m.state != kmsg.TransactionStateOngoing || !in {
					out[p] = kerr.InvalidTxnState
				} else {
					out[p] = nil
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
		if err := ts.writeLocked(nm); err != nil {
			return err
		}
		ts.txns[id] = nm
		return nil
	})
	if err != nil {
		for _, p := range ps {
			out[p] = err
		}
		return out, nil
	}
	for _, p := range ps {
		if _, ok := out[p]; !ok {
			out[p] = nil
		}
	}
	return out, nil
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
			res, _ := b.addPartitions(tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, ps, tx.VerifyOnly)
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
	res, _ := b.addPartitions(req.TransactionalID, req.ProducerID, req.ProducerEpoch, ps, false)
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
	res, _ := b.addPartitions(req.TransactionalID, req.ProducerID, req.ProducerEpoch, []topicPartition{p}, false)
	err := res[p]
	if req.Version < 2 && errors.Is(err, kerr.ProducerFenced) {
		err = kerr.InvalidProducerEpoch
	}
	resp.ErrorCode = errCode(err)
	return resp, nil
}

func (b *broker) handleEndTxn(req *kmsg.EndTxnRequest, r *request) (*kmsg.EndTxnResponse, error) {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	err := b.txns.withTxn(req.TransactionalID, func(ts *txnShard, m *txnMeta) error {
		if m == nil || m.pid != req.ProducerID {
			return kerr.InvalidProducerIDMapping
		}
		if m.epoch != req.ProducerEpoch {
			return kerr.ProducerFenced
		}
		prepare, complete := kmsg.TransactionStatePrepareAbort, kmsg.TransactionStateCompleteAbort
		if req.Commit {
			prepare, complete = kmsg.TransactionStatePrepareCommit, kmsg.TransactionStateCompleteCommit
		}
		switch m.state {
		case kmsg.TransactionStateOngoing:
			if m.sending {
				return kerr.ConcurrentTransactions
			}
			return ts.prepareEndLocked(m, req.Commit, false)
		case prepare:
			return kerr.ConcurrentTransactions // a retry: the markers are on their way
		case complete:
			return nil // a retry of an EndTxn that completed
		}
		return kerr.InvalidTxnState
	})
	if req.Version < 2 && errors.Is(err, kerr.ProducerFenced) {
		err = kerr.InvalidProducerEpoch
	}
	resp.ErrorCode = errCode(err)
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
					end, err = rep.appendMarker(mk.ProducerID, mk.ProducerEpoch, mk.Committed, mk.CoordinatorEpoch)
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

// verifyTxnProduce is KIP-890 part 1 on a partition leader: the first
// transactional batch of a producer on this partition is written only if
// the transaction coordinator confirms the partition is in the producer's
// ongoing transaction (AddPartitionsToTxn v4, VerifyOnly, over the
// network), so a zombie or a late retry cannot open a transaction that no
// coordinator will ever end. Coordinator errors are mapped as Kafka's
// AddPartitionsToTxnManager maps them: retriable ones to
// NOT_ENOUGH_REPLICAS, PRODUCER_FENCED to INVALID_PRODUCER_EPOCH.
//
// The guard returned goes with the append: it fails if a marker ended the
// producer's transaction on this partition after the verification (or,
// when the transaction was open, after this check), as Kafka's
// VerificationGuard.
func (b *broker) verifyTxnProduce(txnID *string, rep *partition, records []byte) (*txnGuard, error) {
	h, err := segment.ParseBatchHeader(records)
	if err != nil || h.Attributes&attrTransactional == 0 || h.ProducerID < 0 {
		return nil, nil
	}
	return b.verifyTxn(txnID, rep, h.ProducerID, h.ProducerEpoch)
}

// verifyTxn is verifyTxnProduce for producer pid at epoch, whose first
// transactional batch on rep is about to be written.
func (b *broker) verifyTxn(txnID *string, rep *partition, pid int64, epoch int16) (*txnGuard, error) {
	if txnID == nil || *txnID == "" {
		return nil, kerr.TransactionalIDAuthorizationFailed
	}
	guard, open := rep.beginVerification(pid)
	if open {
		return guard, nil
	}
	coord, err := b.txnCoordinatorFor(*txnID)
	if err != nil {
		return nil, kerr.NotEnoughReplicas
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.SetVersion(4)
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = *txnID, pid, epoch, true
	t := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
	t.Topic, t.Partitions = rep.topic, []int32{rep.part}
	tx.Topics = append(tx.Topics, t)
	req.Transactions = append(req.Transactions, tx)
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.txn.requestTimeout)
	defer cancel()
	kresp, err := b.txns.verify.request(ctx, coord, req)
	if err != nil {
		return nil, kerr.NotEnoughReplicas
	}
	resp := kresp.(*kmsg.AddPartitionsToTxnResponse)
	code := resp.ErrorCode
	for _, rt := range resp.Transactions {
		for _, t := range rt.Topics {
			for _, p := range t.Partitions {
				if code == 0 {
					code = p.ErrorCode
				}
			}
		}
	}
	switch err := kerr.ErrorForCode(code); {
	case err == nil:
		return guard, nil
	case errors.Is(err, kerr.ProducerFenced), errors.Is(err, kerr.InvalidProducerEpoch):
		return nil, kerr.InvalidProducerEpoch
	case errors.Is(err, kerr.InvalidTxnState), errors.Is(err, kerr.InvalidProducerIDMapping):
		return nil, kerr.InvalidTxnState
	default:
		return nil, kerr.NotEnoughReplicas
	}
}
