package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kcluster/kcluster/internal/invariants"
)

// LogOptions configures OpenLog.
type LogOptions struct {
	// SegmentBytes rolls a new segment when the active one would pass it
	// (Kafka's segment.bytes). Zero means 1 GiB.
	SegmentBytes int64
	// IndexIntervalBytes is the number of bytes between sparse offset
	// index entries (Kafka's index.interval.bytes). Zero means 4096.
	IndexIntervalBytes int64
	// FlushMessages syncs the log (active segment and index) once this
	// many records were appended since it was last synced, before Append
	// returns (Kafka's flush.messages). Zero never syncs on append, as
	// Kafka's default; segments are still synced when they roll, and by
	// Sync.
	FlushMessages int64
}

// EpochEntry is one leader-epoch cache entry: epoch started at StartOffset.
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}

type segFile struct {
	base int64
	size int64
	f    vfs.File
	path string
	// created is when this process opened or created the file (Kafka
	// rolls by segment.ms from the segment's creation).
	created time.Time
	// maxTS is the largest timestamp of the first tsScanned bytes
	// (retention.go).
	maxTS     int64
	tsScanned int64
	// alloc is where the file's preallocated space ends (prealloc.go):
	// at most size when none is.
	alloc int64
}

// batchPos remembers where a recent batch of the active segment is, so
// reads at the tail need no index lookup.
type batchPos struct {
	base, last int64
	pos        int64
	size       int32
}

const tailCache = 128

// maxKeptWriteBuf bounds the write buffers a Store pools between appends.
const maxKeptWriteBuf = 1 << 20

// Log is one partition replica's log. One writer (Append, Truncate,
// TruncateFully, DeleteBefore, AssignEpoch) and many readers may use it
// concurrently: writers take mu exclusively, readers share it.
type Log struct {
	s    *Store
	name string
	dir  string
	opts LogOptions

	mu struct {
		sync.RWMutex
		closed      bool
		segs        []*segFile
		start, leo  int64
		sinceIndex  int64
		maxTS       int64
		maxTSOffset int64
		unflushed   int64 // records appended since the last sync
		epochs      []EpochEntry
		tail        []batchPos // recent batches of the active segment, ascending
		// failed is the first I/O error of a write: the log refuses
		// every later write with it (see failOnIOErrorLocked).
		failed    error
		cleanedTo int64 // the log cleaner has cleaned below this (compact.go)
		horizon   int64 // the earliest tombstone delete horizon ahead, 0: none
	}
	// cleaner serializes Compact runs.
	cleaner sync.Mutex
	// fresh is Fresh's answer, settled by open.
	fresh bool
}

// Fresh reports whether the log was new when it was opened, in a way that
// leaves nothing to look up: it had no segment, its store's index was
// created by this Store, and no log of its name had been opened in this
// Store before, so the index could hold no entry of it (every entry of a
// log is written through an open Log). Opening such a log asks the index
// nothing; its owner may skip what it would read back from the log or the
// index at open (producers, snapshots, aborted transactions, the high
// watermark checkpoint): there is none.
func (l *Log) Fresh() bool { return l.fresh }

func (l *Log) key(kind byte, v uint64) []byte {
	k := make([]byte, 0, len(l.name)+10)
	k = append(k, l.name...)
	k = append(k, 0, kind)
	return binary.BigEndian.AppendUint64(k, v)
}

func (l *Log) prefix(kind byte) []byte {
	return append(append([]byte(l.name), 0), kind)
}

func segName(base int64) string { return fmt.Sprintf("%020d.log", base) }

// OpenLog opens or creates the named log and recovers it.
func (s *Store) OpenLog(name string, opts LogOptions) (*Log, error) {
	if !validName(name) {
		return nil, fmt.Errorf("segment: invalid log name %q", name)
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 1 << 30
	}
	if opts.IndexIntervalBytes <= 0 {
		opts.IndexIntervalBytes = 4096
	}
	if err := s.waitIndex(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return nil, ErrClosed
	}
	if s.mu.logs[name] != nil {
		return nil, fmt.Errorf("segment: log %q is already open", name)
	}
	l := &Log{s: s, name: name, dir: s.fs.PathJoin(s.dir, name), opts: opts}
	if err := l.open(); err != nil {
		l.closeFiles()
		return nil, err
	}
	s.mu.logs[name] = l
	return l, nil
}

