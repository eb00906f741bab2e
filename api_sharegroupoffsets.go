package kcluster

// KIP-932 share-group offsets, served by the group's coordinator:
// DescribeShareGroupOffsets v0-v1 (v1: the lag, KIP-1226),
// AlterShareGroupOffsets v0 and DeleteShareGroupOffsets v0, Kafka 4.2's
// versions. Like Kafka's GroupCoordinatorService, the coordinator reads
// and changes the share-partitions' state through the persister
// (share_persister.go): a summary read for Describe; for Alter, a new
// state epoch at the given start offset, which fences the partition
// leaders' older state (their next write fails and they load it again);
// for Delete, the state is removed and the topic leaves the group's
// initialized partitions. The lag (high watermark - start offset - records
// done past it) is known when the coordinator holds a replica of the
// partition, from that replica's high watermark; -1 otherwise. Alter and Delete need the group empty
// (NON_EMPTY_GROUP), as in Kafka.

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	reg(0, 1, (*broker).handleDescribeShareGroupOffsets)
	reg(0, 0, (*broker).handleAlterShareGroupOffsets)
	reg(0, 0, (*broker).handleDeleteShareGroupOffsets)
}

func (b *broker) handleDescribeShareGroupOffsets(req *kmsg.DescribeShareGroupOffsetsRequest, r *request) (*kmsg.DescribeShareGroupOffsetsResponse, error) {
	resp := req.ResponseKind().(*kmsg.DescribeShareGroupOffsetsResponse)
	for _, rg := range req.Groups {
		g := kmsg.NewDescribeShareGroupOffsetsResponseGroup()
		g.GroupID = rg.GroupID
		if !b.shareEnabled() {
			g.ErrorCode = kerr.UnsupportedVersion.Code
			resp.Groups = append(resp.Groups, g)
			continue
		}
		var want map[string][]int32 // nil: every initialized partition
		if rg.Topics != nil {
			want = map[string][]int32{}
			for _, t := range rg.Topics {
				want[t.Topic] = append(want[t.Topic], t.Partitions...)
			}
		}
		err := b.groups.withGroup(rg.GroupID, func(gs *groupShard, gr *group) error {
			if gr != nil && gr.kind != kindShare {
				return kerr.GroupIDNotFound
			}
			if want == nil {
				want = map[string][]int32{}
				if gr != nil && gr.sg != nil {
					want = cloneAssignment(gr.sg.initialized)
				}
			}
			return nil
		})
		if err != nil {
			g.ErrorCode = errCode(err)
			resp.Groups = append(resp.Groups, g)
			continue
		}
		ids := b.topicIDsByName()
		for _, t := range sortedKeys(want) {
			rt := kmsg.NewDescribeShareGroupOffsetsResponseGroupTopic()
			rt.Topic = t
			id, ok := ids[t]
			rt.TopicID = id
			for _, p := range want[t] {
				rp := kmsg.NewDescribeShareGroupOffsetsResponseGroupTopicPartition()
				rp.Partition, rp.StartOffset, rp.LeaderEpoch, rp.Lag = p, -1, -1, -1
				hw := b.partitionHW(t, p)
				switch {
				case !ok || hw == -2:
					rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				default:
					_, start, done, err := b.shares.persister.readSummary(sharePartitionKey{rg.GroupID, id, p})
					if err != nil {
						rp.ErrorCode = errCode(err)
						break
					}
					rp.StartOffset = start
					if start >= 0 && hw >= 0 {
						rp.Lag = max(hw-start-done, 0)
					}
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			g.Topics = append(g.Topics, rt)
		}
		resp.Groups = append(resp.Groups, g)
	}
	return resp, nil
}

// partitionHW is the high watermark of this broker's replica of a
// partition (a follower's lags its leader's a little), -1 when the broker
// has none; -2 when the partition does not exist.
func (b *broker) partitionHW(topic string, p int32) int64 {
	b.mu.RLock()
	t := b.mu.state.Topics[topic]
	if t == nil || p < 0 || int(p) >= len(t.Partitions) {
		b.mu.RUnlock()
		return -2
	}
	rep := b.mu.replicas[tpKey{t.ID, p}]
	b.mu.RUnlock()
	if rep == nil {
		return -1
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	return rep.mu.hw
}

func (b *broker) handleAlterShareGroupOffsets(req *kmsg.AlterShareGroupOffsetsRequest, r *request) (*kmsg.AlterShareGroupOffsetsResponse, error) {
	resp := req.ResponseKind().(*kmsg.AlterShareGroupOffsetsResponse)
	if !b.shareEnabled() {
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		return resp, nil
	}
	ids := b.topicIDsByName()
	err := b.groups.withGroup(req.GroupID, func(gs *groupShard, g *group) error {
		switch {
		case g != nil && g.kind != kindShare && !g.isDeletable():
			return kerr.GroupIDNotFound
		case g != nil && !g.isEmptyState():
			return kerr.NonEmptyGroup
		}
		existed := g != nil
		var before *shareGroup
		if g != nil && g.sg != nil {
			before = g.sg.clone()
		}
		if g == nil {
			g = gs.getOrCreateLocked(req.GroupID)
		}
		if g.sg == nil {
			g.kind, g.sg = kindShare, newShareGroup()
		}
		for _, t := range req.Topics {
			rt := kmsg.NewAlterShareGroupOffsetsResponseTopic()
			rt.Topic = t.Topic
			id, ok := ids[t.Topic]
			rt.TopicID = id
			for _, p := range t.Partitions {
				rp := kmsg.NewAlterShareGroupOffsetsResponseTopicPartition()
				rp.Partition = p.Partition
				key := sharePartitionKey{req.GroupID, id, p.Partition}
				switch {
				case !ok || b.partitionHW(t.Topic, p.Partition) == -2:
					rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				case p.StartOffset < -1:
					rp.ErrorCode = kerr.InvalidRequest.Code
				default:
					epoch, _, _, err := b.shares.persister.readSummary(key)
					if err == nil {
						err = b.shares.persister.initializeState(key, epoch+1, p.StartOffset)
					}
					rp.ErrorCode = errCode(err)
					if err == nil && !slices.Contains(g.sg.initialized[t.Topic], p.Partition) {
						g.sg.initialized[t.Topic] = append(g.sg.initialized[t.Topic], p.Partition)
						slices.Sort(g.sg.initialized[t.Topic])
					}
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		if recs := shareGroupRecords(req.GroupID, before, g.sg, gs.topicIDs()); len(recs) > 0 {
			if err := gs.writeLocked(recs); err != nil {
				gs.restoreShareLocked(req.GroupID, existed, before)
				return err
			}
		}
		return nil
	})
	if err != nil {
		resp.ErrorCode, resp.Topics = errCode(err), nil
	}
	return resp, nil
}

func (b *broker) handleDeleteShareGroupOffsets(req *kmsg.DeleteShareGroupOffsetsRequest, r *request) (*kmsg.DeleteShareGroupOffsetsResponse, error) {
	resp := req.ResponseKind().(*kmsg.DeleteShareGroupOffsetsResponse)
	if !b.shareEnabled() {
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		return resp, nil
	}
	ids := b.topicIDsByName()
	err := b.groups.withGroup(req.GroupID, func(gs *groupShard, g *group) error {
		switch {
		case g == nil || g.kind != kindShare || g.sg == nil:
			return kerr.GroupIDNotFound
		case !g.isEmptyState():
			return kerr.NonEmptyGroup
		}
		before := g.sg.clone()
		for _, t := range req.Topics {
			rt := kmsg.NewDeleteShareGroupOffsetsResponseTopic()
			rt.Topic = t.Topic
			id, ok := ids[t.Topic]
			rt.TopicID = id
			if !ok {
				rt.ErrorCode = kerr.UnknownTopicOrPartition.Code
				resp.Topics = append(resp.Topics, rt)
				continue
			}
			for _, p := range g.sg.initialized[t.Topic] {
				if err := b.shares.persister.deleteState(sharePartitionKey{req.GroupID, id, p}); err != nil {
					rt.ErrorCode = errCode(err)
				}
			}
			delete(g.sg.initialized, t.Topic)
			resp.Topics = append(resp.Topics, rt)
		}
		if recs := shareGroupRecords(req.GroupID, before, g.sg, gs.topicIDs()); len(recs) > 0 {
			if err := gs.writeLocked(recs); err != nil {
				g.sg = before
				return err
			}
		}
		return nil
	})
	if err != nil {
		resp.ErrorCode, resp.Topics = errCode(err), nil
	}
	return resp, nil
}
