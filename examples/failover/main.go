// Command failover is an experiment: three brokers, an idempotent producer
// writing acks=all to one partition, and the partition leader killed in the
// middle. It prints the timeline (kill, new leader, restart, back in sync)
// and the longest gap between two acknowledged records.
//
//	go run ./failover
package main

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
)

func main() {
	c, err := kcluster.New(kcluster.Brokers(3), kcluster.BrokerConfig("min.insync.replicas", "2"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...),
		kgo.DefaultProduceTopic("orders"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, nil, "orders"); err != nil {
		log.Fatal(err)
	}

	start := time.Now()
	stamp := func(format string, args ...any) {
		fmt.Printf("%8.1f ms  %s\n", float64(time.Since(start).Microseconds())/1000, fmt.Sprintf(format, args...))
	}
	var (
		mu      sync.Mutex
		last    = time.Now()
		maxGap  time.Duration
		acked   int
		stopped = make(chan struct{})
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stopped:
				return
			default:
			}
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
				log.Fatalf("produce: %v", err)
			}
			mu.Lock()
			if gap := time.Since(last); gap > maxGap {
				maxGap = gap
			}
			last = time.Now()
			acked++
			mu.Unlock()
		}
	}()

	time.Sleep(300 * time.Millisecond) // let the producer run: this is the experiment's load, not a wait for state
	st, err := c.PartitionState("orders", 0)
	if err != nil {
		log.Fatal(err)
	}
	stamp("leader is broker %d (epoch %d, ISR %v); killing it", st.Leader, st.LeaderEpoch, st.ISR)
	if err := c.KillBroker(st.Leader); err != nil {
		log.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.WaitFor(wctx, kcluster.LeaderElected("orders", 0, st.Leader)); err != nil {
		log.Fatal(err)
	}
	now, _ := c.PartitionState("orders", 0)
	stamp("broker %d leads (epoch %d, ISR %v)", now.Leader, now.LeaderEpoch, now.ISR)
	if err := c.RestartBroker(st.Leader); err != nil {
		log.Fatal(err)
	}
	stamp("broker %d restarted", st.Leader)
	if err := c.WaitFor(wctx, kcluster.FullyReplicated("orders", 0)); err != nil {
		log.Fatal(err)
	}
	now, _ = c.PartitionState("orders", 0)
	stamp("back in sync: ISR %v, high watermark %d", now.ISR, now.HighWatermark)
	close(stopped)
	<-done
	mu.Lock()
	defer mu.Unlock()
	stamp("%d records acked; longest gap between acks %v", acked, maxGap.Round(time.Millisecond))
	fmt.Println("\nthe cluster's own timeline:")
	for _, e := range c.Events() {
		fmt.Println(" ", e)
	}
}
