package kcluster

// KIP-848 consumer groups in __consumer_offsets: the records written when
// a consumer group's persisted state changes, and their replay when a new
// coordinator loads the partition (Kafka's GroupMetadataManager, with the
// records of GroupCoordinatorRecordHelpers; their bytes are in package
// internal/grouprecords). Kafka 4.2 writes, and so does kcluster:
//
//   - ConsumerGroupMemberMetadata (type 5): a member joins, or its
//     subscription (names, regex), assignor, rack, instance id, client,
//     or rebalance timeout changes; a tombstone when it leaves, is
//     fenced, or is replaced by its static successor.
//   - ConsumerGroupMetadata (type 3): a new group epoch, with the hash of
//     the subscribed topics' metadata (KIP-1101); a tombstone when the
//     group is deleted.
//   - ConsumerGroupTargetAssignmentMember (type 7): a member's target
//     assignment changes; a tombstone when it leaves.
//   - ConsumerGroupTargetAssignmentMetadata (type 6): a new target
//     assignment epoch; a tombstone when the group is deleted.
//   - ConsumerGroupCurrentMemberAssignment (type 8): a member's epoch,
//     previous epoch, state or assigned or revoking partitions change
//     (epoch -2 when a static member leaves for a restart); a tombstone
//     when it leaves.
//   - ConsumerGroupPartitionMetadata (type 4): replaced by the hash since
//     Kafka 4.1; only its tombstone is written, when the group is
//     deleted.
//
// Kafka also writes ConsumerGroupRegularExpression (type 16) records with
// the topics its asynchronous regex resolution found; kcluster resolves a
// subscription regex against the metadata whenever it assigns, so it has
// none to write.
//
// A change is made in memory first, as Kafka's handlers build their
// records from the state they compute; persistConsumerLocked then writes
// the records of the difference, in Kafka's order (a leaving member's
// tombstones, member metadata, group epoch, target assignment, its epoch,
// current assignments), and the caller restores the snapshot if they
// cannot be appended. Assignments are kept by topic name in memory and
// written by topic id, as Kafka writes them.

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/internal/grouprecords"
	"github.com/kcluster/kcluster/internal/invariants"
)

// groupSnapshot is a group as it was before a change, to write the
// change's records and to undo it.
type groupSnapshot struct {
	name  string
	g     *group // nil: the group did not exist
	saved group  // *g as it was, with a copy of its consumer group
}

func (gs *groupShard) snapshotLocked(name string) groupSnapshot {
	s := groupSnapshot{name: name, g: gs.groups[name]}
	if s.g != nil {
		s.saved = *s.g
		s.saved.cg = s.g.cg.clone()
	}
	return s
}

// restoreLocked undoes everything done to the group since s was taken.
func (gs *groupShard) restoreLocked(s groupSnapshot) {
	if s.g == nil {
		delete(gs.groups, s.name)
		return
	}
	*s.g = s.saved
	gs.groups[s.name] = s.g
}

// persistConsumerLocked appends the records of what changed in the group
// since s was taken: a classic group's tombstone if it became a consumer
// group, then the consumer group's records. The caller restores s if it
// fails.
func (gs *groupShard) persistConsumerLocked(s groupSnapshot) error {
	var before, after *consumerGroup
	var recs []kmsg.Record
	g := gs.groups[s.name]
	if s.g != nil {
		before = s.saved.cg
		if s.saved.kind == kindClassic && g != nil && g.kind == kindConsumer {
			recs = append(recs, groupTombstone(s.name))
		}
	}
	if g != nil {
		after = g.cg
	}
	recs = append(recs, consumerGroupRecords(s.name, before, after, gs.topicIDs)...)
	if err := gs.writeLocked(recs); err != nil {
		return err
	}
	if invariants.Enabled {
		if msg := gs.checkRecordsLocked(s.name, before, after, recs); msg != "" {
			gs.gc.b.c.invariantViolated(msg)
		}
	}
	return nil
}

