package kcluster

// A partition leader's side of transactions v1 and v2 (KIP-890, Kafka's
// AddPartitionsToTxnManager and ReplicaManager's transaction
// verification): before the first transactional write of a producer's
// transaction on a partition, the leader asks the transaction coordinator
// (AddPartitionsToTxn v5, over the network, on connections of its own)
// either to confirm the partition is in the producer's ongoing transaction
// (VerifyOnly, KIP-890 part 1: a Produce up to v11, a TxnOffsetCommit up
// to v4) or to add it (KIP-890 part 2: a Produce v12+, a TxnOffsetCommit
// v5, whose client no longer sends AddPartitionsToTxn or
// AddOffsetsToTxn). A zombie or a late retry cannot open a transaction
// that no coordinator will ever end.
//
// The guards returned go with the appends: one fails if a marker ended
// the producer's transaction on the partition after the verification (or,
// when the transaction was open, after this check), as Kafka's
// VerificationGuard (txn_replica.go).

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/segment"
)

// txnOp is what a transactional write asks of its transaction coordinator
// (Kafka's TransactionSupportedOperation), by the version of the request
// that carries it.
type txnOp int8

const (
	// txnOpDefault verifies; a partition not in the transaction is
	// INVALID_TXN_STATE (Produce v3-v10, TxnOffsetCommit v0-v3, whose
	// clients do not know TRANSACTION_ABORTABLE).
	txnOpDefault txnOp = iota
	// txnOpGeneric verifies; a partition not in the transaction is
	// TRANSACTION_ABORTABLE (Produce v11, TxnOffsetCommit v4).
	txnOpGeneric
	// txnOpAdd adds the partition to the transaction (Produce v12+,
	// TxnOffsetCommit v5: transactions v2).
	txnOpAdd
)

func produceTxnOp(version int16) txnOp {
	switch {
	case version >= 12:
		return txnOpAdd
	case version == 11:
		return txnOpGeneric
	}
	return txnOpDefault
}

func txnOffsetCommitTxnOp(version int16) txnOp {
	switch {
	case version >= 5:
		return txnOpAdd
	case version == 4:
		return txnOpGeneric
	}
	return txnOpDefault
}

// txnWrite is one partition's transactional write waiting for its
// verification.
type txnWrite struct {
	rep   *partition
	guard *txnGuard
	err   error
}

// transactionalBatch returns the producer of records' first batch when it
// is transactional.
func transactionalBatch(records []byte) (pid int64, epoch int16, ok bool) {
	h, err := segment.ParseBatchHeader(records)
	if err != nil || h.Attributes&attrTransactional == 0 || h.ProducerID < 0 {
		return -1, -1, false
	}
	return h.ProducerID, h.ProducerEpoch, true
}

// verifyTxnWrites verifies (or, op txnOpAdd, adds) the partitions of ws,
// transactional writes of producer pid at epoch in transaction txnID, all
// in one request to the coordinator (Kafka's leader batches a request's
// partitions the same way), and sets each write's guard, or its error as
// a producer gets it.
func (b *broker) verifyTxnWrites(txnID *string, pid int64, epoch int16, ws []*txnWrite, op txnOp) {
	if txnID == nil || *txnID == "" {
		for _, w := range ws {
			w.err = kerr.TransactionalIDAuthorizationFailed
		}
		return
	}
	var ask []*txnWrite
	for _, w := range ws {
		guard, open := w.rep.beginVerification(pid, epoch)
		w.guard = guard
		if !open {
			ask = append(ask, w)
		}
	}
	if len(ask) == 0 {
		return
	}
	codes := b.askTxnCoordinator(*txnID, pid, epoch, ask, op)
	for i, w := range ask {
		if w.err = txnVerifyError(codes[i], op); w.err != nil {
			w.guard = nil
		}
	}
}

