// Package bench measures kcluster with a real client (franz-go). It is its
// own module so the client stays out of the library's dependencies.
package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/kcluster/kcluster"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// metadataModes are the two metadata logs a benchmark compares: the
// in-memory one and a Raft quorum of 3 controllers.
var metadataModes = []struct {
	name string
	opts []kcluster.Option
}{
	{"in-memory", nil},
	{"quorum-3", []kcluster.Option{kcluster.Controllers(3)}},
}

// BenchmarkStartToFirstAck measures the time from kcluster.New (3 brokers)
// to the first record acknowledged with acks=all on an RF=3 topic, with the
// in-memory metadata log and with a Raft quorum of 3 controllers.
func BenchmarkStartToFirstAck(b *testing.B) {
	for _, tc := range metadataModes {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				c, err := kcluster.New(append([]kcluster.Option{kcluster.Brokers(3), benchLogger()}, tc.opts...)...)
				if err != nil {
					b.Fatal(err)
				}
				cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.AllISRAcks()))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, nil, "t"); err != nil {
					b.Fatal(err)
				}
				if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr(); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "ms/first-ack")
				cl.Close()
				c.Close()
			}
		})
	}
}

// BenchmarkProduce measures produce throughput of 1 KiB records with
// franz-go, 3 brokers, 6 partitions.
func BenchmarkProduce(b *testing.B) {
	for _, tc := range []struct {
		rf   int16
		acks kgo.Acks
		name string
	}{
		{1, kgo.LeaderAck(), "rf1-acks1"},
		{3, kgo.AllISRAcks(), "rf3-acksall"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := kcluster.New(append([]kcluster.Option{kcluster.Brokers(3), benchLogger()}, segBytes()...)...)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DisableIdempotentWrite(), kgo.RequiredAcks(tc.acks),
				kgo.ProducerLinger(0), kgo.MaxBufferedRecords(100000),
				kgo.ProducerBatchCompression(kgo.NoCompression()))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			ctx := context.Background()
			if _, err := kadm.NewClient(cl).CreateTopic(ctx, 6, tc.rf, nil, "p"); err != nil {
				b.Fatal(err)
			}
			const n = 20000
			val := make([]byte, 1024)
			rand.NewChaCha8([32]byte{1}).Read(val) // incompressible, and no compression: bytes on the wire are bytes stored
			b.SetBytes(n * 1024)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				errs := make(chan error, 1)
				var failed error
				for j := 0; j < n; j++ {
					cl.Produce(ctx, &kgo.Record{Topic: "p", Value: val}, func(_ *kgo.Record, err error) {
						if err != nil {
							select {
							case errs <- err:
							default:
							}
						}
					})
				}
				if err := cl.Flush(ctx); err != nil {
					b.Fatal(err)
				}
				select {
				case failed = <-errs:
				default:
				}
				if failed != nil {
					b.Fatal(fmt.Errorf("produce: %w", failed))
				}
			}
		})
	}
}

// BenchmarkFailover measures the time from KillBroker(leader) to the first
// record acked with acks=all by franz-go on the new leader (3 brokers,
// RF=3, min.insync.replicas=2, default test timing).
func BenchmarkFailover(b *testing.B) {
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		c, err := kcluster.New(kcluster.Brokers(3), kcluster.BrokerConfig("min.insync.replicas", "2"))
		if err != nil {
			b.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }),
			kgo.MetadataMinAge(10*time.Millisecond)) // kgo refreshes metadata at most every 5 s by default
		if err != nil {
			b.Fatal(err)
		}
		if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, nil, "f"); err != nil {
			b.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "f", Value: []byte("before")}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		st, err := c.PartitionState("f", 0)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := c.KillBroker(st.Leader); err != nil {
			b.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "f", Value: []byte("after")}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "ms/failover")
		cl.Close()
		c.Close()
	}
}

// benchLogger logs cluster warnings to stderr when KCLUSTER_BENCH_LOG is
// set (e.g. to see ISR changes under load).
func benchLogger() kcluster.Option {
	if os.Getenv("KCLUSTER_BENCH_LOG") == "" {
		return kcluster.Logger(slog.New(slog.DiscardHandler))
	}
	return kcluster.Logger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
}

// segBytes sets log.segment.bytes from KCLUSTER_BENCH_SEGMENT_BYTES, to
// measure segment size effects, and any broker configs from
// KCLUSTER_BENCH_CONFIG ("key=value,key=value").
func segBytes() []kcluster.Option {
	var opts []kcluster.Option
	if v := os.Getenv("KCLUSTER_BENCH_SEGMENT_BYTES"); v != "" {
		opts = append(opts, kcluster.BrokerConfig("log.segment.bytes", v))
	}
	for _, kv := range strings.Split(os.Getenv("KCLUSTER_BENCH_CONFIG"), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			opts = append(opts, kcluster.BrokerConfig(k, v))
		}
	}
	return opts
}
