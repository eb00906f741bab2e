package kcluster

// The records of a share group in its __consumer_offsets partition, as
// Kafka's GroupCoordinatorRecordHelpers writes them for share groups
// (internal/grouprecords): ShareGroupMetadata (the group epoch),
// ShareGroupMemberMetadata (a member's subscription),
// ShareGroupTargetAssignmentMember and ShareGroupTargetAssignmentMetadata
// (the target and its epoch), ShareGroupCurrentMemberAssignment (a
// member's epoch and partitions) and ShareGroupStatePartitionMetadata (the
// partitions whose share state the group initialized). A change is written
// as the records that differ; a member that leaves, or a group deleted, is
// tombstoned. Also the records' replay.

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/internal/grouprecords"
)

func sgKey(typ int16, group, member string) []byte {
	return grouprecords.ShareKey{Type: typ, GroupID: group, MemberID: member}.AppendTo(nil)
}

func sgTombstone(typ int16, group, member string) kmsg.Record {
	return kmsg.Record{Key: sgKey(typ, group, member)}
}

func byTopicID(a map[string][]int32, ids map[string][16]byte) []grouprecords.TopicPartitions {
	out := []grouprecords.TopicPartitions{}
	for _, t := range sortedKeys(a) {
		if id, ok := ids[t]; ok && len(a[t]) > 0 {
			out = append(out, grouprecords.TopicPartitions{TopicID: id, Partitions: slices.Clone(a[t])})
		}
	}
	return out
}

// shareGroupRecords returns the records that take a share group from
// before (nil: it did not exist) to after (nil: deleted), in Kafka's order:
// member metadata, group epoch, target assignment, current assignments.
func shareGroupRecords(group string, before, after *shareGroup, ids map[string][16]byte) []kmsg.Record {
	if after == nil {
		if before == nil {
			return nil
		}
		return shareGroupTombstones(group, before)
	}
	if before == nil {
		before = &shareGroup{members: map[string]*sgMember{}, target: map[string]map[string][]int32{}, initialized: map[string][]int32{}, initializing: map[string][]int32{}, epoch: -1}
	}
	var recs []kmsg.Record
	for _, id := range sortedKeys(after.members) {
		m, o := after.members[id], before.members[id]
		if o == nil || !slices.Equal(m.topics, o.topics) || m.clientID != o.clientID || m.clientHost != o.clientHost || !sameStringPtr(m.rackID, o.rackID) {
			v := grouprecords.ShareGroupMemberMetadataValue{RackID: m.rackID, ClientID: m.clientID, ClientHost: m.clientHost, SubscribedTopicNames: slices.Clone(m.topics)}
			recs = append(recs, kmsg.Record{Key: sgKey(grouprecords.TypeShareGroupMemberMetadata, group, id), Value: v.AppendTo(nil)})
		}
	}
	for _, id := range sortedKeys(before.members) {
		if after.members[id] == nil {
			recs = append(recs,
				sgTombstone(grouprecords.TypeShareGroupCurrentMemberAssignment, group, id),
				sgTombstone(grouprecords.TypeShareGroupTargetAssignmentMember, group, id),
				sgTombstone(grouprecords.TypeShareGroupMemberMetadata, group, id))
		}
	}
	if after.epoch != before.epoch || after.metadataHash != before.metadataHash {
		v := grouprecords.ShareGroupMetadataValue{Epoch: after.epoch, MetadataHash: after.metadataHash}
		recs = append(recs, kmsg.Record{Key: sgKey(grouprecords.TypeShareGroupMetadata, group, ""), Value: v.AppendTo(nil)})
	}
	if !equalInitialized(after.initialized, before.initialized) || !equalInitialized(after.initializing, before.initializing) {
		v := grouprecords.ShareGroupStatePartitionMetadataValue{DeletingTopics: []grouprecords.ShareTopic{},
			InitializingTopics: topicPartitionsInfo(after.initializing, ids), InitializedTopics: topicPartitionsInfo(after.initialized, ids)}
		recs = append(recs, kmsg.Record{Key: sgKey(grouprecords.TypeShareGroupStatePartitionMetadata, group, ""), Value: v.AppendTo(nil)})
	}
	if after.assignmentEpoch != before.assignmentEpoch {
		for _, id := range sortedKeys(after.target) {
			if before.target[id] != nil && assignmentsEqual(before.target[id], after.target[id]) {
				continue
			}
			v := grouprecords.ShareGroupTargetAssignmentMemberValue{TopicPartitions: byTopicID(after.target[id], ids)}
			recs = append(recs, kmsg.Record{Key: sgKey(grouprecords.TypeShareGroupTargetAssignmentMember, group, id), Value: v.AppendTo(nil)})
		}
		v := grouprecords.ShareGroupTargetAssignmentMetadataValue{AssignmentEpoch: after.assignmentEpoch}
		recs = append(recs, kmsg.Record{Key: sgKey(grouprecords.TypeShareGroupTargetAssignmentMetadata, group, ""), Value: v.AppendTo(nil)})
	}
	for _, id := range sortedKeys(after.members) {
		m, o := after.members[id], before.members[id]
		if o != nil && o.epoch == m.epoch && o.prevEpoch == m.prevEpoch && assignmentsEqual(o.assigned, m.assigned) {
			continue
		}
		v := grouprecords.ShareGroupCurrentMemberAssignmentValue{MemberEpoch: m.epoch, PreviousMemberEpoch: m.prevEpoch,
			State: grouprecords.MemberStable, AssignedPartitions: byTopicID(m.assigned, ids)}
		recs = append(recs, kmsg.Record{Key: sgKey(grouprecords.TypeShareGroupCurrentMemberAssignment, group, id), Value: v.AppendTo(nil)})
	}
	return recs
}

