package kcluster

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/internal/grouprecords"
	"github.com/kcluster/kcluster/wire"
)

// coordinator finds group's coordinator with FindCoordinator through broker
// 1 and returns a connection to it and its id.
func coordinator(t *testing.T, c *Cluster, group string) (*wire.Client, int32) {
	t.Helper()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKeys = []string{group}
	resp := do[*kmsg.FindCoordinatorResponse](t, dial(t, c.Addrs()[0]), req, -1)
	co := resp.Coordinators[0]
	if err := kerr.ErrorForCode(co.ErrorCode); err != nil {
		t.Fatalf("FindCoordinator(%s): %v", group, err)
	}
	return dial(t, c.Addrs()[co.NodeID-1]), co.NodeID
}

func waitCond(t *testing.T, c *Cluster, what string, cond Condition) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitFor(ctx, cond); err != nil {
		st, _ := c.Group("g")
		t.Fatalf("waiting for %s: %v; group %+v", what, err, st)
	}
}

func consumerProtocol(topics ...string) []kmsg.JoinGroupRequestProtocol {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = topics
	return []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: meta.AppendTo(nil)}}
}

// join runs JoinGroup (twice when KIP-394 asks for a member id) and
// returns the response.
func join(t *testing.T, cl *wire.Client, group string, instance *string, session int32) *kmsg.JoinGroupResponse {
	t.Helper()
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = group, session, 5000
	req.ProtocolType, req.Protocols, req.InstanceID = "consumer", consumerProtocol("t"), instance
	resp := do[*kmsg.JoinGroupResponse](t, cl, req, -1)
	if resp.ErrorCode == kerr.MemberIDRequired.Code {
		req.MemberID = resp.MemberID
		resp = do[*kmsg.JoinGroupResponse](t, cl, req, -1)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("JoinGroup: %v", err)
	}
	return resp
}

func syncGroup(t *testing.T, cl *wire.Client, group, member string, gen int32, assign map[string][]byte) *kmsg.SyncGroupResponse {
	t.Helper()
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group, req.MemberID, req.Generation = group, member, gen
	for id, a := range assign {
		req.GroupAssignment = append(req.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: a})
	}
	return do[*kmsg.SyncGroupResponse](t, cl, req, -1)
}

func commit(t *testing.T, cl *wire.Client, group, member string, gen int32, topic string, p int32, off int64) int16 {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.MemberID, req.Generation = group, member, gen
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.Metadata = p, off, kmsg.StringPtr("m")
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := do[*kmsg.OffsetCommitResponse](t, cl, req, 9)
	return resp.Topics[0].Partitions[0].ErrorCode
}

// TestGroupOffsetFetchUnknownGroup: an unknown group answers offset -1 and
// no error, in every OffsetFetch shape (v1 per partition, v7 top level,
// v8 batched), as Kafka does.
func TestGroupOffsetFetchUnknownGroup(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "t", 2, 1)
	cl, _ := coordinator(t, c, "nobody")
	for _, v := range []int16{1, 7} {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group = "nobody"
		req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0, 1}}}
		resp := do[*kmsg.OffsetFetchResponse](t, cl, req, v)
		if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
			t.Fatalf("v%d: %+v", v, resp)
		}
		for _, p := range resp.Topics[0].Partitions {
			if p.Offset != -1 || p.ErrorCode != 0 {
				t.Fatalf("v%d: partition %d: offset %d error %d, want -1 and none", v, p.Partition, p.Offset, p.ErrorCode)
			}
		}
	}
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "nobody", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0}}}}}
	resp := do[*kmsg.OffsetFetchResponse](t, cl, req, 8)
	if g := resp.Groups[0]; g.ErrorCode != 0 || g.Topics[0].Partitions[0].Offset != -1 {
		t.Fatalf("v8: %+v", g)
	}
}

// TestGroupNotCoordinator: FindCoordinator names the leader of partition
// abs(hashCode(group)) % 10 of __consumer_offsets; every other broker
// answers the group's requests with NOT_COORDINATOR.
func TestGroupNotCoordinator(t *testing.T) {
	c := Start(t, Brokers(3))
	_, id := coordinator(t, c, "g")
	st, err := c.PartitionState(offsetsTopic, keyPartition("g", 10))
	if err != nil || st.Leader != id {
		t.Fatalf("coordinator %d, leader of __consumer_offsets/%d is %d (%v)", id, keyPartition("g", 10), st.Leader, err)
	}
	if p := keyPartition("g", 50); p != 3 {
		// Java: Math.abs("g".hashCode()) % 50 = 103 % 50.
		t.Fatalf("keyPartition(g, 50) = %d, want 3", p)
	}
	other := dial(t, c.Addrs()[id%3])
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.MemberID, req.Generation = "g", "m", 1
	if resp := do[*kmsg.HeartbeatResponse](t, other, req, -1); resp.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("heartbeat on a non-coordinator: error %d, want NOT_COORDINATOR", resp.ErrorCode)
	}
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Group = "g"
	if resp := do[*kmsg.OffsetFetchResponse](t, other, of, 7); resp.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("offset fetch on a non-coordinator: error %d, want NOT_COORDINATOR", resp.ErrorCode)
	}
}

