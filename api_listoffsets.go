package kcluster

// ListOffsets v1-v11: earliest (-2), latest (-1), max timestamp (-3, KIP-734,
// v7+), earliest local (-4, KIP-405, v8+), latest tiered (-5, KIP-1005,
// v9+) and earliest pending upload (-6, KIP-1023, v11+), both answered
// offset -1 and epoch -1 as Kafka answers them without tiered storage, and
// the first offset at or after a timestamp. A special timestamp sent below
// the version that added it, or any other negative one, is
// UNSUPPORTED_VERSION for its partition, and a partition named twice is
// INVALID_REQUEST for both (Kafka's ReplicaManager). v10's timeout (KIP-1075)
// bounds remote-storage lookups, which there are none of. Only the leader
// answers (NOT_LEADER_OR_FOLLOWER otherwise); KIP-320 leader epochs are
// checked. Offsets are bounded by the high watermark (read_uncommitted) or
// the last stable offset (read_committed).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/segment"
)

func init() { reg(1, 11, (*broker).handleListOffsets) }

// listOffsetsMinVersion is the version each special timestamp needs
// (Kafka's ReplicaManager timestampMinSupportedVersion).
var listOffsetsMinVersion = map[int64]int16{-1: 1, -2: 1, -3: 7, -4: 8, -5: 9, -6: 11}

func (b *broker) handleListOffsets(req *kmsg.ListOffsetsRequest, r *request) (*kmsg.ListOffsetsResponse, error) {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	type tp struct {
		topic string
		part  int32
	}
	named := map[tp]int{}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			named[tp{t.Topic, p.Partition}]++
		}
	}
	for _, t := range req.Topics {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition = p.Partition
			rp.Timestamp, rp.Offset, rp.LeaderEpoch = -1, -1, -1
			var rep *partition
			var err error
			if v, special := listOffsetsMinVersion[p.Timestamp]; named[tp{t.Topic, p.Partition}] > 1 {
				err = kerr.InvalidRequest
			} else if p.Timestamp < 0 && (!special || req.Version < v) {
				err = kerr.UnsupportedVersion
			} else if rep, err = b.lookupPartition(t.Topic, [16]byte{}, p.Partition); err == nil {
				err = rep.listOffset(&rp, p.Timestamp, p.CurrentLeaderEpoch, req.IsolationLevel == 1)
			}
			rp.ErrorCode = errCode(err)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func (r *partition) listOffset(rp *kmsg.ListOffsetsResponseTopicPartition, ts int64, currentEpoch int32, committed bool) error {
	r.mu.Lock()
	if err := r.checkLeaderEpochLocked(currentEpoch); err != nil {
		r.mu.Unlock()
		return err
	}
	epoch, limit := r.mu.epoch, r.mu.hw
	if committed {
		limit = r.lsoLocked()
	}
	r.mu.Unlock()
	switch ts {
	case -1: // latest
		rp.Offset, rp.LeaderEpoch = limit, epoch
	case -2, -4: // earliest, earliest local
		rp.Offset, rp.LeaderEpoch = r.log.LogStartOffset(), epoch
	case -5, -6: // latest tiered, earliest pending upload: nothing is tiered
	case -3: // max timestamp
		maxTS, _ := r.log.MaxTimestamp()
		if maxTS < 0 {
			return nil
		}
		return r.findTimestamp(rp, maxTS, limit, true)
	default:
		return r.findTimestamp(rp, ts, limit, false)
	}
	return nil
}

// findTimestamp finds the first record with a timestamp >= ts (or, exact,
// == ts: the max-timestamp lookup) below limit.
func (r *partition) findTimestamp(rp *kmsg.ListOffsetsResponseTopicPartition, ts, limit int64, exact bool) error {
	batch, found, err := r.log.OffsetForTimestamp(ts)
	if err != nil {
		return kerr.KafkaStorageError
	}
	for found {
		h, err := segment.ParseBatchHeader(batch)
		if err != nil || h.BaseOffset >= limit {
			return nil
		}
		if h.MaxTimestamp >= ts {
			var hit bool
			err = r.b.c.dec.forEachRecord(batch, func(off, rts int64) bool {
				if off >= limit {
					return false
				}
				if rts >= ts && (!exact || rts == ts) {
					rp.Offset, rp.Timestamp, rp.LeaderEpoch = off, rts, h.PartitionLeaderEpoch
					hit = true
					return false
				}
				return true
			})
			if err != nil {
				r.b.log.Warn("reading records for a timestamp lookup", "topic", r.topic, "partition", r.part, "err", err)
				return kerr.CorruptMessage
			}
			if hit {
				return nil
			}
		}
		// No record below the limit matched in this batch: go on with
		// the next one.
		next, err := r.log.Read(h.LastOffset()+1, 1, limit)
		if err != nil || len(next) == 0 {
			return nil
		}
		nh, err := segment.ParseBatchHeader(next)
		if err != nil {
			return nil
		}
		batch = next[:nh.TotalSize()]
	}
	return nil
}
