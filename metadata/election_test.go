package metadata

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// fakeClock is a controller clock the test moves by hand.
type fakeClock struct{ now time.Time }

func (f *fakeClock) Now() time.Time { return f.now }

func newClockedController(t *testing.T, brokers int, unclean bool) (*Controller, *fakeClock, []int64) {
	t.Helper()
	clk := &fakeClock{now: time.Unix(1000, 0)}
	log := NewMemLog()
	t.Cleanup(log.Close)
	c, err := NewController(context.Background(), log, "test", ControllerConfig{SessionTimeout: time.Second, UncleanElection: unclean, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	var epochs []int64
	for i := 1; i <= brokers; i++ {
		e, err := c.RegisterBroker(context.Background(), RegisterBroker{ID: int32(i)}, -1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Heartbeat(context.Background(), int32(i), e, nil); err != nil {
			t.Fatal(err)
		}
		epochs = append(epochs, e)
	}
	return c, clk, epochs
}

func part(c *Controller, topic string) (p Partition) {
	c.State(func(s *State) { p = *s.Topics[topic].Partitions[0] })
	return p
}

func TestSessionExpiryElectsFromISR(t *testing.T) {
	c, clk, epochs := newClockedController(t, 3, false)
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 3}, false); err != nil {
		t.Fatal(err)
	}
	p := part(c, "t")
	leader := p.Leader
	// Everyone but the leader keeps heartbeating past the session timeout.
	clk.now = clk.now.Add(1500 * time.Millisecond)
	for i := int32(1); i <= 3; i++ {
		if i != leader {
			c.Heartbeat(ctx, i, epochs[i-1], nil)
		}
	}
	c.expireSessions(ctx)
	q := part(c, "t")
	if q.Leader == leader || q.Leader < 0 || q.LeaderEpoch != p.LeaderEpoch+1 || slices.Contains(q.ISR, leader) {
		t.Fatalf("after expiry: leader %d epoch %d isr %v (was %d/%d)", q.Leader, q.LeaderEpoch, q.ISR, leader, p.LeaderEpoch)
	}
	if q.Leader != p.Replicas[1] {
		t.Fatalf("new leader %d, want the next replica in order %d", q.Leader, p.Replicas[1])
	}
	// AlterPartition from the deposed leader is refused; from the new one
	// with a stale partition epoch too.
	if err := c.AlterPartition(ctx, q.TopicID, 0, leader, p.LeaderEpoch, p.PartitionEpoch, p.ISR, nil); !errors.Is(err, kerr.NotLeaderForPartition) {
		t.Fatalf("AlterPartition from old leader: %v", err)
	}
	if err := c.AlterPartition(ctx, q.TopicID, 0, q.Leader, q.LeaderEpoch, q.PartitionEpoch-1, q.ISR, nil); !errors.Is(err, kerr.InvalidUpdateVersion) {
		t.Fatalf("stale partition epoch: %v", err)
	}
	// Adding the fenced broker back is refused: it is not eligible.
	if err := c.AlterPartition(ctx, q.TopicID, 0, q.Leader, q.LeaderEpoch, q.PartitionEpoch, append(slices.Clone(q.ISR), leader), nil); !errors.Is(err, kerr.IneligibleReplica) {
		t.Fatalf("fenced broker into ISR: %v", err)
	}
	// A stale epoch heartbeat does not unfence; the current one does.
	if _, err := c.Heartbeat(ctx, leader, epochs[leader-1]+7, nil); !errors.Is(err, ErrStaleBrokerEpoch) {
		t.Fatalf("stale heartbeat: %v", err)
	}
	if fenced, err := c.Heartbeat(ctx, leader, epochs[leader-1], nil); err != nil || fenced {
		t.Fatalf("heartbeat after expiry: fenced %v %v", fenced, err)
	}
	// KIP-903: once unfenced it may rejoin, but only as its current
	// registration; a member named with an older broker epoch is a
	// previous life of the broker and is refused.
	q = part(c, "t")
	isr := append(slices.Clone(q.ISR), leader)
	named := make([]int64, len(isr))
	for i, id := range isr {
		named[i] = epochs[id-1]
	}
	named[len(named)-1] += 3 // not its registration's
	if err := c.AlterPartition(ctx, q.TopicID, 0, q.Leader, q.LeaderEpoch, q.PartitionEpoch, isr, named); !errors.Is(err, kerr.IneligibleReplica) {
		t.Fatalf("a member with another broker epoch into the ISR: %v", err)
	}
	named[len(named)-1] -= 3
	if err := c.AlterPartition(ctx, q.TopicID, 0, q.Leader, q.LeaderEpoch, q.PartitionEpoch, isr, named); err != nil {
		t.Fatalf("the member with its current broker epoch into the ISR: %v", err)
	}
}

func TestLastISRMemberAndUncleanElection(t *testing.T) {
	for _, unclean := range []bool{false, true} {
		c, _, epochs := newClockedController(t, 2, unclean)
		ctx := context.Background()
		c.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 2}, false)
		p := part(c, "t")
		follower := p.Replicas[1]
		// The follower falls out of the ISR, then both die.
		if err := c.AlterPartition(ctx, p.TopicID, 0, p.Leader, p.LeaderEpoch, p.PartitionEpoch, []int32{p.Leader}, nil); err != nil {
			t.Fatal(err)
		}
		c.FenceBroker(ctx, follower)
		c.FenceBroker(ctx, p.Leader)
		q := part(c, "t")
		if q.Leader != -1 || !slices.Equal(q.ISR, []int32{p.Leader}) {
			t.Fatalf("both down: leader %d isr %v, want -1 [%d]", q.Leader, q.ISR, p.Leader)
		}
		c.Heartbeat(ctx, follower, epochs[follower-1], nil)
		q = part(c, "t")
		if unclean && (q.Leader != follower || !slices.Equal(q.ISR, []int32{follower})) {
			t.Fatalf("unclean: leader %d isr %v, want the out-of-sync replica", q.Leader, q.ISR)
		}
		if !unclean && q.Leader != -1 {
			t.Fatalf("clean: out-of-sync replica %d elected", q.Leader)
		}
	}
}

