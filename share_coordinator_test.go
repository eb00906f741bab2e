package kcluster

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/internal/grouprecords"
)

// findShareCoordinator asks broker via FindCoordinator (v6, key type 2)
// for the share coordinator of key.
func findShareCoordinator(t *testing.T, c *Cluster, via int32, key sharePartitionKey) int32 {
	t.Helper()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorType, req.CoordinatorKeys = 2, []string{shareCoordinatorKey(key)}
	resp := do[*kmsg.FindCoordinatorResponse](t, dial(t, c.Addrs()[via-1]), req, 6)
	if err := kerr.ErrorForCode(resp.Coordinators[0].ErrorCode); err != nil {
		t.Fatalf("FindCoordinator(share, %s): %v", req.CoordinatorKeys[0], err)
	}
	return resp.Coordinators[0].NodeID
}

// readShareState sends ReadShareGroupState to broker id.
func readShareState(t *testing.T, c *Cluster, id int32, key sharePartitionKey, leaderEpoch int32) kmsg.ReadShareGroupStateResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrReadShareGroupStateRequest()
	req.GroupID = key.group
	rt := kmsg.NewReadShareGroupStateRequestTopic()
	rt.TopicID = key.topicID
	rp := kmsg.NewReadShareGroupStateRequestTopicPartition()
	rp.Partition, rp.LeaderEpoch = key.partition, leaderEpoch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := do[*kmsg.ReadShareGroupStateResponse](t, dial(t, c.Addrs()[id-1]), req, 0)
	return resp.Topics[0].Partitions[0]
}

