package kcluster

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// requestsServed is how many requests every running broker and
// controller has served.
func requestsServed(c *Cluster) int64 {
	var n int64
	for _, b := range c.running() {
		n += b.srv.served.Load()
	}
	c.ctrls.Lock()
	defer c.ctrls.Unlock()
	for _, ctrl := range c.ctrls.nodes {
		if ctrl != nil {
			n += ctrl.srv.served.Load()
		}
	}
	return n
}

// An idle cluster sends nothing: after a topic is replicated, an hour of
// a testing/synctest bubble's time passes without a single request
// between the nodes (no heartbeat, follower fetch or metadata fetch; each
// is held while its connection stands). Then a broker killed after that
// hour is fenced and replaced as leader when its session expires, as a
// broker heartbeating every interval would be: between the session
// timeout less one interval and the session timeout after the kill.
func TestIdleClusterSendsNothingAndStillFailsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := New(InMemoryNetwork(), Brokers(3),
			BrokerConfig("broker.session.timeout.ms", "9000"),
			BrokerConfig("broker.heartbeat.interval.ms", "2000"),
			BrokerConfig("auto.leader.rebalance.enable", "false"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		memCreateTopic(t, c, "idle", 3)
		ctx := context.Background()
		if err := c.WaitFor(ctx, FullyReplicated("idle", 0)); err != nil {
			t.Fatal(err)
		}
		st := partState(t, c, "idle", 0)
		for i := range 3 {
			if _, err := memProduce(t, c, st.Leader, "idle", -1, fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.WaitFor(ctx, func(c *Cluster) bool {
			return FullyReplicated("idle", 0)(c) && HighWatermarkAtLeast("idle", 0, 3)(c)
		}); err != nil {
			t.Fatal(err)
		}
		// Let every parked request reach its MaxWait and be held.
		time.Sleep(time.Minute)
		synctest.Wait()
		before := requestsServed(c)
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := requestsServed(c) - before; n != 0 {
			t.Fatalf("an idle cluster served %d requests in an hour", n)
		}
		if got := partState(t, c, "idle", 0); len(got.ISR) != 3 {
			t.Fatalf("ISR %v after an idle hour, want all three", got.ISR)
		}
		// The followers' held fetches wake at the append: an acks=all
		// produce does not wait out replica.fetch.wait.max.ms.
		start := time.Now()
		if off, err := memProduce(t, c, st.Leader, "idle", -1, "3"); err != nil || off != 3 {
			t.Fatalf("produce after an idle hour: offset %d, %v", off, err)
		}
		if d := time.Since(start); d >= 500*time.Millisecond {
			t.Fatalf("acks=all produce after an idle hour took %v", d)
		}

		kill := time.Now()
		if err := c.KillBroker(st.Leader); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitFor(ctx, LeaderElected("idle", 0, st.Leader)); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(kill); d < 7*time.Second || d > 9*time.Second+100*time.Millisecond {
			t.Fatalf("leader elected %v after the kill; want the 9 s session timeout less at most one 2 s heartbeat interval", d)
		}
		if off, err := memProduce(t, c, partState(t, c, "idle", 0).Leader, "idle", -1, "after"); err != nil || off != 4 {
			t.Fatalf("produce on the new leader: offset %d, %v", off, err)
		}
	})
}

// A broker behind a black hole to the controller (every write on the
// link lost) is fenced when its session runs out, as one whose heartbeats
// stopped arriving: the loss ends its standing heartbeat. Once the link is
// healed, its heartbeats get through again and unfence it.
func TestBlackHoledBrokerIsFencedBySession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := New(InMemoryNetwork(), Brokers(3),
			BrokerConfig("broker.session.timeout.ms", "9000"),
			BrokerConfig("broker.heartbeat.interval.ms", "2000"),
			BrokerConfig("auto.leader.rebalance.enable", "false"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx := context.Background()
		time.Sleep(time.Minute) // idle: every heartbeat stands
		synctest.Wait()
		fenced := func(id int32) func(*Cluster) bool {
			return func(c *Cluster) bool {
				for _, b := range c.Brokers() {
					if b.ID == id {
						return b.Fenced
					}
				}
				return false
			}
		}
		start := time.Now()
		heal := c.Drop(2, c.Controller(), 1)
		if err := c.WaitFor(ctx, fenced(2)); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 7*time.Second || d > 9*time.Second+100*time.Millisecond {
			t.Fatalf("fenced %v after the black hole; want the 9 s session timeout less at most one 2 s heartbeat interval", d)
		}
		heal()
		if err := c.WaitFor(ctx, func(c *Cluster) bool { return !fenced(2)(c) }); err != nil {
			t.Fatal(err)
		}
	})
}
