package kcluster

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

// offsetsAgree holds when every running node has the same last metadata
// offset as the active controller.
func offsetsAgree(c *Cluster) bool {
	end := c.metadataEnd()
	for _, off := range c.MetadataOffsets() {
		if off != end {
			return false
		}
	}
	return true
}

// activeOtherThan holds when a controller other than any of not is active.
func activeOtherThan(not ...int32) Condition {
	return func(c *Cluster) bool {
		a := c.Controller()
		return a >= 0 && !slices.Contains(not, a)
	}
}

func TestQuorumStartsAndAgrees(t *testing.T) {
	c := Start(t, Brokers(3), Controllers(3))
	if got := c.ControllerIDs(); !slices.Equal(got, []int32{1000, 1001, 1002}) {
		t.Fatalf("controller ids %v", got)
	}
	if a := c.Controller(); !slices.Contains(c.ControllerIDs(), a) {
		t.Fatalf("active controller %d", a)
	}
	createTopic(t, c, "q", 3, 3)
	waitFor(t, c, "every node to hold the whole metadata log", offsetsAgree)
	if offs := c.MetadataOffsets(); len(offs) != 6 {
		t.Fatalf("metadata offsets of %d nodes, want 6: %v", len(offs), offs)
	}
	// Every controller, standbys included, holds the replayed state (its
	// applier runs just behind its copy of the log).
	waitFor(t, c, "every controller to apply the whole log", func(c *Cluster) bool {
		for _, n := range c.controllers() {
			var off int64
			n.ctrl.State(func(s *metadata.State) { off = s.Offset })
			if off != c.metadataEnd() {
				return false
			}
		}
		return true
	})
	for _, n := range c.controllers() {
		var parts int
		n.ctrl.State(func(s *metadata.State) {
			if t := s.Topics["q"]; t != nil {
				parts = len(t.Partitions)
			}
		})
		if parts != 3 {
			t.Fatalf("controller %d has %d partitions of q, want 3", n.id, parts)
		}
	}
	// A standby refuses to change metadata: NOT_CONTROLLER.
	var standby int32 = -1
	for _, id := range c.ControllerIDs() {
		if id != c.Controller() {
			standby = id
		}
	}
	cl := dial(t, c.ctrlAddrs()[standby-controllerNodeID].addr)
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "via-standby", 1, 1
	req.Topics = append(req.Topics, rt)
	resp := do[*kmsg.CreateTopicsResponse](t, cl, req, 7)
	if resp.Topics[0].ErrorCode != kerr.NotController.Code {
		t.Fatalf("CreateTopics on standby %d: %v, want NOT_CONTROLLER", standby, kerr.ErrorForCode(resp.Topics[0].ErrorCode))
	}
}

// Kill the active controller: a standby becomes active; then kill a
// partition leader and see a new partition leader elected by it.
func TestQuorumActiveControllerFailover(t *testing.T) {
	c := Start(t, Brokers(3), Controllers(3))
	createTopic(t, c, "f", 1, 3)
	old := c.Controller()
	if err := c.KillController(old); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "a standby to become active", activeOtherThan(old))
	st := partState(t, c, "f", 0)
	if err := c.KillBroker(st.Leader); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "a new partition leader", LeaderElected("f", 0, st.Leader))
	nst := partState(t, c, "f", 0)
	if nst.LeaderEpoch <= st.LeaderEpoch || !slices.Contains(st.ISR, nst.Leader) {
		t.Fatalf("new leader %d epoch %d (was %d epoch %d, ISR %v)", nst.Leader, nst.LeaderEpoch, st.Leader, st.LeaderEpoch, st.ISR)
	}
	if _, err := produceTo(t, c, "f", -1, "after"); err != nil {
		t.Fatalf("produce after both failovers: %v", err)
	}
	// The killed controller comes back as a standby and catches up.
	if err := c.RestartController(old); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the restarted controller to catch up", func(c *Cluster) bool {
		off, ok := c.MetadataOffsets()[old]
		return ok && off == c.metadataEnd()
	})
	var kinds []EventKind
	for _, e := range c.Events() {
		if e.Kind == ControllerChanged || e.Kind == ControllerDown || e.Kind == ControllerUp {
			kinds = append(kinds, e.Kind)
		}
	}
	if !slices.Contains(kinds, ControllerDown) || !slices.Contains(kinds, ControllerUp) {
		t.Fatalf("controller events %v", kinds)
	}
}

