package kcluster

// InitProducerId v0-v5 (KIP-98; KIP-360 epoch bumps, v3+): a request
// without a transactional id gets a fresh producer id at epoch 0, from a
// block of ids the controller reserves for this broker
// (AllocateProducerIds). A transactional id is served by its transaction
// coordinator (initTransactional, Kafka's handleInitProducerId): a new id
// gets a fresh producer id, a known one its epoch bumped (a new producer
// id once the epoch is exhausted), which fences the previous producer. An
// ongoing transaction is fenced first: its epoch bumped and the
// transaction aborted (Kafka's PrepareEpochFence, then PrepareAbort),
// answered CONCURRENT_TRANSACTIONS; the client retries and gets the epoch
// above that once the abort completes. That is also how Admin's
// fenceProducers (an InitProducerId with no producer id and epoch) ends
// another producer's transaction. While a transaction is completing
// (PrepareCommit or PrepareAbort, its markers in flight) the answer is
// CONCURRENT_TRANSACTIONS.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

func init() {
	reg(0, 5, (*broker).handleInitProducerID)
	regCtrl(0, 0, (*controllerNode).handleAllocateProducerIDs)
}

// handleAllocateProducerIDs reserves a block of producer ids for a broker
// (AllocateProducerIds v0, KIP-730).
func (n *controllerNode) handleAllocateProducerIDs(req *kmsg.AllocateProducerIDsRequest) (*kmsg.AllocateProducerIDsResponse, error) {
	resp := req.ResponseKind().(*kmsg.AllocateProducerIDsResponse)
	first, err := n.ctrl.AllocateProducerIDs(n.ctx, req.BrokerID, producerIDBlock)
	resp.ErrorCode = errCode(err)
	resp.ProducerIDStart, resp.ProducerIDLen = first, producerIDBlock
	return resp, nil
}

const producerIDBlock = 1000

func (b *broker) handleInitProducerID(req *kmsg.InitProducerIDRequest, r *request) (*kmsg.InitProducerIDResponse, error) {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if (req.ProducerID < 0) != (req.ProducerEpoch < 0) {
		// A producer id without an epoch or the reverse (KafkaApis).
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	if req.TransactionalID != nil {
		id, epoch, err := b.initTransactional(req)
		if req.Version < 4 && errors.Is(err, kerr.ProducerFenced) {
			err = kerr.InvalidProducerEpoch
		}
		resp.ErrorCode = errCode(err)
		if err == nil {
			resp.ProducerID, resp.ProducerEpoch = id, epoch
		}
		return resp, nil
	}
	id, err := b.nextProducerID()
	if errors.Is(err, errNoController) {
		err = kerr.CoordinatorNotAvailable // retriable: the client asks again
	}
	if err != nil {
		resp.ErrorCode = errCode(err)
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp, nil
}

func (b *broker) nextProducerID() (int64, error) {
	b.pids.Lock()
	defer b.pids.Unlock()
	if b.pids.next >= b.pids.end {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer cancel()
		req := kmsg.NewPtrAllocateProducerIDsRequest()
		req.BrokerID, req.BrokerEpoch = b.id, b.epoch
		kresp, err := b.ac.request(ctx, req)
		if err != nil {
			return 0, err
		}
		resp := kresp.(*kmsg.AllocateProducerIDsResponse)
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return 0, err
		}
		b.pids.next, b.pids.end = resp.ProducerIDStart, resp.ProducerIDStart+int64(resp.ProducerIDLen)
	}
	id := b.pids.next
	b.pids.next++
	return id, nil
}

// initTransactional is InitProducerId for a transactional id (Kafka's
// TransactionCoordinator.handleInitProducerId and
// prepareInitProducerIdTransit). A request naming a producer id and epoch
// (KIP-360) is a producer recovering: it is fenced unless the id is the
// transaction's, or the previous one with an exhausted epoch (a retry of a
// rotation whose answer was lost); its epoch decides between a bump and
// the answer of a bump it already made (the last epoch).
func (b *broker) initTransactional(req *kmsg.InitProducerIDRequest) (int64, int16, error) {
	id := *req.TransactionalID
	if id == "" {
		return -1, -1, kerr.InvalidRequest
	}
	if req.TransactionTimeoutMillis <= 0 || time.Duration(req.TransactionTimeoutMillis)*time.Millisecond > b.cfg.txn.maxTimeout {
		return -1, -1, kerr.InvalidTransactionTimeout
	}
	expected := req.ProducerID >= 0
	tv := b.featureLevel(metadata.FeatureTransactionVersion) // an abort of the coordinator's is at the finalized level
	var pid int64
	var epoch int16
	err := b.withPid(func() error {
		return b.txns.withTxn(id, func(ts *txnShard, m *txnMeta) error {
			take := func() (int64, error) {
				if p := ts.tc.spare.take(); p >= 0 {
					return p, nil
				}
				return -1, errNeedPid
			}
			if m == nil {
				// As Kafka: a new id's metadata, at epoch -1, which
				// the bump below takes to 0.
				p, err := take()
				if err != nil {
					return err
				}
				m = &txnMeta{id: id, pid: p, prevPid: -1, nextPid: -1, epoch: -1, lastEpoch: -1, timeout: req.TransactionTimeoutMillis,
					state: kmsg.TransactionStateEmpty, parts: map[topicPartition]struct{}{}, startTs: -1}
			}
			if m.sending {
				return kerr.ConcurrentTransactions
			}
			if expected && m.epoch >= 0 && req.ProducerID != m.pid && (req.ProducerID != m.prevPid || !epochExhausted(req.ProducerEpoch)) {
				return kerr.ProducerFenced
			}
			switch m.state {
			case kmsg.TransactionStatePrepareCommit, kmsg.TransactionStatePrepareAbort:
				return kerr.ConcurrentTransactions
			case kmsg.TransactionStateOngoing:
				// Fence the producer: abort its transaction with a
				// bumped epoch; the client retries and gets an epoch
				// above that once the abort completes.
				next := int64(-1)
				if tv >= tv2 && epochExhausted(m.epoch) {
					p, err := take()
					if err != nil {
						return err
					}
					next = p
				}
				if err := ts.fenceLocked(m, tv, next); err != nil {
					return err
				}
				return kerr.ConcurrentTransactions
			case kmsg.TransactionStateEmpty, kmsg.TransactionStateCompleteCommit, kmsg.TransactionStateCompleteAbort:
			default:
				return kerr.UnknownServerError // Dead or PrepareEpochFence: never a loaded state
			}
			nm := m.clone()
			switch {
			case epochExhausted(m.epoch) && (!expected || req.ProducerEpoch == m.epoch):
				// Kafka's prepareProducerIdRotation.
				p, err := take()
				if err != nil {
					return err
				}
				nm.pid, nm.epoch, nm.lastEpoch = p, 0, -1
				if expected {
					nm.lastEpoch = m.epoch
				}
			case !expected:
				nm.epoch, nm.lastEpoch = m.epoch+1, -1
			case m.epoch < 0 || req.ProducerEpoch == m.epoch:
				nm.epoch, nm.lastEpoch = m.epoch+1, m.epoch
			case req.ProducerEpoch == m.lastEpoch:
				// A retry of a bump whose answer was lost: the same
				// epoch again.
			default:
				return kerr.ProducerFenced
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
	})
	if err != nil {
		return -1, -1, err
	}
	return pid, epoch, nil
}
