package kcluster

import (
	"context"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/wire"
)

// rawShare is one member's share session on a partition leader, spoken
// in raw ShareFetch and ShareAcknowledge requests.
type rawShare struct {
	t      *testing.T
	cl     *wire.Client
	group  string
	member string
	topic  [16]byte
	epoch  int32
}

type ack struct {
	first, last int64
	typ         int8
}

// fetch sends a ShareFetch (v2, batch-optimized, up to max records) with
// acks on partition 0 and returns partition 0's answer.
func (s *rawShare) fetch(max int32, acks ...ack) kmsg.ShareFetchResponseTopicPartition {
	s.t.Helper()
	req := kmsg.NewPtrShareFetchRequest()
	req.GroupID, req.MemberID, req.ShareSessionEpoch = kmsg.StringPtr(s.group), kmsg.StringPtr(s.member), s.epoch
	req.MaxRecords, req.BatchSize, req.MaxBytes, req.MaxWaitMillis = max, max, 1<<20, 0
	rt := kmsg.NewShareFetchRequestTopic()
	rt.TopicID = s.topic
	rp := kmsg.NewShareFetchRequestTopicPartition()
	rp.Partition = 0
	for _, a := range acks {
		ab := kmsg.NewShareFetchRequestTopicPartitionAcknowledgementBatch()
		ab.FirstOffset, ab.LastOffset, ab.AcknowledgeTypes = a.first, a.last, []int8{a.typ}
		rp.AcknowledgementBatches = append(rp.AcknowledgementBatches, ab)
	}
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := do[*kmsg.ShareFetchResponse](s.t, s.cl, req, 2)
	if resp.ErrorCode != 0 {
		s.t.Fatalf("ShareFetch of %s at epoch %d: %v", s.member, s.epoch, kerr.ErrorForCode(resp.ErrorCode))
	}
	s.epoch++
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			return p
		}
	}
	return kmsg.NewShareFetchResponseTopicPartition()
}

// acquiredOffsets flattens a partition answer's acquired ranges into
// offset → delivery count.
func acquiredOffsets(p kmsg.ShareFetchResponseTopicPartition) map[int64]int16 {
	out := map[int64]int16{}
	for _, r := range p.AcquiredRecords {
		for o := r.FirstOffset; o <= r.LastOffset; o++ {
			out[o] = r.DeliveryCount
		}
	}
	return out
}

// newRawShare opens a share session of member on the leader of topic/0,
// once the group's coordinator has initialized its share-partition.
func newRawShare(t *testing.T, c *Cluster, group, member, topic string, id [16]byte) *rawShare {
	t.Helper()
	initShareGroup(t, c, group, topic, 1)
	_, addr := leaderAddr(t, c, topic, 0)
	return &rawShare{t: t, cl: dial(t, addr), group: group, member: member, topic: id}
}

// initShareGroup has the group's coordinator initialize the share-partitions
// of topic's partitions partitions: a member joins, subscribed to topic,
// until they are, then leaves. Nothing is done if they already are.
func initShareGroup(t *testing.T, c *Cluster, group, topic string, partitions int32) {
	t.Helper()
	if ShareGroupInitialized(group, topic, partitions)(c) {
		return
	}
	cl, _ := coordinatorClient(t, c, group, c.running()[0].id, -1)
	r := sgBeat(t, cl, group, "initializer", 0, topic)
	if r.ErrorCode != 0 {
		t.Fatalf("joining %s: %v", group, kerr.ErrorForCode(r.ErrorCode))
	}
	waitFor(t, c, topic+" initialized", ShareGroupInitialized(group, topic, partitions))
	if r := sgBeat(t, cl, group, "initializer", leaveEpoch); r.ErrorCode != 0 {
		t.Fatalf("leaving %s: %v", group, kerr.ErrorForCode(r.ErrorCode))
	}
}

