package kcluster

// Produce v3-v11 (magic v2 record batches only, as Kafka 4; KIP-74 none;
// KIP-467 record errors unused; KIP-951 leader hints not sent).
// Batches are validated (size, magic, CRC-32C), given their offsets and the
// leader epoch in place, and stored as received, compressed or not.
// acks=0 gets no response, acks=1 answers after the leader's append,
// acks=-1 (all) after every ISR member has the batch (the high watermark
// passed it), or REQUEST_TIMED_OUT at the request's timeout.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { reg(3, 11, (*broker).handleProduce) }

// lookupPartition resolves a topic name and partition to this broker's replica.
// It returns UNKNOWN_TOPIC_OR_PARTITION when the metadata has no such
// partition, NOT_LEADER_OR_FOLLOWER when this broker holds no replica.
func (b *broker) lookupPartition(topic string, id [16]byte, part int32) (*partition, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t := b.mu.state.Topics[topic]
	if topic == "" {
		t = b.mu.state.TopicsByID[id]
		if t == nil {
			return nil, kerr.UnknownTopicID
		}
	}
	if t == nil || part < 0 || int(part) >= len(t.Partitions) {
		return nil, kerr.UnknownTopicOrPartition
	}
	r := b.mu.replicas[tpKey{t.ID, part}]
	if r == nil {
		return nil, kerr.NotLeaderForPartition
	}
	return r, nil
}

func (b *broker) handleProduce(req *kmsg.ProduceRequest, r *request) (*kmsg.ProduceResponse, error) {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	if req.Acks != 0 && req.Acks != 1 && req.Acks != -1 {
		for _, t := range req.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = kerr.InvalidRequiredAcks.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	}
	type pending struct {
		rp  *kmsg.ProduceResponseTopicPartition
		rep *partition
		end int64
	}
	var waits []pending
	for _, t := range req.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		for i, p := range t.Partitions {
			rp := &rt.Partitions[i]
			rp.Default()
			rp.Partition = p.Partition
			rep, err := b.lookupPartition(t.Topic, t.TopicID, p.Partition)
			if err == nil && isInternalTopic(rep.topic) {
				// Only the coordinators append to internal topics.
				err = kerr.InvalidTopicException
			}
			var guard *txnGuard
			if err == nil {
				guard, err = b.verifyTxnProduce(req.TransactionID, rep, p.Records)
			}
			if err == nil {
				var base, end int64
				base, end, err = rep.appendAsLeaderGuarded(p.Records, req.Acks, guard)
				if err == nil {
					rp.BaseOffset = base
					rp.LogStartOffset = rep.log.LogStartOffset()
					if req.Acks == -1 {
						waits = append(waits, pending{rp, rep, end})
					}
				}
			}
			rp.ErrorCode = errCode(err)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if req.Acks == 0 {
		// No response; but a failed acks=0 produce closes the
		// connection, as Kafka does, so the client notices and
		// refreshes its metadata.
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 {
					return nil, errCloseConn
				}
			}
		}
		return nil, errNoResponse
	}
	if len(waits) > 0 {
		ctx, cancel := context.WithTimeout(b.ctx, requestTimeout(req.TimeoutMillis))
		defer cancel()
		for _, w := range waits {
			if err := w.rep.waitHW(ctx, w.end); err != nil {
				w.rp.ErrorCode = errCode(err)
			}
		}
	}
	return resp, nil
}
