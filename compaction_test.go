package kcluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster/segment"
)

// A compacted topic with many updates per key, written by franz-go with
// compression, ends with one record per key after cleaning, on every
// replica; a consumer from offset 0 sees exactly the latest value of each
// key, and a deleted key is gone after delete.retention.ms.
func TestCompactedTopicEndsWithLatestPerKey(t *testing.T) {
	// The background cleaner is off, so the sizes before CleanLogs are
	// the uncleaned log's (CleanLogs cleans anyway).
	c := Start(t, Brokers(3), BrokerConfig("log.cleaner.enable", "false"))
	if rt := createTopicWith(t, c, "compacted", 1, 3, map[string]string{
		"cleanup.policy": "compact", "segment.bytes": "4096", "delete.retention.ms": "0",
	}); rt.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rt.ErrorCode))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, codec := range []kgo.CompressionCodec{kgo.GzipCompression(), kgo.Lz4Compression(), kgo.ZstdCompression(), kgo.SnappyCompression(), kgo.NoCompression()} {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("compacted"), kgo.ProducerBatchCompression(codec))
		if err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for i := 0; i < 400; i++ {
			recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("key-%02d", i%40)), Value: []byte(fmt.Sprintf("%v-%d", codec, i))})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		cl.Close()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("compacted"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("key-07")}).FirstErr(); err != nil { // a tombstone
		t.Fatal(err)
	}
	// Followers clean below their own high watermark: wait until they
	// have the leader's.
	waitFor(t, c, "every replica to have all 2001 and know they are committed", func(c *Cluster) bool {
		st, err := c.PartitionState("compacted", 0)
		if err != nil || len(st.HighWatermarks) != 3 {
			return false
		}
		for _, hw := range st.HighWatermarks {
			if hw != 2001 {
				return false
			}
		}
		return inSync("compacted", 3)(c)
	})
	before := partState(t, c, "compacted", 0)
	if err := alterTopic(t, c, "compacted", set("segment.ms", "1")); err != nil { // roll the active segment too
		t.Fatal(err)
	}
	if err := c.CleanLogs(); err != nil {
		t.Fatal(err)
	}
	after := partState(t, c, "compacted", 0)
	for id, size := range after.LogSizes {
		if size*5 > before.LogSizes[id] {
			t.Fatalf("broker %d: %d bytes after cleaning, %d before", id, size, before.LogSizes[id])
		}
	}
	// A second pass drops the tombstone (delete.retention.ms=0).
	if err := c.CleanLogs(); err != nil {
		t.Fatal(err)
	}
	for _, b := range c.running() {
		got := map[string]string{}
		count := 0
		r := b.partition(partTopicID(t, c, "compacted"), 0)
		for off := r.log.LogStartOffset(); off < r.log.LogEndOffset(); {
			data, err := r.log.Read(off, 1<<20, r.log.LogEndOffset())
			if err != nil || len(data) == 0 {
				t.Fatalf("broker %d at %d: %v", b.id, off, err)
			}
			for len(data) > 0 {
				h, recs, err := segmentBatchRecords(data)
				if err != nil {
					t.Fatal(err)
				}
				for _, rec := range recs {
					got[string(rec.Key)] = string(rec.Value)
					count++
				}
				off = h.LastOffset() + 1
				data = data[h.TotalSize():]
			}
		}
		if count != 39 || len(got) != 39 {
			t.Fatalf("broker %d: %d records of %d keys after cleaning, want 39 of 39", b.id, count, len(got))
		}
		for k := 0; k < 40; k++ {
			key := fmt.Sprintf("key-%02d", k)
			v, ok := got[key]
			if k == 7 {
				if ok {
					t.Fatalf("broker %d: deleted key-07 is still there: %q", b.id, v)
				}
				continue
			}
			if want := fmt.Sprintf("%v-%d", kgo.NoCompression(), 360+k); v != want {
				t.Fatalf("broker %d: %s = %q, want %q", b.id, key, v, want)
			}
		}
	}
	// A consumer from offset 0 sees the same.
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"compacted": {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]int{}
	var last int64 = -1
	for last < after.HighWatermark-1 {
		fs := cons.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Key)]++
			last = r.Offset
		})
		if len(seen) == 39 && last >= 0 {
			break
		}
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("consumer saw %s %d times", k, n)
		}
	}
	if len(seen) != 39 {
		t.Fatalf("consumer saw %d keys, want 39", len(seen))
	}
}

