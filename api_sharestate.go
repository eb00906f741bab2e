package kcluster

// The share coordinator's state RPCs (KIP-932, inter-broker: a partition
// leader's or the group coordinator's persister sends them,
// share_persister.go): InitializeShareGroupState v0,
// ReadShareGroupState v0, WriteShareGroupState v0-1 (v1: KIP-1226's
// DeliveryCompleteCount, which kcluster's coordinator recomputes from the
// state batches rather than keeping), DeleteShareGroupState v0 and
// ReadShareGroupStateSummary v0-1 (v1: DeliveryCompleteCount). Each
// share-partition is answered by the shard of its __share_group_state
// partition (share_coordinator.go), once what it wrote is committed;
// NOT_COORDINATOR on a broker that does not lead it,
// COORDINATOR_LOAD_IN_PROGRESS while it loads. Authorized as
// CLUSTER_ACTION (brokers only), the rule of a key without one.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	reg(0, 0, (*broker).handleInitializeShareGroupState)
	reg(0, 0, (*broker).handleReadShareGroupState)
	reg(0, 1, (*broker).handleWriteShareGroupState)
	reg(0, 0, (*broker).handleDeleteShareGroupState)
	reg(0, 1, (*broker).handleReadShareGroupStateSummary)
}

// onShareShard runs fn on the shard of key's share coordinator partition.
func (b *broker) onShareShard(key sharePartitionKey, fn func(s *shareShard) error) error {
	return b.shareCoord.rt.runFor(shareCoordinatorKey(key), fn)
}

func (b *broker) handleInitializeShareGroupState(req *kmsg.InitializeShareGroupStateRequest, _ *request) (*kmsg.InitializeShareGroupStateResponse, error) {
	resp := req.ResponseKind().(*kmsg.InitializeShareGroupStateResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewInitializeShareGroupStateResponseTopic()
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			key := sharePartitionKey{req.GroupID, t.TopicID, p.Partition}
			err := b.onShareShard(key, func(s *shareShard) error { return s.initialize(key, p.StateEpoch, p.StartOffset) })
			rp := kmsg.NewInitializeShareGroupStateResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, errCode(err)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func (b *broker) handleReadShareGroupState(req *kmsg.ReadShareGroupStateRequest, _ *request) (*kmsg.ReadShareGroupStateResponse, error) {
	resp := req.ResponseKind().(*kmsg.ReadShareGroupStateResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewReadShareGroupStateResponseTopic()
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			key := sharePartitionKey{req.GroupID, t.TopicID, p.Partition}
			var st shareState
			err := b.onShareShard(key, func(s *shareShard) (err error) {
				st, err = s.read(key, p.LeaderEpoch)
				return err
			})
			rp := kmsg.NewReadShareGroupStateResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, errCode(err)
			if err == nil {
				rp.StateEpoch, rp.StartOffset = st.stateEpoch, st.startOffset
				for _, sb := range st.batches {
					b := kmsg.NewReadShareGroupStateResponseTopicPartitionStateBatch()
					b.FirstOffset, b.LastOffset, b.DeliveryState, b.DeliveryCount = sb.first, sb.last, sb.state, sb.count
					rp.StateBatches = append(rp.StateBatches, b)
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func (b *broker) handleWriteShareGroupState(req *kmsg.WriteShareGroupStateRequest, _ *request) (*kmsg.WriteShareGroupStateResponse, error) {
	resp := req.ResponseKind().(*kmsg.WriteShareGroupStateResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewWriteShareGroupStateResponseTopic()
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			key := sharePartitionKey{req.GroupID, t.TopicID, p.Partition}
			w := shareState{stateEpoch: p.StateEpoch, leaderEpoch: p.LeaderEpoch, startOffset: p.StartOffset}
			for _, sb := range p.StateBatches {
				w.batches = append(w.batches, shareStateBatch{first: sb.FirstOffset, last: sb.LastOffset, state: sb.DeliveryState, count: sb.DeliveryCount})
			}
			err := b.onShareShard(key, func(s *shareShard) error { return s.write(key, w) })
			rp := kmsg.NewWriteShareGroupStateResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, errCode(err)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func (b *broker) handleDeleteShareGroupState(req *kmsg.DeleteShareGroupStateRequest, _ *request) (*kmsg.DeleteShareGroupStateResponse, error) {
	resp := req.ResponseKind().(*kmsg.DeleteShareGroupStateResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewDeleteShareGroupStateResponseTopic()
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			key := sharePartitionKey{req.GroupID, t.TopicID, p.Partition}
			err := b.onShareShard(key, func(s *shareShard) error { return s.remove(key) })
			rp := kmsg.NewDeleteShareGroupStateResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, errCode(err)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func (b *broker) handleReadShareGroupStateSummary(req *kmsg.ReadShareGroupStateSummaryRequest, _ *request) (*kmsg.ReadShareGroupStateSummaryResponse, error) {
	resp := req.ResponseKind().(*kmsg.ReadShareGroupStateSummaryResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewReadShareGroupStateSummaryResponseTopic()
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			key := sharePartitionKey{req.GroupID, t.TopicID, p.Partition}
			rp := kmsg.NewReadShareGroupStateSummaryResponseTopicPartition()
			rp.Partition = p.Partition
			var done int64
			err := b.onShareShard(key, func(s *shareShard) error {
				rp.StateEpoch, rp.LeaderEpoch, rp.StartOffset, done = s.summary(key)
				return nil
			})
			rp.ErrorCode = errCode(err)
			if req.Version >= 1 && err == nil {
				rp.DeliveryCompleteCount = int32(min(done, 1<<31-1))
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
