//go:build linux

package segment

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// allocated returns a file's size and the bytes of disk it holds.
func allocated(t *testing.T, path string) (size, blocks int64) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Size, st.Blocks * 512
}

// TestPreallocatedSegments appends 64 KiB batches to a log on disk: past
// 1 MiB the active segment holds preallocated space beyond its end while
// its size stays what was appended, the log reads back byte for byte, a
// roll gives the finished segment's spare space back, and a reopened log
// (as after a crash, which never trims) recovers exactly what was
// appended.
func TestPreallocatedSegments(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(StoreOptions{FS: vfs.Default, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.OpenLog("t-0", LogOptions{SegmentBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	seg := filepath.Join(dir, "t-0", segName(0))
	for off := int64(0); len(all) < 3<<20; off += 4 {
		b := batch(off, 4, 16<<10, off)
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	size, blocks := allocated(t, seg)
	if size != int64(len(all)) {
		t.Fatalf("segment size %d, want the %d bytes appended", size, len(all))
	}
	if blocks < size+1<<20 {
		t.Fatalf("segment of %d bytes holds %d bytes of disk, want space preallocated ahead", size, blocks)
	}
	got, err := l.Read(0, 1<<30, 1<<62)
	if err != nil || !bytes.Equal(got, all) {
		t.Fatalf("read back %d bytes (err %v), want the %d appended", len(got), err, len(all))
	}
	// Fill the segment to its roll: it gives back its spare space.
	for off := l.LogEndOffset(); len(l.mu.segs) == 1; off += 4 {
		b := batch(off, 4, 16<<10, off)
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	size, blocks = allocated(t, seg)
	if blocks > size+64<<10 {
		t.Fatalf("rolled segment of %d bytes still holds %d bytes of disk", size, blocks)
	}
	// The active segment has preallocated space again; reopen without
	// closing it (a crash): recovery finds exactly what was appended.
	for off := l.LogEndOffset(); len(all) < 10<<20; off += 4 {
		b := batch(off, 4, 16<<10, off)
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	active := filepath.Join(dir, "t-0", segName(l.mu.segs[len(l.mu.segs)-1].base))
	if size, blocks := allocated(t, active); blocks < size+1<<20 {
		t.Fatalf("active segment of %d bytes holds %d bytes of disk, want space preallocated ahead", size, blocks)
	}
	crashed := t.TempDir()
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	s.Close()
	s2, err := OpenStore(StoreOptions{FS: vfs.Default, Dir: crashed})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	l2, err := s2.OpenLog("t-0", LogOptions{SegmentBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	var back []byte
	for off := int64(0); off < l2.LogEndOffset(); {
		b, err := l2.Read(off, 1<<30, 1<<62)
		if err != nil || len(b) == 0 {
			t.Fatalf("read at %d: %d bytes, %v", off, len(b), err)
		}
		back = append(back, b...)
		for rest := b; len(rest) > 0; {
			h, err := ParseBatchHeader(rest)
			if err != nil {
				t.Fatal(err)
			}
			off = h.LastOffset() + 1
			rest = rest[h.TotalSize():]
		}
	}
	if !bytes.Equal(back, all) {
		t.Fatalf("recovered %d bytes, want the %d appended", len(back), len(all))
	}
}

// BenchmarkAppendDisk appends 1 MiB batches (16 records of 64 KiB) to a
// log on disk, as a leader or follower appends a produce of big batches:
// the cost is the file system's write path (preallocated space ahead).
// Each op is one Append; segments roll at 64 MiB, so a run writes several.
func BenchmarkAppendDisk(b *testing.B) {
	s, err := OpenStore(StoreOptions{FS: vfs.Default, Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l, err := s.OpenLog("t-0", LogOptions{SegmentBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	proto := batch(0, 16, 64<<10, 0)
	b.SetBytes(int64(len(proto)))
	b.ResetTimer()
	for b.Loop() {
		SetBaseOffset(proto, l.LogEndOffset())
		if err := l.Append(proto); err != nil {
			b.Fatal(err)
		}
	}
}