func segmentBatchRecords(b []byte) (segment.BatchHeader, []segment.Record, error) {
	return segment.BatchRecords(b, nil)
}

// min.compaction.lag.ms holds young records back from the cleaner; with
// cleanup.policy=compact alone retention.bytes deletes nothing, and with
// compact,delete it does.
func TestCompactionLagAndPolicy(t *testing.T) {
	c := Start(t, Brokers(1))
	if rt := createTopicWith(t, c, "lag", 1, 1, map[string]string{
		"cleanup.policy": "compact", "segment.bytes": "1024", "min.compaction.lag.ms": "3600000", "retention.bytes": "1",
	}); rt.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rt.ErrorCode))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("lag"), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := alterTopic(t, c, "lag", set("segment.ms", "1")); err != nil {
		t.Fatal(err)
	}
	before := partState(t, c, "lag", 0)
	if err := c.CleanLogs(); err != nil {
		t.Fatal(err)
	}
	st := partState(t, c, "lag", 0)
	if st.LogSizes[1] != before.LogSizes[1] || st.LogStartOffset != 0 {
		t.Fatalf("with min.compaction.lag.ms=1h and cleanup.policy=compact: %d bytes from %d, before %d from 0", st.LogSizes[1], st.LogStartOffset, before.LogSizes[1])
	}
	if err := alterTopic(t, c, "lag", set("min.compaction.lag.ms", "0")); err != nil {
		t.Fatal(err)
	}
	if err := c.CleanLogs(); err != nil {
		t.Fatal(err)
	}
	st = partState(t, c, "lag", 0)
	if st.LogSizes[1]*10 > before.LogSizes[1] || st.LogStartOffset != 0 {
		t.Fatalf("after the lag went: %d bytes from %d, before %d", st.LogSizes[1], st.LogStartOffset, before.LogSizes[1])
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte("last")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := alterTopic(t, c, "lag", set("cleanup.policy", "compact,delete")); err != nil {
		t.Fatal(err)
	}
	if err := c.CleanLogs(); err != nil {
		t.Fatal(err)
	}
	// Every segment before the one holding the last records goes (which
	// one that is depends on whether segment.ms rolled the active segment
	// before "last" arrived: offsets 98-99 share a segment).
	if st := partState(t, c, "lag", 0); st.LogStartOffset < 98 || st.LogSizes[1] > 300 {
		t.Fatalf("compact,delete with retention.bytes=1: log start %d, %d bytes; want only the last segment", st.LogStartOffset, st.LogSizes[1])
	}
}