// checkRecordsLocked replays recs onto a copy of before, as a new
// coordinator would, and returns how the result differs from after (""
// if it does not): the records of a change must rebuild it.
func (gs *groupShard) checkRecordsLocked(name string, before, after *consumerGroup, recs []kmsg.Record) string {
	scratch := &groupShard{gc: gs.gc, now: gs.now, groups: map[string]*group{}}
	if before != nil {
		g := newGroup(name, gs.now)
		g.kind, g.cg = kindConsumer, before.clone()
		scratch.groups[name] = g
	}
	for _, r := range recs {
		if t, ok := grouprecords.Type(r.Key); ok && grouprecords.Known(t) {
			scratch.replayConsumerRecord(r.Key, r.Value)
		}
	}
	var got *consumerGroup
	if g := scratch.groups[name]; g != nil {
		got = g.cg
	}
	if diff := diffPersisted(got, after, gs.topicIDs()); diff != "" {
		return "consumer group " + name + ": its records rebuild a different group: " + diff
	}
	return ""
}

// diffPersisted describes how two consumer groups differ in what their
// records hold, assignments of topics that have no id (deleted) aside.
func diffPersisted(a, b *consumerGroup, ids map[string][16]byte) string {
	if (a == nil) != (b == nil) {
		return fmt.Sprintf("one is deleted (%v, %v)", a == nil, b == nil)
	}
	if a == nil {
		return ""
	}
	known := func(m map[string][]int32) map[string][]int32 {
		out := map[string][]int32{}
		for t, ps := range m {
			if _, ok := ids[t]; ok {
				out[t] = ps
			}
		}
		return out
	}
	if a.epoch != b.epoch || a.assignmentEpoch != b.assignmentEpoch || a.metadataHash != b.metadataHash {
		return fmt.Sprintf("epochs %d/%d hash %x, want %d/%d hash %x", a.epoch, a.assignmentEpoch, a.metadataHash, b.epoch, b.assignmentEpoch, b.metadataHash)
	}
	if !slices.Equal(sortedKeys(a.members), sortedKeys(b.members)) {
		return fmt.Sprintf("members %v, want %v", sortedKeys(a.members), sortedKeys(b.members))
	}
	for id, m := range a.members {
		o := b.members[id]
		if !sameMemberMetadata(m, o) {
			return fmt.Sprintf("member %s: metadata %+v, want %+v", id, m, o)
		}
		if m.epoch != o.epoch || m.prevEpoch != o.prevEpoch || m.state != o.state ||
			!assignmentsEqual(known(m.assigned), known(o.assigned)) || !assignmentsEqual(known(m.revoking), known(o.revoking)) {
			return fmt.Sprintf("member %s: epoch %d/%d state %d assigned %v revoking %v, want %d/%d state %d assigned %v revoking %v",
				id, m.epoch, m.prevEpoch, m.state, m.assigned, m.revoking, o.epoch, o.prevEpoch, o.state, o.assigned, o.revoking)
		}
	}
	for _, id := range sortedKeys(b.target) {
		if !assignmentsEqual(known(a.target[id]), known(b.target[id])) {
			return fmt.Sprintf("target of %s: %v, want %v", id, a.target[id], b.target[id])
		}
	}
	for _, id := range sortedKeys(a.target) {
		if _, ok := b.target[id]; !ok && len(known(a.target[id])) > 0 {
			return fmt.Sprintf("target of %s: %v, want none", id, a.target[id])
		}
	}
	return ""
}

// clone is a deep copy of the consumer group (nil for nil).
func (cg *consumerGroup) clone() *consumerGroup {
	if cg == nil {
		return nil
	}
	c := *cg
	c.members = make(map[string]*cgMember, len(cg.members))
	for id, m := range cg.members {
		mc := *m
		mc.topics = slices.Clone(m.topics)
		mc.assigned, mc.revoking = cloneAssignment(m.assigned), cloneAssignment(m.revoking)
		c.members[id] = &mc
	}
	c.target = make(map[string]map[string][]int32, len(cg.target))
	for id, a := range cg.target {
		c.target[id] = cloneAssignment(a)
	}
	return &c
}

func cloneAssignment(a map[string][]int32) map[string][]int32 {
	if a == nil {
		return nil
	}
	out := make(map[string][]int32, len(a))
	for t, ps := range a {
		out[t] = slices.Clone(ps)
	}
	return out
}

