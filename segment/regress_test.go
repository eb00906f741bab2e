package segment

import (
	"bytes"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestAppendKeepsInput: MemFS's Write flips its argument's bits under -race
// (pebble's invariants); Append must leave the caller's bytes alone.
func TestAppendKeepsInput(t *testing.T) {
	s, l := openTest(t, vfs.NewMem(), LogOptions{})
	defer s.Close()
	b := batch(0, 3, 100, 0)
	keep := append([]byte(nil), b...)
	if err := l.Append(b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, keep) {
		t.Fatal("Append modified its input")
	}
	if got, _ := l.Read(0, 1<<20, 3); !bytes.Equal(got, keep) {
		t.Fatal("stored bytes differ from the input")
	}
}

// TestTimeIndexAfterReopen: a timestamp that went backwards before a
// restart must not reorder the time index when recovery rebuilds its tail.
func TestTimeIndexAfterReopen(t *testing.T) {
	fs := vfs.NewMem()
	opts := LogOptions{IndexIntervalBytes: 50} // an index entry per batch
	s, l := openTest(t, fs, opts)
	if err := l.Append(batch(0, 1, 10, 5000)); err != nil {
		t.Fatal(err)
	}
	for i := int64(1); i < 5; i++ {
		if err := l.Append(batch(i, 1, 10, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s, l = openTest(t, fs, opts)
	defer s.Close()
	if ts, off := l.MaxTimestamp(); ts != 5000 || off != 0 {
		t.Fatalf("max timestamp after reopen %d at %d, want 5000 at 0", ts, off)
	}
	if err := l.Append(batch(5, 1, 10, 3000)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ ts, base int64 }{{4000, 0}, {5000, 0}, {1000, 0}} {
		b, ok, err := l.OffsetForTimestamp(tc.ts)
		if err != nil || !ok {
			t.Fatalf("ts %d: found %v, %v", tc.ts, ok, err)
		}
		if h, _ := ParseBatchHeader(b); h.BaseOffset != tc.base {
			t.Fatalf("ts %d: batch %d, want %d", tc.ts, h.BaseOffset, tc.base)
		}
	}
	if _, ok, _ := l.OffsetForTimestamp(5001); ok {
		t.Fatal("ts 5001 found in a log whose max timestamp is 5000")
	}
}

// TestMaxTimestampIsLastOffset: MaxTimestamp names the last offset of the
// batch holding the largest timestamp.
func TestMaxTimestampIsLastOffset(t *testing.T) {
	s, l := openTest(t, vfs.NewMem(), LogOptions{})
	defer s.Close()
	if ts, off := l.MaxTimestamp(); ts != -1 || off != -1 {
		t.Fatalf("empty log: %d %d", ts, off)
	}
	l.Append(batch(0, 3, 10, 100)) // timestamps 100..102, offsets 0..2
	l.Append(batch(3, 2, 10, 50))
	if ts, off := l.MaxTimestamp(); ts != 102 || off != 2 {
		t.Fatalf("MaxTimestamp %d at %d, want 102 at 2", ts, off)
	}
}

// TestTruncateThenCrash: truncate, append smaller batches over the cut
// positions until a roll syncs the segment, then lose power. Index entries
// of the truncated batches must not survive to point into the new ones.
func TestTruncateThenCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	opts := LogOptions{SegmentBytes: 3000, IndexIntervalBytes: 1}
	s, l := openTest(t, fs, opts)
	fill(t, l, 7) // offsets 0..20, seven ~400-byte batches in one segment
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := l.Truncate(3); err != nil {
		t.Fatal(err)
	}
	for l.LogEndOffset() < 40 {
		if err := l.Append(batch(l.LogEndOffset(), 1, 37, 0)); err != nil {
			t.Fatal(err)
		}
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	s.Close()
	s2, l2 := openTest(t, crashed, opts)
	defer s2.Close()
	leo := l2.LogEndOffset()
	if leo < 3 {
		t.Fatalf("leo %d after crash, want at least the synced 3", leo)
	}
	for off := int64(0); off < leo; off++ {
		got, err := l2.Read(off, 1, leo)
		if err != nil {
			t.Fatalf("read %d of %d: %v", off, leo, err)
		}
		h, err := ValidateBatch(got)
		if err != nil || off < h.BaseOffset || off > h.LastOffset() {
			t.Fatalf("read %d: batch %d-%d, %v", off, h.BaseOffset, h.LastOffset(), err)
		}
	}
}
