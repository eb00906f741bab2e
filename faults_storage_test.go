package kcluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// createTopicConfigs creates a one-partition topic with topic configs.
func createTopicConfigs(t *testing.T, c *Cluster, name string, rf int16, configs map[string]string) {
	t.Helper()
	cl := dial(t, c.Addrs()[0])
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, rf
	for k, v := range configs {
		cfg := kmsg.NewCreateTopicsRequestTopicConfig()
		cfg.Name, cfg.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, cfg)
	}
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10000
	resp := do[*kmsg.CreateTopicsResponse](t, cl, req, -1)
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	waitFor(t, c, "every broker to know topic "+name, LeaderElected(name, 0))
}

// replicaLog returns broker id's log of topic/0 and checks that it is
// whole: every batch from the log start to its end is readable where the
// index says, offsets contiguous (segments and index agree).
func checkReplicaLog(t *testing.T, c *Cluster, id int32, topic string) (leo int64, values []string) {
	t.Helper()
	b, err := c.brokerByID(id)
	if err != nil || b == nil {
		t.Fatalf("broker %d not running: %v", id, err)
	}
	b.mu.RLock()
	r := b.mu.replicas[tpKey{b.mu.state.Topics[topic].ID, 0}]
	b.mu.RUnlock()
	leo = r.log.LogEndOffset()
	for off := r.log.LogStartOffset(); off < leo; {
		data, err := r.log.Read(off, 1, leo)
		if err != nil || len(data) == 0 {
			t.Fatalf("broker %d: reading offset %d of %d: %v", id, off, leo, err)
		}
		offs, vals := decodeValues(t, data)
		if offs[0] != off {
			t.Fatalf("broker %d: read at %d found a batch at %d", id, off, offs[0])
		}
		values = append(values, vals...)
		off = offs[len(offs)-1] + 1
	}
	return leo, values
}

// Power-cut the leader of an acks=all RF=3 partition: a new leader is
// elected from the ISR; the old leader restarts with only what it had
// synced (its segments up to the last roll), truncates and catches up, and
// no acknowledged record is lost anywhere.
func TestPowerCutLeaderLosesUnsyncedSuffixNotAckedRecords(t *testing.T) {
	c := Start(t, Brokers(3), BrokerConfig("min.insync.replicas", "2"),
		BrokerConfig("replica.lag.time.max.ms", "30000"), BrokerConfig("auto.leader.rebalance.enable", "false"))
	// Small segments: the ones that rolled were synced, the active one
	// was not.
	createTopicConfigs(t, c, "pc", 3, map[string]string{"segment.bytes": "600"})
	var want []string
	for i := range 30 {
		v := fmt.Sprintf("acked-%02d", i)
		if _, err := produceTo(t, c, "pc", -1, v); err != nil {
			t.Fatal(err)
		}
		want = append(want, v)
	}
	old := partState(t, c, "pc", 0)
	if err := c.PowerCut(old.Leader); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "a new leader", LeaderElected("pc", 0, old.Leader))
	// Keep the old leader from fetching, to see what it recovered.
	var heals []func()
	for _, r := range old.Replicas {
		if r != old.Leader {
			heals = append(heals, c.Cut(old.Leader, r))
		}
	}
	if err := c.RestartBroker(old.Leader); err != nil {
		t.Fatal(err)
	}
	leo, vals := checkReplicaLog(t, c, old.Leader, "pc")
	if leo == 0 || leo >= 30 {
		t.Fatalf("old leader recovered to %d: want the synced segments only, some but not all of 30", leo)
	}
	if !slices.Equal(vals, want[:leo]) {
		t.Fatalf("old leader recovered %v", vals)
	}
	t.Logf("power cut: the old leader kept %d of 30 records (its rolled segments)", leo)
	for _, h := range heals {
		h()
	}
	if _, err := produceTo(t, c, "pc", -1, "after"); err != nil {
		t.Fatal(err)
	}
	want = append(want, "after")
	waitFor(t, c, "the old leader back in sync", inSync("pc", 3))
	for _, id := range old.Replicas {
		if _, vals := checkReplicaLog(t, c, id, "pc"); !slices.Equal(vals, want) {
			t.Fatalf("broker %d's log %v, want %v", id, vals, want)
		}
	}
}