// askTxnCoordinator sends the AddPartitionsToTxn (v5, VerifyOnly unless
// op adds) for ws and returns each partition's code, as Kafka's
// AddPartitionsToTxnManager reports them: a connection failure is
// NETWORK_EXCEPTION, a coordinator not found COORDINATOR_NOT_AVAILABLE,
// and a request-level error (CLUSTER_AUTHORIZATION_FAILED as
// INVALID_TXN_STATE) every partition's.
func (b *broker) askTxnCoordinator(txnID string, pid int64, epoch int16, ws []*txnWrite, op txnOp) []int16 {
	codes := make([]int16, len(ws))
	fill := func(code int16) []int16 {
		for i := range codes {
			codes[i] = code
		}
		return codes
	}
	coord, err := b.txnCoordinatorFor(txnID)
	if err != nil {
		return fill(kerr.CoordinatorNotAvailable.Code)
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.SetVersion(5)
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = txnID, pid, epoch, op != txnOpAdd
	var ps []topicPartition
	for _, w := range ws {
		ps = append(ps, topicPartition{w.rep.topic, w.rep.part})
	}
	byTopic(ps, func(topic string, partitions []int32) {
		t := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
		t.Topic, t.Partitions = topic, partitions
		tx.Topics = append(tx.Topics, t)
	})
	req.Transactions = append(req.Transactions, tx)
	// An add waits on the coordinator for the producer's previous
	// transaction to complete, up to the add retry bound.
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.txn.requestTimeout+b.cfg.txn.addRetryMax)
	defer cancel()
	kresp, err := b.txns.verify.request(ctx, coord, req)
	if err != nil {
		return fill(kerr.NetworkException.Code)
	}
	resp := kresp.(*kmsg.AddPartitionsToTxnResponse)
	if resp.ErrorCode != 0 {
		if resp.ErrorCode == kerr.ClusterAuthorizationFailed.Code {
			return fill(kerr.InvalidTxnState.Code)
		}
		return fill(resp.ErrorCode)
	}
	got := map[topicPartition]int16{}
	for _, rt := range resp.Transactions {
		for _, t := range rt.Topics {
			for _, p := range t.Partitions {
				got[topicPartition{t.Topic, p.Partition}] = p.ErrorCode
			}
		}
	}
	for i, p := range ps {
		code, ok := got[p]
		if !ok {
			code = kerr.UnknownServerError.Code
		}
		codes[i] = code
	}
	return codes
}

// txnVerifyError maps a coordinator's answer for one partition to the
// error its write gets, as Kafka's AddPartitionsToTxnManager and
// ReplicaManager map it: PRODUCER_FENCED is INVALID_PRODUCER_EPOCH (what
// producers expect on a write); TRANSACTION_ABORTABLE is
// INVALID_TXN_STATE for clients too old to know it; and the retriable
// errors are NOT_ENOUGH_REPLICAS, which older clients retry without a
// metadata refresh, but for CONCURRENT_TRANSACTIONS on an add
// (transactions v2), common while the previous transaction completes,
// which stays itself.
func txnVerifyError(code int16, op txnOp) error {
	err := kerr.ErrorForCode(code)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.ProducerFenced):
		return kerr.InvalidProducerEpoch
	case errors.Is(err, kerr.TransactionAbortable) && op == txnOpDefault:
		return kerr.InvalidTxnState
	case errors.Is(err, kerr.ConcurrentTransactions) && op == txnOpAdd:
		return err
	case errors.Is(err, kerr.ConcurrentTransactions), errors.Is(err, kerr.NetworkException),
		errors.Is(err, kerr.CoordinatorLoadInProgress), errors.Is(err, kerr.CoordinatorNotAvailable),
		errors.Is(err, kerr.NotCoordinator):
		return kerr.NotEnoughReplicas
	}
	return err
}

// verifyTxn verifies (or adds) one partition for producer pid at epoch,
// whose first transactional batch on rep is about to be written (a
// transactional offset commit), and returns the guard for the append.
func (b *broker) verifyTxn(txnID *string, rep *partition, pid int64, epoch int16, op txnOp) (*txnGuard, error) {
	w := &txnWrite{rep: rep}
	b.verifyTxnWrites(txnID, pid, epoch, []*txnWrite{w}, op)
	return w.guard, w.err
}
