package examples

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
)

// TestOrdersSurviveLeaderPowerCut is a test written with the kcluster.Start
// fixture: the cluster's logs go to t.Logf (shown only on failure, with a
// dump of the cluster's state), it is closed on t.Cleanup, and it runs in
// parallel with other tests.
//
// The scenario: acks=all records on an RF=3 topic survive a power cut of
// the partition leader, which comes back with only what it had synced and
// catches up.
func TestOrdersSurviveLeaderPowerCut(t *testing.T) {
	t.Parallel()
	c := kcluster.Start(t, kcluster.Brokers(3), kcluster.BrokerConfig("min.insync.replicas", "2"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...),
		kgo.DefaultProduceTopic("orders"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MetadataMinAge(50*time.Millisecond), // find the new leader fast
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"orders": {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close) // runs before the cluster's Close

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0, 10)

	st, err := c.PartitionState("orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PowerCut(st.Leader); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, kcluster.LeaderElected("orders", 0, st.Leader)); err != nil {
		t.Fatal(err)
	}
	produce(10, 20)
	if err := c.RestartBroker(st.Leader); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, kcluster.FullyReplicated("orders", 0)); err != nil {
		t.Fatal(err)
	}

	var got []string
	for len(got) < 20 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	for i, v := range got {
		if v != fmt.Sprint(i) {
			t.Fatalf("record %d is %q: %v", i, v, got)
		}
	}
}
