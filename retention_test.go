package kcluster

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// logStartEverywhere holds when every replica of topic/0 has log start
// offset start (or more, with atLeast).
func logStartEverywhere(topic string, start int64, n int) Condition {
	return func(c *Cluster) bool {
		st, err := c.PartitionState(topic, 0)
		if err != nil || len(st.LogStartOffsets) != n {
			return false
		}
		for _, s := range st.LogStartOffsets {
			if s != start {
				return false
			}
		}
		return true
	}
}

func produceN(t *testing.T, c *Cluster, topic string, n int, ts int64, size int) {
	t.Helper()
	st := partState(t, c, topic, 0)
	for i := 0; i < n; i++ {
		rp := produce(t, nil, c, addrOf(c, st.Leader), topic, 0, -1, makeBatch(ts, fmt.Sprintf("%04d%s", i, strings.Repeat("x", size))))
		if rp.ErrorCode != 0 {
			t.Fatalf("produce %d: %v", i, kerr.ErrorForCode(rp.ErrorCode))
		}
	}
}

// retention.bytes deletes the oldest whole segments on every replica,
// and the log start offset moves to the first segment kept; a consumer
// below it gets OFFSET_OUT_OF_RANGE and ListOffsets(earliest) says where
// the log starts now.
func TestRetentionBytesDeletesSegmentsOnEveryReplica(t *testing.T) {
	c := Start(t, Brokers(3))
	if rt := createTopicWith(t, c, "rb", 1, 3, map[string]string{"segment.bytes": "1000"}); rt.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rt.ErrorCode))
	}
	produceN(t, c, "rb", 20, time.Now().UnixMilli(), 400) // ~470-byte batches: two per segment
	waitFor(t, c, "every replica to have all 20", inSync("rb", 3))
	if err := c.CleanLogs(); err != nil {
		t.Fatal(err)
	}
	if st := partState(t, c, "rb", 0); st.LogStartOffset != 0 {
		t.Fatalf("log start %d without retention.bytes, want 0", st.LogStartOffset)
	}
	if err := alterTopic(t, c, "rb", set("retention.bytes", "2000")); err != nil {
		t.Fatal(err)
	}
	if err := c.CleanLogs(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "every replica to delete down to 2000 bytes", func(c *Cluster) bool {
		st, _ := c.PartitionState("rb", 0)
		for _, s := range st.LogStartOffsets {
			if s < 14 {
				return false
			}
		}
		return len(st.LogStartOffsets) == 3
	})
	st := partState(t, c, "rb", 0)
	for id, size := range st.LogSizes {
		if size > 2000+1000 || st.LogStartOffsets[id]%2 != 0 {
			t.Fatalf("broker %d: %d bytes from offset %d after retention.bytes=2000", id, size, st.LogStartOffsets[id])
		}
	}
	f := fetchNoWait(t, addrOf(c, st.Leader), "rb", 0, 0)
	if f.ErrorCode != kerr.OffsetOutOfRange.Code || f.LogStartOffset != st.LogStartOffset {
		t.Fatalf("fetch at 0: %v log start %d, want OFFSET_OUT_OF_RANGE and %d", kerr.ErrorForCode(f.ErrorCode), f.LogStartOffset, st.LogStartOffset)
	}
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.ReplicaID = -1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "rb"
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp = -2
	lt.Partitions = append(lt.Partitions, lp)
	lo.Topics = append(lo.Topics, lt)
	lresp := do[*kmsg.ListOffsetsResponse](t, dial(t, addrOf(c, st.Leader)), lo, 9)
	if got := lresp.Topics[0].Partitions[0].Offset; got != st.LogStartOffset {
		t.Fatalf("ListOffsets earliest %d, want %d", got, st.LogStartOffset)
	}
}