// TestGroupRecordsAreKafkas: a commit and a completed rebalance are
// OffsetCommit and GroupMetadata records in __consumer_offsets, readable
// with Kafka's schemas (kmsg), replicated to every replica.
func TestGroupRecordsAreKafkas(t *testing.T) {
	c := Start(t, Brokers(3))
	createTopic(t, c, "t", 1, 3)
	cl, _ := coordinator(t, c, "g")
	j := join(t, cl, "g", nil, 10000)
	a := kmsg.NewConsumerMemberAssignment()
	a.Topics = []kmsg.ConsumerMemberAssignmentTopic{{Topic: "t", Partitions: []int32{0}}}
	if s := syncGroup(t, cl, "g", j.MemberID, j.Generation, map[string][]byte{j.MemberID: a.AppendTo(nil)}); s.ErrorCode != 0 {
		t.Fatalf("SyncGroup: %v", kerr.ErrorForCode(s.ErrorCode))
	}
	if code := commit(t, cl, "g", j.MemberID, j.Generation, "t", 0, 42); code != 0 {
		t.Fatalf("OffsetCommit: %v", kerr.ErrorForCode(code))
	}
	p := keyPartition("g", 10)
	waitCond(t, c, "the records on every replica", FullyReplicated(offsetsTopic, p))
	st, _ := c.PartitionState(offsetsTopic, p)
	b, _ := c.brokerByID(st.Leader)
	b.mu.RLock()
	tid := b.mu.state.Topics[offsetsTopic].ID
	b.mu.RUnlock()
	r := b.partition(tid, p)
	data, err := r.log.Read(0, 1<<20, st.HighWatermark)
	if err != nil {
		t.Fatal(err)
	}
	var sawGroup, sawOffset bool
	if _, err := c.dec.forEachKV(data, func(key, value []byte) {
		var ok kmsg.OffsetCommitKey
		var gk kmsg.GroupMetadataKey
		switch {
		case ok.ReadFrom(key) == nil && ok.Version <= 1:
			var v kmsg.OffsetCommitValue
			if err := v.ReadFrom(value); err != nil || ok.Group != "g" || ok.Topic != "t" || v.Offset != 42 || v.Metadata != "m" {
				t.Errorf("offset record %+v %+v (%v)", ok, v, err)
			}
			sawOffset = true
		case gk.ReadFrom(key) == nil && gk.Version == 2:
			var v kmsg.GroupMetadataValue
			if err := v.ReadFrom(value); err != nil || gk.Group != "g" || v.ProtocolType != "consumer" || len(v.Members) != 1 || v.Members[0].MemberID != j.MemberID {
				t.Errorf("group record %+v %+v (%v)", gk, v, err)
			}
			sawGroup = true
		}
	}); err != nil {
		t.Fatal(err)
	}
	if !sawGroup || !sawOffset {
		t.Fatalf("group record %v, offset record %v", sawGroup, sawOffset)
	}
}

