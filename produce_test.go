package kcluster

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// testRecord is one record of batchOf: a key (nil: none) and a timestamp
// delta from the batch's first timestamp.
type testRecord struct {
	key     []byte
	tsDelta int64
	value   string
}

// batchOf builds an uncompressed v2 batch of recs at first timestamp ts.
func batchOf(ts int64, recs ...testRecord) []byte {
	var raw []byte
	maxTS := ts
	for i, r := range recs {
		rec := kmsg.Record{TimestampDelta64: r.tsDelta, OffsetDelta: int32(i), Key: r.key, Value: []byte(r.value)}
		rec.Length = int32(len(rec.AppendTo(nil)) - 1)
		raw = rec.AppendTo(raw)
		maxTS = max(maxTS, ts+r.tsDelta)
	}
	b := kmsg.RecordBatch{PartitionLeaderEpoch: -1, Magic: 2, LastOffsetDelta: int32(len(recs) - 1), FirstTimestamp: ts, MaxTimestamp: maxTS,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(recs)), Records: raw}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return out
}

// produceV sends one batch to topic (by name, or by id from v13) at
// version v and returns the partition's answer.
func produceV(t *testing.T, addr, topic string, id [16]byte, v int16, batch []byte) *kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := do[*kmsg.ProduceResponse](t, dial(t, addr), req, v)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("Produce v%d answer: %+v", v, resp)
	}
	if v >= 13 && resp.Topics[0].TopicID != id {
		t.Fatalf("Produce v%d answered topic id %x, want %x", v, resp.Topics[0].TopicID, id)
	}
	return &resp.Topics[0].Partitions[0]
}

// Produce v0-v2 are advertised (KAFKA-18659) but refused when they
// arrive: Kafka 4's SocketServer closes the connection, no answer.
func TestProduceV0ToV2Refused(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "old", 1, 1)
	for v := int16(0); v <= 2; v++ {
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(v)
		req.Acks, req.TimeoutMillis = 1, 1000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "old"
		rt.Partitions = append(rt.Partitions, kmsg.ProduceRequestTopicPartition{Records: makeBatch(time.Now().UnixMilli(), "x")})
		req.Topics = append(req.Topics, rt)
		frame := binary.BigEndian.AppendUint16(nil, 0)          // api key
		frame = binary.BigEndian.AppendUint16(frame, uint16(v)) // version
		frame = binary.BigEndian.AppendUint32(frame, 7)         // correlation id
		frame = binary.BigEndian.AppendUint16(frame, 4)         // client id
		frame = append(frame, "test"...)
		frame = req.AppendTo(frame)
		conn, err := net.Dial("tcp", c.Addrs()[0])
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...)); err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		if _, err := conn.Read(b[:]); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !strings.Contains(errString(err), "reset") {
			t.Errorf("Produce v%d: read %v, want the connection closed", v, err)
		}
		conn.Close()
	}
	if end := partState(t, c, "old", 0).HighWatermark; end != 0 {
		t.Fatalf("refused produces appended: high watermark %d", end)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// Produce v13 names topics by id (KIP-516) and is answered by id; an id
// the broker does not know is UNKNOWN_TOPIC_ID. v12 is served as v11.
func TestProduceByTopicID(t *testing.T) {
	c := Start(t, Brokers(1))
	id := createTopic(t, c, "ids", 1, 1)
	addr := c.Addrs()[0]
	for i, v := range []int16{11, 12, 13} {
		rp := produceV(t, addr, "ids", id, v, makeBatch(time.Now().UnixMilli(), "a", "b"))
		if rp.ErrorCode != 0 || rp.BaseOffset != int64(2*i) {
			t.Fatalf("Produce v%d: %v at %d, want offset %d", v, kerr.ErrorForCode(rp.ErrorCode), rp.BaseOffset, 2*i)
		}
	}
	if rp := produceV(t, addr, "", [16]byte{1, 2, 3}, 13, makeBatch(time.Now().UnixMilli(), "c")); rp.ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("Produce v13 to an unknown id: %v, want UNKNOWN_TOPIC_ID", kerr.ErrorForCode(rp.ErrorCode))
	}
	f := fetch(t, addr, "", id, 0, 0, 13)
	if _, vals := decodeValues(t, f.RecordBatches); strings.Join(vals, "") != "ababab" {
		t.Fatalf("read back %q", vals)
	}
}

