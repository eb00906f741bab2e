package kcluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
	"github.com/kcluster/kcluster/segment"
)

func reassign(t *testing.T, c *Cluster, topic string, part int32, replicas []int32) error {
	t.Helper()
	req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
	rp.Partition, rp.Replicas = part, replicas
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	req.AllowReplicationFactorChange = true
	resp := do[*kmsg.AlterPartitionAssignmentsResponse](t, dial(t, c.Addrs()[0]), req, -1)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
}

func reassigned(topic string, part int32, replicas []int32) Condition {
	return func(c *Cluster) bool {
		st, err := c.PartitionState(topic, part)
		if err != nil || len(st.AddingReplicas) > 0 || len(st.RemovingReplicas) > 0 || !slices.Equal(st.Replicas, replicas) {
			return false
		}
		return FullyReplicated(topic, part)(c)
	}
}

// Raise a live topic's replication factor from 1 to 3 while a franz-go
// producer writes to it with acks=all: the new replicas copy the log,
// join the ISR, and the reassignment completes; every acknowledged record
// is there, once, on every replica.
func TestReassignRaisesReplicationFactorWhileProducing(t *testing.T) {
	c := Start(t, Brokers(3))
	if rt := createTopicWith(t, c, "grow", 1, 1, map[string]string{"segment.bytes": "65536"}); rt.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rt.ErrorCode))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("grow"), kgo.MetadataMinAge(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var acked []string
	var failed []error
	produced := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for i := 0; ; i++ {
			select {
			case <-stop:
				wg.Wait()
				return
			default:
			}
			v := fmt.Sprintf("v%06d", i)
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed = append(failed, err)
					return
				}
				acked = append(acked, string(r.Value))
			})
			if i%500 == 499 {
				wg.Wait()
			}
		}
	}()
	if err := c.WaitFor(ctx, func(*Cluster) bool { return produced() >= 2000 }); err != nil {
		t.Fatal(err)
	}
	st := partState(t, c, "grow", 0)
	target := []int32{st.Leader}
	for id := int32(1); id <= 3; id++ {
		if id != st.Leader {
			target = append(target, id)
		}
	}
	start := time.Now()
	if err := reassign(t, c, "grow", 0, target); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the reassignment to RF 3 to complete", func(c *Cluster) bool {
		st, err := c.PartitionState("grow", 0)
		return err == nil && len(st.AddingReplicas) == 0 && len(st.ISR) == 3 && slices.Equal(st.Replicas, target)
	})
	t.Logf("RF 1 to 3 with %d records (%d bytes) in the log when it began: %v", 2000, st.LogSizes[st.Leader], time.Since(start))
	if err := c.WaitFor(ctx, func(*Cluster) bool { return produced() >= 4000 }); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-done
	if len(failed) > 0 {
		t.Fatalf("%d produce errors, first %v", len(failed), failed[0])
	}
	waitFor(t, c, "every replica to have everything", inSync("grow", 3))
	st = partState(t, c, "grow", 0)
	if st.HighWatermark != int64(len(acked)) {
		t.Fatalf("high watermark %d, %d records acknowledged", st.HighWatermark, len(acked))
	}
	// Every replica, read as its own leader would serve it, holds the
	// acknowledged records in order.
	for _, id := range target {
		seen := map[string]bool{}
		for off := int64(0); off < st.HighWatermark; {
			b, _ := c.brokerByID(id)
			r := b.partition(partTopicID(t, c, "grow"), 0)
			data, err := r.log.Read(off, 1<<20, st.HighWatermark)
			if err != nil || len(data) == 0 {
				t.Fatalf("broker %d at %d: %v", id, off, err)
			}
			for len(data) > 0 {
				h, recs, err := segment.BatchRecords(data, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					seen[string(r.Value)] = true
				}
				off = h.LastOffset() + 1
				data = data[h.TotalSize():]
			}
		}
		for _, v := range acked {
			if !seen[v] {
				t.Fatalf("broker %d lacks acknowledged record %s", id, v)
			}
		}
	}
}

