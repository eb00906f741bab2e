package kcluster

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestShareStatePruned: after many acknowledgements the share coordinator
// deletes the records of __share_group_state below the last snapshot
// (its log start moves), and the next coordinator, replaying what is
// left, reads the right state: the start offset, a released record with
// its delivery count, and nothing acknowledged delivered again.
func TestShareStatePruned(t *testing.T) {
	c := Start(t, Brokers(3), Feature("share.version", 1),
		BrokerConfig("share.coordinator.snapshot.update.records.per.snapshot", "2"),
		BrokerConfig("share.coordinator.state.topic.prune.interval.ms", "20"))
	id := createTopic(t, c, "q", 1, 3)
	setGroupConfig(t, c, "sg", "share.auto.offset.reset", "earliest")
	for i := range 30 {
		produceStrings(t, c, "q", i, i+1) // a batch a record
	}
	key := sharePartitionKey{"sg", id, 0}
	p := keyPartition(shareCoordinatorKey(key), 10)

	a := newRawShare(t, c, "sg", "a", "q", id)
	// One record at a time, each accepted with the next fetch: 0-24
	// accepted, 25 acquired.
	var acks []ack
	for o := int64(0); o <= 25; o++ {
		got := acquiredOffsets(a.fetch(1, acks...))
		if len(got) != 1 || got[o] != 1 {
			t.Fatalf("fetch %d acquired %v, want offset %d at delivery 1", o, got, o)
		}
		acks = []ack{{o, o, ackAccept}}
	}
	// 25 released with a ShareAcknowledge, so a holds nothing when a
	// broker dies.
	req := kmsg.NewPtrShareAcknowledgeRequest()
	req.GroupID, req.MemberID, req.ShareSessionEpoch = kmsg.StringPtr("sg"), kmsg.StringPtr("a"), a.epoch
	rt := kmsg.NewShareAcknowledgeRequestTopic()
	rt.TopicID = id
	rp := kmsg.NewShareAcknowledgeRequestTopicPartition()
	for _, ab := range []ack{{25, 25, ackRelease}} {
		b := kmsg.NewShareAcknowledgeRequestTopicPartitionAcknowledgementBatch()
		b.FirstOffset, b.LastOffset, b.AcknowledgeTypes = ab.first, ab.last, []int8{ab.typ}
		rp.AcknowledgementBatches = append(rp.AcknowledgementBatches, b)
	}
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := do[*kmsg.ShareAcknowledgeResponse](t, a.cl, req, 2)
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("ShareAcknowledge: %+v", resp)
	}
	waitFor(t, c, "__share_group_state pruned", func(c *Cluster) bool {
		st, err := c.PartitionState(shareStateTopic, p)
		return err == nil && st.LogStartOffset > 0
	})
	st := partState(t, c, shareStateTopic, p)
	if st.LogStartOffset >= st.HighWatermark {
		t.Fatalf("%s/%d pruned to %d, its high watermark %d: the last snapshot must stay", shareStateTopic, p, st.LogStartOffset, st.HighWatermark)
	}
	t.Logf("%s/%d: log start %d of %d records", shareStateTopic, p, st.LogStartOffset, st.HighWatermark)

	// The share coordinator fails over: its successor replays from the
	// pruned log start.
	coord := findShareCoordinator(t, c, 1, key)
	qLeader := partState(t, c, "q", 0).Leader
	if err := c.KillBroker(coord); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "a new share coordinator", LeaderElected(shareStateTopic, p, coord))
	next := partState(t, c, shareStateTopic, p).Leader
	rs := readShareState(t, c, next, key, partState(t, c, "q", 0).LeaderEpoch)
	if rs.ErrorCode != 0 || rs.StartOffset != 25 || len(rs.StateBatches) != 1 {
		t.Fatalf("state replayed by %d: %+v (%v), want start 25 and one batch", next, rs, kerr.ErrorForCode(rs.ErrorCode))
	}
	if b := rs.StateBatches[0]; b.FirstOffset != 25 || b.LastOffset != 25 || b.DeliveryState != recAvailable || b.DeliveryCount != 1 {
		t.Fatalf("replayed batch %+v, want offset 25 available at delivery 1", b)
	}
	// The partition's leader, the same or a new one, goes on from
	// there: 25 at delivery 2, 26-29 at delivery 1, nothing below.
	newLeader := qLeader == coord
	if newLeader {
		waitFor(t, c, "a new leader of q/0", LeaderElected("q", 0, coord))
	}
	// (The group's coordinator may have been the broker killed too.)
	waitFor(t, c, "the group at its coordinator", ShareGroupInitialized("sg", "q", 1))
	b := &rawShare{t: t, cl: dial(t, addrOf(c, partState(t, c, "q", 0).Leader)), group: "sg", member: "b", topic: id}
	bp := b.fetch(10)
	got := acquiredOffsets(bp)
	if bp.ErrorCode != 0 || len(got) != 5 || got[25] != 2 || got[26] != 1 || got[29] != 1 {
		t.Fatalf("after the failover b acquired %v (%v), want 25 at delivery 2 and 26-29 at delivery 1", got, kerr.ErrorForCode(bp.ErrorCode))
	}
}
