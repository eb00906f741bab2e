package kcluster

import (
	"context"
	"hash/crc32"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/kcluster/kcluster/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dial connects a raw kmsg client to addr.
func dial(t testing.TB, addr string) *wire.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	cl := wire.NewClient(conn, "kcluster-test")
	t.Cleanup(func() { cl.Close() })
	return cl
}

// do sends req at version v (its max if v < 0) and returns the response.
func do[R kmsg.Response](t testing.TB, cl *wire.Client, req kmsg.Request, v int16) R {
	t.Helper()
	if v < 0 {
		v = req.MaxVersion()
	}
	req.SetVersion(v)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatalf("%s v%d: %v", kmsg.NameForKey(req.Key()), v, err)
	}
	return resp.(R)
}

// makeBatch builds an uncompressed v2 record batch of n records with the
// given values, first timestamp ts and 1 ms between records.
func makeBatch(ts int64, values ...string) []byte {
	return makeProducerBatch(-1, -1, -1, ts, values...)
}

// makeProducerBatch builds a batch from an idempotent producer (pid,
// epoch, first sequence); pid -1 for none.
func makeProducerBatch(pid int64, epoch int16, seq int32, ts int64, values ...string) []byte {
	var recs []byte
	for i, v := range values {
		r := kmsg.Record{
			TimestampDelta64: int64(i),
			OffsetDelta:      int32(i),
			Key:              nil,
			Value:            []byte(v),
		}
		body := r.AppendTo(nil)[1:] // Length 0 encodes as one byte
		r.Length = int32(len(body))
		recs = r.AppendTo(recs)
	}
	b := kmsg.RecordBatch{
		FirstOffset:          0,
		PartitionLeaderEpoch: -1,
		Magic:                2,
		LastOffsetDelta:      int32(len(values) - 1),
		FirstTimestamp:       ts,
		MaxTimestamp:         ts + int64(len(values)-1),
		ProducerID:           pid,
		ProducerEpoch:        epoch,
		FirstSequence:        seq,
		NumRecords:           int32(len(values)),
		Records:              recs,
	}
	raw := b.AppendTo(nil)
	// Length and CRC: AppendTo writes what is in the struct.
	be32 := func(o int, v uint32) {
		raw[o], raw[o+1], raw[o+2], raw[o+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	}
	be32(8, uint32(len(raw)-12))
	be32(17, crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// decodeValues returns the values of every record in the batches.
func decodeValues(t testing.TB, batches []byte) (offsets []int64, values []string) {
	t.Helper()
	for len(batches) > 0 {
		var b kmsg.RecordBatch
		if err := b.ReadFrom(batches); err != nil {
			t.Fatalf("decoding batch: %v", err)
		}
		recs := b.Records
		for i := 0; i < int(b.NumRecords); i++ {
			var r kmsg.Record
			l, n := varint(recs)
			if err := r.ReadFrom(recs[:n+int(l)]); err != nil {
				t.Fatalf("decoding record: %v", err)
			}
			recs = recs[n+int(l):]
			offsets = append(offsets, b.FirstOffset+int64(r.OffsetDelta))
			values = append(values, string(r.Value))
		}
		batches = batches[12+int(b.Length):]
	}
	return
}

func varint(b []byte) (int64, int) {
	var ux uint64
	var s uint
	for i, c := range b {
		if c < 0x80 {
			ux |= uint64(c) << s
			x := int64(ux >> 1)
			if ux&1 != 0 {
				x = ^x
			}
			return x, i + 1
		}
		ux |= uint64(c&0x7f) << s
		s += 7
	}
	return 0, 0
}
