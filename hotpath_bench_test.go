package kcluster

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// BenchmarkReplicationRound measures one acks=all produce on an RF=2
// partition: the leader appends the batch (16 records of 1 KiB), the
// follower's parked fetch wakes, takes it and appends it, its next fetch
// moves the high watermark, and the produce is answered. One op is one
// replication round over loopback TCP, with a raw client (no client
// library's batching in the measurement).
func BenchmarkReplicationRound(b *testing.B) {
	c, err := New(Brokers(2), BrokerConfig("min.insync.replicas", "2"), Logger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cl := dial(b, c.Addrs()[0])
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "r", 1, 2
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10000
	if err := kerr.ErrorForCode(do[*kmsg.CreateTopicsResponse](b, cl, req, -1).Topics[0].ErrorCode); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitFor(ctx, ISRSize("r", 0, 2)); err != nil {
		b.Fatal(err)
	}
	st, err := c.PartitionState("r", 0)
	if err != nil {
		b.Fatal(err)
	}
	leader := dial(b, c.Addrs()[st.Leader-1])
	values := make([]string, 16)
	for i := range values {
		values[i] = strings.Repeat(fmt.Sprint(i%10), 1024)
	}
	batch := makeBatch(time.Now().UnixMilli(), values...)
	b.SetBytes(int64(len(batch)))
	b.ResetTimer()
	for range b.N {
		preq := produceRequest("r", 0, -1, 10000, batch)
		resp := do[*kmsg.ProduceResponse](b, leader, preq, 11)
		if err := kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode); err != nil {
			b.Fatal(err)
		}
	}
}