// TestSharePartitionNotInitialized: a partition leader does not initialize
// a share-partition; one its group has not initialized answers share
// fetches UNKNOWN_TOPIC_OR_PARTITION (as Kafka's SharePartition), and the
// group coordinator initializes it for a member subscribed to its topic,
// at share.auto.offset.reset, recorded in ShareGroupStatePartitionMetadata.
func TestSharePartitionNotInitialized(t *testing.T) {
	c := Start(t, Brokers(3), Feature("share.version", 1))
	id := createTopic(t, c, "q", 1, 3)
	setGroupConfig(t, c, "sg", "share.auto.offset.reset", "earliest")
	produceStrings(t, c, "q", 0, 4)
	_, addr := leaderAddr(t, c, "q", 0)
	a := &rawShare{t: t, cl: dial(t, addr), group: "sg", member: "a", topic: id}
	if p := a.fetch(10); p.ErrorCode != kerr.UnknownTopicOrPartition.Code || len(p.AcquiredRecords) != 0 {
		t.Fatalf("share fetch of a share-partition never initialized: %v, acquired %v", kerr.ErrorForCode(p.ErrorCode), p.AcquiredRecords)
	}
	if st, _ := c.ShareGroup("sg"); len(st.Partitions) != 0 {
		t.Fatalf("the leader loaded %+v", st.Partitions)
	}
	initShareGroup(t, c, "sg", "q", 1)
	// The initialization is in the group's records: its coordinator's
	// successor has it.
	st, err := c.ShareGroup("sg")
	if err != nil || !slices.Equal(st.Initialized["q"], []int32{0}) || len(st.Initializing) != 0 {
		t.Fatalf("ShareGroup: %+v, %v; want q/0 initialized", st, err)
	}
	if err := c.KillBroker(st.Coordinator); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "q/0 initialized at the next coordinator", ShareGroupInitialized("sg", "q", 1))
	_, addr = leaderAddr(t, c, "q", 0)
	a = &rawShare{t: t, cl: dial(t, addr), group: "sg", member: "a", topic: id}
	if got := acquiredOffsets(a.fetch(10)); len(got) != 4 || got[0] != 1 {
		t.Fatalf("acquired %v, want offsets 0-3 (earliest) at delivery 1", got)
	}
}

func inFlight(t *testing.T, c *Cluster, group string) SharePartitionState {
	t.Helper()
	st, err := c.ShareGroup(group)
	if err != nil || len(st.Partitions) != 1 {
		t.Fatalf("ShareGroup(%s): %+v, %v", group, st, err)
	}
	return st.Partitions[0]
}

