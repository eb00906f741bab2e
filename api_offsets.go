package kcluster

// OffsetCommit v0-v10 (v1 commit timestamps, v2-v4 retention time,
// KIP-320 leader epochs from v6, KIP-345 instance ids from v7, KIP-848
// member epochs from v9, topics named by id instead of name from v10),
// OffsetFetch v0-v10 (v2 top-level errors and all partitions with null
// topics, KIP-447 require-stable from v7, KIP-709 batched groups from v8,
// KIP-848 member epochs from v9, topics by id from v10) and OffsetDelete
// v0 (KIP-496). From v10 a topic id the metadata does not have is
// answered UNKNOWN_TOPIC_ID on each of its partitions, and a fetch of
// every topic names them by id (leaving out those deleted since), as
// Kafka 4.2. Offsets are OffsetCommitKey/OffsetCommitValue records in the
// group's __consumer_offsets partition, by topic name; a commit is
// answered once the high watermark covers it. OffsetFetch of an unknown
// group answers offset -1 with no error, as Kafka does.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	reg(0, 10, (*broker).handleOffsetCommit)
	reg(0, 10, (*broker).handleOffsetFetch)
	reg(0, 0, (*broker).handleOffsetDelete)
}

// topicExists reports whether the metadata has topic with partition p.
func (b *broker) topicPartitionExists(topic string, p int32) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t := b.mu.state.Topics[topic]
	return t != nil && p >= 0 && int(p) < len(t.Partitions)
}

// topicNamesByID returns the names of the topics ids name ("" for an id
// the metadata does not have).
func (b *broker) topicNamesByID(ids [][16]byte) []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]string, len(ids))
	for i, id := range ids {
		if t := b.mu.state.TopicsByID[id]; t != nil {
			out[i] = t.Name
		}
	}
	return out
}

// topicIDsByName returns the ids of the topics the metadata has.
func (b *broker) topicIDsByName() map[string][16]byte {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make(map[string][16]byte, len(b.mu.state.Topics))
	for name, t := range b.mu.state.Topics {
		out[name] = t.ID
	}
	return out
}

// partitionCodes are a request's error codes, by topic and partition
// index.
type partitionCodes [][]int16

func newPartitionCodes[T any](topics []T, partitions func(T) int) partitionCodes {
	codes := make(partitionCodes, len(topics))
	for i, t := range topics {
		codes[i] = make([]int16, partitions(t))
	}
	return codes
}

// fill sets code for every partition that has none yet.
func (codes partitionCodes) fill(code int16) {
	for i := range codes {
		for j := range codes[i] {
			if codes[i][j] == 0 {
				codes[i][j] = code
			}
		}
	}
}