// Cut the active controller from the other two: it cannot commit, so a
// new one is elected by the majority, and the cut one steps down; heal,
// and it catches up with what the majority committed without it.
func TestQuorumMinorityCannotCommit(t *testing.T) {
	c := Start(t, Brokers(3), Controllers(3))
	old := c.Controller()
	var others []int32
	for _, id := range c.ControllerIDs() {
		if id != old {
			others = append(others, id)
		}
	}
	cutOff := c.Partition([]int32{old}, others)
	waitFor(t, c, "the majority to elect another controller", activeOtherThan(old))
	// The cut-off node cannot commit: its copy of the log stays behind
	// while the majority writes a topic.
	before := c.MetadataOffsets()[old]
	createTopic(t, c, "majority", 2, 3)
	if got := c.MetadataOffsets()[old]; got != before {
		t.Fatalf("cut-off controller's log moved from %d to %d", before, got)
	}
	n := c.controllerByID(old)
	if n.ctrl.Active() {
		t.Fatalf("cut-off controller %d still active", old)
	}
	if _, err := n.ctrl.CreateTopic(context.Background(), metadata.TopicSpec{Name: "minority", Partitions: 1, ReplicationFactor: 1}, false); !errors.Is(err, kerr.NotController) {
		t.Fatalf("CreateTopic on the cut-off controller: %v, want NOT_CONTROLLER", err)
	}
	cutOff()
	waitFor(t, c, "the healed controller to catch up and apply", func(c *Cluster) bool {
		var off int64
		n.ctrl.State(func(s *metadata.State) { off = s.Offset })
		return c.MetadataOffsets()[old] == c.metadataEnd() && off == c.metadataEnd()
	})
	var has bool
	n.ctrl.State(func(s *metadata.State) { has = s.Topics["majority"] != nil })
	if !has {
		t.Fatal("healed controller lacks the topic the majority created")
	}
}

// With two of three controllers down there is no active controller and
// metadata cannot change, but produce and fetch to healthy leaders go on.
func TestQuorumLossStopsMetadataNotData(t *testing.T) {
	c := Start(t, Brokers(3), Controllers(3))
	createTopic(t, c, "data", 1, 3)
	for _, id := range c.ControllerIDs()[:2] {
		if err := c.KillController(id); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, c, "no active controller", func(c *Cluster) bool { return c.Controller() == -1 })
	for i := range 5 {
		if _, err := produceTo(t, c, "data", -1, "v"); err != nil {
			t.Fatalf("produce %d without a controller quorum: %v", i, err)
		}
	}
	if st := partState(t, c, "data", 0); st.HighWatermark != 5 {
		t.Fatalf("high watermark %d, want 5", st.HighWatermark)
	}
	cl := dial(t, c.Addrs()[0])
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "refused", 1, 1
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 500
	resp := do[*kmsg.CreateTopicsResponse](t, cl, req, 7)
	if resp.Topics[0].ErrorCode == 0 {
		t.Fatal("CreateTopics succeeded without a controller quorum")
	}
	if err := c.RestartController(c.ControllerIDs()[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "a controller again", func(c *Cluster) bool { return c.Controller() >= 0 })
	createTopic(t, c, "after-quorum", 1, 3)
}

// Restart a whole on-disk cluster: the same id, topics, leaders' epochs and
// offsets come back.
func TestRestartWholeClusterOnDisk(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"one-controller", nil},
		{"quorum", []Option{Controllers(3)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := append([]Option{Brokers(3), Dir(dir), Logger(testLogger(t))}, tc.opts...)
			c, err := New(opts...)
			if err != nil {
				t.Fatal(err)
			}
			createTopic(t, c, "keep", 2, 3)
			for i := range 4 {
				if _, err := produceTo(t, c, "keep", -1, "r"); err != nil {
					t.Fatalf("produce %d: %v", i, err)
				}
			}
			// A leader change, so epochs are not all zero.
			st := partState(t, c, "keep", 0)
			if err := c.StopBroker(st.Leader); err != nil {
				t.Fatal(err)
			}
			if err := c.RestartBroker(st.Leader); err != nil {
				t.Fatal(err)
			}
			waitFor(t, c, "keep/0 fully replicated", FullyReplicated("keep", 0))
			want := partState(t, c, "keep", 0)
			id := c.ClusterID()
			c.Close()

			c2, err := New(opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			if c2.ClusterID() != id {
				t.Fatalf("cluster id %q after restart, want %q", c2.ClusterID(), id)
			}
			if !slices.Equal(c2.Topics(), []string{"keep"}) {
				t.Fatalf("topics after restart: %v", c2.Topics())
			}
			waitFor(t, c2, "keep/0 led and replicated", func(c *Cluster) bool {
				return LeaderElected("keep", 0)(c) && FullyReplicated("keep", 0)(c)
			})
			got := partState(t, c2, "keep", 0)
			if got.LeaderEpoch < want.LeaderEpoch || !slices.Equal(got.Replicas, want.Replicas) {
				t.Fatalf("after restart leader %d epoch %d replicas %v; before %d epoch %d replicas %v",
					got.Leader, got.LeaderEpoch, got.Replicas, want.Leader, want.LeaderEpoch, want.Replicas)
			}
			if got.HighWatermark != 4 || got.LogStartOffset != 0 {
				t.Fatalf("after restart hw %d log start %d, want 4 and 0", got.HighWatermark, got.LogStartOffset)
			}
			for id, leo := range got.LogEndOffsets {
				if leo != 4 {
					t.Fatalf("broker %d log end %d after restart, want 4", id, leo)
				}
			}
			if off, err := produceTo(t, c2, "keep", -1, "after"); err != nil || off != 4 {
				t.Fatalf("produce after restart: offset %d, %v; want 4", off, err)
			}
		})
	}
}

