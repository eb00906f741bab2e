package kcluster_test

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster"
)

// A compacted topic keeps the latest value of each key once the log
// cleaner has run; CleanLogs runs it now.
func ExampleCluster_CleanLogs() {
	c, err := kcluster.New(kcluster.Brokers(1))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("prices"))
	if err != nil {
		panic(err)
	}
	defer cl.Close()

	req := kmsg.NewPtrCreateTopicsRequest()
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = "prices", 1, 1
	for k, v := range map[string]string{"cleanup.policy": "compact", "segment.ms": "60000"} {
		cfg := kmsg.NewCreateTopicsRequestTopicConfig()
		cfg.Name, cfg.Value = k, kmsg.StringPtr(v)
		t.Configs = append(t.Configs, cfg)
	}
	req.Topics = append(req.Topics, t)
	if _, err := req.RequestWith(ctx, cl); err != nil {
		panic(err)
	}
	// Written an hour ago: the segment is past segment.ms.
	hourAgo := time.Now().Add(-time.Hour)
	for _, kv := range [][2]string{{"apple", "1"}, {"pear", "1"}, {"apple", "2"}, {"apple", "3"}} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(kv[0]), Value: []byte(kv[1]), Timestamp: hourAgo}).FirstErr(); err != nil {
			panic(err)
		}
	}
	if err := c.CleanLogs(); err != nil { // the active segment rolls (segment.ms), then the cleaner runs
		panic(err)
	}
	// A consumer from the start sees the latest value of each key, at
	// its original offset.
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...),
		kgo.ConsumeTopics("prices"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		panic(err)
	}
	defer cons.Close()
	for seen := 0; seen < 2; {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			fmt.Printf("%s=%s at offset %d\n", r.Key, r.Value, r.Offset)
			seen++
		})
	}
	// Output:
	// pear=1 at offset 1
	// apple=3 at offset 3
}