func cgKey(typ int16, group, member string) []byte {
	return grouprecords.Key{Type: typ, GroupID: group, MemberID: member}.AppendTo(nil)
}

func cgTombstone(typ int16, group, member string) kmsg.Record {
	return kmsg.Record{Key: cgKey(typ, group, member)}
}

// consumerGroupRecords are the records that turn before into after (nil
// for no consumer group). ids gives topic ids by name, asked for only
// when an assignment is written.
func consumerGroupRecords(group string, before, after *consumerGroup, ids func() map[string][16]byte) []kmsg.Record {
	if before == nil && after == nil {
		return nil
	}
	if after == nil {
		return consumerGroupTombstones(group, before)
	}
	if before == nil {
		before = newConsumerGroup()
	}
	var idMap map[string][16]byte
	tps := func(a map[string][]int32) []grouprecords.TopicPartitions {
		if idMap == nil {
			idMap = ids()
		}
		out := []grouprecords.TopicPartitions{}
		for _, t := range sortedKeys(a) {
			id, ok := idMap[t]
			if !ok || len(a[t]) == 0 {
				continue // deleted since
			}
			out = append(out, grouprecords.TopicPartitions{TopicID: id, Partitions: slices.Sorted(slices.Values(a[t]))})
		}
		return out
	}
	var recs []kmsg.Record
	// Members gone: current assignment, target and member tombstones,
	// in that order (Kafka's removeMember).
	for _, id := range sortedKeys(before.members) {
		if after.members[id] == nil {
			recs = append(recs,
				cgTombstone(grouprecords.TypeConsumerGroupCurrentMemberAssignment, group, id),
				cgTombstone(grouprecords.TypeConsumerGroupTargetAssignmentMember, group, id),
				cgTombstone(grouprecords.TypeConsumerGroupMemberMetadata, group, id))
		}
	}
	memberIDs := sortedKeys(after.members)
	for _, id := range memberIDs {
		if m, o := after.members[id], before.members[id]; o == nil || !sameMemberMetadata(m, o) {
			recs = append(recs, kmsg.Record{Key: cgKey(grouprecords.TypeConsumerGroupMemberMetadata, group, id), Value: memberMetadataValue(m)})
		}
	}
	if after.epoch != before.epoch || after.metadataHash != before.metadataHash {
		v := grouprecords.ConsumerGroupMetadataValue{Epoch: after.epoch, MetadataHash: after.metadataHash}
		recs = append(recs, kmsg.Record{Key: cgKey(grouprecords.TypeConsumerGroupMetadata, group, ""), Value: v.AppendTo(nil)})
	}
	for _, id := range sortedKeys(after.target) {
		a := after.target[id]
		if b, had := before.target[id]; had && assignmentsEqual(a, b) {
			continue
		}
		v := grouprecords.ConsumerGroupTargetAssignmentMemberValue{TopicPartitions: tps(a)}
		recs = append(recs, kmsg.Record{Key: cgKey(grouprecords.TypeConsumerGroupTargetAssignmentMember, group, id), Value: v.AppendTo(nil)})
	}
	for _, id := range sortedKeys(before.target) {
		if _, ok := after.target[id]; !ok && after.members[id] != nil {
			recs = append(recs, cgTombstone(grouprecords.TypeConsumerGroupTargetAssignmentMember, group, id))
		}
	}
	if after.assignmentEpoch != before.assignmentEpoch {
		v := grouprecords.ConsumerGroupTargetAssignmentMetadataValue{AssignmentEpoch: after.assignmentEpoch}
		recs = append(recs, kmsg.Record{Key: cgKey(grouprecords.TypeConsumerGroupTargetAssignmentMetadata, group, ""), Value: v.AppendTo(nil)})
	}
	for _, id := range memberIDs {
		m, o := after.members[id], before.members[id]
		if o != nil && m.epoch == o.epoch && m.prevEpoch == o.prevEpoch && m.state == o.state &&
			assignmentsEqual(m.assigned, o.assigned) && assignmentsEqual(m.revoking, o.revoking) {
			continue
		}
		v := grouprecords.ConsumerGroupCurrentMemberAssignmentValue{
			MemberEpoch: m.epoch, PreviousMemberEpoch: m.prevEpoch, State: m.state,
			AssignedPartitions: tps(m.assigned), PartitionsPendingRevocation: tps(m.revoking),
		}
		recs = append(recs, kmsg.Record{Key: cgKey(grouprecords.TypeConsumerGroupCurrentMemberAssignment, group, id), Value: v.AppendTo(nil)})
	}
	return recs
}

