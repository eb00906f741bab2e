package examples

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
)

// TestFailoverOnTheBubbleClock runs franz-go against a cluster on the
// in-memory network inside a testing/synctest bubble, with Kafka's default
// broker timeouts: the leader is killed, the session expires after 9 s of
// bubble time, the producer moves to the new leader, and the test takes
// milliseconds.
func TestFailoverOnTheBubbleClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := kcluster.New(kcluster.InMemoryNetwork(), kcluster.Brokers(3),
			kcluster.BrokerConfig("min.insync.replicas", "2"),
			kcluster.BrokerConfig("broker.session.timeout.ms", "9000"),
			kcluster.BrokerConfig("broker.heartbeat.interval.ms", "2000"),
			kcluster.BrokerConfig("replica.lag.time.max.ms", "30000"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.Dialer(c.Dial),
			kgo.DefaultProduceTopic("orders"), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"orders": {0: kgo.NewOffset().AtStart()}}))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx := context.Background()
		if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, nil, "orders"); err != nil {
			t.Fatal(err)
		}
		produce := func(i int) {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		produce(0)
		st, _ := c.PartitionState("orders", 0)
		start := time.Now()
		if err := c.KillBroker(st.Leader); err != nil {
			t.Fatal(err)
		}
		produce(1)
		t.Logf("killed leader %d; the next record was acknowledged %v later (bubble time)", st.Leader, time.Since(start))
		var got []string
		for len(got) < 2 {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		if got[0] != "0" || got[1] != "1" {
			t.Fatalf("read back %v", got)
		}
	})
}
