package kcluster

import (
	"errors"
	"fmt"
	"slices"
	"testing"

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
