package kcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

func inSync(topic string, n int) Condition {
	cond := FullyReplicated(topic, 0)
	return func(c *Cluster) bool {
		st, err := c.PartitionState(topic, 0)
		return err == nil && len(st.Replicas) == n && cond(c)
	}
}

// Stop a follower: the ISR shrinks to two and acks=all still succeeds with
// min.insync.replicas=2; stop the second: NOT_ENOUGH_REPLICAS; restart
// both: they catch up and the ISR grows back to three.
func TestISRShrinksAndGrows(t *testing.T) {
	c := Start(t, Brokers(3), BrokerConfig("min.insync.replicas", "2"), BrokerConfig("replica.lag.time.max.ms", "300"), BrokerConfig("replica.fetch.wait.max.ms", "100"))
	createTopic(t, c, "isr", 1, 3)
	if _, err := produceTo(t, c, "isr", -1, "a"); err != nil {
		t.Fatal(err)
	}
	st := partState(t, c, "isr", 0)
	var followers []int32
	for _, r := range st.Replicas {
		if r != st.Leader {
			followers = append(followers, r)
		}
	}
	if err := c.KillBroker(followers[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "ISR without the killed follower", func(c *Cluster) bool {
		st, _ := c.PartitionState("isr", 0)
		return len(st.ISR) == 2 && !slices.Contains(st.ISR, followers[0])
	})
	if _, err := produceTo(t, c, "isr", -1, "b"); err != nil {
		t.Fatalf("acks=all with ISR 2, min ISR 2: %v", err)
	}
	if err := c.KillBroker(followers[1]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "ISR of the leader alone", func(c *Cluster) bool {
		st, _ := c.PartitionState("isr", 0)
		return len(st.ISR) == 1
	})
	if _, err := produceTo(t, c, "isr", -1, "c"); err != kerr.NotEnoughReplicas {
		t.Fatalf("acks=all with ISR 1, min ISR 2: %v, want NOT_ENOUGH_REPLICAS", err)
	}
	if _, err := produceTo(t, c, "isr", 1, "d"); err != nil {
		t.Fatalf("acks=1 with ISR 1: %v", err)
	}
	for _, f := range followers {
		if err := c.RestartBroker(f); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, c, "ISR of three, all caught up", inSync("isr", 3))
	st = partState(t, c, "isr", 0)
	if st.HighWatermark != 3 {
		t.Fatalf("high watermark %d, want 3 (a, b, d)", st.HighWatermark)
	}
	if _, err := produceTo(t, c, "isr", -1, "e"); err != nil {
		t.Fatal(err)
	}
}

// Kill the leader: a new leader from the ISR with a higher epoch; acked
// records survive; the old leader rejoins as a follower and truncates the
// suffix it wrote alone.
func TestLeaderFailoverTruncatesUnackedSuffix(t *testing.T) {
	// A long lag time: the followers must stay in the ISR while the
	// leader is cut off, whatever the machine's load, so one of them can
	// be elected.
	c := Start(t, Brokers(3), BrokerConfig("replica.lag.time.max.ms", "30000"), BrokerConfig("auto.leader.rebalance.enable", "false"))
	createTopic(t, c, "fo", 1, 3)
	for i := 0; i < 5; i++ {
		if _, err := produceTo(t, c, "fo", -1, fmt.Sprintf("acked-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	old := partState(t, c, "fo", 0)
	// Cut the leader from both followers, then write to it with acks=1:
	// those records exist only on the old leader.
	var heals []func()
	for _, r := range old.Replicas {
		if r != old.Leader {
			heals = append(heals, c.net.Cut(old.Leader, r))
		}
	}
	for i := 0; i < 3; i++ {
		if _, err := produceTo(t, c, "fo", 1, fmt.Sprintf("unacked-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if leo := partState(t, c, "fo", 0).LogEndOffsets[old.Leader]; leo != 8 {
		t.Fatalf("old leader log end %d, want 8", leo)
	}
	start := time.Now()
	if err := c.KillBroker(old.Leader); err != nil {
		t.Fatal(err)
	}
	for _, h := range heals {
		h()
	}
	waitFor(t, c, "a new leader", func(c *Cluster) bool {
		st, _ := c.PartitionState("fo", 0)
		return st.Leader >= 0 && st.Leader != old.Leader
	})
	now := partState(t, c, "fo", 0)
	if now.LeaderEpoch <= old.LeaderEpoch || !slices.Contains(old.ISR, now.Leader) {
		t.Fatalf("new leader %d epoch %d (old %d, ISR %v)", now.Leader, now.LeaderEpoch, old.LeaderEpoch, old.ISR)
	}
	var ackedAfter time.Duration
	for {
		if _, err := produceTo(t, c, "fo", -1, "after"); err == nil {
			ackedAfter = time.Since(start)
			break
		} else if time.Since(start) > 20*time.Second {
			t.Fatalf("no produce acked on the new leader: %v", err)
		}
	}
	t.Logf("kill leader to first acked produce: %v", ackedAfter)
	if err := c.RestartBroker(old.Leader); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "old leader back in sync", inSync("fo", 3))
	st := partState(t, c, "fo", 0)
	if st.HighWatermark != 6 {
		t.Fatalf("high watermark %d, want 6 (5 acked + after)", st.HighWatermark)
	}
	// Every replica holds exactly acked-0..4, after.
	fp := fetch(t, addrOf(c, st.Leader), "fo", [16]byte{}, 0, 0, 11)
	_, vals := decodeValues(t, fp.RecordBatches)
	want := []string{"acked-0", "acked-1", "acked-2", "acked-3", "acked-4", "after"}
	if !slices.Equal(vals, want) {
		t.Fatalf("log after failover %v, want %v", vals, want)
	}
	for _, b := range c.running() {
		r := b.partition(b.mu.state.Topics["fo"].ID, 0)
		data, err := r.log.Read(0, 1<<20, 1<<40)
		if err != nil {
			t.Fatal(err)
		}
		if _, vals := decodeValues(t, data); !slices.Equal(vals, want) {
			t.Fatalf("broker %d's log %v, want %v", b.id, vals, want)
		}
	}
}

// StopBroker moves leadership away before the broker stops.
func TestStopBrokerMovesLeadersFirst(t *testing.T) {
	c := Start(t, Brokers(3))
	createTopic(t, c, "stop", 3, 3)
	for p := int32(0); p < 3; p++ {
		if st := partState(t, c, "stop", p); st.Leader == 2 {
			goto stop
		}
	}
	t.Fatal("broker 2 leads nothing")
stop:
	if err := c.StopBroker(2); err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 3; p++ {
		st := partState(t, c, "stop", p)
		if st.Leader == 2 || st.Leader < 0 || slices.Contains(st.ISR, 2) {
			t.Fatalf("partition %d after StopBroker(2): leader %d ISR %v", p, st.Leader, st.ISR)
		}
	}
	if err := c.StopBroker(2); err == nil {
		t.Fatal("stopping a stopped broker succeeded")
	}
	if err := c.RestartBroker(2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "preferred leaders back", func(c *Cluster) bool {
		for p := int32(0); p < 3; p++ {
			st, _ := c.PartitionState("stop", p)
			if len(st.ISR) != 3 || st.Leader != st.Replicas[0] {
				return false
			}
		}
		return true
	})
}

// With every ISR member gone the partition is offline (leader -1); the last
// ISR member coming back leads again.
func TestOfflineUntilLastISRMemberReturns(t *testing.T) {
	c := Start(t, Brokers(2), BrokerConfig("replica.lag.time.max.ms", "300"), BrokerConfig("replica.fetch.wait.max.ms", "100"))
	createTopic(t, c, "off", 1, 2)
	st := partState(t, c, "off", 0)
	follower := st.Replicas[0] + st.Replicas[1] - st.Leader
	c.KillBroker(follower)
	waitFor(t, c, "ISR shrink", func(c *Cluster) bool { st, _ := c.PartitionState("off", 0); return len(st.ISR) == 1 })
	c.KillBroker(st.Leader)
	waitFor(t, c, "offline", func(c *Cluster) bool { s, _ := c.PartitionState("off", 0); return s.Leader == -1 })
	// The follower that fell out of the ISR must not lead (unclean).
	if err := c.RestartBroker(follower); err != nil {
		t.Fatal(err)
	}
	if st := partState(t, c, "off", 0); st.Leader != -1 {
		t.Fatalf("out-of-sync replica %d elected leader (unclean election is off)", st.Leader)
	}
	if err := c.RestartBroker(st.Leader); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "last ISR member leads", func(c *Cluster) bool { s, _ := c.PartitionState("off", 0); return s.Leader == st.Leader })
}

func TestLeverErrors(t *testing.T) {
	c := Start(t, Brokers(2))
	if _, err := c.PartitionState("nope", 0); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("PartitionState of an unknown topic: %v", err)
	}
	if err := c.KillBroker(9); !errors.Is(err, ErrUnknownBroker) {
		t.Fatalf("KillBroker(9): %v", err)
	}
	if err := c.RestartBroker(1); !errors.Is(err, ErrBrokerUp) {
		t.Fatalf("RestartBroker of a running broker: %v", err)
	}
	if err := c.KillBroker(1); err != nil {
		t.Fatal(err)
	}
	if err := c.KillBroker(1); !errors.Is(err, ErrBrokerDown) {
		t.Fatalf("KillBroker twice: %v", err)
	}
	if err := c.StopBroker(1); !errors.Is(err, ErrBrokerDown) {
		t.Fatalf("StopBroker of a killed broker: %v", err)
	}
	if got := c.Addrs(); len(got) != 2 {
		t.Fatalf("Addrs with a broker down: %v", got)
	}
	if err := c.RestartBroker(1); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := c.KillBroker(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("KillBroker after Close: %v", err)
	}
}

// Heartbeats cross the network: a broker cut from the controller misses its
// session and is fenced, its partitions get new leaders; once the link
// heals its next heartbeat unfences it and it rejoins the ISR.
func TestCutFromControllerFences(t *testing.T) {
	c := Start(t, Brokers(3), BrokerConfig("auto.leader.rebalance.enable", "false"))
	createTopic(t, c, "cut", 1, 3)
	old := partState(t, c, "cut", 0)
	heal := c.net.Cut(old.Leader, controllerNodeID)
	// The cut broker learns nothing more from the controller, so only
	// the controller's view is waited on here.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitFor(ctx, func(c *Cluster) bool {
		s, _ := c.PartitionState("cut", 0)
		return s.Leader >= 0 && s.Leader != old.Leader && !slices.Contains(s.ISR, old.Leader)
	}); err != nil {
		t.Fatalf("no new leader after the fence: %v", err)
	}
	heal()
	waitFor(t, c, "the cut broker back in the ISR", inSync("cut", 3))
}

func TestStringShowsState(t *testing.T) {
	c := Start(t, Brokers(2))
	createTopic(t, c, "shown", 1, 2)
	if err := c.KillBroker(2); err != nil {
		t.Fatal(err)
	}
	s := c.String()
	for _, want := range []string{"broker 1 ", "broker 2 ", ": down", "shown/0 leader", "replicas [", "controller 1000"} {
		if !strings.Contains(s, want) {
			t.Fatalf("String() lacks %q:\n%s", want, s)
		}
	}
}

func TestFetchWaitMustBeBelowLagTime(t *testing.T) {
	c, err := New(Brokers(1), BrokerConfig("replica.lag.time.max.ms", "300"))
	if err == nil {
		c.Close()
		t.Fatal("New accepted replica.lag.time.max.ms below replica.fetch.wait.max.ms")
	}
}

// A broker restarted on disk recovers its logs from the files, keeps its
// data and catches up with what it missed.
func TestRestartOnDisk(t *testing.T) {
	c := Start(t, Brokers(3), Dir(t.TempDir()))
	createTopic(t, c, "disk", 1, 3)
	for i := 0; i < 3; i++ {
		if _, err := produceTo(t, c, "disk", -1, "before"); err != nil {
			t.Fatal(err)
		}
	}
	st := partState(t, c, "disk", 0)
	victim := st.Replicas[0]
	if victim == st.Leader {
		victim = st.Replicas[1]
	}
	if err := c.StopBroker(victim); err != nil {
		t.Fatal(err)
	}
	if _, err := produceTo(t, c, "disk", -1, "while-down"); err != nil {
		t.Fatal(err)
	}
	if err := c.RestartBroker(victim); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the restarted broker back in sync", FullyReplicated("disk", 0))
	if s := partState(t, c, "disk", 0); s.LogEndOffsets[victim] != 4 {
		t.Fatalf("restarted broker's log end %d, want 4", s.LogEndOffsets[victim])
	}
}

// Replicas on disk past the size where segments grow in preallocated
// chunks (segment/prealloc.go) hold the same bytes: a follower killed (a
// process crash, which gives no preallocated space back) and restarted
// recovers exactly what it had appended, catches up, and every replica's
// segments read back as the same batches, byte for byte.
func TestPreallocatedReplicasOnDisk(t *testing.T) {
	dir := t.TempDir()
	c := Start(t, Brokers(3), Dir(dir))
	createTopic(t, c, "big", 1, 3)
	value := strings.Repeat("v", 200<<10)
	produceN := func(n int) {
		t.Helper()
		for range n {
			if _, err := produceTo(t, c, "big", -1, value, value); err != nil {
				t.Fatal(err)
			}
		}
	}
	produceN(8) // 3.2 MB
	st := partState(t, c, "big", 0)
	victim := st.Replicas[0]
	if victim == st.Leader {
		victim = st.Replicas[1]
	}
	if err := c.KillBroker(victim); err != nil {
		t.Fatal(err)
	}
	produceN(4)
	if err := c.RestartBroker(victim); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the restarted broker back in sync", FullyReplicated("big", 0))
	produceN(2)
	waitFor(t, c, "every replica at the log end", FullyReplicated("big", 0))
	logs := map[int32][]byte{}
	for _, id := range st.Replicas {
		segs, err := filepath.Glob(filepath.Join(dir, "broker-"+strconv.Itoa(int(id)), "big-0.*", "*.log"))
		if err != nil || len(segs) == 0 {
			t.Fatalf("broker %d: segments %v, %v", id, segs, err)
		}
		sort.Strings(segs)
		for _, s := range segs {
			b, err := os.ReadFile(s)
			if err != nil {
				t.Fatal(err)
			}
			logs[id] = append(logs[id], b...)
		}
	}
	want := logs[st.Leader]
	if offsets, _ := decodeValues(t, want); len(offsets) != 28 {
		t.Fatalf("leader's segments hold %d records, want 28", len(offsets))
	}
	for id, got := range logs {
		if !bytes.Equal(got, want) {
			t.Fatalf("broker %d's segments hold %d bytes that differ from the leader's %d", id, len(got), len(want))
		}
	}
}
