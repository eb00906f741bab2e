package bench

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
)

// BenchmarkControllerFailover measures, with 3 controllers, the time from
// KillController(active) to a standby being active, and to the first
// metadata change it commits (a CreateTopics from franz-go's admin client).
func BenchmarkControllerFailover(b *testing.B) {
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		c, err := kcluster.New(kcluster.Brokers(3), kcluster.Controllers(3), benchLogger())
		if err != nil {
			b.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...),
			kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }))
		if err != nil {
			b.Fatal(err)
		}
		adm := kadm.NewClient(cl)
		if _, err := adm.CreateTopic(ctx, 1, 3, nil, "before"); err != nil {
			b.Fatal(err)
		}
		old := c.Controller()
		start := time.Now()
		if err := c.KillController(old); err != nil {
			b.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := c.WaitFor(wctx, func(c *kcluster.Cluster) bool { a := c.Controller(); return a >= 0 && a != old }); err != nil {
			b.Fatal(err)
		}
		cancel()
		active := time.Since(start)
		if _, err := adm.CreateTopic(ctx, 1, 3, nil, "after"); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(active.Microseconds())/1000, "ms/active")
		b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "ms/first-change")
		cl.Close()
		c.Close()
	}
}

// BenchmarkCreate10kPartitions measures creating one topic of 10,000
// partitions (RF=3 on 3 brokers): until CreateTopics answers, and until
// every partition has a leader with an open log on every broker.
func BenchmarkCreate10kPartitions(b *testing.B) {
	for _, tc := range metadataModes {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				c, err := kcluster.New(append([]kcluster.Option{kcluster.Brokers(3), benchLogger()}, tc.opts...)...)
				if err != nil {
					b.Fatal(err)
				}
				cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(wideParts), 3, nil, "wide")
				if err == nil {
					err = resp.Err
				}
				if err != nil {
					b.Fatal(err)
				}
				created := time.Since(start)
				wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
				if err := c.WaitFor(wctx, kcluster.FullyReplicated("wide", int32(wideParts-1))); err != nil {
					b.Fatal(err)
				}
				cancel()
				b.ReportMetric(float64(created.Microseconds())/1000, "ms/created")
				b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "ms/all-led")
				cl.Close()
				c.Close()
			}
		})
	}
}

// wideParts is BenchmarkCreate10kPartitions' partition count.
const wideParts = 10000
