package kcluster

// DeleteRecords v0-v2 (KIP-107): the leader advances the partition's log
// start offset to the given offset (-1: the high watermark) and deletes
// the segments wholly below it; followers follow the leader's log start
// from their next fetch (fetcher.go). The low watermark answered is the
// leader's new log start offset.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { reg(0, 2, (*broker).handleDeleteRecords) }

func (b *broker) handleDeleteRecords(req *kmsg.DeleteRecordsRequest, r *request) (*kmsg.DeleteRecordsResponse, error) {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewDeleteRecordsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewDeleteRecordsResponseTopicPartition()
			rp.Partition = p.Partition
			rp.LowWatermark = -1
			rep, err := b.lookupReplica(t.Topic, [16]byte{}, p.Partition)
			if err == nil && isInternalTopic(rep.topic) {
				err = kerr.PolicyViolation
			}
			if err == nil {
				rp.LowWatermark, err = rep.deleteRecords(p.Offset)
			}
			rp.ErrorCode = errCode(err)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// deleteRecords advances the leader's log start offset to offset (-1: the
// high watermark) and returns the new log start.
func (r *replica) deleteRecords(offset int64) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed || r.mu.leader != r.b.id {
		return -1, kerr.NotLeaderForPartition
	}
	if offset == -1 {
		offset = r.mu.hw
	}
	if offset < 0 || offset > r.mu.hw {
		return -1, kerr.OffsetOutOfRange
	}
	if err := r.log.DeleteBefore(offset); err != nil {
		r.b.log.Error("deleting records", "topic", r.topic, "partition", r.part, "err", err)
		return -1, kerr.KafkaStorageError
	}
	r.b.notifyData()
	return r.log.LogStartOffset(), nil
}
