package kcluster

import (
	"encoding/binary"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

// TestMetadataBatchRoundTrip: a batch of metadata records, some with their
// wire form kept and some without, of sizes whose length varints take one
// and two bytes, is a valid record batch (lengths, CRC-32C) and decodes to
// the same records at the same offsets.
func TestMetadataBatchRoundTrip(t *testing.T) {
	var es []metadata.Entry
	for i, host := range []string{"a", strings.Repeat("b", 60), strings.Repeat("c", 300), "d"} {
		rec := &metadata.RegisterBroker{ID: int32(i + 1), Host: host, Port: int32(9092 + i), Epoch: int64(i)}
		e := metadata.Entry{Offset: int64(40 + i), Record: rec}
		if i%2 == 0 {
			raw, err := metadata.EncodeRecord(rec)
			if err != nil {
				t.Fatal(err)
			}
			e.Raw = raw
		}
		es = append(es, e)
	}
	raw, err := encodeMetadataBatch(es)
	if err != nil {
		t.Fatal(err)
	}
	var b kmsg.RecordBatch
	if err := b.ReadFrom(raw); err != nil {
		t.Fatal(err)
	}
	if int(b.Length) != len(raw)-12 || b.FirstOffset != 40 || b.NumRecords != 4 || b.LastOffsetDelta != 3 {
		t.Fatalf("batch header: length %d of %d bytes, first offset %d, %d records, last delta %d", b.Length, len(raw), b.FirstOffset, b.NumRecords, b.LastOffsetDelta)
	}
	if got, want := binary.BigEndian.Uint32(raw[17:]), crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)); got != want {
		t.Fatalf("CRC %x, want %x", got, want)
	}
	recs := b.Records
	for i := range es {
		var r kmsg.Record
		l, w := binary.Varint(recs)
		if err := r.ReadFrom(recs[:w+int(l)]); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if want := int32(len(r.AppendTo(nil)) - w); r.Length != want {
			t.Fatalf("record %d: length %d, want %d", i, r.Length, want)
		}
		recs = recs[w+int(l):]
	}
	if len(recs) != 0 {
		t.Fatalf("%d bytes after the records", len(recs))
	}
	got, err := decodeMetadataBatches(append(raw, raw...))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2*len(es) {
		t.Fatalf("decoded %d entries from two batches, want %d", len(got), 2*len(es))
	}
	for i, g := range got {
		e := es[i%len(es)]
		if g.Offset != e.Offset || !reflect.DeepEqual(g.Record, e.Record) {
			t.Fatalf("entry %d: offset %d record %+v, want %d %+v", i, g.Offset, g.Record, e.Offset, e.Record)
		}
	}
}
