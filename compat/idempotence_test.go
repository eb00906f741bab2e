package compat

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
)

// TestIdempotentProducerSurvivesLeaderKill: franz-go with its defaults
// (idempotent, acks=all) produces while the partition leader is killed. A
// new leader from the ISR takes over with a higher epoch, the old leader
// rejoins and truncates, and the partition holds every acked record exactly
// once, in the order sent.
func TestIdempotentProducerSurvivesLeaderKill(t *testing.T) {
	ctx := testContext(t)
	c := kcluster.Start(t, kcluster.Brokers(3), kcluster.BrokerConfig("min.insync.replicas", "2"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...),
		kgo.DefaultProduceTopic("idem"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MetadataMinAge(50*time.Millisecond), // notice the new leader quickly
		kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, nil, "idem"); err != nil {
		t.Fatal(err)
	}
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
		if i == total/3 {
			st, err := c.PartitionState("idem", 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.KillBroker(st.Leader); err != nil {
				t.Fatal(err)
			}
			go func(old kcluster.PartitionState) {
				// Restart the old leader once a new one is elected.
				wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				c.WaitFor(wctx, func(c *kcluster.Cluster) bool {
					s, _ := c.PartitionState("idem", 0)
					return s.Leader >= 0 && s.Leader != old.Leader && s.LeaderEpoch > old.LeaderEpoch
				})
				c.RestartBroker(old.Leader)
			}(st)
		}
	}
	wg.Wait()
	if fail != nil {
		t.Fatalf("an idempotent produce failed: %v", fail)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := c.WaitFor(wctx, func(c *kcluster.Cluster) bool {
		s, _ := c.PartitionState("idem", 0)
		if len(s.ISR) != 3 || len(s.LogEndOffsets) != 3 {
			return false
		}
		for _, leo := range s.LogEndOffsets {
			if leo != s.HighWatermark {
				return false
			}
		}
		return true
	}); err != nil {
		s, _ := c.PartitionState("idem", 0)
		t.Fatalf("replicas did not converge: %+v", s)
	}
	s, _ := c.PartitionState("idem", 0)
	if s.HighWatermark != total {
		t.Fatalf("high watermark %d, want exactly %d records (no duplicates, none lost)", s.HighWatermark, total)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"idem": {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []string
	for len(got) < total {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if acked[string(r.Value)] != r.Offset {
				t.Errorf("%s at offset %d, acked at %d", r.Value, r.Offset, acked[string(r.Value)])
			}
			got = append(got, string(r.Value))
		})
	}
	for i, v := range got {
		if want := fmt.Sprintf("v-%05d", i); v != want {
			t.Fatalf("record %d is %s, want %s", i, v, want)
		}
	}
}