// A power cut of an RF=1 leader loses exactly what it had not synced: with
// flush.messages=5, 12 acknowledged records become 10; the broker recovers
// to the last synced batch and appends continue from there.
func TestPowerCutSingleReplicaKeepsSyncedRecords(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopicConfigs(t, c, "one", 1, map[string]string{"flush.messages": "5"})
	for i := range 12 {
		if _, err := produceTo(t, c, "one", 1, fmt.Sprintf("r%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.PowerCut(1); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerCut(1); !errors.Is(err, ErrBrokerDown) {
		t.Fatalf("PowerCut of a broker that is down: %v, want ErrBrokerDown", err)
	}
	if err := c.RestartBroker(1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the partition back online", LeaderElected("one", 0))
	leo, vals := checkReplicaLog(t, c, 1, "one")
	if leo != 10 || len(vals) != 10 || vals[9] != "r09" {
		t.Fatalf("recovered log end %d %v, want the 10 synced records", leo, vals)
	}
	if off, err := produceTo(t, c, "one", 1, "next"); err != nil || off != 10 {
		t.Fatalf("produce after recovery: offset %d, %v; want offset 10", off, err)
	}
}

func TestPowerCutErrors(t *testing.T) {
	c := Start(t, Brokers(1), Dir(t.TempDir()))
	if err := c.PowerCut(); err != nil {
		t.Fatalf("PowerCut(): %v", err)
	}
	if err := c.PowerCut(2); !errors.Is(err, ErrUnknownBroker) {
		t.Fatalf("PowerCut(2) of 1 broker: %v", err)
	}
	if err := c.PowerCut(1); !errors.Is(err, ErrPowerCutUnsupported) {
		t.Fatalf("PowerCut on disk: %v", err)
	}
	if bs := c.Brokers(); !bs[0].Running {
		t.Fatal("a refused PowerCut stopped the broker")
	}
	c.Close()
	if err := c.PowerCut(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("PowerCut after Close: %v", err)
	}
}

// tryProduce produces one batch to broker id and returns the partition's
// error, or the request's error (a closed connection) without failing.
func tryProduce(t *testing.T, c *Cluster, id int32, topic string, acks int16, vals ...string) (int64, error) {
	t.Helper()
	req := produceRequest(topic, 0, acks, 10000, makeBatch(time.Now().UnixMilli(), vals...))
	req.SetVersion(11)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := dial(t, addrOf(c, id)).Request(ctx, req)
	if err != nil {
		return 0, err
	}
	p := resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	return p.BaseOffset, kerr.ErrorForCode(p.ErrorCode)
}

func hasEvent(c *Cluster, kind EventKind, broker int32) bool {
	for _, e := range c.Events() {
		if e.Kind == kind && e.Broker == broker {
			return true
		}
	}
	return false
}

// The leader's disk fails: the produce that hits it gets
// KAFKA_STORAGE_ERROR (or, racing the halt, a closed connection), the
// broker halts as Kafka does with its only log dir offline, leadership
// moves to the ISR, and no acknowledged record is lost. The broker cannot
// restart until the disk is repaired; then it catches up.
func TestFailDiskLeaderHaltsAndLeadershipMoves(t *testing.T) {
	c := Start(t, Brokers(3), BrokerConfig("min.insync.replicas", "2"),
		BrokerConfig("replica.lag.time.max.ms", "30000"), BrokerConfig("auto.leader.rebalance.enable", "false"))
	createTopic(t, c, "fd", 1, 3)
	var want []string
	for i := range 5 {
		v := fmt.Sprintf("acked-%d", i)
		if _, err := produceTo(t, c, "fd", -1, v); err != nil {
			t.Fatal(err)
		}
		want = append(want, v)
	}
	old := partState(t, c, "fd", 0)
	repair, err := c.FailDisk(old.Leader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tryProduce(t, c, old.Leader, "fd", -1, "lost"); err == nil {
		t.Fatal("produce to a broker whose disk failed succeeded")
	} else {
		t.Logf("produce on the failed disk: %v", err)
	}
	waitFor(t, c, "the broker to halt and a new leader", func(c *Cluster) bool {
		return !c.Brokers()[old.Leader-1].Running && hasEvent(c, LogDirFailed, old.Leader) && LeaderElected("fd", 0, old.Leader)(c)
	})
	if _, err := produceTo(t, c, "fd", -1, "after"); err != nil {
		t.Fatalf("acks=all on the new leader: %v", err)
	}
	want = append(want, "after")
	if err := c.RestartBroker(old.Leader); !errors.Is(err, syscall.EIO) {
		t.Fatalf("restart on a failed disk: %v, want EIO", err)
	}
	repair()
	repair()
	if err := c.RestartBroker(old.Leader); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the broker back in sync", inSync("fd", 3))
	for _, id := range old.Replicas {
		if _, vals := checkReplicaLog(t, c, id, "fd"); !slices.Equal(vals, want) {
			t.Fatalf("broker %d's log %v, want %v", id, vals, want)
		}
	}
}

// A follower's disk fails: its next replication append fails, it halts,
// leaves the ISR when fenced, and acks=all goes on with the other two.
func TestFailDiskFollowerLeavesISR(t *testing.T) {
	c := Start(t, Brokers(3), BrokerConfig("min.insync.replicas", "2"),
		BrokerConfig("replica.lag.time.max.ms", "30000"), BrokerConfig("auto.leader.rebalance.enable", "false"))
	createTopic(t, c, "ff", 1, 3)
	st := partState(t, c, "ff", 0)
	follower := st.Replicas[0]
	if follower == st.Leader {
		follower = st.Replicas[1]
	}
	if _, err := c.FailDisk(follower); err != nil {
		t.Fatal(err)
	}
	if _, err := produceTo(t, c, "ff", -1, "a"); err != nil {
		t.Fatalf("acks=all with a follower's disk failing: %v", err)
	}
	waitFor(t, c, "the follower halted and out of the ISR", func(c *Cluster) bool {
		st, _ := c.PartitionState("ff", 0)
		return hasEvent(c, LogDirFailed, follower) && !c.Brokers()[follower-1].Running && len(st.ISR) == 2 && !slices.Contains(st.ISR, follower)
	})
	if _, err := c.FailDisk(9); !errors.Is(err, ErrUnknownBroker) {
		t.Fatalf("FailDisk(9): %v", err)
	}
	c.Close()
	if _, err := c.FailDisk(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("FailDisk after Close: %v", err)
	}
}

// A follower that loses power and restarts before its session expires
// must not come back in the ISR: its log lost the acknowledged records it
// had not synced, and losing the other replicas would then elect it and
// lose them. As Kafka's controller does on a re-registration
// (handleBrokerShutdown), it leaves every ISR and rejoins once caught up.
func TestPowerCutQuickRestartLeavesISR(t *testing.T) {
	c := Start(t, Brokers(3), BrokerConfig("min.insync.replicas", "2"),
		BrokerConfig("broker.session.timeout.ms", "30000"), BrokerConfig("broker.heartbeat.interval.ms", "50"),
		BrokerConfig("replica.lag.time.max.ms", "30000"), BrokerConfig("auto.leader.rebalance.enable", "false"))
	createTopic(t, c, "quick", 1, 3)
	var want []string
	for i := range 5 {
		v := fmt.Sprintf("acked-%d", i)
		if _, err := produceTo(t, c, "quick", -1, v); err != nil {
			t.Fatal(err)
		}
		want = append(want, v)
	}
	st := partState(t, c, "quick", 0)
	var f, g int32 // followers
	for _, r := range st.Replicas {
		if r != st.Leader {
			if f == 0 {
				f = r
			} else {
				g = r
			}
		}
	}
	if err := c.PowerCut(f); err != nil {
		t.Fatal(err)
	}
	// It comes back at once (its session has not expired), unable to
	// fetch.
	heal := c.Partition([]int32{f}, []int32{st.Leader, g})
	if err := c.RestartBroker(f); err != nil {
		t.Fatal(err)
	}
	if leo, _ := checkReplicaLog(t, c, f, "quick"); leo != 0 {
		t.Fatalf("the power cut kept %d unsynced records", leo)
	}
	waitFor(t, c, "the restarted follower out of the ISR", func(c *Cluster) bool {
		st, _ := c.PartitionState("quick", 0)
		return !slices.Contains(st.ISR, f)
	})
	heal()
	waitFor(t, c, "everyone back in sync", inSync("quick", 3))
	for _, id := range st.Replicas {
		if _, vals := checkReplicaLog(t, c, id, "quick"); !slices.Equal(vals, want) {
			t.Fatalf("broker %d's log %v, want %v", id, vals, want)
		}
	}
}

// FailDisk works on disk too: the broker halts at its next write and
// restarts, with its data, once the disk is repaired.
func TestFailDiskOnDisk(t *testing.T) {
	c := Start(t, Brokers(1), Dir(t.TempDir()))
	createTopic(t, c, "disk", 1, 1)
	if _, err := produceTo(t, c, "disk", 1, "kept"); err != nil {
		t.Fatal(err)
	}
	repair, err := c.FailDisk(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tryProduce(t, c, 1, "disk", 1, "lost"); err == nil {
		t.Fatal("produce on a failed disk succeeded")
	}
	waitFor(t, c, "the broker to halt", func(c *Cluster) bool { return !c.Brokers()[0].Running })
	repair()
	if err := c.RestartBroker(1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the partition back", LeaderElected("disk", 0))
	if off, err := produceTo(t, c, "disk", 1, "after"); err != nil || off != 1 {
		t.Fatalf("produce after repair: offset %d, %v; want 1", off, err)
	}
	if _, vals := checkReplicaLog(t, c, 1, "disk"); !slices.Equal(vals, []string{"kept", "after"}) {
		t.Fatalf("log %v", vals)
	}
}

// The leader loses power and comes back before its session expires, with
// only what it had synced (nothing). Its re-registration moves leadership
// to an ISR member that has every acknowledged record; it catches up as a
// follower and, once the preferred leader is elected again, leads with
// every acknowledged record: the other replicas must not truncate to the
// log it came back with.
func TestPowerCutLeaderQuickRestartKeepsAckedRecords(t *testing.T) {
	c := Start(t, Brokers(3), BrokerConfig("min.insync.replicas", "2"),
		BrokerConfig("broker.session.timeout.ms", "30000"), BrokerConfig("broker.heartbeat.interval.ms", "50"),
		BrokerConfig("replica.lag.time.max.ms", "30000"))
	createTopic(t, c, "quickleader", 1, 3)
	var want []string
	produce := func(n int) {
		t.Helper()
		for range n {
			v := fmt.Sprintf("acked-%d", len(want))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := c.WaitFor(ctx, func(c *Cluster) bool {
				st, err := c.PartitionState("quickleader", 0)
				return err == nil && st.Leader > 0 && memTryProduce(c, st.Leader, "quickleader", v) == nil
			})
			cancel()
			if err != nil {
				t.Fatalf("producing %s: %v\n%s", v, err, c)
			}
			want = append(want, v)
		}
	}
	produce(5)
	st := partState(t, c, "quickleader", 0)
	if err := c.PowerCut(st.Leader); err != nil {
		t.Fatal(err)
	}
	if err := c.RestartBroker(st.Leader); err != nil {
		t.Fatal(err)
	}
	produce(5)
	waitFor(t, c, "the preferred leader back and everyone in sync", func(c *Cluster) bool {
		s, err := c.PartitionState("quickleader", 0)
		return err == nil && s.Leader == st.Replicas[0] && inSync("quickleader", 3)(c)
	})
	produce(1)
	waitFor(t, c, "everyone in sync", inSync("quickleader", 3))
	for _, id := range st.Replicas {
		if _, vals := checkReplicaLog(t, c, id, "quickleader"); !slices.Equal(vals, want) {
			t.Fatalf("broker %d's log %v, want %v\n%s", id, vals, want, c)
		}
	}
}

// A follower loses power and comes back at once, empty, but cannot reach
// its leader. The leader still holds what the follower's previous life
// had fetched; it must not put the restarted follower back in the ISR on
// that knowledge (KIP-903: its fetches name a new broker epoch, and the
// controller refuses an ISR naming the old one), or a later election of
// it would truncate acknowledged records away everywhere.
func TestPowerCutFollowerNotReadmittedOnItsPreviousLife(t *testing.T) {
	c := Start(t, Brokers(3), BrokerConfig("min.insync.replicas", "2"), BrokerConfig("auto.leader.rebalance.enable", "false"))
	createTopic(t, c, "lives", 1, 3)
	for i := range 5 {
		if _, err := produceTo(t, c, "lives", -1, fmt.Sprintf("acked-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	st := partState(t, c, "lives", 0)
	f := st.Replicas[0]
	if f == st.Leader {
		f = st.Replicas[1]
	}
	if err := c.PowerCut(f); err != nil {
		t.Fatal(err)
	}
	heal := c.Cut(f, st.Leader)
	if err := c.RestartBroker(f); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the restarted follower out of the ISR", func(c *Cluster) bool {
		s, _ := c.PartitionState("lives", 0)
		return !slices.Contains(s.ISR, f)
	})
	// The leader checks its ISR every half replica.lag.time.max.ms (1 s
	// here); give it two chances.
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	if err := c.WaitFor(ctx, func(c *Cluster) bool {
		s, _ := c.PartitionState("lives", 0)
		return slices.Contains(s.ISR, f)
	}); err == nil {
		t.Fatalf("broker %d, restarted empty and cut from leader %d, is back in the ISR\n%s", f, st.Leader, c)
	}
	heal()
	waitFor(t, c, "everyone in sync", inSync("lives", 3))
	if leo, _ := checkReplicaLog(t, c, f, "lives"); leo != 5 {
		t.Fatalf("broker %d caught up to %d, want 5", f, leo)
	}
}