// The background cleaner waits for min.cleanable.dirty.ratio of the log to
// be dirty, unless the dirty part is older than max.compaction.lag.ms.
func TestDirtyRatioAndMaxCompactionLag(t *testing.T) {
	c := Start(t, Brokers(1), BrokerConfig("log.retention.check.interval.ms", "3600000"))
	if rt := createTopicWith(t, c, "dirty", 1, 1, map[string]string{
		"cleanup.policy": "compact", "segment.bytes": "2048", "segment.ms": "1", "min.cleanable.dirty.ratio": "0.5",
	}); rt.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rt.ErrorCode))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("dirty"), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	produceKeys := func(from, to int, ts time.Time) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(fmt.Sprintf("k%03d", i)), Value: []byte("v"), Timestamp: ts}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, _ := c.brokerByID(1)
	clean := func() int64 {
		t.Helper()
		if err := b.cleanLogs(false); err != nil {
			t.Fatal(err)
		}
		return partState(t, c, "dirty", 0).LogSizes[1]
	}
	// Timestamps half a minute old: the cleaner only takes what lies below
	// the active segment, which clean (retention first) rolls by
	// segment.ms=1 from its first batch's timestamp. With timestamps of
	// now, a fast run cleaned within that millisecond and found the
	// updates still in the active segment.
	past := time.Now().Add(-30 * time.Second)
	produceKeys(0, 100, past) // 100 distinct keys: all dirty, nothing to remove
	clean()
	full := clean()
	produceKeys(0, 10, past) // 10 updates: about a tenth of the log is dirty
	size := clean()
	if size <= full {
		t.Fatalf("%d bytes after a clean at dirty ratio ~0.1 with min.cleanable.dirty.ratio=0.5, %d before the updates: it cleaned", size, full)
	}
	if err := alterTopic(t, c, "dirty", set("min.cleanable.dirty.ratio", "0.05")); err != nil {
		t.Fatal(err)
	}
	if got := clean(); got > full {
		t.Fatalf("%d bytes after a clean with min.cleanable.dirty.ratio=0.05, want at most %d", got, full)
	}
	full = clean()
	if err := alterTopic(t, c, "dirty", set("min.cleanable.dirty.ratio", "0.99")); err != nil {
		t.Fatal(err)
	}
	produceKeys(20, 30, time.Now().Add(-time.Hour)) // written an hour ago
	if size := clean(); size <= full {
		t.Fatalf("cleaned below min.cleanable.dirty.ratio=0.99: %d bytes, %d before", size, full)
	}
	if err := alterTopic(t, c, "dirty", set("max.compaction.lag.ms", "60000")); err != nil {
		t.Fatal(err)
	}
	if got := clean(); got > full {
		t.Fatalf("%d bytes after a clean past max.compaction.lag.ms, want at most %d", got, full)
	}
}

// A batch whose CRC is right (the producer computes it) but whose header
// claims 2^31-1 records is refused on a compacted topic, where the broker
// decodes the records to check their keys: the record count is not trusted
// for allocation. FuzzValidateBatch found BatchRecords allocating from it.
func TestCompactedTopicRefusesBatchClaimingBillionsOfRecords(t *testing.T) {
	c := Start(t, Brokers(1))
	if rt := createTopicWith(t, c, "compacted", 1, 1, map[string]string{"cleanup.policy": "compact"}); rt.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rt.ErrorCode))
	}
	_, addr := leaderAddr(t, c, "compacted", 0)
	b := makeBatch(time.Now().UnixMilli(), "v")
	binary.BigEndian.PutUint32(b[57:], math.MaxInt32) // record count
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	rp := produce(t, nil, c, addr, "compacted", 0, 1, b)
	if got := kerr.ErrorForCode(rp.ErrorCode); got != kerr.CorruptMessage {
		t.Fatalf("produce: %v, want CORRUPT_MESSAGE", got)
	}
}

// A follower that was away while its leader compacted fetches across the
// gaps the cleaner left (whole batches gone, offsets kept) and catches up,
// as a Kafka follower does; it was stuck at the first gap before.
func TestFollowerCatchesUpAcrossCompactionGaps(t *testing.T) {
	c := Start(t, Brokers(2), BrokerConfig("log.cleaner.enable", "false"), BrokerConfig("auto.leader.rebalance.enable", "false"))
	if rt := createTopicWith(t, c, "gaps", 1, 2, map[string]string{"cleanup.policy": "compact", "segment.bytes": "1024"}); rt.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rt.ErrorCode))
	}
	st := partState(t, c, "gaps", 0)
	follower := st.Replicas[0]
	if follower == st.Leader {
		follower = st.Replicas[1]
	}
	if err := c.StopBroker(follower); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("gaps"), kgo.RequiredAcks(kgo.LeaderAck()),
		kgo.DisableIdempotentWrite(), kgo.ProducerLinger(0), kgo.MaxBufferedRecords(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 200 { // one batch each, many per key: the cleaner removes whole batches
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i%5)), Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CleanLogs(); err != nil {
		t.Fatal(err)
	}
	if err := c.RestartBroker(follower); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the follower caught up across the gaps", inSync("gaps", 2))
	if leo := partState(t, c, "gaps", 0).LogEndOffsets[follower]; leo != 200 {
		t.Fatalf("the follower's log ends at %d, want 200", leo)
	}
}
