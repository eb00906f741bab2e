package kcluster

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Eligible leader replicas (KIP-966) as a test sees them: through
// DescribeTopicPartitions and PartitionState, with the brokers killed,
// stopped and power-cut by the levers.

// elrIs holds when topic/0's leader, ISR and ELR are as given and every
// running broker knows it.
func elrIs(topic string, leader int32, isr, elr []int32) Condition {
	return func(c *Cluster) bool {
		st, err := c.PartitionState(topic, 0)
		return err == nil && st.Leader == leader && slices.Equal(st.ISR, isr) && slices.Equal(st.ELR, elr) && c.metadataSettled()
	}
}

// describeELR returns topic/0's EligibleLeaderReplicas and LastKnownELR as
// DescribeTopicPartitions answers them on broker id.
func describeELR(t *testing.T, c *Cluster, id int32, topic string) (elr, lastKnown []int32) {
	t.Helper()
	req := kmsg.NewPtrDescribeTopicPartitionsRequest()
	rt := kmsg.NewDescribeTopicPartitionsRequestTopic()
	rt.Topic = topic
	req.Topics = append(req.Topics, rt)
	req.ResponsePartitionLimit = 10
	resp := do[*kmsg.DescribeTopicPartitionsResponse](t, dial(t, addrOf(c, id)), req, 0)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("DescribeTopicPartitions: %+v", resp.Topics)
	}
	p := resp.Topics[0].Partitions[0]
	return p.EligibleLeaderReplicas, p.LastKnownELR
}

// others returns st's replicas but leader, in replica order.
func others(st PartitionState) []int32 {
	return slices.DeleteFunc(slices.Clone(st.Replicas), func(r int32) bool { return r == st.Leader })
}

// checkAllReplicas waits for the partition to be fully replicated on its
// three replicas and checks that every replica's log holds want.
func checkAllReplicas(t *testing.T, c *Cluster, topic string, want []string) {
	t.Helper()
	waitFor(t, c, "every replica back in sync", inSync(topic, 3))
	for _, id := range partState(t, c, topic, 0).Replicas {
		if _, vals := checkReplicaLog(t, c, id, topic); !slices.Equal(vals, want) {
			t.Fatalf("broker %d's log %v, want %v", id, vals, want)
		}
	}
}

