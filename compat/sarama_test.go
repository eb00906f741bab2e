package compat

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kcluster/kcluster"
)

// saramaConfig is the configuration every sarama client in these tests uses:
// a modern protocol version, acks=all, no idempotence (kcluster has no
// InitProducerId yet), and a consumer that reports its errors.
func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "kcluster-compat-sarama"
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = false
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Retry.Max = 10
	cfg.Producer.Retry.Backoff = 50 * time.Millisecond
	cfg.Metadata.Retry.Backoff = 50 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.MaxWaitTime = 200 * time.Millisecond
	return cfg
}

// TestSarama creates a topic with sarama's ClusterAdmin, produces with a
// SyncProducer and acks=all, and reads every partition back from the oldest
// offset with partition consumers.
func TestSarama(t *testing.T) {
	const (
		topic      = "sarama"
		partitions = 3
		n          = 300
		chunk      = 50
	)
	c := kcluster.Start(t, kcluster.Brokers(3))
	cfg := saramaConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("sarama config: %v", err)
	}

	admin, err := sarama.NewClusterAdmin(c.Addrs(), cfg)
	if err != nil {
		t.Fatalf("sarama.NewClusterAdmin: %v", err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	brokers, controller, err := admin.DescribeCluster()
	if err != nil {
		t.Fatalf("DescribeCluster: %v", err)
	}
	if len(brokers) != 3 || controller < 1 || controller > 3 {
		t.Fatalf("DescribeCluster: %d brokers, controller %d; want 3 brokers and a controller in 1..3", len(brokers), controller)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 3}, false); err != nil {
		t.Fatalf("ClusterAdmin.CreateTopic: %v", err)
	}
	md, err := admin.DescribeTopics([]string{topic})
	if err != nil {
		t.Fatalf("DescribeTopics: %v", err)
	}
	if len(md) != 1 || !errors.Is(md[0].Err, sarama.ErrNoError) || len(md[0].Partitions) != partitions {
		t.Fatalf("DescribeTopics(%q): %+v, want one topic without error with %d partitions", topic, md, partitions)
	}
	for _, p := range md[0].Partitions {
		if len(p.Replicas) != 3 || len(p.Isr) != 3 {
			t.Errorf("partition %d: replicas %v isr %v, want 3 of each", p.ID, p.Replicas, p.Isr)
		}
	}

	producer, err := sarama.NewSyncProducer(c.Addrs(), cfg)
	if err != nil {
		t.Fatalf("sarama.NewSyncProducer: %v", err)
	}
	t.Cleanup(func() { _ = producer.Close() })

	// Record i goes to partition i%3; remember which record each acked
	// offset holds.
	byPart := make(map[int32]map[int64]int)
	for start := 0; start < n; start += chunk {
		msgs := make([]*sarama.ProducerMessage, 0, chunk)
		for i := start; i < start+chunk; i++ {
			msgs = append(msgs, &sarama.ProducerMessage{
				Topic:     topic,
				Partition: int32(i % partitions),
				Key:       sarama.StringEncoder(key(i)),
				Value:     sarama.StringEncoder(value(topic, i)),
				Headers:   []sarama.RecordHeader{{Key: []byte("i"), Value: []byte(fmt.Sprint(i))}},
			})
		}
		if err := producer.SendMessages(msgs); err != nil {
			t.Fatalf("SendMessages %d..%d: %v", start, start+chunk-1, err)
		}
		for j, m := range msgs {
			if byPart[m.Partition] == nil {
				byPart[m.Partition] = make(map[int64]int)
			}
			if prev, dup := byPart[m.Partition][m.Offset]; dup {
				t.Fatalf("records %d and %d both acked at %d/%d", prev, start+j, m.Partition, m.Offset)
			}
			byPart[m.Partition][m.Offset] = start + j
		}
	}
	// One more through SendMessage, the single-record path.
	last := &sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.StringEncoder(value(topic, n))}
	p, off, err := producer.SendMessage(last)
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	if want := int64(len(byPart[0])); p != 0 || off != want {
		t.Fatalf("SendMessage acked at %d/%d, want 0/%d", p, off, want)
	}
	byPart[0][off] = n

	consumer, err := sarama.NewConsumer(c.Addrs(), cfg)
	if err != nil {
		t.Fatalf("sarama.NewConsumer: %v", err)
	}
	t.Cleanup(func() { _ = consumer.Close() })
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	for p := int32(0); p < partitions; p++ {
		want := byPart[p]
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("ConsumePartition(%d, oldest): %v", p, err)
		}
		for next := int64(0); next < int64(len(want)); next++ {
			select {
			case m := <-pc.Messages():
				if m.Offset != next {
					t.Fatalf("partition %d: got offset %d, want %d", p, m.Offset, next)
				}
				i := want[m.Offset]
				wantKey := key(i)
				if i == n {
					wantKey = ""
				}
				if string(m.Value) != value(topic, i) || string(m.Key) != wantKey {
					t.Fatalf("%d/%d: key %q value %q, want %q %q", p, m.Offset, m.Key, m.Value, wantKey, value(topic, i))
				}
				if i < n && (len(m.Headers) != 1 || string(m.Headers[0].Key) != "i" || string(m.Headers[0].Value) != fmt.Sprint(i)) {
					t.Fatalf("%d/%d: %d headers, want [i=%d]", p, m.Offset, len(m.Headers), i)
				}
				if m.Timestamp.IsZero() {
					t.Fatalf("%d/%d: zero timestamp", p, m.Offset)
				}
			case err := <-pc.Errors():
				t.Fatalf("partition consumer %d: %v", p, err)
			case <-deadline.C:
				t.Fatalf("partition %d: read %d of %d records before the deadline", p, next, len(want))
			}
		}
		if hwm := pc.HighWaterMarkOffset(); hwm != int64(len(want)) {
			t.Errorf("partition %d: high watermark %d, want %d", p, hwm, len(want))
		}
		if err := pc.Close(); err != nil {
			t.Fatalf("closing partition consumer %d: %v", p, err)
		}
	}
}
