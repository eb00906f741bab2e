package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
)

// fill produces total bytes of 1 KiB incompressible values to topic
// partition 0 over keys distinct keys, uncompressed, acks=1.
func fill(b *testing.B, cl *kgo.Client, topic string, total, keys int) {
	b.Helper()
	ctx := context.Background()
	val := make([]byte, 1024)
	rand.NewChaCha8([32]byte{2}).Read(val)
	n := total / 1024
	errs := make(chan error, 1)
	for i := 0; i < n; i++ {
		r := &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("key-%06d", i%keys)), Value: val}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
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
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

// BenchmarkCompaction measures the log cleaner: 64 MiB of 1 KiB records
// over 1,000 keys in 1 MiB segments on one broker, then Cluster.CleanLogs
// (forced, every segment: the active one is rolled by segment.ms=1);
// reported in MB of log cleaned per second.
func BenchmarkCompaction(b *testing.B) {
	const total = 64 << 20
	for i := 0; i < b.N; i++ {
		c, err := kcluster.New(kcluster.Brokers(1), benchLogger())
		if err != nil {
			b.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.LeaderAck()),
			kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(0), kgo.MaxBufferedRecords(100000))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		adm := kadm.NewClient(cl)
		if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{
			"cleanup.policy": kadm.StringPtr("compact"), "segment.bytes": kadm.StringPtr("1048576"), "segment.ms": kadm.StringPtr("1"),
		}, "compacted"); err != nil {
			b.Fatal(err)
		}
		fill(b, cl, "compacted", total, 1000)
		st, _ := c.PartitionState("compacted", 0)
		before := st.LogSizes[1]
		start := time.Now()
		if err := c.CleanLogs(); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		st, _ = c.PartitionState("compacted", 0)
		b.ReportMetric(float64(before)/1e6/el.Seconds(), "MB/s-cleaned")
		b.ReportMetric(float64(st.LogSizes[1])/1e6, "MB-after")
		cl.Close()
		c.Close()
	}
}

// BenchmarkReassign100MB measures raising a 100 MB partition's
// replication factor from 1 to 3 on a live cluster (3 brokers): from the
// AlterPartitionReassignments request to the move completed and every
// replica caught up.
func BenchmarkReassign100MB(b *testing.B) {
	const total = 100 << 20
	for i := 0; i < b.N; i++ {
		c, err := kcluster.New(append([]kcluster.Option{kcluster.Brokers(3), benchLogger()}, segBytes()...)...)
		if err != nil {
			b.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.LeaderAck()),
			kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(0), kgo.MaxBufferedRecords(100000))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		adm := kadm.NewClient(cl)
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, "moved"); err != nil {
			b.Fatal(err)
		}
		fill(b, cl, "moved", total, 1<<30)
		st, _ := c.PartitionState("moved", 0)
		target := []int32{st.Leader}
		for id := int32(1); id <= 3; id++ {
			if id != st.Leader {
				target = append(target, id)
			}
		}
		start := time.Now()
		req := kadm.AlterPartitionAssignmentsReq{}
		req.Assign("moved", 0, target)
		resp, err := adm.AlterPartitionAssignments(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if err := resp.Error(); err != nil {
			b.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		err = c.WaitFor(wctx, func(c *kcluster.Cluster) bool {
			st, err := c.PartitionState("moved", 0)
			return err == nil && len(st.AddingReplicas) == 0 && len(st.Replicas) == 3 && kcluster.FullyReplicated("moved", 0)(c)
		})
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		b.ReportMetric(el.Seconds()*1000, "ms/reassign-100MB")
		b.ReportMetric(float64(st.LogSizes[st.Leader])/1e6/el.Seconds(), "MB/s-copied-per-replica")
		cl.Close()
		c.Close()
	}
}