func topicPartitionsInfo(a map[string][]int32, ids map[string][16]byte) []grouprecords.ShareTopicPartitions {
	out := []grouprecords.ShareTopicPartitions{}
	for _, t := range sortedKeys(a) {
		if id, ok := ids[t]; ok && len(a[t]) > 0 {
			out = append(out, grouprecords.ShareTopicPartitions{TopicID: id, TopicName: t, Partitions: slices.Clone(a[t])})
		}
	}
	return out
}

func sameStringPtr(a, b *string) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func equalInitialized(a, b map[string][]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for t, ps := range a {
		if !slices.Equal(ps, b[t]) {
			return false
		}
	}
	return true
}

// shareGroupTombstones deletes a share group: every member's records, the
// target, the state metadata and the group's epoch last.
func shareGroupTombstones(group string, sg *shareGroup) []kmsg.Record {
	var recs []kmsg.Record
	for _, id := range sortedKeys(sg.members) {
		recs = append(recs,
			sgTombstone(grouprecords.TypeShareGroupCurrentMemberAssignment, group, id),
			sgTombstone(grouprecords.TypeShareGroupTargetAssignmentMember, group, id),
			sgTombstone(grouprecords.TypeShareGroupMemberMetadata, group, id))
	}
	return append(recs,
		sgTombstone(grouprecords.TypeShareGroupTargetAssignmentMetadata, group, ""),
		sgTombstone(grouprecords.TypeShareGroupStatePartitionMetadata, group, ""),
		sgTombstone(grouprecords.TypeShareGroupMetadata, group, ""))
}

