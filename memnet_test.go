package kcluster

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/wire"
)

// memClient connects a raw client through c.Dial.
func memClient(t testing.TB, c *Cluster, id int32) *wire.Client {
	t.Helper()
	conn, err := c.Dial(context.Background(), "tcp", c.Addrs()[id-1])
	if err != nil {
		t.Fatalf("dial broker %d: %v", id, err)
	}
	cl := wire.NewClient(conn, "kcluster-test")
	t.Cleanup(func() { cl.Close() })
	return cl
}

// memProduce produces one record with acks to broker id over c.Dial.
func memProduce(t testing.TB, c *Cluster, id int32, topic string, acks int16, v string) (int64, error) {
	t.Helper()
	req := produceRequest(topic, 0, acks, 30000, makeBatch(time.Now().UnixMilli(), v))
	resp := do[*kmsg.ProduceResponse](t, memClient(t, c, id), req, 11)
	p := resp.Topics[0].Partitions[0]
	return p.BaseOffset, kerr.ErrorForCode(p.ErrorCode)
}

func memCreateTopic(t testing.TB, c *Cluster, name string, rf int16) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, rf
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 30000
	resp := do[*kmsg.CreateTopicsResponse](t, memClient(t, c, 1), req, -1)
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatal(err)
	}
}

// On the in-memory network c.Dial reaches the brokers, replication works,
// and a killed broker's address refuses connections.
func TestInMemoryNetwork(t *testing.T) {
	c := Start(t, Brokers(3), InMemoryNetwork())
	memCreateTopic(t, c, "mem", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitFor(ctx, FullyReplicated("mem", 0)); err != nil {
		t.Fatal(err)
	}
	st := partState(t, c, "mem", 0)
	if _, err := memProduce(t, c, st.Leader, "mem", -1, "x"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, func(c *Cluster) bool { return FullyReplicated("mem", 0)(c) && HighWatermarkAtLeast("mem", 0, 1)(c) }); err != nil {
		t.Fatal(err)
	}
	c.KillBroker(st.Leader)
	if _, err := c.Dial(ctx, "tcp", c.Addrs()[st.Leader-1]); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial of a killed broker: %v, want ECONNREFUSED", err)
	}
}

