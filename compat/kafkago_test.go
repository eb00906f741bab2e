package compat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kcluster/kcluster"
)

// tailWait is how long the kafka-go Reader's fetches wait for data.
const tailWait = 100 * time.Millisecond

// TestKafkaGo creates a topic with segmentio/kafka-go's Client, writes with a
// Writer (acks=all, least-bytes balancer), checks first/last offsets through a
// leader Conn, and reads each partition back with a Reader on that partition.
func TestKafkaGo(t *testing.T) {
	const (
		topic      = "kafkago"
		partitions = 3
		n          = 300
		chunk      = 50
	)
	c := kcluster.Start(t, kcluster.Brokers(3))
	ctx := testContext(t)

	// Our own transport, so its idle connections can be closed before the
	// goroutine leak check (the default one is process-wide).
	transport := &kafka.Transport{ClientID: "kcluster-compat-kafka-go", MetadataTTL: time.Second}
	t.Cleanup(transport.CloseIdleConnections)
	client := &kafka.Client{Addr: kafka.TCP(c.Addrs()...), Transport: transport, Timeout: 10 * time.Second}

	created, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: 3,
	}}})
	if err != nil {
		t.Fatalf("Client.CreateTopics: %v", err)
	}
	if err := created.Errors[topic]; err != nil || len(created.Errors) != 1 {
		t.Fatalf("Client.CreateTopics: per-topic errors %v, want {%s: nil}", created.Errors, topic)
	}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatalf("Client.Metadata: %v", err)
	}
	if len(md.Brokers) != 3 || len(md.Topics) != 1 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) != partitions {
		t.Fatalf("Client.Metadata: %d brokers, topics %+v; want 3 brokers and %q with %d partitions", len(md.Brokers), md.Topics, topic, partitions)
	}

	// Write. The balancer picks partitions; Completion tells which record
	// landed where.
	var mu sync.Mutex
	byPart := make(map[int]map[int64]string) // partition -> offset -> value
	var completionErr error
	w := &kafka.Writer{
		Addr:         kafka.TCP(c.Addrs()...),
		Topic:        topic,
		Balancer:     &kafka.LeastBytes{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 10 * time.Millisecond,
		Transport:    transport,
		Completion: func(msgs []kafka.Message, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				completionErr = err
				return
			}
			for _, m := range msgs {
				if byPart[m.Partition] == nil {
					byPart[m.Partition] = make(map[int64]string)
				}
				byPart[m.Partition][m.Offset] = string(m.Value)
			}
		},
	}
	t.Cleanup(func() { _ = w.Close() })
	for start := 0; start < n; start += chunk {
		msgs := make([]kafka.Message, 0, chunk)
		for i := start; i < start+chunk; i++ {
			msgs = append(msgs, kafka.Message{Key: []byte(key(i)), Value: []byte(value(topic, i))})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatalf("Writer.WriteMessages %d..%d: %v", start, start+chunk-1, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Writer.Close: %v", err)
	}
	mu.Lock()
	if completionErr != nil {
		t.Fatalf("Writer completion error: %v", completionErr)
	}
	total := 0
	for p, offs := range byPart {
		if p < 0 || p >= partitions {
			t.Fatalf("written to partition %d, want 0..%d", p, partitions-1)
		}
		for o := int64(0); o < int64(len(offs)); o++ {
			if _, ok := offs[o]; !ok {
				t.Fatalf("partition %d: offsets acked %d records but not offset %d", p, len(offs), o)
			}
		}
		total += len(offs)
	}
	mu.Unlock()
	if total != n {
		t.Fatalf("%d records acked, want %d", total, n)
	}

	// First and last offsets through a Conn to each partition's leader
	// (ListOffsets on the Conn's own protocol path).
	for p := 0; p < partitions; p++ {
		conn, err := kafka.DialLeader(ctx, "tcp", c.Addrs()[0], topic, p)
		if err != nil {
			t.Fatalf("DialLeader(%d): %v", p, err)
		}
		first, last, err := conn.ReadOffsets()
		_ = conn.Close()
		if err != nil {
			t.Fatalf("partition %d: Conn.ReadOffsets: %v", p, err)
		}
		if first != 0 || last != int64(len(byPart[p])) {
			t.Errorf("partition %d: Conn.ReadOffsets = %d, %d; want 0, %d", p, first, last, len(byPart[p]))
		}
	}

	// Read each partition from the first offset with a partition Reader,
	// then stay at its end for a few empty fetches: a tailing reader must
	// wait quietly for data, not log errors.
	var readerErrs []string
	seen := make(map[string]bool, n)
	for p := 0; p < partitions; p++ {
		want := byPart[p]
		if len(want) == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:   c.Addrs(),
			Topic:     topic,
			Partition: p,
			MinBytes:  1,
			MaxBytes:  1 << 20,
			MaxWait:   tailWait,
			ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
				e := fmt.Sprintf("partition %d: %s", p, fmt.Sprintf(msg, args...))
				mu.Lock()
				defer mu.Unlock()
				// Close cancels the reader's own context; that is not a
				// broker error.
				if !strings.Contains(e, context.Canceled.Error()) {
					readerErrs = append(readerErrs, e)
				}
			}),
		})
		if err := r.SetOffset(kafka.FirstOffset); err != nil {
			t.Fatalf("Reader.SetOffset: %v", err)
		}
		for next := int64(0); next < int64(len(want)); next++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				_ = r.Close()
				t.Fatalf("partition %d: ReadMessage after %d of %d records: %v", p, next, len(want), err)
			}
			if m.Partition != p || m.Offset != next || string(m.Value) != want[next] {
				_ = r.Close()
				t.Fatalf("read %d/%d %q, want %d/%d %q", m.Partition, m.Offset, m.Value, p, next, want[next])
			}
			if seen[string(m.Value)] {
				_ = r.Close()
				t.Fatalf("value %q read twice", m.Value)
			}
			seen[string(m.Value)] = true
		}
		tail, cancel := context.WithTimeout(ctx, 4*tailWait)
		m, err := r.ReadMessage(tail)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			_ = r.Close()
			t.Fatalf("partition %d: ReadMessage at the end returned %d/%d %q, %v; want to wait until the deadline", p, m.Partition, m.Offset, m.Value, err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("Reader.Close: %v", err)
		}
	}
	mu.Lock()
	for _, e := range readerErrs {
		t.Errorf("kafka-go reader error: %s", e)
	}
	mu.Unlock()
	for i := 0; i < n; i++ {
		if !seen[value(topic, i)] {
			t.Errorf("record %d (%q) never read", i, value(topic, i))
		}
	}
}