// shareStateRecords reads the records of partition p of
// __share_group_state, up to its high watermark.
func shareStateRecords(t *testing.T, c *Cluster, p int32) []*kgo.Record {
	t.Helper()
	hw := partState(t, c, shareStateTopic, p).HighWatermark
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{shareStateTopic: {p: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*kgo.Record
	for int64(len(out)) < hw {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s/%d", len(out), hw, shareStateTopic, p)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// TestShareCoordinatorRecords: a share-partition's changes are written to
// its __share_group_state partition as Kafka's share coordinator writes
// them: a snapshot at initialization, an update for the leader's read in
// a new leader epoch, then updates, and a snapshot of the merged state
// after share.coordinator.snapshot.update.records.per.snapshot (2 here)
// updates. Killed, the coordinator's successor replays the snapshot and
// the updates after it into the same state, and still fences an older
// leader epoch.
func TestShareCoordinatorRecords(t *testing.T) {
	c := shareCluster(t, "sg", "q", 1, 4, BrokerConfig("share.coordinator.snapshot.update.records.per.snapshot", "2"))
	id := metadataOf(t, nil, c.Addrs()[0], "q").Topics[0].TopicID
	key := sharePartitionKey{"sg", id, 0}
	a := newRawShare(t, c, "sg", "a", "q", id)
	if got := acquiredOffsets(a.fetch(10)); len(got) != 4 {
		t.Fatalf("acquired %v, want offsets 0-3", got)
	}
	for _, acks := range [][]ack{{{0, 0, ackAccept}}, {{1, 1, ackAccept}}, {{2, 2, ackReject}}, {{3, 3, ackRelease}}} {
		if p := a.fetch(0, acks...); p.AcknowledgeErrorCode != 0 {
			t.Fatalf("acknowledging %v: %v", acks, kerr.ErrorForCode(p.AcknowledgeErrorCode))
		}
	}
	coord := findShareCoordinator(t, c, 1, key)
	p := keyPartition(shareCoordinatorKey(key), 10)
	if st := partState(t, c, shareStateTopic, p); st.Leader != coord {
		t.Fatalf("share coordinator %d, but %s/%d is led by %d", coord, shareStateTopic, p, st.Leader)
	}
	type rec struct {
		typ   int16
		start int64
		n     int // state batches
	}
	var got []rec
	for _, r := range shareStateRecords(t, c, p) {
		var k grouprecords.ShareStateKey
		if err := k.ReadFrom(r.Key); err != nil {
			t.Fatalf("key % x: %v", r.Key, err)
		}
		if k.GroupID != "sg" || k.TopicID != id || k.Partition != 0 {
			t.Fatalf("record of %+v", k)
		}
		switch k.Type {
		case grouprecords.TypeShareSnapshot:
			var v grouprecords.ShareSnapshotValue
			if err := v.ReadFrom(r.Value); err != nil {
				t.Fatal(err)
			}
			got = append(got, rec{k.Type, v.StartOffset, len(v.StateBatches)})
		case grouprecords.TypeShareUpdate:
			var v grouprecords.ShareUpdateValue
			if err := v.ReadFrom(r.Value); err != nil {
				t.Fatal(err)
			}
			got = append(got, rec{k.Type, v.StartOffset, len(v.StateBatches)})
		}
	}
	const snap, upd = grouprecords.TypeShareSnapshot, grouprecords.TypeShareUpdate
	want := []rec{
		{snap, -1, 0}, // initialized by the group coordinator, start -1 (uninitialized)
		{upd, -1, 0},  // the leader's read in epoch 0 (from -1)
		{upd, 0, 0},   // the leader's start, the log start (earliest)
		{snap, 1, 0},  // offset 0 accepted, after 2 updates: a snapshot, start 1
		{upd, 2, 1},   // offset 1 accepted
		{upd, 3, 1},   // offset 2 rejected: archived
		{snap, 3, 1},  // offset 3 released: available, delivery 1
	}
	if !slices.Equal(got, want) {
		t.Fatalf("__share_group_state/%d holds %+v, want %+v", p, got, want)
	}

	if err := c.KillBroker(coord); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "a new share coordinator", LeaderElected(shareStateTopic, p, coord))
	next := partState(t, c, shareStateTopic, p).Leader
	if via := findShareCoordinator(t, c, next, key); via != next {
		t.Fatalf("FindCoordinator: %d, but %s/%d is led by %d", via, shareStateTopic, p, next)
	}
	st := readShareState(t, c, next, key, 0)
	// State epoch 1: the group epoch the group coordinator initialized
	// the share-partition at (its first member's join).
	if st.ErrorCode != 0 || st.StartOffset != 3 || st.StateEpoch != 1 || len(st.StateBatches) != 1 {
		t.Fatalf("state replayed by %d: %+v (%v), want start 3 and one batch", next, st, kerr.ErrorForCode(st.ErrorCode))
	}
	if b := st.StateBatches[0]; b.FirstOffset != 3 || b.LastOffset != 3 || b.DeliveryState != recAvailable || b.DeliveryCount != 1 {
		t.Fatalf("replayed batch %+v, want offset 3 available at delivery 1", b)
	}
	// The leader epoch written survives: a read from an older leader
	// is fenced; the coordinator of another key is not this one's.
	if st := readShareState(t, c, next, key, -1); st.ErrorCode != kerr.FencedLeaderEpoch.Code {
		t.Fatalf("a read in leader epoch -1: %v, want FENCED_LEADER_EPOCH", kerr.ErrorForCode(st.ErrorCode))
	}
	for other := int32(1); other <= 3; other++ {
		if other != next && other != coord {
			if st := readShareState(t, c, other, key, 0); st.ErrorCode != kerr.NotCoordinator.Code {
				t.Fatalf("broker %d answered for %d: %v, want NOT_COORDINATOR", other, next, kerr.ErrorForCode(st.ErrorCode))
			}
		}
	}
	// A share-partition never initialized.
	if st := readShareState(t, c, next, sharePartitionKey{"sg", id, 7}, 0); st.ErrorCode != kerr.UnknownTopicOrPartition.Code &&
		st.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("reading a state never initialized: %v", kerr.ErrorForCode(st.ErrorCode))
	}
}

// TestKilledBrokerReleasesNothing: a broker killed while a member of a
// share group holds records (its share-partition leader) does not release
// them as its connections close: a dead process writes nothing, and a
// release is a write to the share coordinator, which its followers could
// take before it stops.
func TestKilledBrokerReleasesNothing(t *testing.T) {
	c := shareCluster(t, "sg", "q", 1, 4)
	id := metadataOf(t, nil, c.Addrs()[0], "q").Topics[0].TopicID
	a := newRawShare(t, c, "sg", "a", "q", id)
	if got := acquiredOffsets(a.fetch(10)); len(got) != 4 {
		t.Fatalf("acquired %v, want offsets 0-3", got)
	}
	leader := partState(t, c, "q", 0).Leader
	b, _ := c.brokerByID(leader)
	b.shares.mu.Lock()
	sp := b.shares.mu.parts[sharePartitionKey{"sg", id, 0}]
	b.shares.mu.Unlock()
	if sp == nil {
		t.Fatal("the leader has no share-partition")
	}
	if err := c.KillBroker(leader); err != nil {
		t.Fatal(err)
	}
	sp.mu.Lock()
	held := 0
	for _, r := range sp.mu.inflight {
		if r.state == recAcquired && r.member == "a" {
			held++
		}
	}
	sp.mu.Unlock()
	if held != 4 {
		t.Fatalf("%d records still acquired by a after the kill, want 4", held)
	}
}

// TestFindShareCoordinator: key type 2 wants v6 and a key of the form
// groupId:topicId:partition; INVALID_REQUEST otherwise.
func TestFindShareCoordinator(t *testing.T) {
	c := Start(t, Brokers(1), Feature("share.version", 1))
	cl := dial(t, c.Addrs()[0])
	for _, tc := range []struct {
		v    int16
		key  string
		want int16
	}{
		{6, "sg:AAAAAAAAAAAAAAAAAAAAAA:0", 0},
		{6, "sg:AAAAAAAAAAAAAAAAAAAAAA", kerr.InvalidRequest.Code},
		{6, ":AAAAAAAAAAAAAAAAAAAAAA:0", kerr.InvalidRequest.Code},
		{6, "sg:not-a-uuid:0", kerr.InvalidRequest.Code},
		{6, "sg:AAAAAAAAAAAAAAAAAAAAAA:-1", kerr.InvalidRequest.Code},
		{5, "sg:AAAAAAAAAAAAAAAAAAAAAA:0", kerr.InvalidRequest.Code},
	} {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorType, req.CoordinatorKeys = 2, []string{tc.key}
		resp := do[*kmsg.FindCoordinatorResponse](t, cl, req, tc.v)
		if got := resp.Coordinators[0]; got.ErrorCode != tc.want || tc.want == 0 && got.NodeID != 1 {
			t.Fatalf("v%d %q: node %d, %v; want %v", tc.v, tc.key, got.NodeID, kerr.ErrorForCode(got.ErrorCode), kerr.ErrorForCode(tc.want))
		}
	}
}

// TestShareGroupShareCoordinatorFailover: three franz-go share consumers
// accept every record of a partition while the share coordinator of the
// share-partition is killed (its successor replays __share_group_state),
// restarted, and then the partition's leader is killed (the new leader
// reads the state from the share coordinator). Every record is delivered,
// the share-partition ends with every record acknowledged, and in
// invariants builds the coordinators check that no record was written
// again once acknowledged or archived: every record ACCEPTED exactly once.
func TestShareGroupShareCoordinatorFailover(t *testing.T) {
	const n = 2000
	c := Start(t, Brokers(3), Feature("share.version", 1))
	id := createTopic(t, c, "q", 1, 3)
	leader := partState(t, c, "q", 0).Leader
	// A group whose share coordinator is not the partition's leader,
	// so the first kill is the coordinator's alone.
	group := ""
	for i := range 20 {
		g := "sg" + strconv.Itoa(i)
		if findShareCoordinator(t, c, 1, sharePartitionKey{g, id, 0}) != leader {
			group = g
			break
		}
	}
	if group == "" {
		t.Fatal("no group among 20 whose share coordinator is not the partition's leader")
	}
	setGroupConfig(t, c, group, "share.auto.offset.reset", "earliest")
	key := sharePartitionKey{group, id, 0}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var d deliveries
	var wg sync.WaitGroup
	var cls []*kgo.Client
	for i := range 3 {
		cl := shareClient(t, c, group, "q", kgo.ShareMaxRecords(20), kgo.MetadataMinAge(250*time.Millisecond))
		cls = append(cls, cl)
		who := "c" + strconv.Itoa(i)
		wg.Go(func() {
			consume(ctx, cl, who, &d, func() bool { return d.distinct() >= n })
			cancel()
		})
	}
	waitFor(t, c, "three share consumers", ShareGroupStable(group, 3))
	produceStrings(t, c, "q", 0, n/2)
	waitFor(t, c, "a quarter acknowledged", ShareAcknowledged(group, "q", 0, n/4))

	coord := findShareCoordinator(t, c, 1, key)
	cp := keyPartition(shareCoordinatorKey(key), 10)
	st, err := c.ShareGroup(group)
	if err != nil || len(st.Partitions) != 1 {
		t.Fatalf("ShareGroup: %+v, %v", st, err)
	}
	killed := time.Now()
	if err := c.KillBroker(coord); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "a new share coordinator", LeaderElected(shareStateTopic, cp, coord))
	produceStrings(t, c, "q", n/2, n/2+1)
	waitFor(t, c, "an acknowledgement through the new share coordinator", ShareAcknowledged(group, "q", 0, st.Partitions[0].EndOffset+1))
	t.Logf("from the share coordinator's kill to the next acknowledged share fetch: %v", time.Since(killed).Round(time.Millisecond))
	if err := c.RestartBroker(coord); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the restarted broker back in the ISR", ISRSize("q", 0, 3))
	waitFor(t, c, "the restarted broker back in the coordinator's ISR", ISRSize(shareStateTopic, cp, 3))

	produceStrings(t, c, "q", n/2+1, 3*n/4)
	leader = partState(t, c, "q", 0).Leader
	if st, err = c.ShareGroup(group); err != nil || len(st.Partitions) != 1 {
		t.Fatalf("ShareGroup: %+v, %v", st, err)
	}
	killed = time.Now()
	if err := c.KillBroker(leader); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "a new leader", LeaderElected("q", 0, leader))
	produceStrings(t, c, "q", 3*n/4, 3*n/4+1)
	waitFor(t, c, "an acknowledgement at the new leader", ShareAcknowledged(group, "q", 0, max(st.Partitions[0].EndOffset, int64(3*n/4))+1))
	t.Logf("from the partition leader's kill to the next acknowledged share fetch: %v", time.Since(killed).Round(time.Millisecond))
	produceStrings(t, c, "q", 3*n/4+1, n)
	wg.Wait()
	flushAcks(t, cls...)
	if got := d.distinct(); got != n {
		t.Fatalf("%d distinct records delivered, want %d", got, n)
	}
	waitFor(t, c, "every record acknowledged", ShareAcknowledged(group, "q", 0, n))
	again := 0
	for v, counts := range d.counts {
		for i := 1; i < len(counts); i++ {
			if counts[i] < counts[i-1] {
				t.Fatalf("record %s delivered with counts %v: a delivery count went back", v, counts)
			}
		}
		if len(counts) > 1 {
			again++
		}
	}
	t.Logf("%d of %d records delivered more than once (in flight at a kill)", again, n)
	var loads int
	for _, e := range c.Events() {
		if e.Kind == SharePartitionLoaded && e.Group == group {
			loads++
		}
	}
	if loads < 2 {
		t.Fatalf("%d share-partition loads, want the first leader's and the new one's", loads)
	}
}