func partTopicID(t *testing.T, c *Cluster, topic string) (id [16]byte) {
	t.Helper()
	c.viewState(func(s *metadata.State) { id = s.Topics[topic].ID })
	return id
}

// Move a partition off its leader: the new replica catches up first, then
// leadership moves to a target replica and the old leader drops its log;
// while the new replica cannot fetch, the reassignment is listed as in
// progress; cancelling one reverts it.
func TestReassignMovesLeaderAndLists(t *testing.T) {
	c := Start(t, Brokers(4), BrokerConfig("auto.leader.rebalance.enable", "false"))
	if rt := createTopicWith(t, c, "mv", 1, 0, nil); rt.ErrorCode != kerr.InvalidReplicationFactor.Code {
		t.Fatalf("RF 0: %v", kerr.ErrorForCode(rt.ErrorCode))
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "mv", -1, -1
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Partition, ra.Replicas = 0, []int32{1, 2}
	rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
	req.Topics = append(req.Topics, rt)
	if resp := do[*kmsg.CreateTopicsResponse](t, dial(t, c.Addrs()[0]), req, -1); resp.Topics[0].ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(resp.Topics[0].ErrorCode))
	}
	waitFor(t, c, "leader 1", LeaderElected("mv", 0))
	produceN(t, c, "mv", 50, time.Now().UnixMilli(), 100)
	heal := c.Cut(1, 3)
	if err := reassign(t, c, "mv", 0, []int32{3, 2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "every broker to know the reassignment", func(*Cluster) bool { return true })
	lreq := kmsg.NewPtrListPartitionReassignmentsRequest()
	lresp := do[*kmsg.ListPartitionReassignmentsResponse](t, dial(t, c.Addrs()[1]), lreq, 0)
	if len(lresp.Topics) != 1 || len(lresp.Topics[0].Partitions) != 1 {
		t.Fatalf("ListPartitionReassignments: %+v", lresp.Topics)
	}
	lp := lresp.Topics[0].Partitions[0]
	if !slices.Equal(lp.Replicas, []int32{3, 2, 1}) || !slices.Equal(lp.AddingReplicas, []int32{3}) || !slices.Equal(lp.RemovingReplicas, []int32{1}) {
		t.Fatalf("listed %v adding %v removing %v", lp.Replicas, lp.AddingReplicas, lp.RemovingReplicas)
	}
	if st := partState(t, c, "mv", 0); st.Leader != 1 || !slices.Equal(st.AddingReplicas, []int32{3}) {
		t.Fatalf("during the move: leader %d adding %v", st.Leader, st.AddingReplicas)
	}
	if rs := c.Reassignments(); len(rs) != 1 || rs[0].Topic != "mv" || !slices.Equal(rs[0].RemovingReplicas, []int32{1}) || rs[0].LogEndOffsets[3] != 0 {
		t.Fatalf("Reassignments gauge: %+v", rs)
	}
	heal()
	waitFor(t, c, "the move to [3 2]", reassigned("mv", 0, []int32{3, 2}))
	st := partState(t, c, "mv", 0)
	if st.Leader != 3 || st.HighWatermark != 50 {
		t.Fatalf("after the move: leader %d high watermark %d", st.Leader, st.HighWatermark)
	}
	if _, ok := st.LogEndOffsets[1]; ok {
		t.Fatalf("broker 1 still holds a replica: %v", st.LogEndOffsets)
	}
	var moves []string
	for _, e := range c.Events() {
		if e.Kind == ReplicasChanged && e.Topic == "mv" {
			moves = append(moves, fmt.Sprint(e.Replicas))
		}
	}
	if len(moves) != 2 || moves[0] != "[3 2 1]" || moves[1] != "[3 2]" {
		t.Fatalf("replicas changed events: %v", moves)
	}
	if len(c.Reassignments()) != 0 {
		t.Fatalf("Reassignments after the move: %+v", c.Reassignments())
	}
	// Cancel: a move to 4 that cannot finish, then revert.
	heal = c.Cut(3, 4)
	defer heal()
	if err := reassign(t, c, "mv", 0, []int32{3, 2, 4}); err != nil {
		t.Fatal(err)
	}
	if err := reassign(t, c, "mv", 0, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the cancelled move to revert", reassigned("mv", 0, []int32{3, 2}))
	if err := reassign(t, c, "mv", 0, nil); err != kerr.NoReassignmentInProgress {
		t.Fatalf("cancel with none in progress: %v", err)
	}
	if err := reassign(t, c, "mv", 0, []int32{3, 3}); err != kerr.InvalidReplicaAssignment {
		t.Fatalf("duplicate replicas: %v", err)
	}
	if err := reassign(t, c, "mv", 0, []int32{3, 9}); err != kerr.InvalidReplicaAssignment {
		t.Fatalf("unknown broker: %v", err)
	}
}

// CreatePartitions adds partitions that take writes at once; fewer
// partitions than there are is INVALID_PARTITIONS.
func TestCreatePartitions(t *testing.T) {
	c := Start(t, Brokers(3))
	createTopic(t, c, "cp", 1, 2)
	cp := func(count int32, assign [][]int32) int16 {
		req := kmsg.NewPtrCreatePartitionsRequest()
		rt := kmsg.NewCreatePartitionsRequestTopic()
		rt.Topic, rt.Count = "cp", count
		for _, a := range assign {
			ra := kmsg.NewCreatePartitionsRequestTopicAssignment()
			ra.Replicas = a
			rt.Assignment = append(rt.Assignment, ra)
		}
		req.Topics = append(req.Topics, rt)
		req.TimeoutMillis = 5000
		return do[*kmsg.CreatePartitionsResponse](t, dial(t, c.Addrs()[2]), req, -1).Topics[0].ErrorCode
	}
	if code := cp(1, nil); code != kerr.InvalidPartitions.Code {
		t.Fatalf("count 1 of 1: %v", kerr.ErrorForCode(code))
	}
	if code := cp(3, [][]int32{{1, 2}}); code != kerr.InvalidReplicaAssignment.Code {
		t.Fatalf("one assignment for two new partitions: %v", kerr.ErrorForCode(code))
	}
	if code := cp(3, [][]int32{{3, 1}, {2, 3}}); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	waitFor(t, c, "partition 2 led by 2", func(c *Cluster) bool {
		st, err := c.PartitionState("cp", 2)
		return err == nil && st.Leader == 2 && slices.Equal(st.Replicas, []int32{2, 3})
	})
	rp := produce(t, nil, c, addrOf(c, 2), "cp", 2, -1, makeBatch(time.Now().UnixMilli(), "p2"))
	if rp.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rp.ErrorCode))
	}
	if code := cp(5, nil); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	waitFor(t, c, "five partitions led", LeaderElected("cp", 4))
}