// A batch with refused records fails whole and names them (KIP-467), as
// Kafka's LogValidator: a record without a key on a compacted topic is
// INVALID_RECORD, a timestamp out of range INVALID_TIMESTAMP; before v8
// only the error code.
func TestProduceRecordErrors(t *testing.T) {
	c := Start(t, Brokers(1))
	if rt := createTopicWith(t, c, "compacted", 1, 1, map[string]string{"cleanup.policy": "compact"}); rt.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rt.ErrorCode))
	}
	addr := c.Addrs()[0]
	now := time.Now().UnixMilli()
	keyless := batchOf(now, testRecord{key: []byte("k0")}, testRecord{value: "no key"}, testRecord{key: []byte("k2")}, testRecord{tsDelta: 1})
	rp := produceV(t, addr, "compacted", [16]byte{}, 11, keyless)
	wantMsg := "Compacted topic cannot accept message without key in topic partition compacted-0"
	if rp.ErrorCode != kerr.InvalidRecord.Code || len(rp.ErrorRecords) != 2 ||
		rp.ErrorRecords[0].RelativeOffset != 1 || rp.ErrorRecords[1].RelativeOffset != 3 ||
		rp.ErrorRecords[0].ErrorMessage == nil || *rp.ErrorRecords[0].ErrorMessage != wantMsg ||
		rp.ErrorMessage == nil || !strings.HasPrefix(*rp.ErrorMessage, "One or more records have been rejected due to 2 record errors in total") ||
		!strings.Contains(*rp.ErrorMessage, "RecordError(batchIndex=1, message='"+wantMsg+"')") || rp.BaseOffset != -1 || rp.LogStartOffset != 0 {
		t.Fatalf("keyless records on a compacted topic: %v %+v message %v", kerr.ErrorForCode(rp.ErrorCode), rp.ErrorRecords, rp.ErrorMessage)
	}
	if rp := produceV(t, addr, "compacted", [16]byte{}, 7, keyless); rp.ErrorCode != kerr.InvalidRecord.Code || len(rp.ErrorRecords) != 0 || rp.ErrorMessage != nil {
		t.Fatalf("v7: %v %+v", kerr.ErrorForCode(rp.ErrorCode), rp)
	}
	if rp := produceV(t, addr, "compacted", [16]byte{}, 11, batchOf(now, testRecord{key: []byte("k")})); rp.ErrorCode != 0 || rp.BaseOffset != 0 {
		t.Fatalf("a keyed batch after the refused ones: %v at %d, want offset 0 (nothing of the refused written)", kerr.ErrorForCode(rp.ErrorCode), rp.BaseOffset)
	}

	if rt := createTopicWith(t, c, "timed", 1, 1, map[string]string{"message.timestamp.before.max.ms": "3600000", "message.timestamp.after.max.ms": "3600000"}); rt.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rt.ErrorCode))
	}
	// The first record's timestamp is fine; the second is two hours
	// older, which the batch header alone does not show.
	twoHours := int64(2 * time.Hour / time.Millisecond)
	rp = produceV(t, addr, "timed", [16]byte{}, 11, batchOf(now, testRecord{value: "ok"}, testRecord{tsDelta: -twoHours, value: "old"}, testRecord{value: "ok"}))
	if rp.ErrorCode != kerr.InvalidTimestamp.Code || len(rp.ErrorRecords) != 1 || rp.ErrorRecords[0].RelativeOffset != 1 ||
		!strings.Contains(*rp.ErrorRecords[0].ErrorMessage, "of message with offset 1 is out of range") ||
		rp.ErrorMessage == nil || *rp.ErrorMessage != "One or more records have been rejected due to invalid timestamp" {
		t.Fatalf("an old record: %v %+v message %v", kerr.ErrorForCode(rp.ErrorCode), rp.ErrorRecords, rp.ErrorMessage)
	}
	if hw := partState(t, c, "timed", 0).HighWatermark; hw != 0 {
		t.Fatalf("refused batch appended: high watermark %d", hw)
	}
}