// TestSharePartitionAcknowledgements: RELEASE makes a record available
// again with its delivery count kept; REJECT archives it for good; a
// record released at group.share.delivery.count.limit is archived; ACCEPT
// moves the start offset; an acknowledgement of a record the member does
// not hold is INVALID_RECORD_STATE.
func TestSharePartitionAcknowledgements(t *testing.T) {
	c := Start(t, Brokers(1), Feature("share.version", 1), BrokerConfig("group.share.delivery.count.limit", "2"))
	id := createTopic(t, c, "q", 1, 1)
	setGroupConfig(t, c, "sg", "share.auto.offset.reset", "earliest")
	produceStrings(t, c, "q", 0, 4) // one batch, offsets 0-3
	// A share group with no members: ShareFetch does not ask the
	// coordinator, as in Kafka.
	a := newRawShare(t, c, "sg", "a", "q", id)
	b := newRawShare(t, c, "sg", "b", "q", id)

	got := acquiredOffsets(a.fetch(10))
	if len(got) != 4 || got[0] != 1 || got[3] != 1 {
		t.Fatalf("a acquired %v, want offsets 0-3 at delivery 1", got)
	}
	if got := acquiredOffsets(b.fetch(10)); len(got) != 0 {
		t.Fatalf("b acquired %v while a holds everything", got)
	}
	// b cannot acknowledge a's records.
	if p := b.fetch(10, ack{0, 0, ackAccept}); p.AcknowledgeErrorCode != kerr.InvalidRecordState.Code {
		t.Fatalf("b acknowledging a's record: %v, want INVALID_RECORD_STATE", kerr.ErrorForCode(p.AcknowledgeErrorCode))
	}
	// a accepts 0, releases 1 and 2, rejects 3; the same request
	// acquires 1 and 2 again for a (delivery 2).
	p := a.fetch(10, ack{0, 0, ackAccept}, ack{1, 2, ackRelease}, ack{3, 3, ackReject})
	if p.AcknowledgeErrorCode != 0 {
		t.Fatalf("a's acknowledgements: %v", kerr.ErrorForCode(p.AcknowledgeErrorCode))
	}
	if got := acquiredOffsets(p); len(got) != 2 || got[1] != 2 || got[2] != 2 {
		t.Fatalf("after the release a acquired %v, want 1 and 2 at delivery 2", got)
	}
	sp := inFlight(t, c, "sg")
	if sp.StartOffset != 1 || sp.EndOffset != 4 {
		t.Fatalf("share-partition %+v, want start 1 (0 accepted), end 4", sp)
	}
	// Released at the delivery limit (2): archived, not redelivered.
	p = a.fetch(10, ack{1, 1, ackRelease}, ack{2, 2, ackAccept})
	if p.AcknowledgeErrorCode != 0 || len(p.AcquiredRecords) != 0 {
		t.Fatalf("a's second round: ack %v, acquired %v; want nothing redelivered", kerr.ErrorForCode(p.AcknowledgeErrorCode), p.AcquiredRecords)
	}
	sp = inFlight(t, c, "sg")
	if sp.StartOffset != 4 || len(sp.InFlight) != 0 {
		t.Fatalf("share-partition %+v, want every record done (start 4)", sp)
	}
	// A second acknowledgement of a done record is refused.
	if p := a.fetch(10, ack{2, 2, ackAccept}); p.AcknowledgeErrorCode != kerr.InvalidRecordState.Code {
		t.Fatalf("accepting offset 2 again: %v, want INVALID_RECORD_STATE", kerr.ErrorForCode(p.AcknowledgeErrorCode))
	}
	// New records go on from the end offset.
	produceStrings(t, c, "q", 4, 6)
	if got := acquiredOffsets(b.fetch(10)); len(got) != 2 || got[4] != 1 || got[5] != 1 {
		t.Fatalf("b acquired %v, want 4 and 5 at delivery 1", got)
	}
}

// TestSharePartitionLockExpiry: records a member acquires and does not
// acknowledge become available when their acquisition lock expires and go
// to another member, delivery count 2.
func TestSharePartitionLockExpiry(t *testing.T) {
	c := Start(t, Brokers(1), Feature("share.version", 1))
	id := createTopic(t, c, "q", 1, 1)
	setGroupConfig(t, c, "sg", "share.auto.offset.reset", "earliest")
	setGroupConfig(t, c, "sg", "share.record.lock.duration.ms", "1000")
	produceStrings(t, c, "q", 0, 3)
	a := newRawShare(t, c, "sg", "a", "q", id)
	b := newRawShare(t, c, "sg", "b", "q", id)
	if got := acquiredOffsets(a.fetch(10)); len(got) != 3 {
		t.Fatalf("a acquired %v", got)
	}
	waitFor(t, c, "a's locks to expire", func(c *Cluster) bool {
		st, err := c.ShareGroup("sg")
		if err != nil || len(st.Partitions) != 1 {
			return false
		}
		for _, r := range st.Partitions[0].InFlight {
			if r.State != "AVAILABLE" {
				return false
			}
		}
		return len(st.Partitions[0].InFlight) == 3
	})
	if got := acquiredOffsets(b.fetch(10)); len(got) != 3 || got[0] != 2 || got[2] != 2 {
		t.Fatalf("b acquired %v, want 0-2 at delivery 2", got)
	}
	if p := a.fetch(10, ack{0, 2, ackAccept}); p.AcknowledgeErrorCode != kerr.InvalidRecordState.Code {
		t.Fatalf("a accepting records it no longer holds: %v, want INVALID_RECORD_STATE", kerr.ErrorForCode(p.AcknowledgeErrorCode))
	}
}