// ElectLeaders: preferred moves leadership back to the first replica;
// unclean gives a leaderless partition a replica outside the ISR.
func TestElectLeaders(t *testing.T) {
	c := Start(t, Brokers(3), BrokerConfig("auto.leader.rebalance.enable", "false"), BrokerConfig("replica.lag.time.max.ms", "300"), BrokerConfig("replica.fetch.wait.max.ms", "100"))
	createTopic(t, c, "el", 1, 3)
	elect := func(typ int8, topic string) int16 {
		req := kmsg.NewPtrElectLeadersRequest()
		req.ElectionType = typ
		rt := kmsg.NewElectLeadersRequestTopic()
		rt.Topic, rt.Partitions = topic, []int32{0}
		req.Topics = append(req.Topics, rt)
		req.TimeoutMillis = 5000
		var addr string
		for _, b := range c.Brokers() {
			if b.Running && !b.Fenced {
				addr = b.Addr
				break
			}
		}
		resp := do[*kmsg.ElectLeadersResponse](t, dial(t, addr), req, -1)
		if resp.ErrorCode != 0 {
			return resp.ErrorCode
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	if code := elect(0, "el"); code != kerr.ElectionNotNeeded.Code {
		t.Fatalf("preferred election with the preferred leader leading: %v", kerr.ErrorForCode(code))
	}
	pref := partState(t, c, "el", 0).Replicas[0]
	if err := c.StopBroker(pref); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "another leader", LeaderElected("el", 0, pref))
	if code := elect(0, "el"); code != kerr.PreferredLeaderNotAvailable.Code {
		t.Fatalf("preferred election with the preferred replica down: %v", kerr.ErrorForCode(code))
	}
	if err := c.RestartBroker(pref); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "ISR 3", inSync("el", 3))
	if st := partState(t, c, "el", 0); st.Leader == pref {
		t.Fatal("leadership returned without an election (auto rebalance is off)")
	}
	if code := elect(0, "el"); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if st := partState(t, c, "el", 0); st.Leader != pref {
		t.Fatalf("leader %d after a preferred election, want %d", st.Leader, pref)
	}

	// Unclean: RF 2, the follower leaves the ISR, then the leader dies.
	createTopic(t, c, "un", 1, 2)
	st := partState(t, c, "un", 0)
	leader, follower := st.Replicas[0], st.Replicas[1]
	if err := c.KillBroker(follower); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "ISR of the leader alone", ISRSize("un", 0, 1))
	if _, err := produceTo(t, c, "un", 1, "only-on-leader"); err != nil {
		t.Fatal(err)
	}
	if err := c.KillBroker(leader); err != nil {
		t.Fatal(err)
	}
	if err := c.RestartBroker(follower); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the follower back and the partition offline", func(c *Cluster) bool {
		st, _ := c.PartitionState("un", 0)
		return st.Leader == -1 && !c.Brokers()[follower-1].Fenced
	})
	if code := elect(1, "un"); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	waitFor(t, c, "the out-of-sync follower leading", LeaderElected("un", 0))
	if st := partState(t, c, "un", 0); st.Leader != follower || !slices.Equal(st.ISR, []int32{follower}) {
		t.Fatalf("after the unclean election: leader %d ISR %v", st.Leader, st.ISR)
	}
	if code := elect(1, "un"); code != kerr.ElectionNotNeeded.Code {
		t.Fatalf("unclean election with a leader: %v", kerr.ErrorForCode(code))
	}
}