// TestGroupAdmin walks a group through the admin APIs: Stable with one
// member in DescribeGroups and ListGroups (state filters), not deletable
// while it has members, Empty after LeaveGroup, then deleted with its
// offsets; OffsetDelete refuses a subscribed topic.
func TestGroupAdmin(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "t", 1, 1)
	createTopic(t, c, "u", 1, 1)
	cl, _ := coordinator(t, c, "g")
	j := join(t, cl, "g", nil, 10000)
	if s := syncGroup(t, cl, "g", j.MemberID, j.Generation, nil); s.ErrorCode != 0 {
		t.Fatalf("SyncGroup: %v", kerr.ErrorForCode(s.ErrorCode))
	}
	waitCond(t, c, "a stable group", GroupStable("g", 1))
	for _, tp := range []string{"t", "u"} {
		if code := commit(t, cl, "g", j.MemberID, j.Generation, tp, 0, 7); code != 0 {
			t.Fatalf("commit %s: %v", tp, kerr.ErrorForCode(code))
		}
	}

	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Groups = []string{"g", "nobody"}
	dresp := do[*kmsg.DescribeGroupsResponse](t, cl, dg, 5)
	if g := dresp.Groups[0]; g.State != "Stable" || g.Protocol != "range" || len(g.Members) != 1 || g.Members[0].MemberID != j.MemberID {
		t.Fatalf("DescribeGroups: %+v", g)
	}
	if g := dresp.Groups[1]; g.State != "Dead" || g.ErrorCode != 0 {
		t.Fatalf("DescribeGroups of an unknown group: %+v", g)
	}
	list := func(states ...string) []string {
		req := kmsg.NewPtrListGroupsRequest()
		req.StatesFilter = states
		resp := do[*kmsg.ListGroupsResponse](t, cl, req, -1)
		var out []string
		for _, g := range resp.Groups {
			out = append(out, g.Group+"/"+g.GroupState+"/"+g.GroupType)
		}
		return out
	}
	if got := list(); len(got) != 1 || got[0] != "g/Stable/classic" {
		t.Fatalf("ListGroups = %v", got)
	}
	if got := c.Groups(); len(got) != 1 || got[0] != "g" {
		t.Fatalf("Groups() = %v", got)
	}
	if got := list("empty"); len(got) != 0 {
		t.Fatalf("ListGroups(Empty) = %v, want none", got)
	}

	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = "g"
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}},
		{Topic: "u", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
	odr := do[*kmsg.OffsetDeleteResponse](t, cl, od, -1)
	if odr.ErrorCode != 0 || odr.Topics[0].Partitions[0].ErrorCode != kerr.GroupSubscribedToTopic.Code || odr.Topics[1].Partitions[0].ErrorCode != 0 {
		t.Fatalf("OffsetDelete: %+v", odr)
	}
	if st, _ := c.Group("g"); st.Offsets["u"] != nil || st.Offsets["t"][0] != 7 {
		t.Fatalf("offsets after OffsetDelete: %v", st.Offsets)
	}

	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"g"}
	if r := do[*kmsg.DeleteGroupsResponse](t, cl, del, 2); r.Groups[0].ErrorCode != kerr.NonEmptyGroup.Code {
		t.Fatalf("DeleteGroups of a group with members: %v", kerr.ErrorForCode(r.Groups[0].ErrorCode))
	}
	lg := kmsg.NewPtrLeaveGroupRequest()
	lg.Group = "g"
	lg.Members = []kmsg.LeaveGroupRequestMember{{MemberID: j.MemberID}}
	if r := do[*kmsg.LeaveGroupResponse](t, cl, lg, -1); r.ErrorCode != 0 || r.Members[0].ErrorCode != 0 {
		t.Fatalf("LeaveGroup: %+v", r)
	}
	if got := list("Empty"); len(got) != 1 || got[0] != "g/Empty/classic" {
		t.Fatalf("ListGroups(Empty) after the leave = %v", got)
	}
	if r := do[*kmsg.DeleteGroupsResponse](t, cl, del, 2); r.Groups[0].ErrorCode != 0 {
		t.Fatalf("DeleteGroups: %v", kerr.ErrorForCode(r.Groups[0].ErrorCode))
	}
	if r := do[*kmsg.DeleteGroupsResponse](t, cl, del, 2); r.Groups[0].ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("DeleteGroups again: %v", kerr.ErrorForCode(r.Groups[0].ErrorCode))
	}
	if _, err := c.Group("g"); err == nil {
		t.Fatal("the group is still there after DeleteGroups")
	}
}

// TestGroupStaticMember: a static member (KIP-345) that restarts with a
// new member id gets the same generation and assignment back without a
// rebalance, and its old member id is fenced.
func TestGroupStaticMember(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "t", 1, 1)
	cl, _ := coordinator(t, c, "g")
	inst := kmsg.StringPtr("instance-1")
	j := join(t, cl, "g", inst, 10000)
	if s := syncGroup(t, cl, "g", j.MemberID, j.Generation, map[string][]byte{j.MemberID: []byte("a")}); s.ErrorCode != 0 {
		t.Fatalf("SyncGroup: %v", kerr.ErrorForCode(s.ErrorCode))
	}
	j2 := join(t, cl, "g", inst, 10000)
	if j2.MemberID == j.MemberID || j2.Generation != j.Generation {
		t.Fatalf("static rejoin: member %s generation %d, before %s generation %d", j2.MemberID, j2.Generation, j.MemberID, j.Generation)
	}
	if s := syncGroup(t, cl, "g", j2.MemberID, j2.Generation, nil); s.ErrorCode != 0 || string(s.MemberAssignment) != "a" {
		t.Fatalf("SyncGroup after the static rejoin: %v %q", kerr.ErrorForCode(s.ErrorCode), s.MemberAssignment)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation, hb.InstanceID = "g", j.MemberID, j.Generation, inst
	if r := do[*kmsg.HeartbeatResponse](t, cl, hb, -1); r.ErrorCode != kerr.FencedInstanceID.Code {
		t.Fatalf("heartbeat of the replaced member id: %v, want FENCED_INSTANCE_ID", kerr.ErrorForCode(r.ErrorCode))
	}
}

