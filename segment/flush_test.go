package segment

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// FlushMessages syncs every n records: a power cut (a crash clone keeping
// only synced data) loses exactly the records appended after the last
// sync, and the log reopens at the last synced batch.
func TestFlushMessagesSurvivesPowerCut(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s, l := openTest(t, fs, LogOptions{FlushMessages: 6})
	fill(t, l, 5) // 15 records: synced after the 2nd and 4th batch
	if l.LogEndOffset() != 15 {
		t.Fatalf("leo %d", l.LogEndOffset())
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	s.Close()
	s2, l2 := openTest(t, crashed, LogOptions{FlushMessages: 6})
	defer s2.Close()
	if leo := l2.LogEndOffset(); leo != 12 {
		t.Fatalf("leo after power cut %d, want the 12 synced records", leo)
	}
	for off := int64(0); off < 12; off += 3 {
		got, err := l2.Read(off, 1, 12)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		if h, err := ValidateBatch(got); err != nil || h.BaseOffset != off {
			t.Fatalf("batch at %d: %v %+v", off, err, h)
		}
	}
	fill(t, l2, 1)
}

// Recovery rebuilds the leader-epoch cache from the batches it scans, as
// Kafka's does, and drops entries past the recovered end: a power cut can
// keep synced data whose cache entry was never synced, and the reverse.
func TestRecoveryRebuildsEpochCache(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s, l := openTest(t, fs, LogOptions{})
	for i, epoch := range []int32{3, 3, 5} {
		b := batch(l.LogEndOffset(), 3, 10, int64(i))
		SetPartitionLeaderEpoch(b, epoch)
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	// The segment is synced, not the index: epochs 3 and 5 are only in
	// the batches. Then epoch 7 is recorded and synced, past data that
	// is not.
	// (The log's own sync paths make its new directory durable first.)
	if err := s.syncStoreDir(); err != nil {
		t.Fatal(err)
	}
	if err := l.mu.segs[0].f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := l.AssignEpoch(7, 9); err != nil {
		t.Fatal(err)
	}
	fill(t, l, 1)
	if err := s.db.LogData(nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	s.Close()
	s2, l2 := openTest(t, crashed, LogOptions{})
	defer s2.Close()
	if leo := l2.LogEndOffset(); leo != 9 {
		t.Fatalf("leo %d, want 9", leo)
	}
	got := l2.EpochEntries()
	want := []EpochEntry{{3, 0}, {5, 6}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("epoch cache %v, want %v", got, want)
	}
	if e, end := l2.EndOffsetForEpoch(3); e != 3 || end != 6 {
		t.Fatalf("end of epoch 3: %d %d", e, end)
	}
}