func (b *broker) handleOffsetCommit(req *kmsg.OffsetCommitRequest, r *request) (*kmsg.OffsetCommitResponse, error) {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	codes := newPartitionCodes(req.Topics, func(t kmsg.OffsetCommitRequestTopic) int { return len(t.Partitions) })
	if req.Version == 0 {
		req.Generation, req.MemberID = -1, ""
	}
	if req.Version >= 10 {
		ids := make([][16]byte, len(req.Topics))
		for i, t := range req.Topics {
			ids[i] = t.TopicID
		}
		for i, name := range b.topicNamesByID(ids) {
			req.Topics[i].Topic = name
			if name == "" {
				for j := range codes[i] {
					codes[i][j] = kerr.UnknownTopicID.Code
				}
			}
		}
	}
	if req.Group == "" {
		codes.fill(kerr.InvalidGroupID.Code)
	} else {
		err := b.groups.withGroup(req.Group, func(gs *groupShard, g *group) error {
			now := time.Now()
			if g == nil {
				if req.Generation >= 0 {
					if req.Version >= 9 {
						return kerr.GroupIDNotFound
					}
					return kerr.IllegalGeneration
				}
				g = gs.getOrCreateLocked(req.Group)
			}
			if err := g.validateCommitLocked(req, false); err != nil {
				if g.isDeletable() {
					delete(gs.groups, g.name)
				}
				return err
			}
			var recs []kmsg.Record
			type at struct{ i, j int }
			var ats []at
			var entries []offsetEntry
			for i, t := range req.Topics {
				for j, p := range t.Partitions {
					if codes[i][j] != 0 {
						continue // an unknown topic id
					}
					if codes[i][j] = gs.commitCode(t.Topic, p.Partition, p.Metadata); codes[i][j] != 0 {
						continue
					}
					o := offsetEntry{offset: p.Offset, leaderEpoch: -1, commitTs: now.UnixMilli()}
					if req.Version >= 6 {
						o.leaderEpoch = p.LeaderEpoch
					}
					if p.Metadata != nil {
						o.metadata = *p.Metadata
					}
					if req.Version == 1 && p.Timestamp > 0 {
						o.commitTs = p.Timestamp
					}
					if req.Version >= 2 && req.Version <= 4 && req.RetentionTimeMillis > 0 {
						o.expireTs = o.commitTs + req.RetentionTimeMillis
					}
					recs = append(recs, offsetRecord(req.Group, t.Topic, p.Partition, o))
					ats = append(ats, at{i, j})
					entries = append(entries, o)
				}
			}
			if end, err := gs.c.appendLocked(recs, 0); err != nil {
				for _, a := range ats {
					codes[a.i][a.j] = errCode(err)
				}
			} else {
				for k, a := range ats {
					entries[k].recordOffset = end - int64(len(recs)-k)
					g.setOffset(req.Topics[a.i].Topic, req.Topics[a.i].Partitions[a.j].Partition, entries[k])
				}
			}
			if g.isDeletable() {
				delete(gs.groups, g.name)
			}
			return nil
		})
		if err != nil {
			codes.fill(errCode(err))
		}
		b.c.notifyEvent()
	}
	for i, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for j, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, codes[i][j]
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// commitCode is the error code of a commit to topic/p with metadata:
// the partition must exist and the metadata fit offset.metadata.max.bytes.
func (gs *groupShard) commitCode(topic string, p int32, metadata *string) int16 {
	switch {
	case !gs.gc.b.topicPartitionExists(topic, p):
		return kerr.UnknownTopicOrPartition.Code
	case metadata != nil && len(*metadata) > int(gs.gc.cfg.metadataMax):
		return kerr.OffsetMetadataTooLarge.Code
	}
	return 0
}

// validateCommitLocked checks a commit's member and generation (Kafka's
// validateOffsetCommit for classic and consumer groups).
func (g *group) validateCommitLocked(req *kmsg.OffsetCommitRequest, transactional bool) error {
	if g.kind == kindShare {
		return kerr.GroupIDNotFound // a share group has no committed offsets (Kafka: not a consumer group)
	}
	if g.kind == kindConsumer {
		if req.Generation < 0 && g.isEmptyState() {
			return nil
		}
		m := g.cg.members[req.MemberID]
		if m == nil {
			return kerr.UnknownMemberID
		}
		switch {
		case req.Generation > m.epoch:
			return kerr.FencedMemberEpoch
		case req.Generation < m.epoch && req.Generation != m.prevEpoch:
			// A commit at the epoch just before the member's current
			// one is accepted: its partitions did not change (a bump
			// that moved partitions would have kept the old epoch
			// until they were revoked).
			switch {
			case transactional:
				// TxnOffsetCommit has no STALE_MEMBER_EPOCH:
				// Kafka answers ILLEGAL_GENERATION, on which a
				// transactional consumer aborts and rejoins.
				return kerr.IllegalGeneration
			case req.Version >= 9:
				return kerr.StaleMemberEpoch
			}
			return kerr.UnsupportedVersion
		}
		return nil
	}
	if req.Generation < 0 && g.state == stateEmpty {
		return nil // a simple (admin) commit to an empty group
	}
	if req.Generation >= 0 || req.MemberID != "" || req.InstanceID != nil {
		m, code := g.checkMemberLocked(req.MemberID, req.InstanceID)
		if code != 0 {
			return kerr.ErrorForCode(code)
		}
		if req.Generation != g.generation {
			return kerr.IllegalGeneration
		}
		if g.state == stateStable || g.state == statePreparing {
			m.deadline = time.Now().Add(m.session)
		}
	} else if g.state != stateEmpty {
		return kerr.UnknownMemberID
	}
	if g.state == stateCompleting {
		return kerr.RebalanceInProgress
	}
	return nil
}

type fetchGroup struct {
	stable   bool // RequireStable (KIP-447)
	name     string
	memberID *string
	epoch    int32
	topics   []kmsg.OffsetFetchRequestGroupTopic // nil: all
}

func (b *broker) handleOffsetFetch(req *kmsg.OffsetFetchRequest, r *request) (*kmsg.OffsetFetchResponse, error) {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			if req.Version >= 10 {
				ids := make([][16]byte, len(rg.Topics))
				for i, t := range rg.Topics {
					ids[i] = t.TopicID
				}
				for i, name := range b.topicNamesByID(ids) {
					rg.Topics[i].Topic = name
				}
			}
			fg := fetchGroup{stable: req.RequireStable, name: rg.Group, memberID: rg.MemberID, epoch: rg.MemberEpoch, topics: rg.Topics}
			resp.Groups = append(resp.Groups, b.fetchOffsets(fg, req.Version))
		}
		return resp, nil
	}
	fg := fetchGroup{stable: req.RequireStable, name: req.Group, epoch: -1}
	if req.Topics != nil || req.Version < 2 {
		fg.topics = []kmsg.OffsetFetchRequestGroupTopic{}
		for _, t := range req.Topics {
			fg.topics = append(fg.topics, kmsg.OffsetFetchRequestGroupTopic{Topic: t.Topic, Partitions: t.Partitions})
		}
	}
	rg := b.fetchOffsets(fg, req.Version)
	if req.Version >= 2 {
		resp.ErrorCode = rg.ErrorCode
	}
	for _, t := range rg.Topics {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// fetchOffsets answers one group of an OffsetFetch. Group-level errors go
// in ErrorCode, and for v0-v1 also in every requested partition.
func (b *broker) fetchOffsets(fg fetchGroup, version int16) kmsg.OffsetFetchResponseGroup {
	rg := kmsg.NewOffsetFetchResponseGroup()
	rg.Group = fg.name
	partition := func(p int32, o *offsetEntry, code int16) kmsg.OffsetFetchResponseGroupTopicPartition {
		rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p, -1, -1, kmsg.StringPtr(""), code
		if o != nil {
			rp.Offset, rp.LeaderEpoch, rp.Metadata = o.offset, o.leaderEpoch, kmsg.StringPtr(o.metadata)
		}
		return rp
	}
	err := b.groups.withGroup(fg.name, func(gs *groupShard, g *group) error {
		if g != nil && g.kind == kindConsumer && fg.memberID != nil && version >= 9 {
			m := g.cg.members[*fg.memberID]
			if m == nil {
				return kerr.UnknownMemberID
			}
			if fg.epoch != m.epoch && fg.epoch != m.prevEpoch {
				return kerr.StaleMemberEpoch
			}
		}
		var offsets map[string]map[int32]offsetEntry
		if g != nil {
			offsets = g.offsets
		}
		unstable := func(topic string, p int32) int16 {
			if fg.stable && gs.pendingTxnOffsetLocked(fg.name, topic, p) {
				return kerr.UnstableOffsetCommit.Code
			}
			return 0
		}
		if fg.topics == nil {
			var ids map[string][16]byte
			if version >= 10 {
				ids = b.topicIDsByName()
			}
			for _, t := range sortedKeys(offsets) {
				rt := kmsg.NewOffsetFetchResponseGroupTopic()
				rt.Topic = t
				if version >= 10 {
					id, ok := ids[t]
					if !ok {
						continue // deleted since: it has no id to answer by
					}
					rt.TopicID = id
				}
				for _, p := range sortedKeys(offsets[t]) {
					o := offsets[t][p]
					rt.Partitions = append(rt.Partitions, partition(p, &o, unstable(t, p)))
				}
				rg.Topics = append(rg.Topics, rt)
			}
			return nil
		}
		for _, t := range fg.topics {
			rt := kmsg.NewOffsetFetchResponseGroupTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				if version >= 10 && t.Topic == "" {
					rt.Partitions = append(rt.Partitions, partition(p, nil, kerr.UnknownTopicID.Code))
					continue
				}
				var op *offsetEntry
				if o, ok := offsets[t.Topic][p]; ok {
					op = &o
				}
				rt.Partitions = append(rt.Partitions, partition(p, op, unstable(t.Topic, p)))
			}
			rg.Topics = append(rg.Topics, rt)
		}
		return nil
	})
	if err != nil {
		rg.ErrorCode = errCode(err)
		rg.Topics = nil
		if version < 2 {
			for _, t := range fg.topics {
				rt := kmsg.NewOffsetFetchResponseGroupTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rt.Partitions = append(rt.Partitions, partition(p, nil, rg.ErrorCode))
				}
				rg.Topics = append(rg.Topics, rt)
			}
		}
	}
	return rg
}