// TestSessionExpiryDeadline: the expiry loop learns when the next session
// is due, so a broker is fenced when its session runs out, not on the
// next tick after.
func TestSessionExpiryDeadline(t *testing.T) {
	c, clk, epochs := newClockedController(t, 3, false)
	ctx := context.Background()
	t0 := clk.now
	if next := c.expireSessions(ctx); !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("next expiry %v, want %v", next.Sub(t0), time.Second)
	}
	clk.now = t0.Add(300 * time.Millisecond)
	c.Heartbeat(ctx, 2, epochs[1], nil)
	c.Heartbeat(ctx, 3, epochs[2], nil)
	if next := c.expireSessions(ctx); !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("next expiry %v, want broker 1's at %v", next.Sub(t0), time.Second)
	}
	for _, d := range []time.Duration{400, 500, 600, 700, 800, 900, 999} {
		// The loop runs at least eight times a session: no stall.
		clk.now = t0.Add(d * time.Millisecond)
		c.expireSessions(ctx)
	}
	c.State(func(s *State) {
		if s.Brokers[1].Fenced {
			t.Fatal("broker 1 fenced before its session ran out")
		}
	})
	clk.now = t0.Add(time.Second)
	if next := c.expireSessions(ctx); !next.Equal(t0.Add(1300 * time.Millisecond)) {
		t.Fatalf("next expiry %v, want brokers 2 and 3's at 1.3s", next.Sub(t0))
	}
	c.State(func(s *State) {
		if !s.Brokers[1].Fenced {
			t.Fatal("broker 1 not fenced when its session ran out")
		}
	})
}

// TestStandingHeartbeat: a broker whose heartbeat stands has no session
// to expire, however long it stands; when it ends, the session runs from
// the last heartbeat the broker would have sent by then (one every
// interval since the standing one), so the broker is fenced a session
// timeout after that, as if those heartbeats had been sent. Fencing the
// broker (or a new registration) closes gone.
func TestStandingHeartbeat(t *testing.T) {
	c, clk, epochs := newClockedController(t, 3, false)
	ctx := context.Background()
	t0 := clk.now
	const interval = 100 * time.Millisecond
	for i := int32(2); i <= 3; i++ {
		if fenced, err := c.Heartbeat(ctx, i, epochs[i-1], nil); err != nil || fenced {
			t.Fatalf("heartbeat of %d: fenced %v, %v", i, fenced, err)
		}
	}
	_, end2 := c.Stand(2, epochs[1], interval)
	gone3, end3 := c.Stand(3, epochs[2], interval)
	defer end3()
	// An hour later, only broker 1 (no standing heartbeat) is fenced, and
	// no session is left to expire.
	clk.now = t0.Add(time.Hour)
	c.mu.Lock()
	c.mu.lastCheck = time.Time{} // not a stall of the loop
	c.mu.Unlock()
	if next := c.expireSessions(ctx); !next.IsZero() {
		t.Fatalf("next expiry %v with every live broker standing", next.Sub(t0))
	}
	c.State(func(s *State) {
		if !s.Brokers[1].Fenced || s.Brokers[2].Fenced || s.Brokers[3].Fenced {
			t.Fatalf("fenced 1/2/3: %v %v %v, want only 1", s.Brokers[1].Fenced, s.Brokers[2].Fenced, s.Brokers[3].Fenced)
		}
	})
	// Broker 2's heartbeat ends 250 ms into an interval: its last
	// heartbeat would have been 50 ms ago.
	clk.now = t0.Add(time.Hour + 250*time.Millisecond)
	end2()
	lastBeat := t0.Add(time.Hour + 200*time.Millisecond)
	if next := c.expireSessions(ctx); !next.Equal(lastBeat.Add(time.Second)) {
		t.Fatalf("next expiry %v after the hold ended, want a session after %v", next.Sub(t0), lastBeat.Sub(t0))
	}
	for d := 300 * time.Millisecond; d <= time.Second; d += 100 * time.Millisecond {
		// The loop runs at least eight times a session: no stall.
		clk.now = lastBeat.Add(d)
		c.expireSessions(ctx)
		if d < time.Second {
			c.State(func(s *State) {
				if s.Brokers[2].Fenced {
					t.Fatalf("broker 2 fenced %v after its last heartbeat", d)
				}
			})
		}
	}
	c.State(func(s *State) {
		if !s.Brokers[2].Fenced {
			t.Fatal("broker 2 not fenced a session after its last heartbeat")
		}
	})
	select {
	case <-gone3:
		t.Fatal("gone closed for a broker still unfenced")
	default:
	}
	if err := c.FenceBroker(ctx, 3); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gone3:
	default:
		t.Fatal("gone not closed when the standing broker was fenced")
	}
}
