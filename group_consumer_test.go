package kcluster

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/internal/grouprecords"
	"github.com/kcluster/kcluster/metadata"
	"github.com/kcluster/kcluster/wire"
)

// cgJoin is a first ConsumerGroupHeartbeat (epoch 0) of member to group g
// for topics, with an instance id and a rack when not nil.
func cgJoin(t *testing.T, cl *wire.Client, member string, instance, rack *string, topics ...string) *kmsg.ConsumerGroupHeartbeatResponse {
	t.Helper()
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Group, req.MemberID, req.InstanceID, req.RackID = "g", member, instance, rack
	req.RebalanceTimeoutMillis, req.SubscribedTopicNames = 7000, topics
	req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	return do[*kmsg.ConsumerGroupHeartbeatResponse](t, cl, req, 1)
}

// cgBeat is a ConsumerGroupHeartbeat at epoch reporting owned.
func cgBeat(t *testing.T, cl *wire.Client, member string, instance *string, epoch int32, owned []kmsg.ConsumerGroupHeartbeatRequestTopic) *kmsg.ConsumerGroupHeartbeatResponse {
	t.Helper()
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Group, req.MemberID, req.InstanceID, req.MemberEpoch, req.Topics = "g", member, instance, epoch, owned
	return do[*kmsg.ConsumerGroupHeartbeatResponse](t, cl, req, 1)
}

// stableConsumers brings members a and b (b static, with a rack) of group
// g on topic t to Stable and returns what each owns.
func stableConsumers(t *testing.T, c *Cluster, cl *wire.Client) (aOwned, bOwned []kmsg.ConsumerGroupHeartbeatRequestTopic, epoch int32) {
	t.Helper()
	a := cgJoin(t, cl, "a", nil, nil, "t")
	if a.ErrorCode != 0 {
		t.Fatalf("a joins: %v", kerr.ErrorForCode(a.ErrorCode))
	}
	b := cgJoin(t, cl, "b", kmsg.StringPtr("inst-b"), kmsg.StringPtr("rack-b"), "t")
	if b.ErrorCode != 0 {
		t.Fatalf("b joins: %v", kerr.ErrorForCode(b.ErrorCode))
	}
	// a revokes half, then b takes it.
	aOwned, bOwned = ownedOf(a), ownedOf(b)
	for range 2 {
		a = cgBeat(t, cl, "a", nil, a.MemberEpoch, aOwned)
		aOwned = keepOwned(aOwned, a)
	}
	b = cgBeat(t, cl, "b", kmsg.StringPtr("inst-b"), b.MemberEpoch, bOwned)
	bOwned = keepOwned(bOwned, b)
	waitCond(t, c, "a stable consumer group", GroupStable("g", 2))
	if countOwned(aOwned)+countOwned(bOwned) != 4 || a.MemberEpoch != b.MemberEpoch {
		t.Fatalf("a %+v, b %+v", a, b)
	}
	return aOwned, bOwned, a.MemberEpoch
}

// keepOwned is what a member owns after response r: its assignment, or
// what it owned when r has none.
func keepOwned(prev []kmsg.ConsumerGroupHeartbeatRequestTopic, r *kmsg.ConsumerGroupHeartbeatResponse) []kmsg.ConsumerGroupHeartbeatRequestTopic {
	if r.Assignment == nil {
		return prev
	}
	return ownedOf(r)
}

