package compat

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
)

// Ordinary test bodies against a cmd/kcluster process taken for a remote
// cluster: KCLUSTER_BOOTSTRAP points kcluster.Start at it, the gauges
// answer through the Kafka protocol, and a lever skips the test.
func TestExternalMode(t *testing.T) {
	addrs := startKclusterProcess(t, buildKcluster(t), "-brokers", "3")
	t.Setenv(kcluster.BootstrapEnv, strings.Join(addrs, ","))
	ctx := testContext(t)

	c := kcluster.Start(t, kcluster.Brokers(3))
	if !slices.Equal(c.Addrs(), addrs) {
		t.Fatalf("Addrs = %v, want the process's %v", c.Addrs(), addrs)
	}
	const topic = "remote-orders"
	if err := c.CreateTopic(ctx, topic, 3, 3); err != nil {
		t.Fatal(err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 20
	for i := range n {
		r := &kgo.Record{Key: []byte(key(i)), Value: []byte(value(topic, i)), Partition: int32(i % 3)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for p := range int32(3) {
		if err := c.WaitFor(ctx, kcluster.FullyReplicated(topic, p)); err != nil {
			t.Fatal(err)
		}
		st, err := c.PartitionState(topic, p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Leader < 1 || len(st.Replicas) != 3 || len(st.ISR) != 3 || st.HighWatermark != n/3+int64(min(1, max(0, n%3-int(p)))) {
			t.Fatalf("partition %d: %+v", p, st)
		}
	}

	// Consume in a group, commit, and watch the group through the gauges.
	gcl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumeTopics(topic), kgo.ConsumerGroup("remote-g"),
		kgo.DisableAutoCommit(), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer gcl.Close()
	got := map[string]bool{}
	for len(got) < n {
		fs := gcl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = true })
	}
	for i := range n {
		if !got[value(topic, i)] {
			t.Fatalf("record %d not consumed", i)
		}
	}
	if err := gcl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, kcluster.GroupStable("remote-g", 1)); err != nil {
		t.Fatal(err)
	}
	g, err := c.Group("remote-g")
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	for p, lag := range g.Lag[topic] {
		committed += g.Offsets[topic][p]
		if lag != 0 {
			t.Fatalf("partition %d lags %d after the commit: %+v", p, lag, g)
		}
	}
	if committed != n || len(g.Members) != 1 || len(g.Members[0].Assigned[topic]) != 3 {
		t.Fatalf("group after the commit: %+v (committed %d, want %d)", g, committed, n)
	}

	// A lever needs the embedded cluster: the test skips with a message.
	var skipped, reached bool
	t.Run("kill-leader", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		c := kcluster.Start(t)
		st, _ := c.PartitionState(topic, 0)
		c.KillBroker(st.Leader)
		reached = true
	})
	if !skipped || reached {
		t.Fatalf("KillBroker on the external cluster: skipped %v, went on %v; want a skip", skipped, reached)
	}
	if bs := c.Brokers(); len(bs) != 3 {
		t.Fatalf("after the skipped lever: brokers %+v, want all 3", bs)
	}
	if s := c.String(); !strings.Contains(s, topic+"/2 leader") {
		t.Fatalf("String = %q", s)
	}
}