func (b *broker) handleOffsetDelete(req *kmsg.OffsetDeleteRequest, r *request) (*kmsg.OffsetDeleteResponse, error) {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	codes := newPartitionCodes(req.Topics, func(t kmsg.OffsetDeleteRequestTopic) int { return len(t.Partitions) })
	err := b.groups.withGroup(req.Group, func(gs *groupShard, g *group) error {
		if g == nil {
			return kerr.GroupIDNotFound
		}
		subscribed := map[string]bool{}
		if !g.isEmptyState() {
			if g.kind == kindClassic && g.protocolType != "consumer" {
				return kerr.NonEmptyGroup
			}
			for _, t := range g.subscribedTopicsLocked() {
				subscribed[t] = true
			}
		}
		var recs []kmsg.Record
		type at struct{ i, j int }
		var ats []at
		for i, t := range req.Topics {
			for j, p := range t.Partitions {
				if subscribed[t.Topic] {
					codes[i][j] = kerr.GroupSubscribedToTopic.Code
					continue
				}
				if _, ok := g.offsets[t.Topic][p.Partition]; ok {
					recs = append(recs, offsetTombstone(g.name, t.Topic, p.Partition))
					ats = append(ats, at{i, j})
				}
			}
		}
		if err := gs.writeLocked(recs); err != nil {
			return err
		}
		for _, a := range ats {
			g.deleteOffset(req.Topics[a.i].Topic, req.Topics[a.i].Partitions[a.j].Partition)
		}
		if g.isDeletable() {
			delete(gs.groups, g.name)
		}
		return nil
	})
	resp.ErrorCode = errCode(err)
	if err != nil {
		return resp, nil
	}
	for i, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for j, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, codes[i][j]
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
