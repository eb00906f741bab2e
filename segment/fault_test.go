package segment

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// failAt fails the n-th write operation on segment files and directories
// (not the pebble index, whose write errors are fatal by pebble's design)
// and every one after it, as a dying disk does.
type failAt struct {
	n, seen int
}

func (f *failAt) MaybeError(op errorfs.Op) error {
	if op.Kind.ReadOrWrite() != errorfs.OpIsWrite || strings.Contains(op.Path, "/index") {
		return nil
	}
	f.seen++
	if f.seen >= f.n {
		return syscall.EIO
	}
	return nil
}

func (f *failAt) String() string { return "failAt" }

// Whatever write fails first, the log never panics: the failing call and
// every later write return the error, reads of what is there go on, and
// Close works.
func TestWriteFailuresNeverPanic(t *testing.T) {
	// Count the write operations of the whole scenario once.
	total := &failAt{n: 1 << 30}
	scenario(t, total)
	for n := 1; n <= total.seen; n++ {
		scenario(t, &failAt{n: n})
	}
	t.Logf("a failure injected at each of %d write operations", total.seen)
}

// scenario appends across segment rolls, truncates, deletes a prefix,
// truncates fully and appends again, ignoring errors but checking that a
// log that failed keeps failing.
func scenario(t *testing.T, inj *failAt) {
	t.Helper()
	mem := vfs.NewMem()
	s, err := OpenStore(StoreOptions{FS: errorfs.Wrap(mem, inj), Dir: "b1"})
	if err != nil {
		return
	}
	defer s.Close()
	l, err := s.OpenLog("t-0", LogOptions{SegmentBytes: 1000, IndexIntervalBytes: 300, FlushMessages: 7})
	if err != nil {
		return
	}
	var failed error
	step := func(err error) {
		if err == nil {
			if failed != nil {
				t.Fatalf("failure %d: a write succeeded after %v", inj.n, failed)
			}
			return
		}
		if errors.Is(err, ErrOffsetMismatch) || errors.Is(err, ErrOffsetOutOfRange) {
			return
		}
		if failed == nil {
			failed = err
		}
	}
	for range 8 {
		step(l.Append(batch(l.LogEndOffset(), 3, 100, 0)))
	}
	step(l.AssignEpoch(2, l.LogEndOffset()))
	step(l.Truncate(9))
	step(l.Sync())
	step(l.DeleteBefore(3))
	for range 3 {
		step(l.Append(batch(l.LogEndOffset(), 3, 100, 0)))
	}
	if leo := l.LogEndOffset(); leo > l.LogStartOffset() {
		l.Read(l.LogStartOffset(), 1<<20, leo)
	}
	step(l.TruncateFully(100))
	step(l.Append(batch(l.LogEndOffset(), 3, 100, 0)))
	l.Read(l.LogStartOffset(), 1<<20, l.LogEndOffset())
	l.Size()
	if err := l.Close(); err != nil {
		t.Logf("failure %d: close: %v", inj.n, err)
	}
}