func TestRestartWithOtherClusterIDFails(t *testing.T) {
	dir := t.TempDir()
	c, err := New(Brokers(1), Dir(dir), ClusterID("first"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err = New(Brokers(1), Dir(dir), ClusterID("second"))
	if !errors.Is(err, metadata.ErrClusterIDMismatch) {
		t.Fatalf("New on another cluster's storage: %v, want ErrClusterIDMismatch", err)
	}
}

func TestControllerLeverErrors(t *testing.T) {
	c := Start(t, Brokers(1))
	if c.Controller() != 1000 || !slices.Equal(c.ControllerIDs(), []int32{1000}) {
		t.Fatalf("in-memory mode: controller %d of %v", c.Controller(), c.ControllerIDs())
	}
	if err := c.KillController(1); !errors.Is(err, ErrUnknownController) {
		t.Fatalf("KillController(1): %v", err)
	}
	if err := c.RestartController(1000); !errors.Is(err, ErrControllerUp) {
		t.Fatalf("RestartController of a running one: %v", err)
	}
	if err := c.KillController(1000); err != nil {
		t.Fatal(err)
	}
	if c.Controller() != -1 {
		t.Fatalf("controller %d after the only one was killed", c.Controller())
	}
	if err := c.KillController(1000); !errors.Is(err, ErrControllerDown) {
		t.Fatalf("KillController twice: %v", err)
	}
	// The in-memory log outlives its node: a restarted controller has it.
	end := c.metadataEnd()
	if err := c.RestartController(1000); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitFor(ctx, func(c *Cluster) bool { return c.Controller() == 1000 }); err != nil {
		t.Fatal(err)
	}
	if got := c.metadataEnd(); got < end {
		t.Fatalf("metadata end %d after restart, was %d", got, end)
	}
	createTopic(t, c, "after-restart", 1, 1)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(&tbHandler{t: t, level: slog.LevelInfo})
}

func describeQuorum(t *testing.T, c *Cluster) kmsg.DescribeQuorumResponseTopicPartition {
	t.Helper()
	cl := dial(t, c.Addrs()[0])
	req := kmsg.NewPtrDescribeQuorumRequest()
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = "__cluster_metadata"
	rt.Partitions = append(rt.Partitions, kmsg.NewDescribeQuorumRequestTopicPartition())
	req.Topics = append(req.Topics, rt)
	resp := do[*kmsg.DescribeQuorumResponse](t, cl, req, 2)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("DescribeQuorum: %v", err)
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		t.Fatalf("DescribeQuorum partition: %v", err)
	}
	if len(resp.Nodes) != len(c.ControllerIDs()) {
		t.Fatalf("DescribeQuorum v2 nodes: %d, want %d", len(resp.Nodes), len(c.ControllerIDs()))
	}
	return p
}

func TestDescribeQuorum(t *testing.T) {
	c := Start(t, Brokers(3), Controllers(3))
	createTopic(t, c, "dq", 1, 3)
	waitFor(t, c, "every node to hold the whole metadata log", offsetsAgree)
	p := describeQuorum(t, c)
	if p.LeaderID != c.Controller() || p.LeaderEpoch < 1 || p.HighWatermark != c.metadataEnd()+1 {
		t.Fatalf("leader %d epoch %d hw %d; want leader %d, epoch >= 1, hw %d", p.LeaderID, p.LeaderEpoch, p.HighWatermark, c.Controller(), c.metadataEnd()+1)
	}
	if len(p.CurrentVoters) != 3 || len(p.Observers) != 3 {
		t.Fatalf("%d voters, %d observers; want 3 and 3", len(p.CurrentVoters), len(p.Observers))
	}
	// Committing the last record took a majority: at least two voters
	// (the leader among them) have the whole log and have been heard.
	caughtUp := 0
	for _, v := range p.CurrentVoters {
		if v.LogEndOffset > p.HighWatermark {
			t.Fatalf("voter %d: log end %d past the hw %d", v.ReplicaID, v.LogEndOffset, p.HighWatermark)
		}
		if v.LogEndOffset == p.HighWatermark && v.LastFetchTimestamp > 0 {
			caughtUp++
		}
	}
	if caughtUp < 2 {
		t.Fatalf("%d voters caught up and heard from, want a majority: %+v", caughtUp, p.CurrentVoters)
	}
	// After a failover the new leader answers, at a higher epoch.
	old := c.Controller()
	if err := c.KillController(old); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "a new active controller", activeOtherThan(old))
	q := describeQuorum(t, c)
	if q.LeaderID == old || q.LeaderEpoch <= p.LeaderEpoch {
		t.Fatalf("after failover: leader %d epoch %d (was %d epoch %d)", q.LeaderID, q.LeaderEpoch, old, p.LeaderEpoch)
	}
}