// TestSharePartitionReadCommitted: with share.isolation.level
// read_committed, a share fetch stops at the last stable offset and never
// delivers an aborted transaction's records; they, and the markers, are
// archived.
func TestSharePartitionReadCommitted(t *testing.T) {
	c := Start(t, Brokers(1))
	id := createTopic(t, c, "q", 1, 1)
	setGroupConfig(t, c, "sg", "share.auto.offset.reset", "earliest")
	setGroupConfig(t, c, "sg", "share.isolation.level", "read_committed")
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("q"), kgo.TransactionalID("tx"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	txn := func(commit bool, vals ...string) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if err := cl.ProduceSync(ctx, kgo.StringRecord(v)).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	txn(false, "aborted-1", "aborted-2") // offsets 0, 1, marker 2
	txn(true, "committed-1")             // offset 3, marker 4
	waitFor(t, c, "the commit marker", PartitionStable("q", 0))
	a := newRawShare(t, c, "sg", "a", "q", id)
	p := a.fetch(10)
	got := acquiredOffsets(p)
	if len(got) != 1 || got[3] != 1 {
		t.Fatalf("acquired %v, want only offset 3 (the committed record)", got)
	}
	sp := inFlight(t, c, "sg")
	for _, r := range sp.InFlight {
		if r.Offset != 3 && r.State != "ARCHIVED" {
			t.Fatalf("in flight %+v: the aborted records and the markers should be archived", sp.InFlight)
		}
	}
	// An open transaction holds the share fetch at the last stable
	// offset.
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, kgo.StringRecord("open")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if got := acquiredOffsets(a.fetch(10, ack{3, 3, ackAccept})); len(got) != 0 {
		t.Fatalf("acquired %v past the last stable offset", got)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the commit marker", PartitionStable("q", 0))
	if got := acquiredOffsets(a.fetch(10)); len(got) != 1 || got[5] != 1 {
		t.Fatalf("acquired %v after the commit, want offset 5", got)
	}
}

// TestSharePartitionRenew: RENEW (ShareFetch v2 with IsRenewAck) extends
// a record's acquisition lock and keeps it acquired.
func TestSharePartitionRenew(t *testing.T) {
	c := Start(t, Brokers(1))
	id := createTopic(t, c, "q", 1, 1)
	setGroupConfig(t, c, "sg", "share.auto.offset.reset", "earliest")
	produceStrings(t, c, "q", 0, 1)
	a := newRawShare(t, c, "sg", "a", "q", id)
	if got := acquiredOffsets(a.fetch(10)); len(got) != 1 {
		t.Fatalf("acquired %v", got)
	}
	before := inFlight(t, c, "sg").InFlight[0]
	req := kmsg.NewPtrShareFetchRequest()
	req.GroupID, req.MemberID, req.ShareSessionEpoch, req.IsRenewAck = kmsg.StringPtr("sg"), kmsg.StringPtr("a"), a.epoch, true
	req.MaxBytes = 0 // a renew-only request fetches nothing
	rt := kmsg.NewShareFetchRequestTopic()
	rt.TopicID = id
	rp := kmsg.NewShareFetchRequestTopicPartition()
	ab := kmsg.NewShareFetchRequestTopicPartitionAcknowledgementBatch()
	ab.FirstOffset, ab.LastOffset, ab.AcknowledgeTypes = 0, 0, []int8{ackRenew}
	rp.AcknowledgementBatches = append(rp.AcknowledgementBatches, ab)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := do[*kmsg.ShareFetchResponse](t, a.cl, req, 2)
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 || resp.Topics[0].Partitions[0].AcknowledgeErrorCode != 0 {
		t.Fatalf("renew: %+v", resp)
	}
	a.epoch++
	after := inFlight(t, c, "sg").InFlight[0]
	if after.State != "ACQUIRED" || after.Member != "a" || after.DeliveryCount != before.DeliveryCount {
		t.Fatalf("after RENEW %+v, before %+v: want still acquired by a, same delivery count", after, before)
	}
	// v1 has no RENEW.
	req.SetVersion(1)
	req.IsRenewAck, req.ShareSessionEpoch = false, a.epoch
	resp = do[*kmsg.ShareFetchResponse](t, a.cl, req, 1)
	if resp.Topics[0].Partitions[0].AcknowledgeErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("RENEW at v1: %v, want INVALID_REQUEST", kerr.ErrorForCode(resp.Topics[0].Partitions[0].AcknowledgeErrorCode))
	}
}

// TestShareGroupOffsetsAdmin: AlterShareGroupOffsets sets an empty
// group's start offset (a new state epoch, which fences the share-partition
// its leader has loaded: its next write fails and it loads the new state);
// DescribeShareGroupOffsets reports it and the lag; DeleteShareGroupOffsets
// removes it.
func TestShareGroupOffsetsAdmin(t *testing.T) {
	c := Start(t, Brokers(1))
	id := createTopic(t, c, "q", 1, 1)
	produceStrings(t, c, "q", 0, 10)
	cl, _ := coordinatorClient(t, c, "sg", 1, -1)
	alter := func(start int64) int16 {
		req := kmsg.NewPtrAlterShareGroupOffsetsRequest()
		req.GroupID = "sg"
		rt := kmsg.NewAlterShareGroupOffsetsRequestTopic()
		rt.Topic = "q"
		rp := kmsg.NewAlterShareGroupOffsetsRequestTopicPartition()
		rp.Partition, rp.StartOffset = 0, start
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := do[*kmsg.AlterShareGroupOffsetsResponse](t, cl, req, 0)
		if resp.ErrorCode != 0 {
			return resp.ErrorCode
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	describe := func() []kmsg.DescribeShareGroupOffsetsResponseGroupTopic {
		req := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
		rg := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
		rg.GroupID = "sg" // Topics nil: every partition with state
		req.Groups = append(req.Groups, rg)
		resp := do[*kmsg.DescribeShareGroupOffsetsResponse](t, cl, req, 1)
		if resp.Groups[0].ErrorCode != 0 {
			t.Fatalf("describe: %v", kerr.ErrorForCode(resp.Groups[0].ErrorCode))
		}
		return resp.Groups[0].Topics
	}
	if code := alter(4); code != 0 {
		t.Fatalf("alter: %v", kerr.ErrorForCode(code))
	}
	if ts := describe(); len(ts) != 1 || ts[0].TopicID != id || ts[0].Partitions[0].StartOffset != 4 || ts[0].Partitions[0].Lag != 6 {
		t.Fatalf("described %+v, want q/0 at 4 with lag 6", ts)
	}
	a := newRawShare(t, c, "sg", "a", "q", id)
	if got := acquiredOffsets(a.fetch(100)); len(got) != 6 || got[4] != 1 {
		t.Fatalf("acquired %v, want 4-9", got)
	}
	// Back to 2: the loaded share-partition is fenced by the new state
	// epoch; a's acknowledgement fails, and the same fetch, on the
	// state loaded again, acquires from 2.
	if code := alter(2); code != 0 {
		t.Fatalf("alter again: %v", kerr.ErrorForCode(code))
	}
	p := a.fetch(100, ack{4, 9, ackAccept})
	if p.AcknowledgeErrorCode == 0 {
		t.Fatal("an acknowledgement under the old state epoch succeeded")
	}
	if got := acquiredOffsets(p); len(got) != 8 || got[2] != 1 {
		t.Fatalf("acquired %v after the alter, want 2-9", got)
	}
	del := kmsg.NewPtrDeleteShareGroupOffsetsRequest()
	del.GroupID = "sg"
	dt := kmsg.NewDeleteShareGroupOffsetsRequestTopic()
	dt.Topic = "q"
	del.Topics = append(del.Topics, dt)
	if resp := do[*kmsg.DeleteShareGroupOffsetsResponse](t, cl, del, 0); resp.ErrorCode != 0 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("delete: %+v", resp)
	}
	if ts := describe(); len(ts) != 0 {
		t.Fatalf("described %+v after the delete, want nothing", ts)
	}
	// A group with members is not altered.
	if r := sgBeat(t, cl, "sg", "m", 0, "q"); r.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(r.ErrorCode))
	}
	if code := alter(0); code != kerr.NonEmptyGroup.Code {
		t.Fatalf("altering a group with a member: %v, want NON_EMPTY_GROUP", kerr.ErrorForCode(code))
	}
}
