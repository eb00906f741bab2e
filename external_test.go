package kcluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// newTarget starts an embedded cluster with New (which never reads
// BootstrapEnv) for an external-mode test to point at.
func newTarget(t *testing.T) *Cluster {
	t.Helper()
	c, err := New(Brokers(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// With KCLUSTER_BOOTSTRAP set, Start returns a handle on that cluster: its
// gauges agree with the embedded cluster's own view, WaitFor sees a
// failover made behind its back, and a lever skips the test.
func TestExternalStart(t *testing.T) {
	target := newTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Setenv(BootstrapEnv, " "+strings.Join(target.Addrs(), " , ")+" ")

	c := Start(t, Brokers(5))
	if got := c.Addrs(); !slices.Equal(got, target.Addrs()) {
		t.Fatalf("Addrs = %v, want %v", got, target.Addrs())
	}
	if c.ClusterID() != target.ClusterID() {
		t.Fatalf("ClusterID = %q, want %q", c.ClusterID(), target.ClusterID())
	}
	if bs := c.Brokers(); len(bs) != 3 || bs[0].ID != 1 || bs[2].ID != 3 || !bs[1].Running || bs[1].Addr != target.Addrs()[1] {
		t.Fatalf("Brokers = %+v", bs)
	}

	const topic = "ext"
	if err := c.CreateTopic(ctx, topic, 2, 3); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTopic(ctx, topic, 2, 3); !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatalf("second CreateTopic: %v, want TOPIC_ALREADY_EXISTS", err)
	}
	if !slices.Contains(c.Topics(), topic) {
		t.Fatalf("Topics = %v, want %s among them", c.Topics(), topic)
	}
	if _, err := c.PartitionState(topic, 2); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("PartitionState(%s, 2): %v, want ErrUnknownPartition", topic, err)
	}
	if _, err := c.PartitionState("nope", 0); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("PartitionState(nope, 0): %v, want ErrUnknownPartition", err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 10
	for i := range n {
		r := &kgo.Record{Value: fmt.Appendf(nil, "v%d", i), Partition: 0}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitFor(ctx, HighWatermarkAtLeast(topic, 0, n)); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, FullyReplicated(topic, 0)); err != nil {
		t.Fatal(err)
	}
	got, err := c.PartitionState(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := target.PartitionState(topic, 0)
	if got.Leader != want.Leader || got.LeaderEpoch != want.LeaderEpoch || !slices.Equal(got.Replicas, want.Replicas) ||
		!slices.Equal(got.ISR, want.ISR) || got.HighWatermark != n || got.LastStableOffset != n || got.LogStartOffset != 0 {
		t.Fatalf("external PartitionState = %+v\nembedded = %+v", got, want)
	}
	if len(got.LogEndOffsets) != 0 {
		t.Fatalf("external LogEndOffsets = %v, want none (the protocol does not show them)", got.LogEndOffsets)
	}

	// A consumer group: committed offsets and lag through the protocol.
	gcl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g"),
		kgo.DisableAutoCommit(), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer gcl.Close()
	for seen := 0; seen < n; {
		fs := gcl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		seen += fs.NumRecords()
	}
	if err := gcl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, GroupStable("g", 1)); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, GroupCommitted("g", topic, 0, n)); err != nil {
		t.Fatal(err)
	}
	g, err := c.Group("g")
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Members) != 1 || g.Lag[topic][0] != 0 || g.Coordinator < 1 || !slices.Contains(c.Groups(), "g") {
		t.Fatalf("Group = %+v, Groups = %v", g, c.Groups())
	}
	if assigned := g.Members[0].Assigned[topic]; !slices.Equal(assigned, []int32{0, 1}) {
		t.Fatalf("member's assignment = %v, want [0 1]", assigned)
	}
	if _, err := c.Group("nobody"); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("Group(nobody): %v, want ErrUnknownGroup", err)
	}

	// A failover made behind the handle's back: WaitFor polls it in.
	if err := target.KillBroker(got.Leader); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, LeaderElected(topic, 0, got.Leader)); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, ISRSize(topic, 0, 2)); err != nil {
		t.Fatal(err)
	}
	after, _ := c.PartitionState(topic, 0)
	if after.LeaderEpoch <= got.LeaderEpoch || slices.Contains(after.ISR, got.Leader) || after.HighWatermark != n {
		t.Fatalf("after killing %d: %+v", got.Leader, after)
	}
	if s := c.String(); !strings.Contains(s, "external cluster") || !strings.Contains(s, topic+"/0 leader") {
		t.Fatalf("String = %q", s)
	}

	// A lever needs the embedded cluster: it skips the test.
	var skipped, reached bool
	t.Run("lever", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		c := Start(t)
		c.RestartBroker(got.Leader)
		reached = true
	})
	if !skipped || reached {
		t.Fatalf("RestartBroker on an external cluster: skipped %v, went on %v; want a skip", skipped, reached)
	}
	if bs := target.Brokers(); bs[got.Leader-1].Running {
		t.Fatalf("the skipped lever restarted broker %d", got.Leader)
	}
}

// Outside Start, a handle from Connect returns ErrExternal where a lever
// needs the embedded cluster, and panics with it where the lever returns
// no error.
func TestExternalConnect(t *testing.T) {
	target := newTarget(t)
	c, err := Connect(target.Addrs()...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.KillBroker(1); !errors.Is(err, ErrExternal) {
		t.Fatalf("KillBroker: %v, want ErrExternal", err)
	}
	if _, err := c.TopicConfigs("x"); !errors.Is(err, ErrExternal) {
		t.Fatalf("TopicConfigs: %v, want ErrExternal", err)
	}
	func() {
		defer func() {
			if err, _ := recover().(error); !errors.Is(err, ErrExternal) {
				t.Fatalf("Cut panicked with %v, want ErrExternal", err)
			}
		}()
		c.Cut(1, 2)
	}()
	if !target.Brokers()[0].Running {
		t.Fatal("the refused KillBroker killed broker 1")
	}
	c.Close()
	if err := c.WaitFor(context.Background(), func(*Cluster) bool { return false }); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitFor after Close: %v, want ErrClosed", err)
	}
	if _, err := Connect(); err == nil {
		t.Fatal("Connect with no bootstrap servers: no error")
	}
}
