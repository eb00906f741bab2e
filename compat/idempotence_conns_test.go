package compat

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster"
)

// TestIdempotentProducerConnectionKillsNoDuplicates: franz-go's default
// idempotent producer while its connections are killed — every 100th
// Produce is held past the client's request timeout (the client gives up
// on the connection and retries on a new one, while the broker still
// writes the held request) or has its connection closed unanswered — and
// the partition leader is killed once. Every acked record is in the log
// exactly once, in order.
func TestIdempotentProducerConnectionKillsNoDuplicates(t *testing.T) {
	ctx := testContext(t)
	c := kcluster.Start(t, kcluster.Brokers(3), kcluster.BrokerConfig("min.insync.replicas", "2"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...),
		kgo.DefaultProduceTopic("idem-conns"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MetadataMinAge(50*time.Millisecond),
		kgo.ProduceRequestTimeout(200*time.Millisecond),
		kgo.RequestTimeoutOverhead(100*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, nil, "idem-conns"); err != nil {
		t.Fatal(err)
	}
	var produces, held, closed atomic.Int64
	remove := c.Intercept(0, int16(kmsg.Produce), func(kcluster.Intercepted) kcluster.Action {
		switch n := produces.Add(1); {
		case n%100 == 0:
			held.Add(1)
			return kcluster.Action{Delay: 600 * time.Millisecond}
		case n%100 == 50:
			closed.Add(1)
			return kcluster.Action{Close: true}
		}
		return kcluster.Action{}
	})
	defer remove()

	const total = 3000
	var (
		mu    sync.Mutex
		acked = map[string]int64{}
		fail  error
		wg    sync.WaitGroup
	)
	for i := 0; i < total; i++ {
		wg.Add(1)
		v := fmt.Sprintf("v-%05d", i)
		cl.Produce(ctx, &kgo.Record{Value: []byte(v), Partition: 0}, func(r *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fail = err
				return
			}
			acked[v] = r.Offset
		})
		if i%10 == 9 {
			// Small requests, so many of them meet the hook.
			if err := cl.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if i == total/2 {
			st, err := c.PartitionState("idem-conns", 0)
			if err != nil {
				t.Fatal(err)
			}
			killAndRestart(ctx, t, c, st.Leader, "leader", func(c *kcluster.Cluster) bool {
				s, err := c.PartitionState("idem-conns", 0)
				return err == nil && s.Leader >= 0 && s.Leader != st.Leader
			})
		}
	}
	wg.Wait()
	remove()
	if fail != nil {
		t.Fatalf("an idempotent produce failed: %v", fail)
	}
	t.Logf("%d produce requests, %d held past the client timeout, %d connections closed", produces.Load(), held.Load(), closed.Load())
	if held.Load() == 0 || closed.Load() == 0 {
		t.Fatal("the connection faults never fired")
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := c.WaitFor(wctx, kcluster.FullyReplicated("idem-conns", 0)); err != nil {
		t.Fatalf("replicas did not converge: %v\n%s", err, c)
	}
	got := readAll(ctx, t, c, "idem-conns", false, total)
	st, _ := c.PartitionState("idem-conns", 0)
	if st.HighWatermark != total {
		t.Fatalf("high watermark %d, want exactly %d records (a retry was written twice)", st.HighWatermark, total)
	}
	for i, v := range got {
		if want := fmt.Sprintf("v-%05d", i); v != want {
			t.Fatalf("record %d is %s, want %s", i, v, want)
		}
		if acked[v] != int64(i) {
			t.Fatalf("%s acked at %d, in the log at %d", v, acked[v], i)
		}
	}
}