// retention.ms deletes segments whose newest record is older than it; the
// active segment is kept until segment.ms rolls it.
func TestRetentionMsAndSegmentMs(t *testing.T) {
	c := Start(t, Brokers(3))
	if rt := createTopicWith(t, c, "rt", 1, 3, map[string]string{"segment.bytes": "1000"}); rt.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rt.ErrorCode))
	}
	hourAgo := time.Now().Add(-time.Hour).UnixMilli()
	produceN(t, c, "rt", 6, hourAgo, 400)
	waitFor(t, c, "all six everywhere", inSync("rt", 3))
	if err := c.CleanLogs(); err != nil {
		t.Fatal(err)
	}
	if st := partState(t, c, "rt", 0); st.LogStartOffset != 0 {
		t.Fatalf("log start %d with the default retention.ms, want 0", st.LogStartOffset)
	}
	if err := alterTopic(t, c, "rt", set("retention.ms", "60000")); err != nil {
		t.Fatal(err)
	}
	if err := c.CleanLogs(); err != nil {
		t.Fatal(err)
	}
	// Segments [0,1], [2,3] go; [4,5] is the active one.
	waitFor(t, c, "log start 4 on every replica", logStartEverywhere("rt", 4, 3))
	if err := alterTopic(t, c, "rt", set("segment.ms", "1")); err != nil {
		t.Fatal(err)
	}
	if err := c.CleanLogs(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "log start 6 on every replica", logStartEverywhere("rt", 6, 3))
	if _, err := produceTo(t, c, "rt", -1, "fresh"); err != nil {
		t.Fatal(err)
	}
	st := partState(t, c, "rt", 0)
	if st.HighWatermark != 7 {
		t.Fatalf("high watermark %d, want 7", st.HighWatermark)
	}
}

// DeleteRecords moves the log start offset on the leader and, through
// their fetches, on the followers, and answers once they have; past the
// high watermark it is OFFSET_OUT_OF_RANGE.
func TestDeleteRecords(t *testing.T) {
	c := Start(t, Brokers(3))
	createTopic(t, c, "dr", 1, 3)
	produceN(t, c, "dr", 10, time.Now().UnixMilli(), 10)
	waitFor(t, c, "all ten everywhere", inSync("dr", 3))
	st := partState(t, c, "dr", 0)
	del := func(off int64) kmsg.DeleteRecordsResponseTopicPartition {
		req := kmsg.NewPtrDeleteRecordsRequest()
		rt := kmsg.NewDeleteRecordsRequestTopic()
		rt.Topic = "dr"
		rp := kmsg.NewDeleteRecordsRequestTopicPartition()
		rp.Offset = off
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		req.TimeoutMillis = 5000
		return do[*kmsg.DeleteRecordsResponse](t, dial(t, addrOf(c, st.Leader)), req, -1).Topics[0].Partitions[0]
	}
	if p := del(11); p.ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("DeleteRecords past the high watermark: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	if p := del(7); p.ErrorCode != 0 || p.LowWatermark != 7 {
		t.Fatalf("DeleteRecords to 7: %v, low watermark %d", kerr.ErrorForCode(p.ErrorCode), p.LowWatermark)
	}
	// The answer waited for the followers: their logs start at 7 already.
	if !logStartEverywhere("dr", 7, 3)(c) {
		t.Fatalf("DeleteRecords answered before every replica's log start moved: %v", partState(t, c, "dr", 0).LogStartOffsets)
	}
	f := fetchNoWait(t, addrOf(c, st.Leader), "dr", 0, 7)
	if offs, _ := decodeValues(t, f.RecordBatches); f.ErrorCode != 0 || len(offs) == 0 || offs[0] != 7 {
		t.Fatalf("fetch at 7: %v %v", kerr.ErrorForCode(f.ErrorCode), offs)
	}
	if p := del(-1); p.ErrorCode != 0 || p.LowWatermark != 10 {
		t.Fatalf("DeleteRecords to the high watermark: %v, low watermark %d", kerr.ErrorForCode(p.ErrorCode), p.LowWatermark)
	}
	waitFor(t, c, "log start 10 on every replica", logStartEverywhere("dr", 10, 3))
}
