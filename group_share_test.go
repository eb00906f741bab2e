package kcluster

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/wire"
)

func sgBeat(t *testing.T, cl *wire.Client, group, member string, epoch int32, topics ...string) *kmsg.ShareGroupHeartbeatResponse {
	t.Helper()
	req := kmsg.NewPtrShareGroupHeartbeatRequest()
	req.GroupID, req.MemberID, req.MemberEpoch = group, member, epoch
	if topics != nil {
		req.SubscribedTopicNames = topics
	}
	return do[*kmsg.ShareGroupHeartbeatResponse](t, cl, req, 1)
}

func sgAssigned(r *kmsg.ShareGroupHeartbeatResponse) []int32 {
	var out []int32
	if r.Assignment != nil {
		for _, tp := range r.Assignment.TopicPartitions {
			out = append(out, tp.Partitions...)
		}
	}
	slices.Sort(out)
	return out
}

// coordinatorClient dials the coordinator of group, asking broker via,
// once it is not broker dead.
func coordinatorClient(t *testing.T, c *Cluster, group string, via, dead int32) (*wire.Client, int32) {
	t.Helper()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKeys = []string{group}
	var resp *kmsg.FindCoordinatorResponse
	seed := dial(t, c.Addrs()[via-1])
	waitFor(t, c, "a coordinator for "+group, func(c *Cluster) bool {
		resp = do[*kmsg.FindCoordinatorResponse](t, seed, req, 4)
		return resp.Coordinators[0].ErrorCode == 0 && resp.Coordinators[0].NodeID != dead
	})
	co := resp.Coordinators[0]
	return dial(t, c.Addrs()[co.NodeID-1]), co.NodeID
}