// RF 3, min.insync.replicas 2, acks=all. One follower is killed: the ISR
// shrinks to two, still min ISR, so no ELR. The other is stopped: the ISR
// shrinks below min ISR and the stopped follower, which holds every
// committed record, becomes an eligible leader replica; acks=all is refused
// and the high watermark stays. The leader, the last ISR member, is killed:
// the ISR becomes empty, the ELR holds both, and the partition has no
// leader. The stopped follower comes back (a clean restart) and is elected
// from the ELR; no acknowledged record is lost.
func TestELRElectsStoppedReplicaAfterLastISRMemberDies(t *testing.T) {
	c := Start(t, Brokers(3), BrokerConfig("min.insync.replicas", "2"), BrokerConfig("auto.leader.rebalance.enable", "false"))
	createTopicConfigs(t, c, "elr", 3, nil)
	var want []string
	for i := range 10 {
		v := fmt.Sprintf("acked-%d", i)
		if _, err := produceTo(t, c, "elr", -1, v); err != nil {
			t.Fatal(err)
		}
		want = append(want, v)
	}
	waitFor(t, c, "full replication", inSync("elr", 3))
	st := partState(t, c, "elr", 0)
	leader, f := st.Leader, others(st)
	if len(st.ELR) != 0 || len(st.LastKnownELR) != 0 {
		t.Fatalf("ELR %v, last known %v with a full ISR", st.ELR, st.LastKnownELR)
	}

	if err := c.KillBroker(f[1]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "ISR of two, no ELR", elrIs("elr", leader, []int32{leader, f[0]}, nil))
	for i := range 5 {
		v := fmt.Sprintf("acked-two-%d", i)
		if _, err := produceTo(t, c, "elr", -1, v); err != nil {
			t.Fatal(err)
		}
		want = append(want, v)
	}

	if err := c.StopBroker(f[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "ISR of one, the stopped follower in the ELR", elrIs("elr", leader, []int32{leader}, []int32{f[0]}))
	if elr, lk := describeELR(t, c, leader, "elr"); !slices.Equal(elr, []int32{f[0]}) || len(lk) != 0 {
		t.Fatalf("DescribeTopicPartitions: ELR %v, last known %v; want [%d] []", elr, lk, f[0])
	}
	if _, err := produceTo(t, c, "elr", -1, "refused"); !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Fatalf("acks=all below min ISR: %v, want NOT_ENOUGH_REPLICAS", err)
	}
	hw := partState(t, c, "elr", 0).HighWatermark
	if _, err := produceTo(t, c, "elr", 1, "acks-1"); err != nil {
		t.Fatal(err)
	}
	if got := partState(t, c, "elr", 0); got.HighWatermark != hw || got.LogEndOffsets[leader] != hw+1 {
		t.Fatalf("acks=1 below min ISR: high watermark %d, log end %d; want the high watermark to stay at %d", got.HighWatermark, got.LogEndOffsets[leader], hw)
	}

	if err := c.KillBroker(leader); err != nil {
		t.Fatal(err)
	}
	wantELR := sortedLike(st.Replicas, leader, f[0])
	waitFor(t, c, "an empty ISR, both in the ELR", elrIs("elr", -1, []int32{}, wantELR))
	if got := partState(t, c, "elr", 0); !slices.Equal(got.LastKnownELR, []int32{leader}) {
		t.Fatalf("last known ELR %v, want the last leader [%d]", got.LastKnownELR, leader)
	}

	if err := c.RestartBroker(f[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the stopped follower elected from the ELR", elrIs("elr", f[0], []int32{f[0]}, []int32{leader}))
	if got := partState(t, c, "elr", 0); len(got.LastKnownELR) != 0 {
		t.Fatalf("last known ELR %v with a leader", got.LastKnownELR)
	}
	if elr, lk := describeELR(t, c, f[0], "elr"); !slices.Equal(elr, []int32{leader}) || len(lk) != 0 {
		t.Fatalf("DescribeTopicPartitions: ELR %v, last known %v; want [%d] []", elr, lk, leader)
	}
	for _, id := range []int32{leader, f[1]} {
		if err := c.RestartBroker(id); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, c, "min ISR again", ISRSize("elr", 0, 3))
	if _, err := produceTo(t, c, "elr", -1, "after"); err != nil {
		t.Fatal(err)
	}
	want = append(want, "after")
	checkAllReplicas(t, c, "elr", want)
	if st := partState(t, c, "elr", 0); len(st.ELR) != 0 {
		t.Fatalf("ELR %v with the ISR full again", st.ELR)
	}
}

// The gap the ELR closes: the last ISR member loses power. Its log keeps
// only what it had synced (here: nothing), so it must not lead. With
// eligible.leader.replicas.version 1 the ISR shrinks to empty, and its
// restart without a clean shutdown takes it out of the ELR: it is not
// elected, the partition waits, and the follower that was stopped cleanly
// is elected when it is back. No acknowledged record is lost. With the
// feature at 0 (Kafka 3.x) the power-cut broker stays the ISR, leads again
// with its empty log, and the acknowledged records are gone.
func TestELRPowerCutLastISRMember(t *testing.T) {
	for _, level := range []int16{1, 0} {
		t.Run(fmt.Sprintf("eligible.leader.replicas.version=%d", level), func(t *testing.T) {
			c := Start(t, Brokers(3), BrokerConfig("min.insync.replicas", "2"), BrokerConfig("auto.leader.rebalance.enable", "false"),
				Feature("eligible.leader.replicas.version", level))
			createTopicConfigs(t, c, "pc", 3, nil)
			var want []string
			for i := range 10 {
				v := fmt.Sprintf("acked-%d", i)
				if _, err := produceTo(t, c, "pc", -1, v); err != nil {
					t.Fatal(err)
				}
				want = append(want, v)
			}
			waitFor(t, c, "full replication", inSync("pc", 3))
			st := partState(t, c, "pc", 0)
			leader, f := st.Leader, others(st)
			if err := c.KillBroker(f[1]); err != nil {
				t.Fatal(err)
			}
			waitFor(t, c, "ISR of two", ISRSize("pc", 0, 2))
			if err := c.StopBroker(f[0]); err != nil {
				t.Fatal(err)
			}
			waitFor(t, c, "ISR of one", ISRSize("pc", 0, 1))
			if err := c.PowerCut(leader); err != nil {
				t.Fatal(err)
			}
			if level == 0 {
				waitFor(t, c, "the last ISR member kept, no leader", elrIs("pc", -1, []int32{leader}, nil))
				if err := c.RestartBroker(leader); err != nil {
					t.Fatal(err)
				}
				waitFor(t, c, "the power-cut broker leading again", elrIs("pc", leader, []int32{leader}, nil))
				if leo, _ := checkReplicaLog(t, c, leader, "pc"); leo >= int64(len(want)) {
					t.Fatalf("the power-cut leader kept %d records; the test expects it to have lost unsynced ones", leo)
				}
				return
			}
			waitFor(t, c, "an empty ISR", elrIs("pc", -1, []int32{}, sortedLike(st.Replicas, leader, f[0])))
			if err := c.RestartBroker(leader); err != nil {
				t.Fatal(err)
			}
			// Unfenced, but out of the ELR: not elected.
			waitFor(t, c, "the power-cut broker out of the ELR", elrIs("pc", -1, []int32{}, []int32{f[0]}))
			if err := c.RestartBroker(f[0]); err != nil {
				t.Fatal(err)
			}
			// Elected from the ELR, which empties; the power-cut
			// broker may join the ISR at once, having caught up
			// from it.
			waitFor(t, c, "the stopped follower elected", func(c *Cluster) bool {
				st, err := c.PartitionState("pc", 0)
				return err == nil && st.Leader == f[0] && slices.Contains(st.ISR, f[0]) && len(st.ELR) == 0 && c.metadataSettled()
			})
			if err := c.RestartBroker(f[1]); err != nil {
				t.Fatal(err)
			}
			waitFor(t, c, "every replica in the ISR", ISRSize("pc", 0, 3))
			if _, err := produceTo(t, c, "pc", -1, "after"); err != nil {
				t.Fatal(err)
			}
			checkAllReplicas(t, c, "pc", append(want, "after"))
		})
	}
}

// sortedLike returns ids in the order they have in replicas.
func sortedLike(replicas []int32, ids ...int32) []int32 {
	var out []int32
	for _, r := range replicas {
		if slices.Contains(ids, r) {
			out = append(out, r)
		}
	}
	return out
}

// The ELR is metadata: on a Raft quorum, the controller that takes over
// after the active one dies has it (replayed from the committed log) and
// elects from it.
func TestELRSurvivesControllerFailover(t *testing.T) {
	c := Start(t, Brokers(3), Controllers(3), BrokerConfig("min.insync.replicas", "2"), BrokerConfig("auto.leader.rebalance.enable", "false"))
	createTopicConfigs(t, c, "q", 3, nil)
	want := []string{"a", "b", "c"}
	if _, err := produceTo(t, c, "q", -1, want...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "full replication", inSync("q", 3))
	st := partState(t, c, "q", 0)
	leader, f := st.Leader, others(st)
	if err := c.KillBroker(f[1]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "ISR of two", ISRSize("q", 0, 2))
	if err := c.StopBroker(f[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the stopped follower in the ELR", elrIs("q", leader, []int32{leader}, []int32{f[0]}))
	old := c.Controller()
	if err := c.KillController(old); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "a new active controller", func(c *Cluster) bool { n := c.Controller(); return n >= 0 && n != old })
	waitFor(t, c, "the ELR on the new controller", elrIs("q", leader, []int32{leader}, []int32{f[0]}))
	if err := c.KillBroker(leader); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "an empty ISR", elrIs("q", -1, []int32{}, sortedLike(st.Replicas, leader, f[0])))
	if err := c.RestartBroker(f[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the stopped follower elected from the ELR", elrIs("q", f[0], []int32{f[0]}, []int32{leader}))
	for _, id := range []int32{leader, f[1]} {
		if err := c.RestartBroker(id); err != nil {
			t.Fatal(err)
		}
	}
	checkAllReplicas(t, c, "q", want)
}