// consumerGroupTombstones delete the consumer group, in Kafka's order
// (ConsumerGroup.createGroupTombstoneRecords).
func consumerGroupTombstones(group string, cg *consumerGroup) []kmsg.Record {
	ids := sortedKeys(cg.members)
	var recs []kmsg.Record
	for _, id := range ids {
		recs = append(recs, cgTombstone(grouprecords.TypeConsumerGroupCurrentMemberAssignment, group, id))
	}
	for _, id := range ids {
		recs = append(recs, cgTombstone(grouprecords.TypeConsumerGroupTargetAssignmentMember, group, id))
	}
	recs = append(recs, cgTombstone(grouprecords.TypeConsumerGroupTargetAssignmentMetadata, group, ""))
	for _, id := range ids {
		recs = append(recs, cgTombstone(grouprecords.TypeConsumerGroupMemberMetadata, group, id))
	}
	return append(recs,
		cgTombstone(grouprecords.TypeConsumerGroupPartitionMetadata, group, ""),
		cgTombstone(grouprecords.TypeConsumerGroupMetadata, group, ""))
}

func sameMemberMetadata(a, b *cgMember) bool {
	eq := func(x, y *string) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return eq(a.instanceID, b.instanceID) && eq(a.rackID, b.rackID) && eq(a.regex, b.regex) &&
		a.clientID == b.clientID && a.clientHost == b.clientHost && slices.Equal(a.topics, b.topics) &&
		a.assignor == b.assignor && a.rebalance == b.rebalance
}

func memberMetadataValue(m *cgMember) []byte {
	v := grouprecords.ConsumerGroupMemberMetadataValue{
		InstanceID: m.instanceID, RackID: m.rackID, ClientID: m.clientID, ClientHost: m.clientHost,
		SubscribedTopicNames: slices.Clone(m.topics), SubscribedTopicRegex: m.regex,
		RebalanceTimeoutMillis: int32(m.rebalance.Milliseconds()),
	}
	if v.SubscribedTopicNames == nil {
		v.SubscribedTopicNames = []string{}
	}
	if m.assignor != "" {
		v.ServerAssignor = kmsg.StringPtr(m.assignor)
	}
	return v.AppendTo(nil)
}