// unclean.leader.election.enable=true on a topic: when the only ISR
// member is gone, a returning replica outside the ISR leads by itself
// (TestElectLeaders shows the same partition staying offline without it).
func TestUncleanElectionByTopicConfig(t *testing.T) {
	c := Start(t, Brokers(3), BrokerConfig("replica.lag.time.max.ms", "300"), BrokerConfig("replica.fetch.wait.max.ms", "100"))
	if rt := createTopicWith(t, c, "unclean", 1, 2, map[string]string{"unclean.leader.election.enable": "true"}); rt.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rt.ErrorCode))
	}
	st := partState(t, c, "unclean", 0)
	leader, follower := st.Leader, st.Replicas[1]
	if follower == leader {
		follower = st.Replicas[0]
	}
	if err := c.KillBroker(follower); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "ISR of the leader alone", ISRSize("unclean", 0, 1))
	if err := c.KillBroker(leader); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the partition offline", func(c *Cluster) bool { s, _ := c.PartitionState("unclean", 0); return s.Leader == -1 })
	if err := c.RestartBroker(follower); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the out-of-sync replica leading", LeaderElected("unclean", 0))
	if st := partState(t, c, "unclean", 0); st.Leader != follower || !slices.Equal(st.ISR, []int32{follower}) {
		t.Fatalf("leader %d ISR %v, want %d alone", st.Leader, st.ISR, follower)
	}
}