// TestShareStateCut: the state RPCs cross the network. With the link
// between a partition's leader and its share-partition's coordinator
// cut, an acknowledgement cannot be written: the leader answers it
// COORDINATOR_NOT_AVAILABLE once its retries run out and applies nothing,
// so the records stay acquired by their member (not handed to another).
// Healed, the member's acknowledgement again is written.
func TestShareStateCut(t *testing.T) {
	c := Start(t, Brokers(3), Feature("share.version", 1), BrokerConfig("share.coordinator.write.timeout.ms", "300"))
	id := createTopic(t, c, "q", 1, 3)
	leader := partState(t, c, "q", 0).Leader
	group := ""
	var coord int32
	for i := range 20 {
		g := "sg" + strconv.Itoa(i)
		if coord = findShareCoordinator(t, c, 1, sharePartitionKey{g, id, 0}); coord != leader {
			group = g
			break
		}
	}
	if group == "" {
		t.Fatal("no group among 20 whose share coordinator is not the partition's leader")
	}
	setGroupConfig(t, c, group, "share.auto.offset.reset", "earliest")
	produceStrings(t, c, "q", 0, 4)
	a := newRawShare(t, c, group, "a", "q", id)
	if got := acquiredOffsets(a.fetch(10)); len(got) != 4 {
		t.Fatalf("acquired %v, want offsets 0-3", got)
	}
	heal := c.Cut(leader, coord)
	if p := a.fetch(0, ack{0, 3, ackAccept}); p.AcknowledgeErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("accepting with the coordinator cut off: %v, want COORDINATOR_NOT_AVAILABLE", kerr.ErrorForCode(p.AcknowledgeErrorCode))
	}
	b := newRawShare(t, c, group, "b", "q", id)
	if got := acquiredOffsets(b.fetch(10)); len(got) != 0 {
		t.Fatalf("b acquired %v while a still holds offsets 0-3", got)
	}
	if sp := inFlight(t, c, group); sp.StartOffset != 0 || len(sp.InFlight) != 4 || sp.InFlight[0].State != "ACQUIRED" {
		t.Fatalf("share-partition after the failed acknowledgement: %+v, want 0-3 still acquired", sp)
	}
	heal()
	if p := a.fetch(0, ack{0, 3, ackAccept}); p.AcknowledgeErrorCode != 0 {
		t.Fatalf("accepting after the heal: %v", kerr.ErrorForCode(p.AcknowledgeErrorCode))
	}
	waitFor(t, c, "every record acknowledged", ShareAcknowledged(group, "q", 0, 4))
}

