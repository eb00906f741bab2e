package segment

import (
	"bytes"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/kcluster/kcluster/internal/memfs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// batch builds a valid v2 batch at base with n records of size bytes each,
// timestamps ts, ts+1, ...
func batch(base int64, n int, size int, ts int64) []byte {
	var recs []byte
	for i := 0; i < n; i++ {
		r := kmsg.Record{TimestampDelta64: int64(i), OffsetDelta: int32(i), Value: bytes.Repeat([]byte{byte(i)}, size)}
		body := r.AppendTo(nil)[1:]
		r.Length = int32(len(body))
		recs = r.AppendTo(recs)
	}
	b := kmsg.RecordBatch{FirstOffset: base, Magic: 2, LastOffsetDelta: int32(n - 1), FirstTimestamp: ts,
		MaxTimestamp: ts + int64(n-1), ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(n), Records: recs}
	raw := b.AppendTo(nil)
	put := func(o int, v uint32) {
		raw[o], raw[o+1], raw[o+2], raw[o+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	}
	put(8, uint32(len(raw)-12))
	put(17, crc32.Checksum(raw[21:], crcTable))
	return raw
}

func openTest(t *testing.T, fs vfs.FS, opts LogOptions) (*Store, *Log) {
	t.Helper()
	s, err := OpenStore(StoreOptions{FS: fs, Dir: "b1"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.OpenLog("t-0", opts)
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	return s, l
}

// fill appends n batches of 3 records (offsets 3i..3i+2, timestamps 100i..).
func fill(t *testing.T, l *Log, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := 0; i < n; i++ {
		b := batch(l.LogEndOffset(), 3, 100, int64(100*i))
		// Append may scribble on its input (vfs.File.Write may, and
		// pebble's MemFS does under -race): keep a copy.
		out = append(out, append([]byte(nil), b...))
		if err := l.Append(b); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	return out
}

func TestAppendReadRollAndLimits(t *testing.T) {
	s, l := openTest(t, vfs.NewMem(), LogOptions{SegmentBytes: 1000, IndexIntervalBytes: 500})
	defer s.Close()
	bs := fill(t, l, 20) // each batch ~ 400 bytes: 2 per segment
	if l.LogEndOffset() != 60 || l.LogStartOffset() != 0 {
		t.Fatalf("leo %d start %d", l.LogEndOffset(), l.LogStartOffset())
	}
	if err := l.Append(batch(59, 1, 1, 0)); !errors.Is(err, ErrOffsetMismatch) {
		t.Fatalf("append at wrong offset: %v", err)
	}
	if len(l.mu.segs) < 10 {
		t.Fatalf("%d segments, want rolling at 1000 bytes", len(l.mu.segs))
	}
	for off := int64(0); off < 60; off++ {
		got, err := l.Read(off, 1, 60)
		if err != nil {
			t.Fatal(err)
		}
		if want := bs[off/3]; !bytes.Equal(got, want) {
			t.Fatalf("read %d: got %d bytes, want batch %d", off, len(got), off/3)
		}
	}
	// maxBytes: two whole batches fit in 900 bytes; at least one is
	// returned even for maxBytes 1; maxOffset hides batches not wholly
	// below it.
	got, _ := l.Read(0, 2*len(bs[0])+1, 60)
	if !bytes.Equal(got, append(append([]byte{}, bs[0]...), bs[1]...)) {
		t.Fatalf("read with room for two batches: %d bytes", len(got))
	}
	if got, _ := l.Read(0, 1<<20, 5); !bytes.Equal(got, bs[0]) {
		t.Fatalf("read below max offset 5: %d bytes", len(got))
	}
	if got, _ := l.Read(0, 1<<20, 2); len(got) != 0 {
		t.Fatalf("read with max offset inside the first batch returned %d bytes", len(got))
	}
	if got, err := l.Read(60, 100, 60); err != nil || len(got) != 0 {
		t.Fatalf("read at log end: %d bytes, %v", len(got), err)
	}
	if _, err := l.Read(61, 100, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past end: %v", err)
	}
	// Timestamps: batch i holds 100i..100i+2.
	for _, tc := range []struct {
		ts   int64
		base int64
		ok   bool
	}{{0, 0, true}, {101, 3, true}, {103, 6, true}, {1902, 57, true}, {1903, 0, false}} {
		b, ok, err := l.OffsetForTimestamp(tc.ts)
		if err != nil || ok != tc.ok {
			t.Fatalf("ts %d: ok %v err %v", tc.ts, ok, err)
		}
		if ok {
			h, _ := ParseBatchHeader(b)
			if h.BaseOffset != tc.base {
				t.Fatalf("ts %d: batch %d, want %d", tc.ts, h.BaseOffset, tc.base)
			}
		}
	}
	if ts, off := l.MaxTimestamp(); ts != 1902 || off != 59 {
		t.Fatalf("max timestamp %d at %d", ts, off)
	}
}

func TestReopenIdentical(t *testing.T) {
	for name, fs := range map[string]vfs.FS{"mem": vfs.NewMem(), "disk": vfs.Default} {
		t.Run(name, func(t *testing.T) {
			dir := "b1"
			if fs == vfs.Default {
				dir = t.TempDir()
			}
			s, err := OpenStore(StoreOptions{FS: fs, Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			l, err := s.OpenLog("t-0", LogOptions{SegmentBytes: 2000})
			if err != nil {
				t.Fatal(err)
			}
			fill(t, l, 15)
			l.AssignEpoch(0, 0)
			l.AssignEpoch(2, 30)
			if err := l.DeleteBefore(10); err != nil {
				t.Fatal(err)
			}
			all, _ := l.Read(12, 1<<20, 1<<40)
			s.Close()
			s, err = OpenStore(StoreOptions{FS: fs, Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			names, _ := s.Logs()
			if len(names) != 1 || names[0] != "t-0" {
				t.Fatalf("logs %v", names)
			}
			l, err = s.OpenLog("t-0", LogOptions{SegmentBytes: 2000})
			if err != nil {
				t.Fatal(err)
			}
			if l.LogEndOffset() != 45 || l.LogStartOffset() != 10 {
				t.Fatalf("after reopen: leo %d start %d", l.LogEndOffset(), l.LogStartOffset())
			}
			if got, _ := l.Read(12, 1<<20, 1<<40); !bytes.Equal(got, all) {
				t.Fatal("data differs after reopen")
			}
			if e, end := l.EndOffsetForEpoch(1); e != 0 || end != 30 {
				t.Fatalf("epoch 1 -> %d %d", e, end)
			}
			if ts, _ := l.MaxTimestamp(); ts != 1402 {
				t.Fatalf("max ts %d", ts)
			}
			fill(t, l, 1)
			if l.LogEndOffset() != 48 {
				t.Fatalf("append after reopen: leo %d", l.LogEndOffset())
			}
		})
	}
}

func TestTruncateAndEpochs(t *testing.T) {
	s, l := openTest(t, vfs.NewMem(), LogOptions{SegmentBytes: 1000})
	defer s.Close()
	l.AssignEpoch(1, 0)
	fill(t, l, 4)
	l.AssignEpoch(3, 12)
	l.AssignEpoch(2, 12) // older epoch: ignored
	fill(t, l, 4)
	if e, end := l.EndOffsetForEpoch(2); e != 1 || end != 12 {
		t.Fatalf("epoch 2 -> %d %d, want 1 12", e, end)
	}
	if e, end := l.EndOffsetForEpoch(3); e != 3 || end != 24 {
		t.Fatalf("latest epoch 3 -> %d %d, want 3 24", e, end)
	}
	if e, end := l.EndOffsetForEpoch(5); e != -1 || end != -1 {
		t.Fatalf("epoch 5 above all -> %d %d, want -1 -1", e, end)
	}
	if e, end := l.EndOffsetForEpoch(0); e != 0 || end != 0 {
		t.Fatalf("epoch 0 below all -> %d %d, want 0 0", e, end)
	}
	if err := l.Truncate(13); !errors.Is(err, ErrOffsetMismatch) {
		t.Fatalf("truncate inside a batch: %v", err)
	}
	if err := l.Truncate(9); err != nil {
		t.Fatal(err)
	}
	if l.LogEndOffset() != 9 || len(l.EpochEntries()) != 1 {
		t.Fatalf("after truncate: leo %d epochs %v", l.LogEndOffset(), l.EpochEntries())
	}
	if ts, _ := l.MaxTimestamp(); ts != 202 {
		t.Fatalf("max ts after truncate %d", ts)
	}
	if got, _ := l.Read(6, 1<<20, 100); len(got) == 0 {
		t.Fatal("data before the truncation point is gone")
	}
	fill(t, l, 2)
	if l.LogEndOffset() != 15 {
		t.Fatalf("leo %d", l.LogEndOffset())
	}
	if err := l.TruncateFully(100); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != 100 || l.LogEndOffset() != 100 {
		t.Fatalf("after TruncateFully: %d %d", l.LogStartOffset(), l.LogEndOffset())
	}
	if _, err := l.Read(50, 10, 200); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
	fill(t, l, 1)
	if l.LogEndOffset() != 103 {
		t.Fatalf("leo %d", l.LogEndOffset())
	}
}

// TestRecoverTornTail writes garbage and a half batch after valid data;
// reopening keeps exactly the valid batches and appends continue.
func TestRecoverTornTail(t *testing.T) {
	fs := vfs.NewMem()
	s, l := openTest(t, fs, LogOptions{})
	bs := fill(t, l, 5)
	act := l.mu.segs[len(l.mu.segs)-1]
	torn := batch(15, 3, 100, 9)
	act.f.WriteAt(torn[:len(torn)/2], act.size)
	s.Close()
	s, l = openTest(t, fs, LogOptions{})
	if l.LogEndOffset() != 15 {
		t.Fatalf("leo %d after torn tail, want 15", l.LogEndOffset())
	}
	got, _ := l.Read(0, 1<<20, 100)
	if !bytes.Equal(got, bytes.Join(bs, nil)) {
		t.Fatal("valid data changed by recovery")
	}
	// A batch with a bad CRC at the end is cut too.
	bad := batch(15, 1, 10, 0)
	bad[len(bad)-1] ^= 0xff
	act = l.mu.segs[len(l.mu.segs)-1]
	act.f.WriteAt(bad, act.size)
	s.Close()
	s, l = openTest(t, fs, LogOptions{})
	defer s.Close()
	if l.LogEndOffset() != 15 {
		t.Fatalf("leo %d after corrupt tail", l.LogEndOffset())
	}
	fill(t, l, 1)
	if got, err := l.Read(15, 1<<20, 100); err != nil || len(got) == 0 {
		t.Fatalf("append after recovery: %v", err)
	}
}

// TestCrashClone simulates power cuts with a crashable MemFS: whatever was
// synced survives, the log reopens consistent (every batch readable, offsets
// contiguous), and appends continue.
func TestCrashClone(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 20; round++ {
		fs := vfs.NewCrashableMem()
		s, l := openTest(t, fs, LogOptions{SegmentBytes: 3000, IndexIntervalBytes: 300})
		fill(t, l, 10)
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		synced := l.LogEndOffset()
		fill(t, l, 1+rng.IntN(10))
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(100), RNG: rand.New(rand.NewPCG(uint64(round), 7))})
		s.Close()
		s2, l2 := openTest(t, crashed, LogOptions{SegmentBytes: 3000, IndexIntervalBytes: 300})
		leo := l2.LogEndOffset()
		if leo < synced {
			t.Fatalf("round %d: synced data lost: leo %d < %d", round, leo, synced)
		}
		for off := int64(0); off < leo; off += 3 {
			got, err := l2.Read(off, 1, leo)
			if err != nil {
				t.Fatalf("round %d: read %d: %v", round, off, err)
			}
			h, err := ValidateBatch(got)
			if err != nil || h.BaseOffset != off {
				t.Fatalf("round %d: batch at %d: %v %+v", round, off, err, h)
			}
		}
		fill(t, l2, 1)
		s2.Close()
	}
}

func TestRemoveLog(t *testing.T) {
	s, l := openTest(t, vfs.NewMem(), LogOptions{})
	defer s.Close()
	fill(t, l, 3)
	if err := s.RemoveLog("t-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Read(0, 10, 10); !errors.Is(err, ErrClosed) {
		t.Fatalf("read of removed log: %v", err)
	}
	l, err := s.OpenLog("t-0", LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.LogEndOffset() != 0 || len(l.EpochEntries()) != 0 {
		t.Fatalf("recreated log not empty: leo %d", l.LogEndOffset())
	}
}

// BenchmarkAppend appends 16 KiB batches to a log in memory (memfs, as a
// cluster's brokers store them by default).
func BenchmarkAppend(b *testing.B) {
	s, err := OpenStore(StoreOptions{FS: memfs.New(), Dir: "b"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l, _ := s.OpenLog("t-0", LogOptions{})
	proto := batch(0, 16, 1024, 0)
	b.SetBytes(int64(len(proto)))
	for i := 0; i < b.N; i++ {
		SetBaseOffset(proto, l.LogEndOffset())
		if err := l.Append(proto); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadTail reads one batch from the last 64 of a log in memory,
// as a consumer or follower near the end does.
func BenchmarkReadTail(b *testing.B) {
	s, err := OpenStore(StoreOptions{FS: memfs.New(), Dir: "b"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l, _ := s.OpenLog("t-0", LogOptions{})
	proto := batch(0, 16, 1024, 0)
	for i := 0; i < 1000; i++ {
		SetBaseOffset(proto, l.LogEndOffset())
		l.Append(proto)
	}
	b.SetBytes(int64(len(proto)))
	leo := l.LogEndOffset()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		off := leo - 16*int64(1+i%64)
		if _, err := l.Read(off, 1, leo); err != nil {
			b.Fatal(err)
		}
	}
}

func TestHighWatermarkCheckpoint(t *testing.T) {
	fs := vfs.NewMem()
	s, l := openTest(t, fs, LogOptions{})
	if hw := l.HighWatermarkCheckpoint(); hw != 0 {
		t.Fatalf("fresh log checkpoint %d", hw)
	}
	fill(t, l, 4)
	if err := l.CheckpointHighWatermark(9); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, l = openTest(t, fs, LogOptions{})
	if hw := l.HighWatermarkCheckpoint(); hw != 9 {
		t.Fatalf("checkpoint after reopen %d, want 9", hw)
	}
	// Capped by the log end after a truncation.
	if err := l.Truncate(6); err != nil {
		t.Fatal(err)
	}
	if hw := l.HighWatermarkCheckpoint(); hw != 6 {
		t.Fatalf("checkpoint above the log end: %d, want 6", hw)
	}
	s.Close()
}

// A follower's copy of a compacted log skips the offsets the leader's
// cleaner removed: AppendFollower takes a batch past the log end, Append
// does not, neither takes one before it, and reads skip the gap.
func TestAppendFollowerAcrossCompactionGaps(t *testing.T) {
	s, l := openTest(t, vfs.NewMem(), LogOptions{SegmentBytes: 1 << 20, IndexIntervalBytes: 1})
	defer s.Close()
	fill(t, l, 1) // offsets 0-2
	if err := l.Append(batch(10, 2, 1, 0)); !errors.Is(err, ErrOffsetMismatch) {
		t.Fatalf("leader append past the log end: %v", err)
	}
	if err := l.AppendFollower(batch(2, 2, 1, 0)); !errors.Is(err, ErrOffsetMismatch) {
		t.Fatalf("follower append before the log end: %v", err)
	}
	if err := l.AppendFollower(append(batch(10, 2, 1, 0), batch(20, 1, 1, 0)...)); err != nil {
		t.Fatalf("follower append across gaps: %v", err)
	}
	if l.LogEndOffset() != 21 {
		t.Fatalf("log end %d, want 21", l.LogEndOffset())
	}
	got, err := l.Read(5, 1, 21)
	if err != nil || len(got) == 0 {
		t.Fatalf("read in the gap: %v", err)
	}
	if h, _ := ParseBatchHeader(got); h.BaseOffset != 10 {
		t.Fatalf("a read in the gap starts at %d, want the next batch at 10", h.BaseOffset)
	}
}

// A new store's index opens with its first log: a store closed before any
// log is opened has no index on its files and leaves nothing running, and
// a store opened again on the same files finds its logs (its index opens
// before OpenStore returns).
func TestStoreIndexOpensWithTheFirstLog(t *testing.T) {
	fs := vfs.NewMem()
	s, err := OpenStore(StoreOptions{FS: fs, Dir: "fresh"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(fs.PathJoin("fresh", "index")); err == nil {
		t.Fatal("a store closed before its first log created an index")
	}
	if _, err := s.OpenLog("t-0", LogOptions{}); err == nil {
		t.Fatal("a log opened in a closed store")
	}
	// PrepareIndex opens it in the background; Close waits for that
	// (goleak checks nothing is left running).
	s, err = OpenStore(StoreOptions{FS: fs, Dir: "prepared"})
	if err != nil {
		t.Fatal(err)
	}
	s.PrepareIndex()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.PrepareIndex() // after Close: nothing
	select {
	case <-s.indexReady:
	default:
		t.Fatal("Close returned before the index open it waited for")
	}
	s, l := openTest(t, fs, LogOptions{})
	fill(t, l, 3)
	if err := l.CheckpointHighWatermark(9); err != nil {
		t.Fatal(err)
	}
	s = reopenStore(t, s, fs)
	defer s.Close()
	select {
	case <-s.indexReady:
	default:
		t.Fatal("an existing index was not open when OpenStore returned")
	}
	l, err = s.OpenLog("t-0", LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.LogEndOffset() != 9 {
		t.Fatalf("log end %d after reopening, want 9", l.LogEndOffset())
	}
}
