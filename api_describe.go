package kcluster

// DescribeTopicPartitions v0 (KIP-966, with its response partition
// limit, capped at 2000 as Kafka's max.request.partition.size.limit, and
// its cursor, as Kafka's DescribeTopicPartitionsRequestHandler, and the
// partitions' eligible leader replicas and last known ELR).

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

func init() {
	reg(0, 0, (*broker).handleDescribeTopicPartitions)
}

func (b *broker) handleDescribeTopicPartitions(req *kmsg.DescribeTopicPartitionsRequest, r *request) (*kmsg.DescribeTopicPartitionsResponse, error) {
	resp := req.ResponseKind().(*kmsg.DescribeTopicPartitionsResponse)
	limit := max(min(2000, int(req.ResponsePartitionLimit)), 1)
	cursorTopic := ""
	if req.Cursor != nil {
		cursorTopic = req.Cursor.Topic
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	st := b.mu.state
	var names []string
	if len(req.Topics) == 0 {
		names = st.TopicNames()
	} else {
		for _, t := range req.Topics {
			names = append(names, t.Topic)
		}
		slices.Sort(names)
		names = slices.Compact(names)
	}
	names = slices.DeleteFunc(names, func(n string) bool { return n < cursorTopic })
	// A cursor must name a listed topic and a partition >= 0; Kafka
	// refuses the request otherwise, each named topic with
	// INVALID_REQUEST.
	if req.Cursor != nil && (req.Cursor.Partition < 0 || (len(req.Topics) > 0 && !slices.Contains(names, cursorTopic))) {
		for _, t := range req.Topics {
			rt := kmsg.NewDescribeTopicPartitionsResponseTopic()
			rt.Topic, rt.ErrorCode = kmsg.StringPtr(t.Topic), kerr.InvalidRequest.Code
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	}
	remaining := limit
	for _, name := range names {
		if remaining == 0 {
			// The previous topics filled the response: the next
			// one starts the next page.
			resp.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: name, Partition: 0}
			break
		}
		rt := kmsg.NewDescribeTopicPartitionsResponseTopic()
		rt.Topic = kmsg.StringPtr(name)
		rt.AuthorizedOperations = -2147483648
		rt.IsInternal = isInternalTopic(name)
		t := st.Topics[name]
		if t == nil {
			if len(req.Topics) > 0 { // an every-topic request lists what exists
				rt.ErrorCode = kerr.UnknownTopicOrPartition.Code
				if !metadata.ValidTopicName(name) {
					rt.ErrorCode = kerr.InvalidTopicException.Code
				}
				resp.Topics = append(resp.Topics, rt)
			}
			continue
		}
		rt.TopicID = t.ID
		start := 0
		if req.Cursor != nil && name == cursorTopic {
			start = min(int(req.Cursor.Partition), len(t.Partitions))
		}
		end := min(len(t.Partitions), start+remaining)
		for _, p := range t.Partitions[start:end] {
			rp := kmsg.NewDescribeTopicPartitionsResponseTopicPartition()
			rp.Partition, rp.LeaderID, rp.LeaderEpoch = p.Partition, p.Leader, p.LeaderEpoch
			if st.Brokers[p.Leader] == nil {
				rp.LeaderID = -1 // Kafka answers no error for a partition without a leader
			}
			rp.Replicas, rp.ISR = slices.Clone(p.Replicas), slices.Clone(p.ISR)
			// KIP-966: empty unless eligible.leader.replicas.version
			// is 1 and the ISR is below min.insync.replicas.
			rp.EligibleLeaderReplicas = append([]int32{}, p.ELR...)
			rp.LastKnownELR = append([]int32{}, p.LastKnownELR...)
			rp.OfflineReplicas = []int32{}
			for _, id := range p.Replicas {
				if st.ReplicaOffline(p, id) {
					rp.OfflineReplicas = append(rp.OfflineReplicas, id)
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
		if end < len(t.Partitions) {
			resp.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: name, Partition: int32(end)}
			break
		}
		remaining -= end - start
	}
	return resp, nil
}