// TestGroupSessionTimeout: a member that stops heartbeating is removed
// after its session timeout and the group becomes Empty; its commits then
// fail with UNKNOWN_MEMBER_ID.
func TestGroupSessionTimeout(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "t", 1, 1)
	cl, _ := coordinator(t, c, "g")
	j := join(t, cl, "g", nil, 300)
	syncGroup(t, cl, "g", j.MemberID, j.Generation, nil)
	waitCond(t, c, "an empty group", func(c *Cluster) bool {
		st, err := c.Group("g")
		return err == nil && st.State == "Empty" && len(st.Members) == 0
	})
	if code := commit(t, cl, "g", j.MemberID, j.Generation, "t", 0, 1); code != kerr.UnknownMemberID.Code {
		t.Fatalf("commit of an expired member: %v", kerr.ErrorForCode(code))
	}
}

// TestGroupCoordinatorReplay: the coordinator's broker is killed; the new
// leader of the group's partition replays it: same generation and member,
// Stable, and the committed offset intact.
func TestGroupCoordinatorReplay(t *testing.T) {
	c := Start(t, Brokers(3))
	createTopic(t, c, "t", 1, 3)
	cl, id := coordinator(t, c, "g")
	j := join(t, cl, "g", nil, 30000)
	syncGroup(t, cl, "g", j.MemberID, j.Generation, map[string][]byte{j.MemberID: []byte("a")})
	if code := commit(t, cl, "g", j.MemberID, j.Generation, "t", 0, 99); code != 0 {
		t.Fatalf("commit: %v", kerr.ErrorForCode(code))
	}
	if err := c.KillBroker(id); err != nil {
		t.Fatal(err)
	}
	// Every broker must know the new leader too: FindCoordinator below
	// asks one of them.
	waitCond(t, c, "the group on a new coordinator", func(c *Cluster) bool {
		st, err := c.Group("g")
		return err == nil && st.Coordinator != id && c.metadataSettled()
	})
	st, _ := c.Group("g")
	if st.State != "Stable" || st.Generation != j.Generation || len(st.Members) != 1 || st.Members[0].ID != j.MemberID || st.Offsets["t"][0] != 99 {
		t.Fatalf("replayed group: %+v", st)
	}
	cl2, id2 := coordinator(t, c, "g")
	if id2 == id {
		t.Fatalf("FindCoordinator still names killed broker %d", id)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "g", j.MemberID, j.Generation
	if r := do[*kmsg.HeartbeatResponse](t, cl2, hb, -1); r.ErrorCode != 0 {
		t.Fatalf("heartbeat on the new coordinator: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if code := commit(t, cl2, "g", j.MemberID, j.Generation, "t", 0, 100); code != 0 {
		t.Fatalf("commit on the new coordinator: %v", kerr.ErrorForCode(code))
	}

	// The killed broker comes back, catches up the partition as a
	// follower, and gets its leadership back (preferred leader): it
	// replays the group again, with the commit made while it was down.
	if err := c.RestartBroker(id); err != nil {
		t.Fatal(err)
	}
	waitCond(t, c, "the group back on the restarted broker", func(c *Cluster) bool {
		st, err := c.Group("g")
		return err == nil && st.Coordinator == id
	})
	st, _ = c.Group("g")
	if st.State != "Stable" || st.Generation != j.Generation || len(st.Members) != 1 || st.Offsets["t"][0] != 100 {
		t.Fatalf("group replayed on the restarted broker: %+v", st)
	}
}

// TestGroupInternalTopicProduce: clients cannot append to
// __consumer_offsets (INVALID_TOPIC_EXCEPTION, as Kafka's ReplicaManager).
func TestGroupInternalTopicProduce(t *testing.T) {
	c := Start(t, Brokers(1))
	cl, _ := coordinator(t, c, "g") // creates the topic
	req := produceRequest(offsetsTopic, keyPartition("g", 10), -1, 5000, makeBatch(1, "x"))
	resp := do[*kmsg.ProduceResponse](t, cl, req, 9)
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidTopicException.Code {
		t.Fatalf("produce to %s: %v, want INVALID_TOPIC_EXCEPTION", offsetsTopic, kerr.ErrorForCode(code))
	}
}

func cgHeartbeat(t *testing.T, cl *wire.Client, member string, epoch int32, topics []string, owned []kmsg.ConsumerGroupHeartbeatRequestTopic, assignor *string) *kmsg.ConsumerGroupHeartbeatResponse {
	t.Helper()
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Group, req.MemberID, req.MemberEpoch = "g", member, epoch
	req.SubscribedTopicNames, req.Topics, req.ServerAssignor = topics, owned, assignor
	if epoch == 0 {
		req.RebalanceTimeoutMillis = 5000
	}
	return do[*kmsg.ConsumerGroupHeartbeatResponse](t, cl, req, 1)
}

func ownedOf(r *kmsg.ConsumerGroupHeartbeatResponse) []kmsg.ConsumerGroupHeartbeatRequestTopic {
	out := []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	if r.Assignment != nil {
		for _, at := range r.Assignment.Topics {
			out = append(out, kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: at.TopicID, Partitions: at.Partitions})
		}
	}
	return out
}

func countOwned(ts []kmsg.ConsumerGroupHeartbeatRequestTopic) int {
	n := 0
	for _, t := range ts {
		n += len(t.Partitions)
	}
	return n
}

// TestGroupConsumerProtocol drives KIP-848 by hand: a first member gets
// every partition; when a second joins, the first must revoke half (same
// epoch) before the second gets them (withheld until released); then both
// are at the new epoch and the group is Stable. ConsumerGroupDescribe
// shows it; a classic JoinGroup is refused while the group has members.
func TestGroupConsumerProtocol(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "t", 4, 1)
	cl, _ := coordinator(t, c, "g")
	if r := cgHeartbeat(t, cl, "a", 0, []string{"t"}, nil, kmsg.StringPtr("sticky")); r.ErrorCode != kerr.UnsupportedAssignor.Code {
		t.Fatalf("unknown assignor: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	a := cgHeartbeat(t, cl, "a", 0, []string{"t"}, []kmsg.ConsumerGroupHeartbeatRequestTopic{}, kmsg.StringPtr("uniform"))
	if a.ErrorCode != 0 || a.MemberEpoch != 1 || countOwned(ownedOf(a)) != 4 {
		t.Fatalf("first member: %+v", a)
	}
	aOwned := ownedOf(a)
	bResp := cgHeartbeat(t, cl, "b", 0, []string{"t"}, []kmsg.ConsumerGroupHeartbeatRequestTopic{}, kmsg.StringPtr("uniform"))
	if bResp.ErrorCode != 0 || bResp.MemberEpoch != 2 || countOwned(ownedOf(bResp)) != 0 {
		t.Fatalf("second member: partitions withheld until released: %+v", bResp)
	}
	if st, _ := c.Group("g"); st.State != "Reconciling" {
		t.Fatalf("state %s, want Reconciling", st.State)
	}
	// a learns it must give up two partitions, at its old epoch.
	a = cgHeartbeat(t, cl, "a", 1, nil, aOwned, nil)
	if a.ErrorCode != 0 || a.MemberEpoch != 1 || countOwned(ownedOf(a)) != 2 {
		t.Fatalf("revocation: %+v", a)
	}
	// A coordinator loading the group now has a revoking, and b
	// waiting: a's rebalance timeout starts again at the load.
	checkReplay(t, c, cl, "a revoking")
	if m := replayedShard(t, c).groups["g"].cg.members["a"]; m.state != grouprecords.MemberUnrevokedPartitions || len(m.revoking["t"]) != 2 || time.Until(m.revokeDeadline) <= 0 {
		t.Fatalf("replayed revoking member: %+v", m)
	}
	// a acknowledges (reports owning only two): it moves to epoch 2.
	a = cgHeartbeat(t, cl, "a", 1, nil, ownedOf(a), nil)
	if a.ErrorCode != 0 || a.MemberEpoch != 2 {
		t.Fatalf("after revoking: %+v", a)
	}
	bResp = cgHeartbeat(t, cl, "b", 2, nil, []kmsg.ConsumerGroupHeartbeatRequestTopic{}, nil)
	if bResp.ErrorCode != 0 || countOwned(ownedOf(bResp)) != 2 {
		t.Fatalf("second member after the release: %+v", bResp)
	}
	waitCond(t, c, "a stable consumer group", GroupStable("g", 2))

	d := kmsg.NewPtrConsumerGroupDescribeRequest()
	d.Groups = []string{"g"}
	dr := do[*kmsg.ConsumerGroupDescribeResponse](t, cl, d, 1)
	if g := dr.Groups[0]; g.ErrorCode != 0 || g.State != "Stable" || g.Epoch != 2 || g.AssignorName != "uniform" || len(g.Members) != 2 {
		t.Fatalf("ConsumerGroupDescribe: %+v", g)
	}
	jr := kmsg.NewPtrJoinGroupRequest()
	jr.Group, jr.SessionTimeoutMillis, jr.ProtocolType, jr.Protocols = "g", 10000, "consumer", consumerProtocol("t")
	if r := do[*kmsg.JoinGroupResponse](t, cl, jr, -1); r.ErrorCode != kerr.InconsistentGroupProtocol.Code {
		t.Fatalf("classic join of a consumer group: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	// Fenced: a stale epoch.
	if r := cgHeartbeat(t, cl, "a", 1, nil, nil, nil); r.ErrorCode != kerr.FencedMemberEpoch.Code {
		t.Fatalf("stale epoch: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	// Leave: b's partitions go back to the remaining member.
	if r := cgHeartbeat(t, cl, "b", -1, nil, nil, nil); r.ErrorCode != 0 || r.MemberEpoch != -1 {
		t.Fatalf("leave: %+v", r)
	}
	if st, _ := c.Group("g"); len(st.Members) != 1 || st.Members[0].ID != "a" || st.Generation != 3 {
		t.Fatalf("after b left: %+v", st)
	}
	a = cgHeartbeat(t, cl, "a", 2, nil, ownedOf(a), nil)
	if a.ErrorCode != 0 || a.MemberEpoch != 3 || countOwned(ownedOf(a)) != 4 {
		t.Fatalf("a after b left: %+v", a)
	}
}

// TestGroupAssignors checks the server-side assignors: range gives
// contiguous ranges per topic; uniform is balanced and keeps partitions
// where they were when members change.
func TestGroupAssignors(t *testing.T) {
	subs := map[string][]string{"a": {"x", "y"}, "b": {"x", "y"}, "c": {"x"}}
	sizes := map[string]int{"x": 5, "y": 2}
	r := assignRange(subs, sizes)
	if got := r["a"]["x"]; len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("range a/x = %v", got)
	}
	if got := r["c"]["x"]; len(got) != 1 || got[0] != 4 {
		t.Fatalf("range c/x = %v", got)
	}
	if got := r["b"]["y"]; len(got) != 1 || got[0] != 1 {
		t.Fatalf("range b/y = %v", got)
	}

	count := func(a map[string]map[string][]int32, id string) int {
		n := 0
		for _, ps := range a[id] {
			n += len(ps)
		}
		return n
	}
	subs = map[string][]string{"a": {"x"}, "b": {"x"}, "c": {"x"}}
	sizes = map[string]int{"x": 6}
	u := assignUniform(subs, sizes, nil)
	for _, id := range []string{"a", "b", "c"} {
		if count(u, id) != 2 {
			t.Fatalf("uniform: %v", u)
		}
	}
	// c leaves: a and b keep what they had and share c's.
	delete(subs, "c")
	u2 := assignUniform(subs, sizes, u)
	for _, id := range []string{"a", "b"} {
		if count(u2, id) != 3 {
			t.Fatalf("uniform after a leave: %v", u2)
		}
		for _, p := range u[id]["x"] {
			if !slices.Contains(u2[id]["x"], p) {
				t.Fatalf("uniform moved %s's partition %d: before %v after %v", id, p, u, u2)
			}
		}
	}
}

// TestGroupRebalanceTimeout: a member that does not rejoin a rebalance
// within its rebalance timeout is removed, and the join completes with the
// members that did.
func TestGroupRebalanceTimeout(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "t", 1, 1)
	cl, _ := coordinator(t, c, "g")
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = "g", 10000, 300
	req.ProtocolType, req.Protocols = "consumer", consumerProtocol("t")
	a := do[*kmsg.JoinGroupResponse](t, cl, req, 3) // v3: no KIP-394 round trip
	if a.ErrorCode != 0 {
		t.Fatalf("first join: %v", kerr.ErrorForCode(a.ErrorCode))
	}
	syncGroup(t, cl, "g", a.MemberID, a.Generation, nil)
	start := time.Now()
	b := do[*kmsg.JoinGroupResponse](t, dial(t, c.Addrs()[0]), req, 3) // a never rejoins
	if b.ErrorCode != 0 || b.Generation != a.Generation+1 || b.LeaderID != b.MemberID || len(b.Members) != 1 {
		t.Fatalf("join after a's rebalance timeout: %+v", b)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("the join completed after %v, before the rebalance timeout", d)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "g", a.MemberID, a.Generation
	if r := do[*kmsg.HeartbeatResponse](t, cl, hb, -1); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("heartbeat of the removed member: %v", kerr.ErrorForCode(r.ErrorCode))
	}
}

// TestGroupOffsetsRetention: offsets of a group with no members expire
// offsets.retention.minutes after their commit (KIP-211); the group goes
// with them, and a tombstone is written for each.
func TestGroupOffsetsRetention(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "t", 2, 1)
	cl, id := coordinator(t, c, "g")
	for p := int32(0); p < 2; p++ {
		if code := commit(t, cl, "g", "", -1, "t", p, 5); code != 0 {
			t.Fatalf("simple commit: %v", kerr.ErrorForCode(code))
		}
	}
	b, _ := c.brokerByID(id)
	b.groups.expireOffsets(time.Now().Add(7*24*time.Hour - time.Minute))
	if st, err := c.Group("g"); err != nil || len(st.Offsets["t"]) != 2 {
		t.Fatalf("offsets expired early: %+v (%v)", st, err)
	}
	before, _ := c.PartitionState(offsetsTopic, keyPartition("g", 10))
	b.groups.expireOffsets(time.Now().Add(7*24*time.Hour + time.Minute))
	if _, err := c.Group("g"); err == nil {
		t.Fatal("the group is still there after its offsets expired")
	}
	after, _ := c.PartitionState(offsetsTopic, keyPartition("g", 10))
	if after.HighWatermark != before.HighWatermark+2 {
		t.Fatalf("high watermark %d -> %d, want two tombstones", before.HighWatermark, after.HighWatermark)
	}
}

// TestGroupConsumerRegex: a KIP-848 member subscribing by regex is
// assigned the partitions of every matching topic (whole-name match).
func TestGroupConsumerRegex(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "orders-eu", 2, 1)
	createTopic(t, c, "orders-us", 1, 1)
	createTopic(t, c, "xorders", 1, 1)
	cl, _ := coordinator(t, c, "g")
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Group, req.MemberID, req.RebalanceTimeoutMillis = "g", "m", 5000
	req.SubscribedTopicRegex = kmsg.StringPtr("orders-.*")
	req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	r := do[*kmsg.ConsumerGroupHeartbeatResponse](t, cl, req, 1)
	if r.ErrorCode != 0 || countOwned(ownedOf(r)) != 3 || len(r.Assignment.Topics) != 2 {
		t.Fatalf("regex subscription: %+v", r)
	}
	checkReplay(t, c, cl, "a member subscribed by regex")
	req.MemberID, req.SubscribedTopicRegex = "m2", kmsg.StringPtr("orders-[")
	if r := do[*kmsg.ConsumerGroupHeartbeatResponse](t, cl, req, 1); r.ErrorCode != kerr.InvalidRegularExpression.Code {
		t.Fatalf("invalid regex: %v", kerr.ErrorForCode(r.ErrorCode))
	}
}

// TestGroupCommitUnknownGroup: a commit with a generation to a group that
// does not exist is GROUP_ID_NOT_FOUND from OffsetCommit v9 and
// ILLEGAL_GENERATION before, as Kafka answers; with generation -1 it
// creates a simple group.
func TestGroupCommitUnknownGroup(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "t", 1, 1)
	cl, _ := coordinator(t, c, "g")
	for v, want := range map[int16]int16{9: kerr.GroupIDNotFound.Code, 8: kerr.IllegalGeneration.Code} {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.MemberID, req.Generation = "g", "m", 3
		req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
		if got := do[*kmsg.OffsetCommitResponse](t, cl, req, v).Topics[0].Partitions[0].ErrorCode; got != want {
			t.Fatalf("v%d: %v, want %v", v, kerr.ErrorForCode(got), kerr.ErrorForCode(want))
		}
	}
	if code := commit(t, cl, "g", "", -1, "t", 0, 1); code != 0 {
		t.Fatalf("simple commit: %v", kerr.ErrorForCode(code))
	}
	if st, err := c.Group("g"); err != nil || st.State != "Empty" || st.ProtocolType != "" || st.Offsets["t"][0] != 1 {
		t.Fatalf("simple group: %+v (%v)", st, err)
	}
}

// TestGroupConsumerStaticMember: a KIP-848 static member that leaves with
// epoch -2 keeps its assignment; back under a new member id it gets the
// same partitions at the same epoch (no rebalance). Its instance id cannot
// be taken while it is in the group (UNRELEASED_INSTANCE_ID).
func TestGroupConsumerStaticMember(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "t", 4, 1)
	cl, _ := coordinator(t, c, "g")
	hb := func(member string, epoch int32) *kmsg.ConsumerGroupHeartbeatResponse {
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Group, req.MemberID, req.MemberEpoch, req.InstanceID = "g", member, epoch, kmsg.StringPtr("i1")
		if epoch == 0 {
			req.RebalanceTimeoutMillis, req.SubscribedTopicNames = 5000, []string{"t"}
			req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		}
		return do[*kmsg.ConsumerGroupHeartbeatResponse](t, cl, req, 1)
	}
	a := hb("a", 0)
	if a.ErrorCode != 0 || countOwned(ownedOf(a)) != 4 {
		t.Fatalf("join: %+v", a)
	}
	if r := hb("b", 0); r.ErrorCode != kerr.UnreleasedInstanceID.Code {
		t.Fatalf("second member with the same instance id: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := hb("a", -2); r.ErrorCode != 0 || r.MemberEpoch != -2 {
		t.Fatalf("static leave: %+v", r)
	}
	a2 := hb("a2", 0)
	if a2.ErrorCode != 0 || a2.MemberEpoch != a.MemberEpoch || countOwned(ownedOf(a2)) != 4 {
		t.Fatalf("static rejoin: %+v, before %+v", a2, a)
	}
	st, _ := c.Group("g")
	if len(st.Members) != 1 || st.Members[0].ID != "a2" || st.Generation != a.MemberEpoch {
		t.Fatalf("group after the static rejoin: %+v", st)
	}
}

// A coordinator config that another component already defines is refused
// when it is registered (regBrokerConfigs), as a second handler for an
// API key is.
func TestBrokerConfigDefinedTwice(t *testing.T) {
	for _, k := range []string{"num.partitions", "offsets.commit.timeout.ms", "transaction.max.timeout.ms"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s registered twice without a panic", k)
				}
			}()
			regBrokerConfigs(map[string]configDef{k: brokerConfigDefs[k]})
		}()
	}
}