// replayShareRecord applies one share-group record while the shard loads.
func (gs *groupShard) replayShareRecord(key, value []byte) {
	var k grouprecords.ShareKey
	if k.ReadFrom(key) != nil {
		return
	}
	g := gs.groups[k.GroupID]
	if value == nil {
		if g == nil || g.sg == nil {
			return
		}
		sg := g.sg
		switch k.Type {
		case grouprecords.TypeShareGroupMetadata:
			delete(gs.groups, k.GroupID)
		case grouprecords.TypeShareGroupMemberMetadata:
			delete(sg.members, k.MemberID)
		case grouprecords.TypeShareGroupTargetAssignmentMember:
			delete(sg.target, k.MemberID)
		case grouprecords.TypeShareGroupStatePartitionMetadata:
			sg.initialized, sg.initializing = map[string][]int32{}, map[string][]int32{}
		}
		return
	}
	if g == nil {
		g = gs.getOrCreateLocked(k.GroupID)
	}
	if g.kind != kindShare || g.sg == nil {
		g.kind, g.sg = kindShare, newShareGroup()
	}
	sg := g.sg
	member := func() *sgMember {
		m := sg.members[k.MemberID]
		if m == nil {
			m = &sgMember{id: k.MemberID, assigned: map[string][]int32{}}
			sg.members[k.MemberID] = m
		}
		return m
	}
	switch k.Type {
	case grouprecords.TypeShareGroupMetadata:
		var v grouprecords.ShareGroupMetadataValue
		if v.ReadFrom(value) == nil {
			sg.epoch, sg.metadataHash = v.Epoch, v.MetadataHash
		}
	case grouprecords.TypeShareGroupMemberMetadata:
		var v grouprecords.ShareGroupMemberMetadataValue
		if v.ReadFrom(value) == nil {
			m := member()
			m.rackID, m.clientID, m.clientHost, m.topics = v.RackID, v.ClientID, v.ClientHost, v.SubscribedTopicNames
		}
	case grouprecords.TypeShareGroupTargetAssignmentMetadata:
		var v grouprecords.ShareGroupTargetAssignmentMetadataValue
		if v.ReadFrom(value) == nil {
			sg.assignmentEpoch = v.AssignmentEpoch
		}
	case grouprecords.TypeShareGroupTargetAssignmentMember:
		var v grouprecords.ShareGroupTargetAssignmentMemberValue
		if v.ReadFrom(value) == nil {
			sg.target[k.MemberID] = gs.topicPartitionsByName(v.TopicPartitions)
		}
	case grouprecords.TypeShareGroupCurrentMemberAssignment:
		var v grouprecords.ShareGroupCurrentMemberAssignmentValue
		if v.ReadFrom(value) == nil {
			m := member()
			m.epoch, m.prevEpoch = v.MemberEpoch, v.PreviousMemberEpoch
			m.assigned = gs.topicPartitionsByName(v.AssignedPartitions)
		}
	case grouprecords.TypeShareGroupStatePartitionMetadata:
		var v grouprecords.ShareGroupStatePartitionMetadataValue
		if v.ReadFrom(value) == nil {
			sg.initialized, sg.initializing = map[string][]int32{}, map[string][]int32{}
			for _, t := range v.InitializedTopics {
				sg.initialized[t.TopicName] = slices.Clone(t.Partitions)
			}
			for _, t := range v.InitializingTopics {
				sg.initializing[t.TopicName] = slices.Clone(t.Partitions)
			}
		}
	}
}

// onLoadedShareLocked starts the loaded share groups' member sessions.
func (gs *groupShard) onLoadedShareLocked() {
	now := gs.now
	for _, g := range gs.groups {
		if g.sg == nil {
			continue
		}
		for _, m := range g.sg.members {
			m.deadline = now.Add(gs.gc.cfg.shareSession)
		}
		g.updateShareStateLocked(now)
	}
}

// shareSubscriptionHash is the hash of the metadata of the topics the
// group's members subscribe to (KIP-1101).
func (gs *groupShard) shareSubscriptionHash(sg *shareGroup) int64 {
	b := gs.gc.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	seen := map[string]bool{}
	for _, m := range sg.members {
		for _, t := range m.topics {
			seen[t] = true
		}
	}
	return topicsHash(b.mu.state, sortedKeys(seen))
}

// assignShareLocked recomputes the target assignment at the group epoch.
// Only partitions whose share-partition state the group initialized are
// assigned (Kafka's SubscribedTopicDescriber for share groups sees only
// those), and each member's current target is the assignor's starting
// point, so the simple assignor keeps it.
func (gs *groupShard) assignShareLocked(sg *shareGroup) {
	b := gs.gc.b
	b.mu.RLock()
	subs := map[string][]string{}
	parts := map[string][]int32{}
	for id, m := range sg.members {
		for _, t := range m.topics {
			if tt := b.mu.state.Topics[t]; tt != nil {
				subs[id] = append(subs[id], t)
				var ps []int32
				for _, p := range sg.initialized[t] {
					if int(p) < len(tt.Partitions) {
						ps = append(ps, p)
					}
				}
				parts[t] = ps
			}
		}
	}
	b.mu.RUnlock()
	current := map[string]map[string][]int32{}
	for id := range sg.members {
		current[id] = sg.target[id]
	}
	sg.target = assignShareSimple(subs, parts, current)
	for id := range sg.members {
		if sg.target[id] == nil {
			sg.target[id] = map[string][]int32{}
		}
	}
	sg.assignmentEpoch = sg.epoch
}
