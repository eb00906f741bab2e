package kcluster

// InitProducerId v0-v5 (KIP-98; KIP-360 epoch bumps, v3+): a request
// without a transactional id gets a fresh producer id at epoch 0, from a
// block of ids the controller reserves for this broker
// (AllocateProducerIds). A transactional id is served by its transaction
// coordinator (api_txn.go): a new id gets a fresh producer id, a known one
// its epoch bumped, which fences the previous producer (an ongoing
// transaction of it is aborted first, answered CONCURRENT_TRANSACTIONS
// meanwhile).

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
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