// TestShareAudit: the invariants builds' check of the share coordinators'
// writes reports a record written again once done at another delivery
// count or in another state (delivered again after it was accepted), and
// not the same write sent twice (a persister's retry).
func TestShareAudit(t *testing.T) {
	var got []string
	a := shareAudit{violated: func(s string) { got = append(got, s) }}
	key := sharePartitionKey{"sg", [16]byte{1}, 0}
	accept := shareState{batches: []shareStateBatch{{first: 5, last: 6, state: recAcknowledged, count: 1}}}
	a.check(key, accept)
	a.check(key, accept) // a retry
	if len(got) != 0 {
		t.Fatalf("a retried write reported: %v", got)
	}
	a.check(key, shareState{batches: []shareStateBatch{{first: 6, last: 6, state: recAcknowledged, count: 2}}})
	a.check(key, shareState{batches: []shareStateBatch{{first: 5, last: 5, state: recAvailable, count: 1}}})
	if len(got) != 2 {
		t.Fatalf("%d violations reported, want 2 (offset 6 accepted again, offset 5 made available): %v", len(got), got)
	}
}

// TestShareStateAuthz: the state RPCs and FindCoordinator key type 2 are
// for brokers (CLUSTER_ACTION): a user without it is refused
// CLUSTER_AUTHORIZATION_FAILED, a super user is answered.
func TestShareStateAuthz(t *testing.T) {
	c := secureCluster(t)
	alice, admin := userClient(t, c, "alice"), userClient(t, c, "admin")
	read := kmsg.NewPtrReadShareGroupStateRequest()
	read.GroupID = "sg"
	rt := kmsg.NewReadShareGroupStateRequestTopic()
	rt.TopicID = [16]byte{1}
	rt.Partitions = []kmsg.ReadShareGroupStateRequestTopicPartition{{Partition: 0}}
	read.Topics = append(read.Topics, rt)
	find := kmsg.NewPtrFindCoordinatorRequest()
	find.CoordinatorType, find.CoordinatorKeys = 2, []string{"sg:AQAAAAAAAAAAAAAAAAAAAA:0"}
	for _, tc := range []struct {
		cl   *kgo.Client
		want int16
	}{{alice, kerr.ClusterAuthorizationFailed.Code}, {admin, 0}} {
		resp, err := read.RequestWith(tctx(t), tc.cl)
		if err != nil {
			t.Fatal(err)
		}
		got := resp.Topics[0].Partitions[0].ErrorCode
		if tc.want != 0 && got != tc.want || tc.want == 0 && got == kerr.ClusterAuthorizationFailed.Code {
			t.Fatalf("ReadShareGroupState: %v, want %v", kerr.ErrorForCode(got), kerr.ErrorForCode(tc.want))
		}
		fresp, err := find.RequestWith(tctx(t), tc.cl)
		if err != nil {
			t.Fatal(err)
		}
		if got := fresp.Coordinators[0].ErrorCode; got != tc.want {
			t.Fatalf("FindCoordinator(share): %v, want %v", kerr.ErrorForCode(got), kerr.ErrorForCode(tc.want))
		}
	}
}

