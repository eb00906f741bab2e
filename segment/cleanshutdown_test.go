package segment

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// The clean shutdown file: written after a clean close, read and removed
// by the next open, so a start after a crash (no file) finds -1; it is no
// log of the store.
func TestCleanShutdownFile(t *testing.T) {
	fs := vfs.NewCrashableMem()
	open := func() *Store {
		s, err := OpenStore(StoreOptions{FS: fs, Dir: "b1"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	if epoch, err := s.TakeCleanShutdown(); err != nil || epoch != -1 {
		t.Fatalf("first start: %d, %v; want -1", epoch, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteCleanShutdown(7); err != nil {
		t.Fatal(err)
	}
	// The file is synced: a power cut right after the shutdown keeps it.
	fs = fs.CrashClone(vfs.CrashCloneCfg{})
	s = open()
	if logs, err := s.Logs(); err != nil || len(logs) != 0 {
		t.Fatalf("logs %v, %v; the file is not a log", logs, err)
	}
	if epoch, err := s.TakeCleanShutdown(); err != nil || epoch != 7 {
		t.Fatalf("after a clean shutdown: %d, %v; want 7", epoch, err)
	}
	s.Close()
	// Taken: a crash now (no new file) is an unclean shutdown.
	fs = fs.CrashClone(vfs.CrashCloneCfg{})
	s = open()
	defer s.Close()
	if epoch, err := s.TakeCleanShutdown(); err != nil || epoch != -1 {
		t.Fatalf("after a crash: %d, %v; want -1", epoch, err)
	}
}