func TestDescribeQuorumInMemory(t *testing.T) {
	c := Start(t, Brokers(1))
	p := describeQuorum(t, c)
	if p.LeaderID != 1000 || len(p.CurrentVoters) != 1 || p.CurrentVoters[0].LogEndOffset != p.HighWatermark {
		t.Fatalf("in-memory quorum: leader %d voters %+v hw %d", p.LeaderID, p.CurrentVoters, p.HighWatermark)
	}
}

// Kill the broker that leads several partitions: every one of them gets a
// new leader from its ISR, and produce to each goes on.
func TestKillBrokerLeadingSeveralPartitions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{{"in-memory", nil}, {"quorum", []Option{Controllers(3)}}} {
		t.Run(tc.name, func(t *testing.T) {
			c := Start(t, append([]Option{Brokers(3)}, tc.opts...)...)
			createTopic(t, c, "many", 6, 3)
			before := map[int32]PartitionState{}
			for p := int32(0); p < 6; p++ {
				before[p] = partState(t, c, "many", p)
			}
			victim := before[0].Leader
			var led []int32
			for p, st := range before {
				if st.Leader == victim {
					led = append(led, p)
				}
			}
			if len(led) < 2 {
				t.Fatalf("broker %d leads %v; want several", victim, led)
			}
			if err := c.KillBroker(victim); err != nil {
				t.Fatal(err)
			}
			for _, p := range led {
				waitFor(t, c, "a new leader", LeaderElected("many", p, victim))
				st := partState(t, c, "many", p)
				if !slices.Contains(before[p].ISR, st.Leader) || st.LeaderEpoch <= before[p].LeaderEpoch {
					t.Fatalf("partition %d: leader %d epoch %d; before ISR %v epoch %d", p, st.Leader, st.LeaderEpoch, before[p].ISR, before[p].LeaderEpoch)
				}
			}
			for p := int32(0); p < 6; p++ {
				st := partState(t, c, "many", p)
				rp := produce(t, nil, c, addrOf(c, st.Leader), "many", p, -1, makeBatch(time.Now().UnixMilli(), "after"))
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					t.Fatalf("produce to partition %d on %d: %v", p, st.Leader, err)
				}
			}
		})
	}
}

// Combined mode: controllers run on brokers 1..3. Killing the node of the
// active controller takes both roles: a new controller and new partition
// leaders are elected; restarting the broker brings both back.
func TestCombinedControllers(t *testing.T) {
	c := Start(t, Brokers(3), CombinedControllers(3))
	if got := c.ControllerIDs(); !slices.Equal(got, []int32{1, 2, 3}) {
		t.Fatalf("controller ids %v, want the brokers'", got)
	}
	createTopic(t, c, "combined", 3, 3)
	node := c.Controller()
	if err := c.KillBroker(node); err != nil {
		t.Fatal(err)
	}
	if c.controllerByID(node) != nil {
		t.Fatalf("controller %d still runs after its node was killed", node)
	}
	waitFor(t, c, "another active controller", activeOtherThan(node))
	for p := int32(0); p < 3; p++ {
		waitFor(t, c, "leaders off the killed node", LeaderElected("combined", p, node))
	}
	if err := c.KillController(node); !errors.Is(err, ErrControllerDown) {
		t.Fatalf("KillController of a killed node: %v", err)
	}
	if err := c.RestartBroker(node); err != nil {
		t.Fatal(err)
	}
	if c.controllerByID(node) == nil {
		t.Fatalf("controller %d not restarted with its broker", node)
	}
	waitFor(t, c, "the node's controller to catch up", offsetsAgree)
	// KillController on a combined node takes its broker too.
	other := c.Controller()
	if err := c.KillController(other); err != nil {
		t.Fatal(err)
	}
	if b, _ := c.brokerByID(other); b != nil {
		t.Fatalf("broker %d still runs after KillController(%d)", other, other)
	}
	if err := c.RestartController(other); err != nil {
		t.Fatal(err)
	}
	if b, _ := c.brokerByID(other); b == nil {
		t.Fatalf("broker %d not restarted with its controller", other)
	}
	waitFor(t, c, "every node back in sync", offsetsAgree)
}
