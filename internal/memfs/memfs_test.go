package memfs

import (
	"bytes"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const seg = "d/log/00000000000000000000.log"

func TestChunkedReadsWhatWasWritten(t *testing.T) {
	fs := New()
	if err := fs.MkdirAll("d/log", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := fs.Create(seg, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var want []byte
	for len(want) < 5<<20 {
		p := make([]byte, rng.IntN(300<<10))
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		if _, err := f.Write(p); err != nil {
			t.Fatal(err)
		}
		want = append(want, p...)
	}
	for range 200 {
		off := rng.Int64N(int64(len(want)))
		n := rng.IntN(2 << 20)
		got := make([]byte, n)
		m, err := f.ReadAt(got, off)
		end := min(off+int64(n), int64(len(want)))
		if m != int(end-off) || !bytes.Equal(got[:m], want[off:end]) {
			t.Fatalf("ReadAt(%d, %d): %d bytes, err %v; mismatch", n, off, m, err)
		}
		if end < off+int64(n) && err != io.EOF {
			t.Fatalf("short read past the end without io.EOF: %v", err)
		}
	}
	if fi, _ := fs.Stat(seg); fi.Size() != int64(len(want)) {
		t.Fatalf("size %d, want %d", fi.Size(), len(want))
	}
	if names, _ := fs.List("d/log"); !slices.Equal(names, []string{"00000000000000000000.log"}) {
		t.Fatalf("list %v", names)
	}
	// Locations agree with the chunks actually made.
	for _, off := range []int64{0, firstChunk - 1, firstChunk, geometric - 1, geometric, geometric + maxChunk} {
		ci, co := locate(off)
		var start int64
		for i := range ci {
			start += int64(chunkSize(i))
		}
		if start+int64(co) != off || co >= chunkSize(ci) {
			t.Fatalf("locate(%d) = chunk %d + %d", off, ci, co)
		}
	}
}

func TestCrashCloneKeepsSyncedOnly(t *testing.T) {
	fs := New()
	fs.MkdirAll("d/log", 0o755)
	syncDir := func() {
		for _, dir := range []string{"", "d", "d/log"} {
			d, err := fs.OpenDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			d.Sync()
			d.Close()
		}
	}
	f, _ := fs.Create(seg, vfs.WriteCategoryUnspecified)
	f.Write([]byte("synced"))
	f.Sync()
	syncDir()
	f.Write([]byte("-lost"))
	// A file whose name was never synced goes entirely.
	g, _ := fs.Create("d/log/00000000000000000010.log", vfs.WriteCategoryUnspecified)
	g.Write([]byte("x"))
	g.Sync()

	c := fs.CrashClone(vfs.CrashCloneCfg{})
	cf, err := c.Open(seg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(cf)
	if string(b) != "synced" {
		t.Fatalf("after the crash: %q, want %q", b, "synced")
	}
	if _, err := c.Stat("d/log/00000000000000000010.log"); err == nil {
		t.Fatal("a file whose directory entry was never synced survived the crash")
	}
	// The original is untouched.
	b, _ = io.ReadAll(io.NewSectionReader(f, 0, 100))
	if string(b) != "synced-lost" {
		t.Fatalf("original: %q", b)
	}
}

func TestRenameAndRemove(t *testing.T) {
	fs := New()
	fs.MkdirAll("d/log", 0o755)
	cut := seg + ".cut"
	f, _ := fs.Create(cut, vfs.WriteCategoryUnspecified)
	f.Write([]byte("new"))
	old, _ := fs.Create(seg, vfs.WriteCategoryUnspecified)
	old.Write([]byte("old-and-long"))
	if err := fs.Rename(cut, seg); err != nil {
		t.Fatal(err)
	}
	r, err := fs.Open(seg)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r); string(b) != "new" {
		t.Fatalf("after rename: %q", b)
	}
	if _, err := fs.Stat(cut); err == nil {
		t.Fatal("the old name survived the rename")
	}
	if err := fs.Remove(seg); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Open(seg); err == nil {
		t.Fatal("opened a removed file")
	}
	// An open handle keeps reading, as on Unix.
	if b, _ := io.ReadAll(io.NewSectionReader(r, 0, 10)); string(b) != "new" {
		t.Fatalf("open handle after remove: %q", b)
	}
	// Other files pass through to the MemFS.
	if !isSegment(seg) || isSegment("d/index/000002.log") || isSegment("d/index/MANIFEST-000001") {
		t.Fatal("isSegment misclassifies")
	}
}

func TestRelease(t *testing.T) {
	fs := New()
	if err := fs.MkdirAll("d", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := fs.Create("d/00000000000000000000.log", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{7}, 3*maxChunk)
	if _, err := f.Write(big); err != nil {
		t.Fatal(err)
	}
	fs.Release()
	// The file reads as empty and can be written again.
	if n, err := f.ReadAt(make([]byte, 10), 0); n != 0 || err != io.EOF {
		t.Fatalf("after Release: read %d, %v", n, err)
	}
	if _, err := f.Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestHoleInReusedChunk: chunks are reused without clearing them, so a
// write past a file's end must zero the hole it leaves.
func TestHoleInReusedChunk(t *testing.T) {
	fs := New()
	if err := fs.MkdirAll("d", 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := fs.Create("d/00000000000000000000.log", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write(bytes.Repeat([]byte{0xff}, geometric+3*maxChunk)); err != nil {
		t.Fatal(err)
	}
	fs.Release() // a's mapped chunks may now be handed out again, dirty
	b, err := fs.Create("d/00000000000000000001.log", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write([]byte("head")); err != nil {
		t.Fatal(err)
	}
	end := int64(geometric + 2*maxChunk + 100)
	if _, err := b.WriteAt([]byte("tail"), end); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, end+4)
	if _, err := b.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if string(got[:4]) != "head" || string(got[end:]) != "tail" {
		t.Fatalf("head %q tail %q", got[:4], got[end:])
	}
	if i := slices.IndexFunc(got[4:end], func(c byte) bool { return c != 0 }); i >= 0 {
		t.Fatalf("hole byte %d is %#x, want 0", 4+i, got[4+i])
	}
	a.Close()
	b.Close()
}
