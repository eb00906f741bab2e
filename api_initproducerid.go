package kcluster

// InitProducerId v0-v5 for idempotent producers (KIP-98; KIP-360 epoch
// bumps, v3+): a request without a transactional id gets a fresh producer
// id at epoch 0, from a block of ids the controller reserves for this broker
// (AllocateProducerIds). Transactional ids need the transaction
// coordinator, which FindCoordinator does not offer yet, so they are
// answered COORDINATOR_NOT_AVAILABLE.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { reg(0, 5, (*broker).handleInitProducerID) }

const producerIDBlock = 1000

func (b *broker) handleInitProducerID(req *kmsg.InitProducerIDRequest, r *request) (*kmsg.InitProducerIDResponse, error) {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp, nil
	}
	id, err := b.nextProducerID()
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
		first, err := b.c.ctrl.AllocateProducerIDs(ctx, b.id, producerIDBlock)
		if err != nil {
			return 0, err
		}
		b.pids.next, b.pids.end = first, first+producerIDBlock
	}
	id := b.pids.next
	b.pids.next++
	return id, nil
}
