package compat

import (
	"context"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
)

// newFranzClient returns a franz-go client for addrs, closed when the test
// ends: no idempotence (kcluster has no InitProducerId yet), acks=all. With
// KCLUSTER_CLIENT_DEBUG set in the environment it logs at debug level to
// stderr, to see a broker bug from the client's side.
func newFranzClient(t *testing.T, addrs []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	all := []kgo.Opt{
		kgo.SeedBrokers(addrs...),
		kgo.DisableIdempotentWrite(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	}
	if os.Getenv("KCLUSTER_CLIENT_DEBUG") != "" {
		all = append(all, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelDebug, func() string { return time.Now().Format("15:04:05.000 ") })))
	}
	all = append(all, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopicKadm creates topic with kadm and fails the test on any error.
func createTopicKadm(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, partitions int32, rf int16) {
	t.Helper()
	resp, err := adm.CreateTopic(ctx, partitions, rf, nil, topic)
	if err != nil {
		t.Fatalf("kadm CreateTopic %q (%d partitions, RF %d): %v", topic, partitions, rf, err)
	}
	if resp.NumPartitions != partitions || resp.ReplicationFactor != rf {
		t.Fatalf("kadm CreateTopic %q: response says %d partitions RF %d, want %d RF %d",
			topic, resp.NumPartitions, resp.ReplicationFactor, partitions, rf)
	}
}

// TestFranzGo produces 2000 records with acks=all to a 3-partition RF=3 topic
// on 3 brokers, reads them all back by partition, and lists offsets by time,
// start and end.
func TestFranzGo(t *testing.T) {
	const (
		topic      = "franz"
		partitions = 3
		n          = 2000
		chunk      = 100 // records per ProduceSync call, so there are many batches
	)
	c := kcluster.Start(t, kcluster.Brokers(3))
	ctx := testContext(t)

	cl := newFranzClient(t, c.Addrs(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)

	// Metadata: the three brokers, ids 1..3.
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatalf("kadm BrokerMetadata: %v", err)
	}
	if got := meta.Brokers.NodeIDs(); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("brokers in metadata: %v, want [1 2 3]", got)
	}

	createTopicKadm(ctx, t, adm, topic, partitions, 3)

	topics, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatalf("kadm ListTopics: %v", err)
	}
	td := topics[topic]
	if td.Err != nil || len(td.Partitions) != partitions {
		t.Fatalf("topic %q in metadata: err %v, %d partitions, want nil and %d", topic, td.Err, len(td.Partitions), partitions)
	}
	for _, p := range td.Partitions.Sorted() {
		if len(p.Replicas) != 3 || len(p.ISR) != 3 || p.Leader < 1 || p.Leader > 3 || p.Err != nil {
			t.Errorf("partition %d: leader %d replicas %v isr %v err %v, want leader in 1..3, 3 replicas, 3 in ISR",
				p.Partition, p.Leader, p.Replicas, p.ISR, p.Err)
		}
	}

	// Produce. Record i goes to partition i%3 with timestamp base+i ms, so
	// every partition's timestamps rise with its offsets and are distinct.
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	ts := func(i int) time.Time { return base.Add(time.Duration(i) * time.Millisecond) }
	type produced struct {
		i      int
		offset int64
	}
	byPart := make(map[int32][]produced) // in offset order, filled from ProduceSync results
	for start := 0; start < n; start += chunk {
		recs := make([]*kgo.Record, 0, chunk)
		index := make(map[*kgo.Record]int, chunk) // results come in completion order
		for i := start; i < start+chunk; i++ {
			recs = append(recs, &kgo.Record{
				Topic:     topic,
				Partition: int32(i % partitions),
				Key:       []byte(key(i)),
				Value:     []byte(value(topic, i)),
				Headers:   []kgo.RecordHeader{{Key: "i", Value: []byte(fmt.Sprint(i))}},
				Timestamp: ts(i),
			})
			index[recs[len(recs)-1]] = i
		}
		results := cl.ProduceSync(ctx, recs...)
		if err := results.FirstErr(); err != nil {
			t.Fatalf("ProduceSync records %d..%d: %v", start, start+chunk-1, err)
		}
		if len(results) != chunk {
			t.Fatalf("ProduceSync of %d records returned %d results", chunk, len(results))
		}
		for _, r := range results {
			i, ok := index[r.Record]
			if !ok {
				t.Fatalf("ProduceSync returned a record it was not given: %+v", r.Record)
			}
			if r.Record.Partition != int32(i%partitions) {
				t.Fatalf("record %d produced to partition %d, want %d", i, r.Record.Partition, i%partitions)
			}
			byPart[r.Record.Partition] = append(byPart[r.Record.Partition], produced{i, r.Record.Offset})
		}
	}
	// Within a partition the acked offsets must be 0,1,2,... in produce order.
	for p := int32(0); p < partitions; p++ {
		ps := byPart[p]
		sort.SliceStable(ps, func(a, b int) bool { return ps[a].i < ps[b].i })
		for k, pr := range ps {
			if pr.offset != int64(k) {
				t.Fatalf("partition %d: record %d (the %dth produced there) acked at offset %d, want %d", p, pr.i, k, pr.offset, k)
			}
		}
	}

	t.Logf("produced %d records: %d, %d, %d to partitions 0, 1, 2", n, len(byPart[0]), len(byPart[1]), len(byPart[2]))

	// Consume everything from the start of each partition.
	consumer := newFranzClient(t, c.Addrs(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {
			0: kgo.NewOffset().AtStart(),
			1: kgo.NewOffset().AtStart(),
			2: kgo.NewOffset().AtStart(),
		}}),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	seen := make(map[int]bool, n)
	next := make(map[int32]int64) // next expected offset per partition
	for len(seen) < n {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the deadline: %v", len(seen), n, ctx.Err())
		}
		fetches.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, p, err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Topic != topic || r.Partition < 0 || r.Partition >= partitions {
				t.Fatalf("record from %s/%d, want %s/0..%d", r.Topic, r.Partition, topic, partitions-1)
			}
			if r.Offset != next[r.Partition] {
				t.Fatalf("partition %d: got offset %d, want %d (out of order, gap or duplicate)", r.Partition, r.Offset, next[r.Partition])
			}
			next[r.Partition]++
			ps := byPart[r.Partition]
			if r.Offset >= int64(len(ps)) {
				t.Fatalf("partition %d: offset %d beyond the %d records produced there", r.Partition, r.Offset, len(ps))
			}
			i := ps[r.Offset].i
			if seen[i] {
				t.Fatalf("record %d consumed twice", i)
			}
			seen[i] = true
			if string(r.Value) != value(topic, i) || string(r.Key) != key(i) {
				t.Fatalf("%d/%d: key %q value %q, want %q %q", r.Partition, r.Offset, r.Key, r.Value, key(i), value(topic, i))
			}
			if len(r.Headers) != 1 || r.Headers[0].Key != "i" || string(r.Headers[0].Value) != fmt.Sprint(i) {
				t.Fatalf("%d/%d: headers %v, want [i=%d]", r.Partition, r.Offset, r.Headers, i)
			}
			if !r.Timestamp.Equal(ts(i)) {
				t.Fatalf("%d/%d: timestamp %v, want %v", r.Partition, r.Offset, r.Timestamp, ts(i))
			}
		})
	}

	// Start and end offsets.
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListStartOffsets: %v", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListEndOffsets: %v", err)
	}
	for p := int32(0); p < partitions; p++ {
		s, ok := starts.Lookup(topic, p)
		if !ok || s.Err != nil || s.Offset != 0 {
			t.Errorf("start offset of partition %d: %+v (found %v), want 0", p, s, ok)
		}
		e, ok := ends.Lookup(topic, p)
		if want := int64(len(byPart[p])); !ok || e.Err != nil || e.Offset != want {
			t.Errorf("end offset of partition %d: %+v (found %v), want %d", p, e, ok, want)
		}
	}

	// Offsets by time: the first offset whose timestamp is >= the asked
	// millisecond, with that record's timestamp; past the last record, the
	// end offset.
	type want struct{ offset, ts int64 }
	expectAt := func(p int32, milli int64) want {
		for k, pr := range byPart[p] {
			if t := ts(pr.i).UnixMilli(); t >= milli {
				return want{int64(k), t}
			}
		}
		return want{int64(len(byPart[p])), -1}
	}
	for _, milli := range []int64{
		base.UnixMilli() - 1000,   // before everything: offset 0
		base.UnixMilli(),          // exactly the first record
		ts(1).UnixMilli(),         // first record of partition 1, between records of 0 and 2
		ts(777).UnixMilli(),       // mid-log, mid-batch
		ts(1000).UnixMilli() + 1,  // between two records of partition 1
		ts(n - 1).UnixMilli(),     // the last record (partition (n-1)%3)
		ts(n).UnixMilli() + 10000, // after everything: end offset
	} {
		listed, err := adm.ListOffsetsAfterMilli(ctx, milli, topic)
		if err != nil {
			t.Fatalf("ListOffsetsAfterMilli(%d): %v", milli, err)
		}
		for p := int32(0); p < partitions; p++ {
			got, ok := listed.Lookup(topic, p)
			w := expectAt(p, milli)
			if !ok || got.Err != nil || got.Offset != w.offset {
				t.Errorf("ListOffsetsAfterMilli(base%+d ms) partition %d: offset %d err %v (found %v), want offset %d",
					milli-base.UnixMilli(), p, got.Offset, got.Err, ok, w.offset)
				continue
			}
			if w.ts >= 0 && got.Timestamp != w.ts {
				t.Errorf("ListOffsetsAfterMilli(base%+d ms) partition %d: offset %d timestamp %d, want %d",
					milli-base.UnixMilli(), p, got.Offset, got.Timestamp, w.ts)
			}
		}
	}
}