// TestGroupConsumerFailover: the coordinator of a Stable KIP-848 group is
// killed; the new one replays the group from __consumer_offsets: same
// group epoch, members at their epochs with their assignments, Stable at
// once. Members heartbeating the new coordinator at their epochs are
// accepted without rejoining, and nothing is rebalanced. The static
// member's instance id, its rack, the assignor, the subscriptions and the
// rebalance timeout survive, and sessions start again on the new
// coordinator.
func TestGroupConsumerFailover(t *testing.T) {
	c := Start(t, Brokers(3))
	createTopic(t, c, "t", 4, 3)
	cl, old := coordinator(t, c, "g")
	aOwned, bOwned, epoch := stableConsumers(t, c, cl)
	before, _ := c.Group("g")

	if err := c.KillBroker(old); err != nil {
		t.Fatal(err)
	}
	waitCond(t, c, "the group on a new coordinator", func(c *Cluster) bool {
		st, err := c.Group("g")
		return err == nil && st.Coordinator != old && c.metadataSettled()
	})
	after, _ := c.Group("g")
	if after.State != "Stable" || after.Generation != before.Generation || len(after.Members) != 2 {
		t.Fatalf("replayed group %+v, before %+v", after, before)
	}
	for i, m := range after.Members {
		if b := before.Members[i]; m.ID != b.ID || m.Epoch != b.Epoch || m.InstanceID != b.InstanceID || !assignmentsEqual(m.Assigned, b.Assigned) {
			t.Fatalf("replayed member %+v, before %+v", m, b)
		}
	}

	cl2, id := coordinator(t, c, "g")
	if id == old {
		t.Fatalf("FindCoordinator still names killed broker %d", old)
	}
	a := cgBeat(t, cl2, "a", nil, epoch, aOwned)
	b := cgBeat(t, cl2, "b", kmsg.StringPtr("inst-b"), epoch, bOwned)
	if a.ErrorCode != 0 || b.ErrorCode != 0 || a.MemberEpoch != epoch || b.MemberEpoch != epoch || a.Assignment != nil || b.Assignment != nil {
		t.Fatalf("heartbeats on the new coordinator: a %+v, b %+v", a, b)
	}
	if st, _ := c.Group("g"); st.Generation != before.Generation || st.State != "Stable" {
		t.Fatalf("group after the heartbeats: %+v", st)
	}
	// A commit at the member epoch is accepted.
	creq := kmsg.NewPtrOffsetCommitRequest()
	creq.Group, creq.MemberID, creq.Generation = "g", "a", epoch
	creq.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: aOwned[0].Partitions[0], Offset: 1, LeaderEpoch: -1}}}}
	if r := do[*kmsg.OffsetCommitResponse](t, cl2, creq, 9); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("commit on the new coordinator: %v", kerr.ErrorForCode(r.Topics[0].Partitions[0].ErrorCode))
	}

	d := kmsg.NewPtrConsumerGroupDescribeRequest()
	d.Groups = []string{"g"}
	g := do[*kmsg.ConsumerGroupDescribeResponse](t, cl2, d, 1).Groups[0]
	if g.ErrorCode != 0 || g.AssignorName != "uniform" || g.AssignmentEpoch != epoch || len(g.Members) != 2 {
		t.Fatalf("ConsumerGroupDescribe: %+v", g)
	}
	bm := g.Members[1]
	if bm.MemberID != "b" || bm.InstanceID == nil || *bm.InstanceID != "inst-b" || bm.RackID == nil || *bm.RackID != "rack-b" ||
		!slices.Equal(bm.SubscribedTopics, []string{"t"}) {
		t.Fatalf("static member described: %+v", bm)
	}
	nb, _ := c.brokerByID(id)
	if err := nb.groups.withGroupNow("g", func(gs *groupShard, g *group) error {
		for _, m := range g.cg.members {
			if m.rebalance != 7*time.Second {
				t.Errorf("member %s: rebalance timeout %v", m.id, m.rebalance)
			}
			if left := time.Until(m.deadline); left <= 0 || left > gs.gc.cfg.cgSession {
				t.Errorf("member %s: session ends in %v", m.id, left)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// The static member leaves for a restart (epoch -2) and the
	// coordinator dies again: back under a new member id on the third
	// coordinator, it gets its partitions at the group's epoch.
	if r := cgBeat(t, cl2, "b", kmsg.StringPtr("inst-b"), leaveStaticEpoch, nil); r.ErrorCode != 0 || r.MemberEpoch != leaveStaticEpoch {
		t.Fatalf("static leave: %+v", r)
	}
	if err := c.RestartBroker(old); err != nil {
		t.Fatal(err)
	}
	waitCond(t, c, "every broker back", func(c *Cluster) bool { return c.metadataSettled() })
	if err := c.KillBroker(id); err != nil {
		t.Fatal(err)
	}
	waitCond(t, c, "the group on a third coordinator", func(c *Cluster) bool {
		st, err := c.Group("g")
		return err == nil && st.Coordinator != id && c.metadataSettled()
	})
	cl3, _ := coordinator(t, c, "g")
	if r := cgJoin(t, cl3, "b2", kmsg.StringPtr("inst-b"), nil, "t"); r.ErrorCode != 0 || r.MemberEpoch != epoch || !assignmentsEqual(c.ownedNames(t, ownedOf(r)), c.ownedNames(t, bOwned)) {
		t.Fatalf("static rejoin on the third coordinator: %+v", r)
	}
	if st, _ := c.Group("g"); st.Generation != before.Generation {
		t.Fatalf("group epoch %d after the static rejoin, want %d", st.Generation, before.Generation)
	}
}

// ownedNames maps a heartbeat's owned partitions to topic names.
func (c *Cluster) ownedNames(t *testing.T, ts []kmsg.ConsumerGroupHeartbeatRequestTopic) map[string][]int32 {
	t.Helper()
	out := map[string][]int32{}
	c.viewState(func(s *metadata.State) {
		for _, tp := range ts {
			if tt := s.TopicsByID[tp.TopicID]; tt != nil {
				out[tt.Name] = append(out[tt.Name], tp.Partitions...)
			}
		}
	})
	return out
}

// consumerRecords decodes the consumer-group records of group g's
// __consumer_offsets partition, in log order.
func consumerRecords(t *testing.T, c *Cluster) []struct {
	key   grouprecords.Key
	value []byte
} {
	t.Helper()
	p := keyPartition("g", 10)
	st, _ := c.PartitionState(offsetsTopic, p)
	b, _ := c.brokerByID(st.Leader)
	b.mu.RLock()
	tid := b.mu.state.Topics[offsetsTopic].ID
	b.mu.RUnlock()
	data, err := b.partition(tid, p).log.Read(0, 1<<20, st.HighWatermark)
	if err != nil {
		t.Fatal(err)
	}
	var out []struct {
		key   grouprecords.Key
		value []byte
	}
	if _, err := c.dec.forEachKV(data, func(key, value []byte) {
		var k grouprecords.Key
		if k.ReadFrom(key) == nil {
			out = append(out, struct {
				key   grouprecords.Key
				value []byte
			}{k, value})
		}
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGroupConsumerRecords: a member's join, its reconciliation and its
// leave are written as Kafka writes them: member metadata, group epoch,
// target assignment, its epoch, current assignment; on the leave the
// member's three tombstones and a new epoch; DeleteGroups tombstones the
// rest, the partition metadata included.
func TestGroupConsumerRecords(t *testing.T) {
	c := Start(t, Brokers(1))
	tid := createTopic(t, c, "t", 2, 1)
	cl, _ := coordinator(t, c, "g")
	a := cgJoin(t, cl, "a", nil, nil, "t")
	if a.ErrorCode != 0 || a.MemberEpoch != 1 {
		t.Fatalf("join: %+v", a)
	}
	recs := consumerRecords(t, c)
	types := func(rs []struct {
		key   grouprecords.Key
		value []byte
	}) (out []int16) {
		for _, r := range rs {
			typ := r.key.Type
			if r.value == nil {
				typ = -typ
			}
			out = append(out, typ)
		}
		return out
	}
	if got, want := types(recs), []int16{5, 3, 7, 6, 8}; !slices.Equal(got, want) {
		t.Fatalf("join wrote record types %v, want %v", got, want)
	}
	var mv grouprecords.ConsumerGroupMemberMetadataValue
	if err := mv.ReadFrom(recs[0].value); err != nil || mv.ClientHost == "" || !slices.Equal(mv.SubscribedTopicNames, []string{"t"}) ||
		mv.RebalanceTimeoutMillis != 7000 || mv.ServerAssignor != nil || mv.ClassicMemberMetadata != nil {
		t.Fatalf("member metadata %+v (%v)", mv, err)
	}
	var ev grouprecords.ConsumerGroupMetadataValue
	if err := ev.ReadFrom(recs[1].value); err != nil || ev.Epoch != 1 || ev.MetadataHash == 0 {
		t.Fatalf("group epoch %+v (%v)", ev, err)
	}
	var tv grouprecords.ConsumerGroupTargetAssignmentMemberValue
	if err := tv.ReadFrom(recs[2].value); err != nil || len(tv.TopicPartitions) != 1 || tv.TopicPartitions[0].TopicID != tid ||
		!slices.Equal(tv.TopicPartitions[0].Partitions, []int32{0, 1}) {
		t.Fatalf("target assignment %+v (%v)", tv, err)
	}
	var cv grouprecords.ConsumerGroupCurrentMemberAssignmentValue
	if err := cv.ReadFrom(recs[4].value); err != nil || cv.MemberEpoch != 1 || cv.PreviousMemberEpoch != 0 || cv.State != grouprecords.MemberStable ||
		len(cv.AssignedPartitions) != 1 || len(cv.PartitionsPendingRevocation) != 0 {
		t.Fatalf("current assignment %+v (%v)", cv, err)
	}

	// A heartbeat that changes nothing writes nothing.
	if r := cgBeat(t, cl, "a", nil, 1, ownedOf(a)); r.ErrorCode != 0 {
		t.Fatalf("heartbeat: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if n := len(consumerRecords(t, c)); n != len(recs) {
		t.Fatalf("%d records after an idle heartbeat, want %d", n, len(recs))
	}

	// A committed offset keeps the empty group from the offsets expiry
	// (which deletes an empty group without offsets) until DeleteGroups.
	if code := commit(t, cl, "g", "a", 1, "t", 0, 5); code != 0 {
		t.Fatalf("commit: %v", kerr.ErrorForCode(code))
	}
	// The leave: current assignment, target, member tombstones; the new
	// epoch; the (empty) target at it.
	if r := cgBeat(t, cl, "a", nil, leaveEpoch, nil); r.ErrorCode != 0 {
		t.Fatalf("leave: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	recs = consumerRecords(t, c)[5:]
	if got, want := types(recs), []int16{-8, -7, -5, 3, 6}; !slices.Equal(got, want) {
		t.Fatalf("leave wrote record types %v, want %v", got, want)
	}
	if err := ev.ReadFrom(recs[3].value); err != nil || ev.Epoch != 2 || ev.MetadataHash != 0 {
		t.Fatalf("group epoch after the leave %+v (%v)", ev, err)
	}

	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"g"}
	if r := do[*kmsg.DeleteGroupsResponse](t, cl, del, 2); r.Groups[0].ErrorCode != 0 {
		t.Fatalf("DeleteGroups: %v", kerr.ErrorForCode(r.Groups[0].ErrorCode))
	}
	recs = consumerRecords(t, c)[10:]
	if got, want := types(recs), []int16{-6, -4, -3}; !slices.Equal(got, want) {
		t.Fatalf("DeleteGroups wrote record types %v, want %v", got, want)
	}
	if _, err := c.Group("g"); err == nil {
		t.Fatal("group still there after DeleteGroups")
	}
}

// TestGroupConsumerStaticMemberFencing: a KIP-848 static member's instance
// id decides as Kafka's GroupMetadataManager decides: at epoch 0 an
// instance id still held (not left with epoch -2) is
// UNRELEASED_INSTANCE_ID, even under the same member id; at a later epoch
// or on leaving, an instance id held by another member id is
// FENCED_INSTANCE_ID and an unknown one UNKNOWN_MEMBER_ID; epoch -2
// without an instance id is INVALID_REQUEST.
func TestGroupConsumerStaticMemberFencing(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "t", 2, 1)
	cl, _ := coordinator(t, c, "g")
	i1 := kmsg.StringPtr("i1")
	a := cgJoin(t, cl, "a", i1, nil, "t")
	if a.ErrorCode != 0 {
		t.Fatalf("join: %v", kerr.ErrorForCode(a.ErrorCode))
	}
	for _, tc := range []struct {
		what     string
		member   string
		instance *string
		epoch    int32
		want     int16
	}{
		{"rejoin at epoch 0 of the holder", "a", i1, 0, kerr.UnreleasedInstanceID.Code},
		{"another member at epoch 0", "x", i1, 0, kerr.UnreleasedInstanceID.Code},
		{"another member at the epoch", "x", i1, a.MemberEpoch, kerr.FencedInstanceID.Code},
		{"the holder with an unknown instance id", "a", kmsg.StringPtr("i9"), a.MemberEpoch, kerr.UnknownMemberID.Code},
		{"another member leaving", "x", i1, leaveEpoch, kerr.FencedInstanceID.Code},
		{"another member leaving for a restart", "x", i1, leaveStaticEpoch, kerr.FencedInstanceID.Code},
		{"an unknown instance id leaving", "a", kmsg.StringPtr("i9"), leaveEpoch, kerr.UnknownMemberID.Code},
		{"a restart leave without an instance id", "a", nil, leaveStaticEpoch, kerr.InvalidRequest.Code},
	} {
		var r *kmsg.ConsumerGroupHeartbeatResponse
		if tc.epoch == 0 {
			r = cgJoin(t, cl, tc.member, tc.instance, nil, "t")
		} else {
			r = cgBeat(t, cl, tc.member, tc.instance, tc.epoch, ownedOf(a))
		}
		if r.ErrorCode != tc.want {
			t.Errorf("%s: %v, want %v", tc.what, kerr.ErrorForCode(r.ErrorCode), kerr.ErrorForCode(tc.want))
		}
	}
	// None of them changed the group.
	st, _ := c.Group("g")
	if len(st.Members) != 1 || st.Members[0].ID != "a" || st.Members[0].InstanceID != "i1" || st.Generation != a.MemberEpoch {
		t.Fatalf("group after the refused heartbeats: %+v", st)
	}
}

// TestGroupConsumerUnknownGroup: a heartbeat past epoch 0, or a leave, to
// a group the coordinator does not have is GROUP_ID_NOT_FOUND with
// Kafka's message (GroupMetadataManager's getOrMaybeCreateConsumerGroup
// and consumerGroupLeave), and creates no group.
func TestGroupConsumerUnknownGroup(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "t", 2, 1)
	cl, _ := coordinator(t, c, "g")
	for _, epoch := range []int32{5, leaveEpoch, leaveStaticEpoch} {
		var instance *string
		if epoch == leaveStaticEpoch {
			instance = kmsg.StringPtr("i1")
		}
		r := cgBeat(t, cl, "m", instance, epoch, nil)
		if r.ErrorCode != kerr.GroupIDNotFound.Code || r.ErrorMessage == nil || *r.ErrorMessage != "Consumer group g not found." {
			t.Errorf("epoch %d: %v %v, want GROUP_ID_NOT_FOUND", epoch, kerr.ErrorForCode(r.ErrorCode), r.ErrorMessage)
		}
	}
	if st, err := c.Group("g"); err == nil {
		t.Fatalf("the refused heartbeats made a group: %+v", st)
	}
}

// TestGroupConsumerMaxSize: a consumer group at group.consumer.max.size
// answers GROUP_MAX_SIZE_REACHED, with Kafka's message, to any member id
// it does not have, before anything else is checked: a new member, a
// static member coming back under a new id, an unknown member at a later
// epoch. Its members go on.
func TestGroupConsumerMaxSize(t *testing.T) {
	c := Start(t, Brokers(1), BrokerConfig("group.consumer.max.size", "1"))
	createTopic(t, c, "t", 2, 1)
	cl, _ := coordinator(t, c, "g")
	i1 := kmsg.StringPtr("i1")
	a := cgJoin(t, cl, "a", i1, nil, "t")
	if a.ErrorCode != 0 {
		t.Fatalf("join: %v", kerr.ErrorForCode(a.ErrorCode))
	}
	want := "The consumer group has reached its maximum capacity of 1 members."
	check := func(what string, r *kmsg.ConsumerGroupHeartbeatResponse) {
		t.Helper()
		if r.ErrorCode != kerr.GroupMaxSizeReached.Code || r.ErrorMessage == nil || *r.ErrorMessage != want {
			t.Errorf("%s: %v %v, want GROUP_MAX_SIZE_REACHED", what, kerr.ErrorForCode(r.ErrorCode), r.ErrorMessage)
		}
	}
	check("a second member", cgJoin(t, cl, "b", nil, nil, "t"))
	check("an unknown member at epoch 3", cgBeat(t, cl, "z", nil, 3, nil))
	if r := cgBeat(t, cl, "a", i1, leaveStaticEpoch, nil); r.ErrorCode != 0 {
		t.Fatalf("static leave: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	check("the static member back under a new id", cgJoin(t, cl, "a2", i1, nil, "t"))
	if r := cgJoin(t, cl, "a", i1, nil, "t"); r.ErrorCode != 0 || r.MemberEpoch != a.MemberEpoch {
		t.Fatalf("the static member back under its id: %+v", r)
	}
}

// TestGroupDescribeAuthorizedOperations: ConsumerGroupDescribe and
// DescribeGroups fill AuthorizedOperations when asked (bit n for ACL
// operation n): without an authorizer every group operation (READ,
// DESCRIBE, DELETE), under one those the principal's ACLs allow.
func TestGroupDescribeAuthorizedOperations(t *testing.T) {
	all := int32(1<<kmsg.ACLOperationRead | 1<<kmsg.ACLOperationDescribe | 1<<kmsg.ACLOperationDelete)
	t.Run("no authorizer", func(t *testing.T) {
		c := Start(t, Brokers(1))
		createTopic(t, c, "t", 1, 1)
		cl, _ := coordinator(t, c, "g")
		if r := cgJoin(t, cl, "a", nil, nil, "t"); r.ErrorCode != 0 {
			t.Fatalf("join: %v", kerr.ErrorForCode(r.ErrorCode))
		}
		d := kmsg.NewPtrConsumerGroupDescribeRequest()
		d.Groups = []string{"g"}
		if g := do[*kmsg.ConsumerGroupDescribeResponse](t, cl, d, 1).Groups[0]; g.AuthorizedOperations != -2147483648 {
			t.Fatalf("not asked: %d", g.AuthorizedOperations)
		}
		d.IncludeAuthorizedOperations = true
		if g := do[*kmsg.ConsumerGroupDescribeResponse](t, cl, d, 1).Groups[0]; g.ErrorCode != 0 || g.AuthorizedOperations != all {
			t.Fatalf("ConsumerGroupDescribe: %v, operations %d, want %d", kerr.ErrorForCode(g.ErrorCode), g.AuthorizedOperations, all)
		}
		dg := kmsg.NewPtrDescribeGroupsRequest()
		dg.Groups, dg.IncludeAuthorizedOperations = []string{"classic"}, true
		if g := do[*kmsg.DescribeGroupsResponse](t, cl, dg, 5).Groups[0]; g.ErrorCode != 0 || g.State != "Dead" || g.AuthorizedOperations != all {
			t.Fatalf("DescribeGroups v5 of an unknown group: %+v", g)
		}
	})
	t.Run("authorizer", func(t *testing.T) {
		c := secureCluster(t)
		admin := userClient(t, c, "admin")
		createTopics(t, admin, 1, "events")
		createACLs(t, admin,
			aclSpec{kmsg.ACLResourceTypeTopic, "events", kmsg.ACLResourcePatternTypeLiteral, "User:alice", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow},
			aclSpec{kmsg.ACLResourceTypeGroup, "cg", kmsg.ACLResourcePatternTypeLiteral, "User:alice", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow})
		alice := userClient(t, c, "alice")
		hb := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		hb.Group, hb.MemberID, hb.RebalanceTimeoutMillis, hb.SubscribedTopicNames = "cg", "a", 5000, []string{"events"}
		hb.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		if r, err := hb.RequestWith(tctx(t), alice); err != nil || r.ErrorCode != 0 {
			t.Fatalf("heartbeat: %v %+v", err, r)
		}
		d := kmsg.NewPtrConsumerGroupDescribeRequest()
		d.Groups, d.IncludeAuthorizedOperations = []string{"cg"}, true
		r, err := d.RequestWith(tctx(t), alice)
		if err != nil {
			t.Fatal(err)
		}
		if want := int32(1<<kmsg.ACLOperationRead | 1<<kmsg.ACLOperationDescribe); r.Groups[0].ErrorCode != 0 || r.Groups[0].AuthorizedOperations != want {
			t.Fatalf("alice (READ on the group): %v, operations %d, want %d", kerr.ErrorForCode(r.Groups[0].ErrorCode), r.Groups[0].AuthorizedOperations, want)
		}
		if r, err = d.RequestWith(tctx(t), admin); err != nil || r.Groups[0].AuthorizedOperations != all {
			t.Fatalf("admin (super user): %v %+v", err, r)
		}
	})
}

// TestDescribeGroupsV6: from DescribeGroups v6 (KIP-1043) a group that
// does not exist, or is not a classic group, is GROUP_ID_NOT_FOUND with
// Kafka's message, in state Dead; before v6 it is Dead without an error.
func TestDescribeGroupsV6(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "t", 1, 1)
	cl, _ := coordinator(t, c, "g")
	if r := cgJoin(t, cl, "a", nil, nil, "t"); r.ErrorCode != 0 {
		t.Fatalf("join: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	for _, tc := range []struct {
		group, msg string
	}{{"nope", "Group nope not found."}, {"g", "Group g is not a classic group."}} {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups = []string{tc.group}
		g := do[*kmsg.DescribeGroupsResponse](t, cl, req, 6).Groups[0]
		if g.ErrorCode != kerr.GroupIDNotFound.Code || g.ErrorMessage == nil || *g.ErrorMessage != tc.msg || g.State != "Dead" {
			t.Fatalf("v6 %s: %+v", tc.group, g)
		}
		g = do[*kmsg.DescribeGroupsResponse](t, cl, req, 5).Groups[0]
		if g.ErrorCode != 0 || g.State != "Dead" {
			t.Fatalf("v5 %s: %+v", tc.group, g)
		}
	}
}

// replayedShard replays group g's __consumer_offsets partition into a new
// shard, as a new coordinator loading it would.
func replayedShard(t *testing.T, c *Cluster) *groupShard {
	t.Helper()
	p := keyPartition("g", 10)
	st, _ := c.PartitionState(offsetsTopic, p)
	b, _ := c.brokerByID(st.Leader)
	b.mu.RLock()
	tid := b.mu.state.Topics[offsetsTopic].ID
	b.mu.RUnlock()
	data, err := b.partition(tid, p).log.Read(0, 1<<20, st.HighWatermark)
	if err != nil {
		t.Fatal(err)
	}
	gs := b.groups.rt.newShard(nil)
	if _, err := replayBatches(&c.dec, data, gs); err != nil {
		t.Fatal(err)
	}
	gs.onLoaded()
	return gs
}

// checkReplay checks that replaying group g's partition gives the group
// its coordinator has: kind, consumer group, classic generation and
// members, offsets.
func checkReplay(t *testing.T, c *Cluster, cl *wire.Client, what string) {
	t.Helper()
	replayed := replayedShard(t, c).groups["g"]
	_, id := coordinator(t, c, "g")
	b, _ := c.brokerByID(id)
	var problem string // t.Fatalf must not run with the shard locked
	if err := b.groups.withGroupNow("g", func(gs *groupShard, live *group) error {
		switch {
		case (live == nil) != (replayed == nil):
			problem = fmt.Sprintf("live group %v, replayed %v", live != nil, replayed != nil)
		case live == nil:
		case live.kind != replayed.kind || live.generation != replayed.generation || live.protocolType != replayed.protocolType ||
			len(live.members) != len(replayed.members) || live.numOffsets() != replayed.numOffsets():
			problem = fmt.Sprintf("live %s group gen %d %q %d members %d offsets, replayed %s gen %d %q %d members %d offsets",
				live.kind, live.generation, live.protocolType, len(live.members), live.numOffsets(),
				replayed.kind, replayed.generation, replayed.protocolType, len(replayed.members), replayed.numOffsets())
		default:
			problem = diffPersisted(replayed.cg, live.cg, gs.topicIDs())
			if problem == "" && live.cg != nil && replayed.cg.state != live.cg.state {
				problem = fmt.Sprintf("replayed state %s, live %s", replayed.cg.state, live.cg.state)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if problem != "" {
		t.Fatalf("%s: %s", what, problem)
	}
}

// TestGroupConversionReplay: an empty classic group that a consumer-protocol
// member joins becomes a consumer group, its GroupMetadata tombstoned; an
// empty consumer group that a classic member joins becomes a classic group
// again, its consumer-group records tombstoned. At every step a replay of
// the partition gives the group the coordinator holds, offsets included.
func TestGroupConversionReplay(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "t", 2, 1)
	cl, _ := coordinator(t, c, "g")
	j := join(t, cl, "g", nil, 10000)
	syncGroup(t, cl, "g", j.MemberID, j.Generation, map[string][]byte{j.MemberID: nil})
	if code := commit(t, cl, "g", j.MemberID, j.Generation, "t", 0, 7); code != 0 {
		t.Fatalf("commit: %v", kerr.ErrorForCode(code))
	}
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group, leave.Members = "g", []kmsg.LeaveGroupRequestMember{{MemberID: j.MemberID}}
	if r := do[*kmsg.LeaveGroupResponse](t, cl, leave, 5); r.ErrorCode != 0 || r.Members[0].ErrorCode != 0 {
		t.Fatalf("LeaveGroup: %+v", r)
	}
	checkReplay(t, c, cl, "empty classic group")

	n := len(consumerRecords(t, c))
	a := cgJoin(t, cl, "a", nil, nil, "t")
	if a.ErrorCode != 0 {
		t.Fatalf("consumer join of the empty classic group: %v", kerr.ErrorForCode(a.ErrorCode))
	}
	if n != 0 {
		t.Fatalf("%d consumer records before the conversion", n)
	}
	checkReplay(t, c, cl, "converted to a consumer group")
	if st, _ := c.Group("g"); st.Type != "consumer" || st.Offsets["t"][0] != 7 {
		t.Fatalf("converted group: %+v", st)
	}

	if r := cgBeat(t, cl, "a", nil, leaveEpoch, nil); r.ErrorCode != 0 {
		t.Fatalf("leave: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	checkReplay(t, c, cl, "empty consumer group")
	j = join(t, cl, "g", nil, 10000)
	syncGroup(t, cl, "g", j.MemberID, j.Generation, map[string][]byte{j.MemberID: nil})
	checkReplay(t, c, cl, "converted back to a classic group")
	if st, _ := c.Group("g"); st.Type != "classic" || st.State != "Stable" || st.Offsets["t"][0] != 7 {
		t.Fatalf("group converted back: %+v", st)
	}
}