// TestOffsetsV10: OffsetCommit and OffsetFetch v10 name topics by id
// (KIP-848): a commit by id is read back by name (v9) and by id (v10); an
// id the metadata does not have is UNKNOWN_TOPIC_ID on each of its
// partitions; a v10 fetch of every topic answers by id.
func TestOffsetsV10(t *testing.T) {
	c := Start(t, Brokers(1))
	tid := createTopic(t, c, "t", 2, 1)
	cl, _ := coordinator(t, c, "g")
	unknown := [16]byte{0xde, 0xad}
	creq := kmsg.NewPtrOffsetCommitRequest()
	creq.Group, creq.Generation = "g", -1
	creq.Topics = []kmsg.OffsetCommitRequestTopic{
		{TopicID: tid, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 1, Offset: 42, LeaderEpoch: -1}}},
		{TopicID: unknown, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1, LeaderEpoch: -1}, {Partition: 1, Offset: 1, LeaderEpoch: -1}}},
	}
	cr := do[*kmsg.OffsetCommitResponse](t, cl, creq, 10)
	if len(cr.Topics) != 2 || cr.Topics[0].TopicID != tid || cr.Topics[0].Partitions[0].ErrorCode != 0 || cr.Topics[1].TopicID != unknown {
		t.Fatalf("OffsetCommit v10: %+v", cr)
	}
	for _, p := range cr.Topics[1].Partitions {
		if p.ErrorCode != kerr.UnknownTopicID.Code {
			t.Fatalf("unknown topic id, partition %d: %v", p.Partition, kerr.ErrorForCode(p.ErrorCode))
		}
	}
	if st, _ := c.Group("g"); st.Offsets["t"][1] != 42 {
		t.Fatalf("committed offsets %v", st.Offsets)
	}

	freq := kmsg.NewPtrOffsetFetchRequest()
	freq.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g", MemberEpoch: -1, Topics: []kmsg.OffsetFetchRequestGroupTopic{
		{TopicID: tid, Partitions: []int32{0, 1}}, {TopicID: unknown, Partitions: []int32{0}},
	}}}
	g := do[*kmsg.OffsetFetchResponse](t, cl, freq, 10).Groups[0]
	if g.ErrorCode != 0 || len(g.Topics) != 2 || g.Topics[0].TopicID != tid || g.Topics[0].Partitions[0].Offset != -1 ||
		g.Topics[0].Partitions[1].Offset != 42 || g.Topics[1].TopicID != unknown || g.Topics[1].Partitions[0].ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("OffsetFetch v10: %+v", g)
	}
	freq.Groups[0].Topics = nil // every topic
	g = do[*kmsg.OffsetFetchResponse](t, cl, freq, 10).Groups[0]
	if len(g.Topics) != 1 || g.Topics[0].TopicID != tid || len(g.Topics[0].Partitions) != 1 || g.Topics[0].Partitions[0].Offset != 42 {
		t.Fatalf("OffsetFetch v10 of every topic: %+v", g)
	}
	freq.Groups[0].Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{1}}}
	if g := do[*kmsg.OffsetFetchResponse](t, cl, freq, 9).Groups[0]; g.Topics[0].Topic != "t" || g.Topics[0].Partitions[0].Offset != 42 {
		t.Fatalf("OffsetFetch v9 by name: %+v", g)
	}
}

// A panic in a coordinator operation fails that operation (its connection
// closes, server.go) and leaves the shard to the next one: the shard's
// lock is not held on by the panicking goroutine.
func TestCoordinatorPanicReleasesTheShard(t *testing.T) {
	c := Start(t, Brokers(1))
	coordinator(t, c, "g-panic") // creates __consumer_offsets
	b, err := c.brokerByID(1)
	if err != nil {
		t.Fatal(err)
	}
	waitCond(t, c, "the group's shard loaded", func(*Cluster) bool {
		return b.groups.withGroup("g-panic", func(*groupShard, *group) error { return nil }) == nil
	})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the operation did not panic")
			}
		}()
		b.groups.withGroup("g-panic", func(*groupShard, *group) error { panic("a bug") })
	}()
	done := make(chan error, 1)
	go func() { done <- b.groups.withGroup("g-panic", func(*groupShard, *group) error { return nil }) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the next operation: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the shard stayed locked after a panic")
	}
}
