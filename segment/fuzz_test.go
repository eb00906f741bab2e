package segment

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kgo"
)

// FuzzValidateBatch runs the batch checks on arbitrary bytes: nothing
// panics, and what ValidateBatch accepts is a batch of exactly TotalSize
// bytes whose offsets do not run backwards.
func FuzzValidateBatch(f *testing.F) {
	for _, seed := range batchSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ph, perr := ParseBatchHeader(b)
		h, err := ValidateBatch(b)
		_, recs, rerr := BatchRecords(b, nil)
		if perr != nil && (err == nil || rerr == nil) {
			t.Fatalf("ParseBatchHeader refused (%v) what ValidateBatch (%v) or BatchRecords (%v) accepted", perr, err, rerr)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ValidateBatch error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if h != ph {
			t.Fatalf("ValidateBatch header %+v, ParseBatchHeader %+v", h, ph)
		}
		if h.TotalSize() > len(b) {
			t.Fatalf("accepted a batch of %d bytes from %d", h.TotalSize(), len(b))
		}
		if h2, err := ValidateBatch(b[:h.TotalSize()]); err != nil || h2 != h {
			t.Fatalf("the batch alone: %v, header %+v want %+v", err, h2, h)
		}
		if h.LastOffset() < h.BaseOffset {
			t.Fatalf("last offset %d below base offset %d", h.LastOffset(), h.BaseOffset)
		}
		if rerr == nil && len(recs) != int(h.NumRecords) {
			t.Fatalf("%d records decoded, header says %d", len(recs), h.NumRecords)
		}
	})
}

// batchSeeds are valid batches: plain, one per compression codec, a
// control batch, and two batches back to back.
func batchSeeds(tb testing.TB) [][]byte {
	seeds := [][]byte{batch(0, 3, 10, 100), batch(1<<40, 1, 0, -1)}
	recs := []Record{
		{Offset: 7, Timestamp: 50, Key: []byte("k"), Value: []byte("v")},
		{Offset: 8, Timestamp: 51, Value: bytes.Repeat([]byte("x"), 200)},
	}
	comps := map[int8]kgo.Compressor{}
	for codec := int16(0); codec <= 4; codec++ {
		h := BatchHeader{BaseOffset: 7, Attributes: codec, LastOffsetDelta: 1, FirstTimestamp: 50, MaxTimestamp: 51,
			ProducerID: 3, ProducerEpoch: 1, BaseSequence: 0}
		b, err := rebuildBatch(h, recs, false, 0, comps)
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	ctl := BatchHeader{BaseOffset: 9, Attributes: 0x30, FirstTimestamp: 52, MaxTimestamp: 52, ProducerID: 3, ProducerEpoch: 1, BaseSequence: -1}
	b, err := rebuildBatch(ctl, []Record{{Offset: 9, Timestamp: 52, Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 0}}}, false, 0, comps)
	if err != nil {
		tb.Fatal(err)
	}
	seeds = append(seeds, b, append(batch(0, 2, 5, 0), batch(2, 2, 5, 0)...))
	return seeds
}

// FuzzRecovery writes a log, damages its active segment as a crash or a
// torn write would (cut it short, overwrite bytes), and reopens it: the
// reopened log holds contiguous valid batches, ends no later than before,
// has a monotonic epoch cache, and takes appends.
//
// Only the active segment is damaged, and the index interval is large so
// that its only index entry is its first batch: recovery validates the
// active segment from its last index entry on, as Kafka recovers from its
// recovery point, and trusts what a clean close left before that (older
// segments, and batches behind an index entry). Damage there is bit rot,
// which recovery does not look for.
func FuzzRecovery(f *testing.F) {
	f.Add(uint32(0), uint32(0), []byte(nil))
	f.Add(uint32(1000), uint32(0), []byte(nil))
	f.Add(uint32(1<<31), uint32(5), []byte{0xff})
	f.Add(uint32(1<<31), uint32(0), []byte{0, 0, 0, 0, 0, 0, 0, 0x2a})
	f.Add(uint32(1<<31), uint32(12), []byte{0x7f, 0xff, 0xff, 0xff})
	f.Add(uint32(300), uint32(200), bytes.Repeat([]byte{0}, 100))
	f.Fuzz(func(t *testing.T, cut, at uint32, junk []byte) {
		const batches = 10
		opts := LogOptions{SegmentBytes: 1500, IndexIntervalBytes: 1 << 30}
		fs := vfs.NewMem()
		s, l := openTest(t, fs, opts)
		for i := range batches {
			if i%4 == 0 {
				if err := l.AssignEpoch(int32(i), l.LogEndOffset()); err != nil {
					t.Fatal(err)
				}
			}
			b := batch(l.LogEndOffset(), 3, 100, int64(100*i))
			SetPartitionLeaderEpoch(b, int32(i/4*4))
			if err := l.Append(b); err != nil {
				t.Fatalf("append %d: %v", i, err)
			}
		}
		end := l.LogEndOffset()
		l.mu.RLock()
		path := l.mu.segs[len(l.mu.segs)-1].path
		l.mu.RUnlock()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		damage(t, fs, path, cut, at, junk)

		s, l = openTest(t, fs, opts)
		defer s.Close()
		leo, start := l.LogEndOffset(), l.LogStartOffset()
		if leo > end || leo < start {
			t.Fatalf("reopened log [%d, %d), was [0, %d)", start, leo, end)
		}
		for off := start; off < leo; {
			got, err := l.Read(off, 1, leo)
			if err != nil {
				t.Fatalf("read %d: %v", off, err)
			}
			h, err := ValidateBatch(got)
			if err != nil {
				t.Fatalf("batch at %d: %v", off, err)
			}
			if h.BaseOffset != off || h.TotalSize() != len(got) {
				t.Fatalf("read at %d: batch [%d, %d] of %d bytes, read %d", off, h.BaseOffset, h.LastOffset(), h.TotalSize(), len(got))
			}
			off = h.LastOffset() + 1
			if off > leo {
				t.Fatalf("batch at %d ends at %d, past the log end %d", h.BaseOffset, off, leo)
			}
		}
		es := l.EpochEntries()
		for i, e := range es {
			if i > 0 && (e.Epoch <= es[i-1].Epoch || e.StartOffset < es[i-1].StartOffset) {
				t.Fatalf("epoch cache not monotonic: %+v", es)
			}
			if e.StartOffset > leo {
				t.Fatalf("epoch %d starts at %d, past the log end %d: %+v", e.Epoch, e.StartOffset, leo, es)
			}
		}
		if err := l.Append(batch(leo, 2, 10, 0)); err != nil {
			t.Fatalf("append after reopen at %d: %v", leo, err)
		}
		if got := l.LogEndOffset(); got != leo+2 {
			t.Fatalf("log end %d after appending 2 records at %d", got, leo)
		}
	})
}

// damage cuts the file at path to cut mod (size+1) bytes, then writes junk
// at at mod (new size+1), growing the file if junk runs past its end.
func damage(t *testing.T, fs vfs.FS, path string, cut, at uint32, junk []byte) {
	t.Helper()
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	data = data[:int64(cut)%int64(len(data)+1)]
	if len(junk) > 0 {
		pos := int(int64(at) % int64(len(data)+1))
		data = slices.Concat(data[:pos], junk, data[min(pos+len(junk), len(data)):])
	}
	nf, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	defer nf.Close()
	if _, err := nf.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := nf.Sync(); err != nil {
		t.Fatal(err)
	}
}
