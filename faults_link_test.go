package kcluster

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// exchange sends ApiVersions on cl and returns how long it took, or the
// error (a timeout) after d.
func exchange(cl interface {
	Request(context.Context, kmsg.Request) (kmsg.Response, error)
}, d time.Duration) (time.Duration, error) {
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	_, err := cl.Request(ctx, req)
	return time.Since(start), err
}

// A black-holed client link hangs requests (no reset, no refusal) until
// the client gives up; a lossy one stalls some exchanges by TCP's
// retransmission timeout and not others; undo restores the link.
func TestDropClientLink(t *testing.T) {
	c := Start(t, Brokers(1), Seed(7))
	cl := dial(t, c.Addrs()[0])
	if _, err := exchange(cl, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	undo := c.Drop(1, Client, 1)
	if d, err := exchange(cl, 300*time.Millisecond); err == nil {
		t.Fatalf("exchange on a black-holed link answered in %v", d)
	}
	undo()
	undo()
	cl = dial(t, c.Addrs()[0])
	if _, err := exchange(cl, 5*time.Second); err != nil {
		t.Fatalf("after undo: %v", err)
	}
	c.Drop(1, Client, 0.3)
	var stalled, clean int
	for range 8 {
		d, err := exchange(cl, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if d >= 200*time.Millisecond {
			stalled++
		} else {
			clean++
		}
	}
	t.Logf("p=0.3, seed 7: %d of 8 exchanges stalled", stalled)
	if stalled == 0 || clean == 0 {
		t.Fatalf("%d stalled, %d clean; want some of each", stalled, clean)
	}
	c.Heal()
	if d, err := exchange(cl, 5*time.Second); err != nil || d >= 200*time.Millisecond {
		t.Fatalf("after Heal: %v %v", d, err)
	}
}

// SlowLink to Client delays both directions: an exchange takes 2d more.
func TestSlowLinkClientBothWays(t *testing.T) {
	c := Start(t, Brokers(1))
	cl := dial(t, c.Addrs()[0])
	if _, err := exchange(cl, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c.SlowLink(1, Client, 60*time.Millisecond)
	if d, err := exchange(cl, 5*time.Second); err != nil || d < 120*time.Millisecond {
		t.Fatalf("exchange on a link slowed by 60ms each way: %v %v; want at least 120ms", d, err)
	}
}

// Black-hole the links from the leader to its followers: their fetches
// hang rather than fail, the ISR shrinks after replica.lag.time.max.ms and
// acks=all is refused; once healed, the stalled connections recover at
// their next retransmission and the ISR grows back.
func TestDropLeaderToFollowers(t *testing.T) {
	c := Start(t, Brokers(3), Seed(1), BrokerConfig("min.insync.replicas", "2"),
		BrokerConfig("replica.lag.time.max.ms", "600"), BrokerConfig("replica.fetch.wait.max.ms", "100"))
	createTopic(t, c, "lossy", 1, 3)
	st := partState(t, c, "lossy", 0)
	for _, r := range st.Replicas {
		if r != st.Leader {
			c.Drop(st.Leader, r, 1)
		}
	}
	if _, err := produceTo(t, c, "lossy", 1, "behind"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the ISR to shrink to the leader", func(c *Cluster) bool {
		s, _ := c.PartitionState("lossy", 0)
		return slices.Equal(s.ISR, []int32{st.Leader})
	})
	if _, err := produceTo(t, c, "lossy", -1, "x"); err != kerr.NotEnoughReplicas {
		t.Fatalf("acks=all with the followers' links black-holed: %v, want NOT_ENOUGH_REPLICAS", err)
	}
	c.Heal()
	waitFor(t, c, "the ISR to grow back", inSync("lossy", 3))
}
