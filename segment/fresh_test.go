package segment

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kcluster/kcluster/internal/memfs"
)

// reopenStore closes s, the store at b1 on fs, and opens it again.
func reopenStore(t *testing.T, s *Store, fs vfs.FS) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(StoreOptions{FS: fs, Dir: "b1"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFreshLog: a log is Fresh only when the index can hold nothing of it
// (a store whose index this Store created, a name not opened in it before,
// no segment), and a Fresh log starts empty at offset 0 and works as any
// other. A name opened before in the same Store is not Fresh, and finds
// what the index keeps of it even with its segments gone; nor is any log
// of a store reopened over an existing index.
func TestFreshLog(t *testing.T) {
	fs := memfs.New()
	s, err := OpenStore(StoreOptions{FS: fs, Dir: "b1"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.OpenLog("a-0", LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Fresh() {
		t.Fatal("a new log in a new store is not Fresh")
	}
	if a.LogStartOffset() != 0 || a.LogEndOffset() != 0 || len(a.EpochEntries()) != 0 || a.HighWatermarkCheckpoint() != 0 {
		t.Fatalf("fresh log: start %d end %d epochs %v hw %d, want empty at 0", a.LogStartOffset(), a.LogEndOffset(), a.EpochEntries(), a.HighWatermarkCheckpoint())
	}
	if err := a.AssignEpoch(3, 0); err != nil {
		t.Fatal(err)
	}
	want := fill(t, a, 2)
	if err := a.CheckpointHighWatermark(6); err != nil {
		t.Fatal(err)
	}
	got, err := a.Read(0, 1<<20, a.LogEndOffset())
	if err != nil || len(got) != len(want[0])+len(want[1]) {
		t.Fatalf("read %d bytes (%v), want %d", len(got), err, len(want[0])+len(want[1]))
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// Its segments gone (as a crash inside RemoveLog leaves a log), the
	// same name is not Fresh: its epochs are read back from the index.
	if err := fs.RemoveAll(fs.PathJoin("b1", "a-0")); err != nil {
		t.Fatal(err)
	}
	a, err = s.OpenLog("a-0", LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Fresh() {
		t.Fatal("a log opened before in this store is Fresh")
	}
	if e := a.EpochEntries(); len(e) != 1 || e[0].Epoch != 3 {
		t.Fatalf("epochs %v after reopening, want epoch 3 from the index", e)
	}
	b, err := s.OpenLog("b-0", LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !b.Fresh() {
		t.Fatal("a second new log in a new store is not Fresh")
	}
	// Reopened over its index: nothing is Fresh, new names included.
	s = reopenStore(t, s, fs)
	defer s.Close()
	for _, name := range []string{"b-0", "c-0"} {
		l, err := s.OpenLog(name, LogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if l.Fresh() {
			t.Fatalf("%s is Fresh in a store reopened over its index", name)
		}
	}
}
