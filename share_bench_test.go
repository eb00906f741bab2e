package kcluster

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// BenchmarkShareVersusClassicConsume measures, in one run, how fast three
// share consumers (accepting every record) and three consumers of a
// classic group read the same 30000 records of a 3-partition topic (RF 3):
// records/s of each from a standing start (the group forming included:
// share-group members learn of each other at their next heartbeat,
// group.share.heartbeat.interval.ms later) and over the second half of the
// records, when the group has formed (go test -run '^$' -bench
// ShareVersusClassic -benchtime 1x).
func BenchmarkShareVersusClassicConsume(b *testing.B) {
	const n = 30000
	for range b.N {
		c := Start(b, Brokers(3))
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("q"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
		if err != nil {
			b.Fatal(err)
		}
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "q", 3, 3
		req.Topics, req.TimeoutMillis = append(req.Topics, rt), 10000
		if resp, err := req.RequestWith(context.Background(), cl); err != nil || resp.Topics[0].ErrorCode != 0 {
			b.Fatalf("creating q: %v %+v", err, resp)
		}
		var recs []*kgo.Record
		for i := range n {
			recs = append(recs, kgo.StringRecord(strconv.Itoa(i)))
			if len(recs) == 100 || i == n-1 {
				if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
					b.Fatal(err)
				}
				recs = recs[:0]
			}
		}
		cl.Close()
		setGroupConfig(b, c, "share", "share.auto.offset.reset", "earliest")
		run := func(opts ...kgo.Opt) (total, secondHalf time.Duration) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var got atomic.Int64
			var half, all atomic.Int64 // when half and all the records were in, in ns since start
			var wg sync.WaitGroup
			start := time.Now()
			for range 3 {
				cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Addrs()...), kgo.ConsumeTopics("q")}, opts...)...)
				if err != nil {
					b.Fatal(err)
				}
				wg.Go(func() {
					defer cl.Close()
					for got.Load() < n && ctx.Err() == nil {
						fs := cl.PollFetches(ctx)
						if now := got.Add(int64(fs.NumRecords())); now >= n/2 {
							half.CompareAndSwap(0, int64(time.Since(start)))
						}
						if got.Load() >= n {
							all.CompareAndSwap(0, int64(time.Since(start)))
							cancel()
						}
					}
				})
			}
			wg.Wait()
			if got.Load() < n {
				b.Fatalf("consumed %d of %d", got.Load(), n)
			}
			total = time.Duration(all.Load()) // the clients' Close (leaving the group) not counted
			return total, total - time.Duration(half.Load())
		}
		share, shareHalf := run(kgo.ShareGroup("share"))
		classic, classicHalf := run(kgo.ConsumerGroup("classic"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.Balancers(kgo.CooperativeStickyBalancer()))
		b.ReportMetric(float64(n)/share.Seconds(), "share-rec/s")
		b.ReportMetric(float64(n)/classic.Seconds(), "classic-rec/s")
		b.ReportMetric(float64(n/2)/shareHalf.Seconds(), "share-2nd-half-rec/s")
		b.ReportMetric(float64(n/2)/classicHalf.Seconds(), "classic-2nd-half-rec/s")
	}
}