// hasKeys reports whether the index has a key in [lo, hi).
func (l *Log) hasKeys(lo, hi []byte) (bool, error) {
	it, err := l.s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return false, err
	}
	found := it.First()
	if err := it.Close(); err != nil {
		return false, err
	}
	return found, nil
}

func (l *Log) open() error {
	fs := l.s.fs
	if err := fs.MkdirAll(l.dir, 0o755); err != nil {
		return err
	}
	l.s.dirDirty.Store(true) // after MkdirAll: see syncStoreDir
	names, err := fs.List(l.dir)
	if err != nil {
		return err
	}
	var bases []int64
	for _, n := range names {
		if !strings.HasSuffix(n, ".log") {
			continue
		}
		b, err := strconv.ParseInt(strings.TrimSuffix(n, ".log"), 10, 64)
		if err != nil {
			continue
		}
		bases = append(bases, b)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	l.mu.maxTS, l.mu.maxTSOffset = -1, -1
	if l.s.fresh {
		_, seen := l.s.mu.seen[l.name]
		l.s.mu.seen[l.name] = struct{}{}
		if !seen && len(bases) == 0 {
			// Nothing to read back (Fresh): start at offset 0 with
			// no epochs and no stale entries to remove. The lookups,
			// with the owner's, are nine pebble iterators and Gets per
			// new log, about 3% of a typical test's CPU.
			l.fresh = true
			if err := l.rollLocked(0); err != nil {
				return err
			}
			l.mu.leo = 0
			return nil
		}
	}
	// Log start offset.
	if v, closer, err := l.s.db.Get(l.key('m', 0)); err == nil {
		l.mu.start = int64(binary.BigEndian.Uint64(v))
		closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	for _, b := range bases {
		p := fs.PathJoin(l.dir, segName(b))
		f, err := fs.Open(p)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		l.mu.segs = append(l.mu.segs, &segFile{base: b, size: st.Size(), f: f, path: p, created: time.Now()})
	}
	// The epoch cache first: recovery truncates it to the recovered log
	// end and extends it from the batches it scans.
	it, err := l.s.db.NewIter(&pebble.IterOptions{LowerBound: l.prefix('e'), UpperBound: l.prefix('e' + 1)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		e := int32(binary.BigEndian.Uint64(k[len(k)-8:]))
		l.mu.epochs = append(l.mu.epochs, EpochEntry{Epoch: e, StartOffset: int64(binary.BigEndian.Uint64(it.Value()))})
	}
	if err := it.Close(); err != nil {
		return err
	}
	if len(l.mu.segs) == 0 {
		// No data: index entries left by a crash inside TruncateFully
		// or RemoveLog would point into the segment about to be made.
		// Range deletions are written only when such entries exist:
		// every range deletion in the memtable is re-fragmented by each
		// new iterator, so one per new log would make opening n logs
		// cost O(n²).
		for _, k := range []byte{'o', 't'} {
			stale, err := l.hasKeys(l.prefix(k), l.prefix(k+1))
			if err != nil {
				return err
			}
			if !stale {
				continue
			}
			if err := l.s.db.DeleteRange(l.prefix(k), l.prefix(k+1), pebble.NoSync); err != nil {
				return err
			}
		}
		if err := l.rollLocked(l.mu.start); err != nil {
			return err
		}
		l.mu.leo = l.mu.start
	} else {
		if err := l.recoverLocked(); err != nil {
			return err
		}
		// Appends go through Write at the end of a file created by
		// this process (vfs.File has no Seek, and MemFS's WriteAt
		// grows a byte at a time), so a reopened log continues in a
		// new segment; an empty last segment is simply recreated.
		last := l.mu.segs[len(l.mu.segs)-1]
		if last.size == 0 {
			last.f.Close()
			l.mu.segs = l.mu.segs[:len(l.mu.segs)-1]
		}
		if err := l.rollLocked(l.mu.leo); err != nil {
			return err
		}
	}
	if l.mu.start < l.mu.segs[0].base {
		l.mu.start = l.mu.segs[0].base
	}
	// Max timestamp: the last time index entry.
	it, err = l.s.db.NewIter(&pebble.IterOptions{LowerBound: l.prefix('t'), UpperBound: l.prefix('t' + 1)})
	if err != nil {
		return err
	}
	if it.Last() {
		k := it.Key()
		l.mu.maxTS = int64(binary.BigEndian.Uint64(k[len(k)-8:]) ^ 1<<63)
		_, l.mu.maxTSOffset = timeValue(it.Value())
	}
	return it.Close()
}

func (l *Log) putIndex(b *pebble.Batch, off, seg, pos int64) {
	v := binary.BigEndian.AppendUint64(nil, uint64(seg))
	v = binary.BigEndian.AppendUint64(v, uint64(pos))
	b.Set(l.key('o', uint64(off)), v, nil)
}

// putTime adds a time index entry when the batch raises the max timestamp.
func (l *Log) putTime(b *pebble.Batch, h BatchHeader) {
	if h.MaxTimestamp > l.mu.maxTS {
		l.mu.maxTS, l.mu.maxTSOffset = h.MaxTimestamp, h.LastOffset()
		v := binary.BigEndian.AppendUint64(nil, uint64(h.BaseOffset))
		v = binary.BigEndian.AppendUint64(v, uint64(h.LastOffset()))
		b.Set(l.key('t', uint64(h.MaxTimestamp)^1<<63), v, nil)
	}
}

// timeValue decodes a time index value: the base offset of the batch that
// raised the max timestamp and its last offset (older entries hold only the
// base offset).
func timeValue(v []byte) (base, last int64) {
	base = int64(binary.BigEndian.Uint64(v))
	last = base
	if len(v) >= 16 {
		last = int64(binary.BigEndian.Uint64(v[8:]))
	}
	return base, last
}

// deleteTimeFromLocked removes time index entries of batches at or after
// off (they are a suffix: entries rise in both time and offset) and resets
// the max timestamp.
func (l *Log) deleteTimeFromLocked(b *pebble.Batch, off int64) error {
	it, err := l.s.db.NewIter(&pebble.IterOptions{LowerBound: l.prefix('t'), UpperBound: l.prefix('t' + 1)})
	if err != nil {
		return err
	}
	l.mu.maxTS, l.mu.maxTSOffset = -1, -1
	for ok := it.Last(); ok; ok = it.Prev() {
		o, last := timeValue(it.Value())
		if o < off {
			k := it.Key()
			l.mu.maxTS = int64(binary.BigEndian.Uint64(k[len(k)-8:]) ^ 1<<63)
			l.mu.maxTSOffset = last
			break
		}
		if err := b.Delete(append([]byte(nil), it.Key()...), nil); err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}

// cutFileLocked shortens a segment file to size by copying its prefix to a
// new file and renaming it over the old one (vfs.File has no Truncate).
func (l *Log) cutFileLocked(s *segFile, size int64) error {
	fs := l.s.fs
	tmp := s.path + ".cut"
	nf, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := io.Copy(nf, io.NewSectionReader(s.f, 0, size)); err != nil {
		nf.Close()
		return err
	}
	if err := l.s.syncStoreDir(); err != nil {
		nf.Close()
		return err
	}
	if err := nf.Sync(); err != nil {
		nf.Close()
		return err
	}
	// The old file stays open (and in use) until the new one has
	// replaced it: a failed rename leaves the segment as it was.
	if err := fs.Rename(tmp, s.path); err != nil {
		nf.Close()
		return err
	}
	// The new file stays open, positioned at its end for appends.
	s.f.Close()
	s.f, s.size, s.alloc = nf, size, 0
	return syncDir(fs, l.dir)
}

// rollLocked starts a new active segment at base.
func (l *Log) rollLocked(base int64) error {
	p := l.s.fs.PathJoin(l.dir, segName(base))
	f, err := l.s.fs.Create(p, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if n := len(l.mu.segs); n > 0 {
		// The previous active segment is complete: sync it, as Kafka
		// flushes a segment when it rolls.
		if err := l.s.syncStoreDir(); err != nil {
			f.Close()
			return err
		}
		trimPreallocated(l.mu.segs[n-1])
		if err := l.mu.segs[n-1].f.Sync(); err != nil {
			f.Close()
			return err
		}
		// Recovery checks only the last segment: the index entries
		// of the finished one must be as durable as its data.
		if err := l.s.db.LogData(nil, pebble.Sync); err != nil {
			f.Close()
			return err
		}
	}
	if err := syncDir(l.s.fs, l.dir); err != nil {
		f.Close()
		return err
	}
	l.mu.segs = append(l.mu.segs, &segFile{base: base, f: f, path: p, created: time.Now()})
	l.mu.sinceIndex = 0
	l.mu.tail = l.mu.tail[:0]
	return nil
}

// Append appends one or more complete batches, whose offsets are already
// assigned and start at LogEndOffset, stored byte for byte as given.
// Append does not modify or keep batches.
func (l *Log) Append(batches []byte) error { return l.append(batches, false) }

// AppendFollower is Append for batches copied from a leader's log, whose
// offsets increase but may skip what the leader's log cleaner removed (a
// compacted log keeps its offsets, not every batch), as Kafka's follower
// append allows: each batch starts at or after the end of the one before.
func (l *Log) AppendFollower(batches []byte) error { return l.append(batches, true) }

func (l *Log) append(batches []byte, gaps bool) (err error) {
	// Check framing and offsets before taking the lock.
	type item struct {
		h   BatchHeader
		off int
	}
	var items []item
	for off := 0; off < len(batches); {
		h, err := ParseBatchHeader(batches[off:])
		if err != nil {
			return err
		}
		if off+h.TotalSize() > len(batches) {
			return fmt.Errorf("%w: batch of %d bytes, %d present", ErrCorrupt, h.TotalSize(), len(batches)-off)
		}
		items = append(items, item{h, off})
		off += h.TotalSize()
	}
	if len(items) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if l.mu.failed != nil {
		return l.mu.failed
	}
	defer l.failOnIOErrorLocked(&err)
	next := l.mu.leo
	for _, it := range items {
		if it.h.BaseOffset != next && (!gaps || it.h.BaseOffset < next) {
			return fmt.Errorf("%w: batch at %d, log end %d", ErrOffsetMismatch, it.h.BaseOffset, next)
		}
		next = it.h.LastOffset() + 1
	}
	b := l.s.db.NewBatch()
	defer b.Close()
	for i := 0; i < len(items); {
		act := l.mu.segs[len(l.mu.segs)-1]
		// Take as many batches as fit in the active segment (at least
		// one if the segment is empty).
		j, size := i, int64(0)
		for j < len(items) && (act.size+size == 0 || act.size+size+int64(items[j].h.TotalSize()) <= l.opts.SegmentBytes) {
			size += int64(items[j].h.TotalSize())
			j++
		}
		if j == i {
			// The finished segment's index entries go in before the
			// roll syncs the index with it.
			if !b.Empty() {
				if err := b.Commit(pebble.NoSync); err != nil {
					return err
				}
				b.Reset()
			}
			if err := l.rollLocked(items[i].h.BaseOffset); err != nil {
				return err
			}
			continue
		}
		start := items[i].off
		end := items[j-1].off + items[j-1].h.TotalSize()
		// Write appends at the file's position, which is its end: every
		// active segment was created (or cut) by this process.
		l.preallocateLocked(act, int64(end-start))
		if err := l.writeLocked(act, batches[start:end]); err != nil {
			return fmt.Errorf("segment: writing %s: %w", act.path, err)
		}
		for k := i; k < j; k++ {
			h := items[k].h
			pos := act.size + int64(items[k].off-start)
			if l.mu.sinceIndex == 0 || l.mu.sinceIndex >= l.opts.IndexIntervalBytes {
				l.putIndex(b, h.BaseOffset, act.base, pos)
				l.mu.sinceIndex = 0
			}
			l.mu.sinceIndex += int64(h.TotalSize())
			l.putTime(b, h)
			if len(l.mu.tail) == tailCache {
				copy(l.mu.tail, l.mu.tail[1:])
				l.mu.tail = l.mu.tail[:tailCache-1]
			}
			l.mu.tail = append(l.mu.tail, batchPos{base: h.BaseOffset, last: h.LastOffset(), pos: pos, size: int32(h.TotalSize())})
		}
		act.size += int64(end - start)
		l.mu.leo = items[j-1].h.LastOffset() + 1
		i = j
	}
	if !b.Empty() {
		if err := b.Commit(pebble.NoSync); err != nil {
			return err
		}
	}
	if invariants.Enabled {
		hs := make([]BatchHeader, len(items))
		for i, it := range items {
			hs[i] = it.h
		}
		if msg := CheckAppended(items[0].h.BaseOffset, l.mu.leo, hs, gaps); msg != "" {
			l.violatedLocked(msg)
		}
	}
	l.mu.unflushed += next - items[0].h.BaseOffset
	if f := l.opts.FlushMessages; f > 0 && l.mu.unflushed >= f {
		return l.syncLocked()
	}
	return nil
}

// writeLocked appends p to the active segment s. Where a write may modify
// its argument (see writesMayModify), it writes from a pooled copy so the
// caller's bytes stay untouched, without a buffer per log.
func (l *Log) writeLocked(s *segFile, p []byte) error {
	if !writesMayModify {
		_, err := s.f.Write(p)
		return err
	}
	bp := l.s.wbufs.Get().(*[]byte)
	*bp = append((*bp)[:0], p...)
	_, err := s.f.Write(*bp)
	if cap(*bp) <= maxKeptWriteBuf {
		l.s.wbufs.Put(bp)
	}
	return err
}

// Sync syncs the active segment and the index.
func (l *Log) Sync() (err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if l.mu.failed != nil {
		return l.mu.failed
	}
	defer l.failOnIOErrorLocked(&err)
	return l.syncLocked()
}

func (l *Log) syncLocked() error {
	if err := l.s.syncStoreDir(); err != nil {
		return err
	}
	if err := l.mu.segs[len(l.mu.segs)-1].f.Sync(); err != nil {
		return fmt.Errorf("segment: syncing %s: %w", l.mu.segs[len(l.mu.segs)-1].path, err)
	}
	if err := l.s.db.LogData(nil, pebble.Sync); err != nil {
		return err
	}
	l.mu.unflushed = 0
	return nil
}

// Close closes the log's files. It is safe to call more than once.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil
	}
	l.mu.closed = true
	l.s.forget(l)
	return l.closeFiles()
}

func (l *Log) closeFiles() error {
	var errs []error
	for _, s := range l.mu.segs {
		trimPreallocated(s)
		errs = append(errs, s.f.Close())
	}
	return errors.Join(errs...)
}

// CheckpointHighWatermark persists the replica's high watermark (Kafka's
// replication-offset-checkpoint), unsynced; Sync or a later sync makes it
// durable.
func (l *Log) CheckpointHighWatermark(hw int64) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.closed {
		return ErrClosed
	}
	return l.s.db.Set(l.key('h', 0), binary.BigEndian.AppendUint64(nil, uint64(hw)), pebble.NoSync)
}

// HighWatermarkCheckpoint returns the last checkpointed high watermark,
// capped at the log end offset, or the log start offset when there is none.
func (l *Log) HighWatermarkCheckpoint() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	hw := l.mu.start
	if v, closer, err := l.s.db.Get(l.key('h', 0)); err == nil {
		hw = int64(binary.BigEndian.Uint64(v))
		closer.Close()
	}
	return max(min(hw, l.mu.leo), l.mu.start)
}

// failOnIOErrorLocked makes an I/O error of a write sticky: after a failed
// write the segments, the index and what the Log remembers of them may
// disagree, so, as Kafka takes a log offline after an IOException, every
// later write returns the same error (reads go on). Errors about the
// caller's input (offsets, corrupt batches) and ErrClosed are not I/O
// errors.
func (l *Log) failOnIOErrorLocked(err *error) {
	if *err == nil || l.mu.failed != nil {
		return
	}
	for _, e := range []error{ErrOffsetMismatch, ErrCorrupt, ErrClosed, ErrOffsetOutOfRange} {
		if errors.Is(*err, e) {
			return
		}
	}
	l.mu.failed = fmt.Errorf("%w: %s: %w", ErrFailed, l.name, *err)
	*err = l.mu.failed
}