// replayConsumerRecord applies one consumer-group record of the
// partition (Kafka's GroupMetadataManager.replay). A record that does not
// decode is skipped, as any record this coordinator does not know.
func (gs *groupShard) replayConsumerRecord(key, value []byte) {
	var k grouprecords.Key
	if k.ReadFrom(key) != nil {
		return
	}
	g := gs.groups[k.GroupID]
	if value == nil {
		if g == nil || g.cg == nil {
			return
		}
		cg := g.cg
		switch k.Type {
		case grouprecords.TypeConsumerGroupMetadata:
			g.cg, g.kind = nil, kindClassic
			g.setState(stateEmpty, gs.now)
			if g.isDeletable() {
				delete(gs.groups, k.GroupID)
			}
		case grouprecords.TypeConsumerGroupMemberMetadata:
			delete(cg.members, k.MemberID)
		case grouprecords.TypeConsumerGroupTargetAssignmentMember:
			delete(cg.target, k.MemberID)
		case grouprecords.TypeConsumerGroupCurrentMemberAssignment:
			if m := cg.members[k.MemberID]; m != nil {
				m.epoch, m.assigned, m.revoking = leaveEpoch, map[string][]int32{}, map[string][]int32{}
			}
		}
		return
	}
	if g == nil {
		g = newGroup(k.GroupID, gs.now)
		gs.groups[k.GroupID] = g
	}
	if g.kind == kindClassic {
		g.resetClassic(gs.now)
		g.kind = kindConsumer
	}
	if g.cg == nil {
		g.cg = newConsumerGroup()
	}
	cg := g.cg
	member := func() *cgMember {
		m := cg.members[k.MemberID]
		if m == nil {
			m = newCGMember(k.MemberID)
			cg.members[k.MemberID] = m
		}
		return m
	}
	switch k.Type {
	case grouprecords.TypeConsumerGroupMetadata:
		var v grouprecords.ConsumerGroupMetadataValue
		if v.ReadFrom(value) == nil {
			cg.epoch, cg.metadataHash = v.Epoch, v.MetadataHash
		}
	case grouprecords.TypeConsumerGroupMemberMetadata:
		var v grouprecords.ConsumerGroupMemberMetadataValue
		if v.ReadFrom(value) != nil {
			return
		}
		m := member()
		m.instanceID, m.rackID, m.clientID, m.clientHost = v.InstanceID, v.RackID, v.ClientID, v.ClientHost
		m.topics, m.regex = slices.Sorted(slices.Values(v.SubscribedTopicNames)), v.SubscribedTopicRegex
		m.rebalance = time.Duration(v.RebalanceTimeoutMillis) * time.Millisecond
		m.assignor = ""
		if v.ServerAssignor != nil {
			m.assignor = *v.ServerAssignor
		}
	case grouprecords.TypeConsumerGroupTargetAssignmentMetadata:
		var v grouprecords.ConsumerGroupTargetAssignmentMetadataValue
		if v.ReadFrom(value) == nil {
			cg.assignmentEpoch = v.AssignmentEpoch
		}
	case grouprecords.TypeConsumerGroupTargetAssignmentMember:
		var v grouprecords.ConsumerGroupTargetAssignmentMemberValue
		if v.ReadFrom(value) == nil {
			cg.target[k.MemberID] = gs.topicPartitionsByName(v.TopicPartitions)
		}
	case grouprecords.TypeConsumerGroupCurrentMemberAssignment:
		var v grouprecords.ConsumerGroupCurrentMemberAssignmentValue
		if v.ReadFrom(value) != nil {
			return
		}
		m := member()
		m.epoch, m.prevEpoch, m.state = v.MemberEpoch, v.PreviousMemberEpoch, v.State
		m.assigned = gs.topicPartitionsByName(v.AssignedPartitions)
		m.revoking = gs.topicPartitionsByName(v.PartitionsPendingRevocation)
	}
}

// topicPartitionsByName maps an assignment by topic id to one by name;
// topics deleted since are left out.
func (gs *groupShard) topicPartitionsByName(ts []grouprecords.TopicPartitions) map[string][]int32 {
	if gs.names == nil {
		b := gs.gc.b
		b.mu.RLock()
		gs.names = make(map[[16]byte]string, len(b.mu.state.TopicsByID))
		for id, t := range b.mu.state.TopicsByID {
			gs.names[id] = t.Name
		}
		b.mu.RUnlock()
	}
	out := map[string][]int32{}
	for _, t := range ts {
		if name, ok := gs.names[t.TopicID]; ok {
			out[name] = append(out[name], t.Partitions...)
		}
	}
	for t := range out {
		slices.Sort(out[t])
	}
	return out
}

// onLoadedConsumerLocked finishes the replay of the consumer groups: the
// group's assignor and state follow from its members, and every member's
// session (and a revoking member's rebalance timeout) starts now, as
// Kafka's onLoaded schedules them.
func (gs *groupShard) onLoadedConsumerLocked(now time.Time) {
	gs.names = nil
	for _, name := range slices.Sorted(maps.Keys(gs.groups)) {
		g := gs.groups[name]
		if g.cg == nil {
			continue
		}
		cg := g.cg
		cg.assignor = chooseAssignor(cg)
		for _, m := range cg.members {
			m.deadline = now.Add(gs.gc.cfg.cgSession)
			if len(m.revoking) > 0 {
				m.revokeDeadline = now.Add(m.rebalance)
			}
		}
		g.updateConsumerStateLocked(now)
	}
}