// TestShareGroupHeartbeatAndFailover: share-group members get the simple
// assignor's assignment (two members on one partition both read it; with
// four partitions they split them), leaving bumps the epoch, and the group
// (members, epochs, assignments) is read back from __consumer_offsets by
// the next coordinator when its coordinator is killed. ListGroups,
// DescribeGroups and ShareGroupDescribe show it as Kafka does, and
// DeleteGroups deletes it once empty.
func TestShareGroupHeartbeatAndFailover(t *testing.T) {
	c := Start(t, Brokers(3))
	createTopic(t, c, "one", 1, 3)
	createTopic(t, c, "four", 4, 3)
	cl, coord := coordinatorClient(t, c, "sg", 1, -1)

	// held is each member's assignment as it knows it: a heartbeat
	// carries one only when it changed (or the member asked in full).
	held := map[string][]int32{}
	beat := func(m string, epoch int32, topics ...string) *kmsg.ShareGroupHeartbeatResponse {
		r := sgBeat(t, cl, "sg", m, epoch, topics...)
		if r.Assignment != nil {
			held[m] = sgAssigned(r)
		}
		return r
	}
	a := beat("a", 0, "one")
	b := beat("b", 0, "one")
	if a.ErrorCode != 0 || b.ErrorCode != 0 {
		t.Fatalf("joins: %v, %v", kerr.ErrorForCode(a.ErrorCode), kerr.ErrorForCode(b.ErrorCode))
	}
	// Nothing is assigned before the group coordinator has initialized
	// the share-partition (ShareGroupStatePartitionMetadata): the first
	// member's join starts the initialization, so its answer has none.
	// The second's may already have it, if the initialization finished
	// between the two heartbeats. The next heartbeats bring it, at a new
	// group epoch.
	if len(held["a"]) != 0 {
		t.Fatalf("a assigned %v before the share-partition was initialized", held["a"])
	}
	if len(held["b"]) != 0 && !slices.Equal(held["b"], []int32{0}) {
		t.Fatalf("b assigned %v on joining", held["b"])
	}
	waitFor(t, c, "one/0 initialized", ShareGroupInitialized("sg", "one", 1))
	a = beat("a", a.MemberEpoch)
	b = beat("b", b.MemberEpoch)
	if !slices.Equal(held["a"], []int32{0}) || !slices.Equal(held["b"], []int32{0}) || a.MemberEpoch != b.MemberEpoch {
		t.Fatalf("a %+v (%v), b %+v (%v): want both on one/0 at one epoch", a, held["a"], b, held["b"])
	}
	// A stale epoch is fenced; an unknown member is refused.
	if r := sgBeat(t, cl, "sg", "a", a.MemberEpoch-1); r.ErrorCode != kerr.FencedMemberEpoch.Code {
		t.Fatalf("stale epoch: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := sgBeat(t, cl, "sg", "x", 3); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("unknown member: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	// Both move to "four": two partitions each.
	a = beat("a", a.MemberEpoch, "four")
	b = beat("b", b.MemberEpoch, "four")
	waitFor(t, c, "four initialized", ShareGroupInitialized("sg", "four", 4))
	a = beat("a", a.MemberEpoch)
	b = beat("b", b.MemberEpoch)
	if a.MemberEpoch != b.MemberEpoch {
		// b's beat came after a's moved the epoch on: b catches up.
		a = beat("a", a.MemberEpoch)
	}
	if len(held["a"]) != 2 || len(held["b"]) != 2 || slices.ContainsFunc(held["a"], func(p int32) bool { return slices.Contains(held["b"], p) }) {
		t.Fatalf("a %v, b %v: want four's partitions split two and two", held["a"], held["b"])
	}
	waitFor(t, c, "a stable share group", ShareGroupStable("sg", 2))
	before, _ := c.Group("sg")

	// The coordinator dies: the next leader of the group's partition
	// replays the share-group records.
	if err := c.KillBroker(coord); err != nil {
		t.Fatal(err)
	}
	cl2, coord2 := coordinatorClient(t, c, "sg", coord%3+1, coord)
	if coord2 == coord {
		t.Fatalf("coordinator still %d", coord)
	}
	a2 := sgBeat(t, cl2, "sg", "a", a.MemberEpoch)
	if a2.ErrorCode != 0 || a2.MemberEpoch != a.MemberEpoch {
		t.Fatalf("a at the new coordinator: %+v, %v; want epoch %d kept", a2, kerr.ErrorForCode(a2.ErrorCode), a.MemberEpoch)
	}
	after, err := c.Group("sg")
	if err != nil || after.Type != "share" || after.Generation != before.Generation || len(after.Members) != 2 {
		t.Fatalf("after failover %+v, %v; before %+v", after, err, before)
	}
	for i := range after.Members {
		if !slices.Equal(after.Members[i].Assigned["four"], before.Members[i].Assigned["four"]) {
			t.Fatalf("member %s assigned %v after failover, %v before", after.Members[i].ID, after.Members[i].Assigned, before.Members[i].Assigned)
		}
	}

	// ListGroups (type filter "share"), DescribeGroups (not a classic
	// group), ShareGroupDescribe.
	lg := kmsg.NewPtrListGroupsRequest()
	lg.TypesFilter = []string{"share"}
	lresp := do[*kmsg.ListGroupsResponse](t, cl2, lg, 5)
	if len(lresp.Groups) != 1 || lresp.Groups[0].Group != "sg" || lresp.Groups[0].GroupType != "share" || lresp.Groups[0].ProtocolType != "share" || lresp.Groups[0].GroupState != "Stable" {
		t.Fatalf("ListGroups: %+v", lresp.Groups)
	}
	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Groups = []string{"sg"}
	if d := do[*kmsg.DescribeGroupsResponse](t, cl2, dg, 6); d.Groups[0].ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("DescribeGroups of a share group: %v", kerr.ErrorForCode(d.Groups[0].ErrorCode))
	}
	sd := kmsg.NewPtrShareGroupDescribeRequest()
	sd.GroupIDs = []string{"sg"}
	sresp := do[*kmsg.ShareGroupDescribeResponse](t, cl2, sd, 1)
	if g := sresp.Groups[0]; g.ErrorCode != 0 || g.GroupState != "Stable" || g.Assignor != "simple" || len(g.Members) != 2 || len(g.Members[0].Assignment.TopicPartitions) != 1 {
		t.Fatalf("ShareGroupDescribe: %+v", sresp.Groups)
	}

	// Non-empty groups are not deleted; an empty one is.
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"sg"}
	if d := do[*kmsg.DeleteGroupsResponse](t, cl2, del, 2); d.Groups[0].ErrorCode != kerr.NonEmptyGroup.Code {
		t.Fatalf("deleting a non-empty share group: %v", kerr.ErrorForCode(d.Groups[0].ErrorCode))
	}
	for _, m := range []string{"a", "b"} {
		if r := sgBeat(t, cl2, "sg", m, leaveEpoch); r.ErrorCode != 0 || r.MemberEpoch != leaveEpoch {
			t.Fatalf("%s leaves: %+v", m, r)
		}
	}
	if d := do[*kmsg.DeleteGroupsResponse](t, cl2, del, 2); d.Groups[0].ErrorCode != 0 {
		t.Fatalf("deleting an empty share group: %v", kerr.ErrorForCode(d.Groups[0].ErrorCode))
	}
	if _, err := c.Group("sg"); err == nil {
		t.Fatal("the deleted group is still there")
	}
	// A consumer group cannot take a share group's name, nor the
	// reverse.
	sgBeat(t, cl2, "sg2", "a", 0, "one")
	cg := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	cg.Group, cg.MemberID, cg.RebalanceTimeoutMillis, cg.SubscribedTopicNames = "sg2", "m", 5000, []string{"one"}
	cg.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	if r := do[*kmsg.ConsumerGroupHeartbeatResponse](t, cl2, cg, 1); r.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("consumer heartbeat to a share group: %v", kerr.ErrorForCode(r.ErrorCode))
	}
}

// TestShareVersionOff: with share.version 0 the share APIs answer
// UNSUPPORTED_VERSION, as Kafka's with the feature off.
func TestShareVersionOff(t *testing.T) {
	c := Start(t, Brokers(1), Feature("share.version", 0))
	cl := dial(t, c.Addrs()[0])
	if r := sgBeat(t, cl, "sg", "a", 0, "t"); r.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("ShareGroupHeartbeat: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	req := kmsg.NewPtrShareFetchRequest()
	req.GroupID, req.MemberID = kmsg.StringPtr("sg"), kmsg.StringPtr("a")
	if r := do[*kmsg.ShareFetchResponse](t, cl, req, 2); r.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("ShareFetch: %v", kerr.ErrorForCode(r.ErrorCode))
	}
}