// A failover with Kafka's default timing (broker.session.timeout.ms=9000,
// heartbeats every 2000 ms, replica.lag.time.max.ms=30000) inside a
// testing/synctest bubble: the fake clock jumps over the waits, so the
// scenario's seconds of Kafka time take milliseconds of wall time, and run
// the same way every time.
func TestFailoverInSynctestBubble(t *testing.T) {
	wall := time.Now()
	var kafkaTime time.Duration
	synctest.Test(t, func(t *testing.T) {
		c, err := New(InMemoryNetwork(), Brokers(3),
			BrokerConfig("broker.session.timeout.ms", "9000"),
			BrokerConfig("broker.heartbeat.interval.ms", "2000"),
			BrokerConfig("replica.lag.time.max.ms", "30000"),
			BrokerConfig("replica.fetch.wait.max.ms", "500"),
			BrokerConfig("auto.leader.rebalance.enable", "false"),
			BrokerConfig("min.insync.replicas", "2"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		memCreateTopic(t, c, "orders", 3)
		ctx := context.Background()
		if err := c.WaitFor(ctx, FullyReplicated("orders", 0)); err != nil {
			t.Fatal(err)
		}
		st := partState(t, c, "orders", 0)
		for i := range 5 {
			if _, err := memProduce(t, c, st.Leader, "orders", -1, fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		if err := c.KillBroker(st.Leader); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitFor(ctx, LeaderElected("orders", 0, st.Leader)); err != nil {
			t.Fatal(err)
		}
		kafkaTime = time.Since(start)
		now := partState(t, c, "orders", 0)
		if off, err := memProduce(t, c, now.Leader, "orders", -1, "after"); err != nil || off != 5 {
			t.Fatalf("produce on the new leader: offset %d, %v", off, err)
		}
		// The session expires 9 s after the last heartbeat, which came
		// at most one interval (2 s) before the kill.
		if kafkaTime < 7*time.Second || kafkaTime > 12*time.Second {
			t.Fatalf("failover in %v of bubble time; want the 9 s session timeout less at most a 2 s heartbeat interval", kafkaTime)
		}
	})
	t.Logf("failover took %v of Kafka time in %v of wall time", kafkaTime, time.Since(wall))
}

// A follower starts fetching a partition it gains at once, rather than
// when the fetch its leader holds (up to replica.fetch.wait.max.ms) comes
// back: an acks=all produce to a new topic, while the followers' fetches
// of an older topic are parked, is answered without waiting them out. In
// a synctest bubble, so the time is the bubble's and the same every run.
func TestFollowerFetchesANewPartitionAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := New(InMemoryNetwork(), Brokers(2), BrokerConfig("replica.fetch.wait.max.ms", "500"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		create := func(name string, parts int32) {
			req := kmsg.NewPtrCreateTopicsRequest()
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, parts, 2
			req.Topics = append(req.Topics, rt)
			req.TimeoutMillis = 30000
			resp := do[*kmsg.CreateTopicsResponse](t, memClient(t, c, 1), req, -1)
			if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
				t.Fatal(err)
			}
		}
		// Each broker leads a partition of "a" and follows the other's:
		// both have a fetcher with a parked fetch.
		create("a", 2)
		ctx := context.Background()
		for p := range int32(2) {
			if err := c.WaitFor(ctx, FullyReplicated("a", p)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(1250 * time.Millisecond) // mid-way through a parked fetch
		dials := [2]uint64{c.net.Dials(1, 2), c.net.Dials(2, 1)}
		start := time.Now()
		create("b", 1)
		st := partState(t, c, "b", 0)
		// CreateTopics answers once the broker it went through has the
		// topic; the leader may learn of it a moment later, and a client
		// retries UNKNOWN_TOPIC_OR_PARTITION.
		for {
			_, err := memProduce(t, c, st.Leader, "b", -1, "x")
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		if d := time.Since(start); d >= 100*time.Millisecond {
			t.Fatalf("creating a topic and an acks=all produce to it took %v of bubble time: the follower waited out its parked fetch", d)
		}
		// The follower ended its parked fetch with a nudge, on the
		// connection it had, not by closing it and dialing again.
		if now := [2]uint64{c.net.Dials(1, 2), c.net.Dials(2, 1)}; now != dials {
			t.Fatalf("connections dialed between the brokers (1 to 2, 2 to 1): %v before the new topic, %v after; want no new one", dials, now)
		}
	})
}

// A follower learns a new high watermark at once (KIP-1166: its Fetch v18
// names its own high watermark, and a leader ahead of it answers instead
// of parking the fetch), not a replica.fetch.wait.max.ms later. In a
// synctest bubble, so the time is the bubble's and the same every run.
func TestFollowerLearnsTheHighWatermarkAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := New(InMemoryNetwork(), Brokers(3), BrokerConfig("replica.fetch.wait.max.ms", "500"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "hw", 1, 3
		req.Topics = append(req.Topics, rt)
		req.TimeoutMillis = 30000
		if resp := do[*kmsg.CreateTopicsResponse](t, memClient(t, c, 1), req, -1); resp.Topics[0].ErrorCode != 0 {
			t.Fatal(kerr.ErrorForCode(resp.Topics[0].ErrorCode))
		}
		ctx := context.Background()
		if err := c.WaitFor(ctx, FullyReplicated("hw", 0)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1250 * time.Millisecond) // the followers' fetches are parked
		st := partState(t, c, "hw", 0)
		start := time.Now()
		if _, err := memProduce(t, c, st.Leader, "hw", -1, "x"); err != nil {
			t.Fatal(err)
		}
		leaderHW := partState(t, c, "hw", 0).HighWatermark
		allKnow := func(c *Cluster) bool {
			st, err := c.PartitionState("hw", 0)
			if err != nil || len(st.HighWatermarks) != 3 {
				return false
			}
			for _, hw := range st.HighWatermarks {
				if hw < leaderHW {
					return false
				}
			}
			return true
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := c.WaitFor(wctx, allKnow); err != nil {
			t.Fatalf("the followers did not learn high watermark %d: %v (%+v)", leaderHW, err, partState(t, c, "hw", 0).HighWatermarks)
		}
		if d := time.Since(start); d >= 100*time.Millisecond {
			t.Fatalf("the followers learned the high watermark %v of bubble time after the produce: they waited out a parked fetch", d)
		}
	})
}