// TestShareStateSurvivesRestart: with Dir, the share state is in
// __share_group_state on disk like any topic: a cluster closed and opened
// again does not deliver the accepted records again, and a released
// record comes back with its delivery count.
func TestShareStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	c, err := New(Brokers(1), Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	id := createTopic(t, c, "q", 1, 1)
	setGroupConfig(t, c, "sg", "share.auto.offset.reset", "earliest")
	produceStrings(t, c, "q", 0, 4)
	a := newRawShare(t, c, "sg", "a", "q", id)
	if got := acquiredOffsets(a.fetch(10)); len(got) != 4 {
		c.Close()
		t.Fatalf("acquired %v, want offsets 0-3", got)
	}
	if p := a.fetch(0, ack{0, 1, ackAccept}, ack{3, 3, ackRelease}); p.AcknowledgeErrorCode != 0 {
		c.Close()
		t.Fatalf("acknowledging: %v", kerr.ErrorForCode(p.AcknowledgeErrorCode))
	}
	c.Close()

	c, err = New(Brokers(1), Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := newRawShare(t, c, "sg", "b", "q", id)
	// Offset 2 was acquired, never acknowledged: its acquisition was not
	// written, so it comes at delivery 1 again; 3 was released once.
	if got := acquiredOffsets(b.fetch(10)); len(got) != 2 || got[2] != 1 || got[3] != 2 {
		t.Fatalf("after the restart acquired %v, want offsets 2 (delivery 1) and 3 (delivery 2)", got)
	}
}
