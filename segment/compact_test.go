package segment

import (
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// keyed builds a batch at base of records (key, value; value "" is a
// tombstone), compressed with codec, with attribute bits extra.
func keyed(t *testing.T, base int64, ts int64, codec int8, extra int16, pid int64, kv ...string) []byte {
	t.Helper()
	var recs []Record
	for i := 0; i < len(kv); i += 2 {
		r := Record{Offset: base + int64(i/2), Timestamp: ts, Key: []byte(kv[i])}
		if kv[i+1] != "" {
			r.Value = []byte(kv[i+1])
		}
		recs = append(recs, r)
	}
	h := BatchHeader{BaseOffset: base, LastOffsetDelta: int32(len(recs) - 1), FirstTimestamp: ts, MaxTimestamp: ts,
		ProducerID: pid, ProducerEpoch: -1, BaseSequence: -1, Attributes: int16(codec) | extra}
	if pid >= 0 {
		h.ProducerEpoch, h.BaseSequence = 0, int32(base)
	}
	b, err := rebuildBatch(h, recs, false, 0, map[int8]kgo.Compressor{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ValidateBatch(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// readAll returns every record from offset 0 to the log end.
func readAll(t *testing.T, l *Log) (hs []BatchHeader, recs []Record) {
	t.Helper()
	for off := l.LogStartOffset(); off < l.LogEndOffset(); {
		data, err := l.Read(off, 1<<20, l.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		if len(data) == 0 {
			t.Fatalf("no data at %d below the log end %d", off, l.LogEndOffset())
		}
		for len(data) > 0 {
			h, rs, err := BatchRecords(data, nil)
			if err != nil {
				t.Fatal(err)
			}
			hs = append(hs, h)
			recs = append(recs, rs...)
			off = h.LastOffset() + 1
			data = data[h.TotalSize():]
		}
	}
	return hs, recs
}

// Many updates of ten keys, in batches of every codec, over many
// segments: after cleaning, every finished segment holds one record per
// key at its latest offset; the active segment is untouched; offsets and
// batch bounds stay; tombstones stay until their horizon passes;
// transactional batches and markers stay whole.
func TestCompactKeepsLatestPerKey(t *testing.T) {
	s, l := openTest(t, vfs.NewMem(), LogOptions{SegmentBytes: 2048})
	defer s.Close()
	ts := time.Now().UnixMilli()
	var want = map[string]string{}
	var off int64
	for i := 0; i < 100; i++ {
		var kv []string
		for j := 0; j < 5; j++ {
			k := fmt.Sprintf("k%d", (i*5+j)%10)
			v := fmt.Sprintf("v%d-%d", i, j)
			kv = append(kv, k, v)
			want[k] = v
		}
		if err := l.Append(keyed(t, off, ts, int8(i%5), 0, -1, kv...)); err != nil {
			t.Fatal(err)
		}
		off += 5
	}
	// A tombstone for k0, a transaction's batch and its commit marker
	// (a control batch) that reuse k1, then a record to finish the
	// segment holding them.
	must := func(b []byte) {
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
		off = l.LogEndOffset()
	}
	must(keyed(t, off, ts, 0, 0, -1, "k0", ""))
	delete(want, "k0")
	must(keyed(t, off, ts, 0, 0x10, 7, "k1", "txn"))
	must(keyed(t, off, ts, 0, 0x30, 7, "", "marker"))
	for i := 0; i < 40; i++ {
		must(keyed(t, off, ts, 0, 0, -1, "z", fmt.Sprint(i)))
	}
	want["z"] = "39"
	segsBefore, _ := l.Segments()
	active := segsBefore[len(segsBefore)-1]
	st, err := l.Compact(CompactOptions{UpTo: active.Base, DeleteRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if st.Segments == 0 || st.RecordsRemoved == 0 || st.BytesWritten >= st.BytesRead {
		t.Fatalf("stats %+v", st)
	}
	t.Logf("cleaned %+v", st)
	hs, recs := readAll(t, l)
	last := map[string]Record{}
	count := map[string]int{}
	prev := int64(-1)
	for _, r := range recs {
		if r.Offset <= prev {
			t.Fatalf("offset %d after %d", r.Offset, prev)
		}
		prev = r.Offset
		if r.Offset < active.Base {
			count[string(r.Key)]++
		}
		last[string(r.Key)] = r
	}
	for k, n := range count {
		if n != 1 && k != "k1" && k != "" { // k1: once plus its transactional record; "": the marker
			t.Fatalf("key %s appears %d times in the cleaned segments", k, n)
		}
	}
	for k, v := range want {
		if k == "k1" {
			continue
		}
		if string(last[k].Value) != v {
			t.Fatalf("key %s: %q, want %q", k, last[k].Value, v)
		}
	}
	if r, ok := last["k0"]; !ok || r.Value != nil {
		t.Fatalf("the tombstone of k0 went before its horizon: %+v", r)
	}
	var control, txn bool
	for _, h := range hs {
		control = control || h.IsControl()
		txn = txn || (h.IsTransactional() && !h.IsControl())
	}
	if !control || !txn {
		t.Fatalf("control batch kept %v, transactional batch kept %v", control, txn)
	}
	if l.LogEndOffset() != off {
		t.Fatalf("log end %d, want %d", l.LogEndOffset(), off)
	}
	// Past the horizon the tombstone goes.
	if _, err := l.Compact(CompactOptions{UpTo: active.Base, Now: time.Now().Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// Everything dirty was cleaned: a second pass needs new data.
	_, recs = readAll(t, l)
	for _, r := range recs {
		if string(r.Key) == "k0" && r.Offset < active.Base {
			t.Fatalf("k0's tombstone survived its horizon: %+v", r)
		}
	}
	_ = kmsg.Record{}
}
