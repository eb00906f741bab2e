package kcluster

// OffsetForLeaderEpoch v0-v4 (KIP-101, KIP-279, KIP-320): the leader answers
// with the largest epoch not above the requested one that it knows and that
// epoch's end offset, from its leader-epoch cache. Followers use it to
// truncate a diverged suffix before fetching; consumers to detect
// truncation. Only the leader answers; current leader epochs are checked.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { reg(0, 4, (*broker).handleOffsetForLeaderEpoch) }

func (b *broker) handleOffsetForLeaderEpoch(req *kmsg.OffsetForLeaderEpochRequest, r *request) (*kmsg.OffsetForLeaderEpochResponse, error) {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			rp.Partition = p.Partition
			rp.LeaderEpoch, rp.EndOffset = -1, -1
			rep, err := b.lookupPartition(t.Topic, [16]byte{}, p.Partition)
			if err == nil {
				err = rep.checkLeaderEpoch(p.CurrentLeaderEpoch)
			}
			if err == nil {
				rp.LeaderEpoch, rp.EndOffset = rep.log.EndOffsetForEpoch(p.LeaderEpoch)
			}
			rp.ErrorCode = errCode(err)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
