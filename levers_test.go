package kcluster

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Cut the leader from its followers, produce with acks=all, expect
// NOT_ENOUGH_REPLICAS after the ISR shrinks; heal, and the ISR grows back.
func TestPartitionLeaderFromFollowers(t *testing.T) {
	c := Start(t, Brokers(3), BrokerConfig("min.insync.replicas", "2"), BrokerConfig("replica.lag.time.max.ms", "600"), BrokerConfig("replica.fetch.wait.max.ms", "100"))
	createTopic(t, c, "split", 1, 3)
	st := partState(t, c, "split", 0)
	var followers []int32
	for _, r := range st.Replicas {
		if r != st.Leader {
			followers = append(followers, r)
		}
	}
	heal := c.Partition([]int32{st.Leader}, followers)
	// New data makes the followers fall behind; they cannot fetch it.
	if _, err := produceTo(t, c, "split", 1, "behind"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the ISR to shrink to the leader", func(c *Cluster) bool {
		s, _ := c.PartitionState("split", 0)
		return slices.Equal(s.ISR, []int32{st.Leader})
	})
	if _, err := produceTo(t, c, "split", -1, "x"); err != kerr.NotEnoughReplicas {
		t.Fatalf("acks=all with the leader cut off: %v, want NOT_ENOUGH_REPLICAS", err)
	}
	if s := partState(t, c, "split", 0); s.Leader != st.Leader {
		t.Fatalf("leader moved to %d: the controller still hears the leader", s.Leader)
	}
	heal()
	waitFor(t, c, "the ISR to grow back", inSync("split", 3))
	if _, err := produceTo(t, c, "split", -1, "y"); err != nil {
		t.Fatal(err)
	}
}

// Isolate the leader: clients lose it, the controller fences it and elects
// a new leader; after Heal it rejoins as a follower.
func TestIsolateLeader(t *testing.T) {
	c := Start(t, Brokers(3), BrokerConfig("auto.leader.rebalance.enable", "false"))
	createTopic(t, c, "iso", 1, 3)
	st := partState(t, c, "iso", 0)
	conn, err := net.Dial("tcp", addrOf(c, st.Leader))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c.Isolate(st.Leader)
	expectClosed(t, conn, "client connection to an isolated broker")
	if conn2, err := net.Dial("tcp", addrOf(c, st.Leader)); err == nil {
		expectClosed(t, conn2, "new client connection to an isolated broker")
		conn2.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitFor(ctx, LeaderElected("iso", 0, st.Leader)); err != nil {
		t.Fatalf("no new leader while the old one is isolated: %v", err)
	}
	if err := c.WaitFor(ctx, ISRSize("iso", 0, 2)); err != nil {
		t.Fatalf("the isolated broker stayed in the ISR: %v", err)
	}
	if _, err := produceTo(t, c, "iso", -1, "while-isolated"); err != nil {
		t.Fatal(err)
	}
	c.Heal()
	if err := c.WaitFor(ctx, FullyReplicated("iso", 0)); err != nil {
		t.Fatalf("the isolated broker did not catch up: %v", err)
	}
	if err := c.WaitFor(ctx, HighWatermarkAtLeast("iso", 0, 1)); err != nil {
		t.Fatal(err)
	}
	// Clients reach it again.
	cl := dial(t, addrOf(c, st.Leader))
	if resp := do[*kmsg.MetadataResponse](t, cl, kmsg.NewPtrMetadataRequest(), 12); len(resp.Brokers) != 3 {
		t.Fatalf("metadata after heal: %d brokers", len(resp.Brokers))
	}
}

// SlowLink delays every exchange on the link; undo restores it.
func TestSlowLinkDelaysClients(t *testing.T) {
	c := Start(t, Brokers(1))
	cl := dial(t, c.Addrs()[0])
	do[*kmsg.ApiVersionsResponse](t, cl, kmsg.NewPtrApiVersionsRequest(), 3) // connect before slowing
	undo := c.SlowLink(1, Client, 100*time.Millisecond)
	start := time.Now()
	do[*kmsg.ApiVersionsResponse](t, cl, kmsg.NewPtrApiVersionsRequest(), 3)
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("request on a slowed link took %v, want at least the added 100ms", d)
	}
	undo()
	undo()
}

// Events records a failover as a timeline: the leader goes down, is fenced,
// a new leader with a higher epoch is elected, the ISR shrinks; the broker
// comes back and is unfenced.
func TestEventsTimeline(t *testing.T) {
	c := Start(t, Brokers(3), BrokerConfig("auto.leader.rebalance.enable", "false"))
	createTopic(t, c, "ev", 1, 3)
	st := partState(t, c, "ev", 0)
	if err := c.KillBroker(st.Leader); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "a new leader", LeaderElected("ev", 0, st.Leader))
	if err := c.RestartBroker(st.Leader); err != nil {
		t.Fatal(err)
	}
	var kinds []EventKind
	var newLeader Event
	evs := c.Events()
	for i, e := range evs {
		if i > 0 && e.Time.Before(evs[i-1].Time) {
			t.Fatalf("events out of order: %v then %v", evs[i-1], e)
		}
		if e.Kind == LeaderChanged && e.Topic == "ev" {
			newLeader = e
		}
		if e.Broker == st.Leader || e.Kind == LeaderChanged || e.Kind == TopicCreated {
			kinds = append(kinds, e.Kind)
		}
	}
	want := []EventKind{BrokerUp, BrokerUnfenced, TopicCreated, BrokerDown, BrokerFenced, LeaderChanged, BrokerUp, BrokerUnfenced}
	if !slices.Equal(kinds, want) {
		t.Fatalf("timeline %v, want %v\n%v", kinds, want, evs)
	}
	if newLeader.Leader == st.Leader || newLeader.LeaderEpoch != st.LeaderEpoch+1 {
		t.Fatalf("leader event %v (old leader %d epoch %d)", newLeader, st.Leader, st.LeaderEpoch)
	}
}

func TestBrokersAndTopicsGauges(t *testing.T) {
	c := Start(t, Brokers(2))
	createTopic(t, c, "b", 1, 1)
	createTopic(t, c, "a", 1, 1)
	if got := c.Topics(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Topics() = %v", got)
	}
	if err := c.KillBroker(2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "broker 2 fenced", func(c *Cluster) bool { return c.Brokers()[1].Fenced })
	bs := c.Brokers()
	if !bs[0].Running || bs[0].Fenced || bs[1].Running || bs[0].Addr != c.Addrs()[0] {
		t.Fatalf("Brokers() = %+v", bs)
	}
}
