package segment

// Log compaction (Kafka's LogCleaner, cleanup.policy=compact): the cleaner
// reads the cleanable part of a log (finished segments below a bound the
// caller gives, the high watermark), keeps the latest record of each key,
// and rewrites each segment with only what it keeps. Offsets never change:
// batches keep their base and last offsets (a kept batch may hold fewer
// records, with gaps), so a consumer reading from offset 0 sees the
// latest value of every key, in offset order.
//
// Tombstones (a null value) are kept until their delete horizon passes:
// the first clean that keeps a tombstone stamps its batch with
// now+delete.retention.ms (KIP-534: attribute bit 6, the horizon in the
// first timestamp); a later clean after the horizon drops it.
//
// Transactions: control batches (commit and abort markers) and the
// batches of transactions are kept as they are, and transactional records
// never stand in for older records of the same key, so read_committed and
// read_uncommitted consumers see what they saw before (a conservative
// reading of Kafka's rules, which also drops aborted data and spent
// markers).
//
// Compressed batches are decompressed, filtered, and compressed again
// with their own codec.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const attrDeleteHorizon = 0x40

// CompactOptions is what Compact needs.
type CompactOptions struct {
	// UpTo bounds the cleanable part: only segments whose every offset
	// is below it are cleaned (the high watermark). The active segment
	// is never cleaned.
	UpTo int64
	// Now is the cleaner's clock (zero: time.Now()).
	Now time.Time
	// DeleteRetention is delete.retention.ms.
	DeleteRetention time.Duration
	// MinCompactionLag is min.compaction.lag.ms: a segment whose newest
	// record is younger is not cleaned.
	MinCompactionLag time.Duration
	// MinDirtyRatio, when positive, skips the clean unless at least this
	// share of the cleanable bytes is dirty (written since the last
	// clean), as min.cleanable.dirty.ratio.
	MinDirtyRatio float64
	// MaxCompactionLag is max.compaction.lag.ms: dirty data older than
	// this is cleaned whatever the ratio (zero: no limit).
	MaxCompactionLag time.Duration
}

// CompactStats reports one clean.
type CompactStats struct {
	Segments       int   // segments rewritten
	BytesRead      int64 // bytes of the segments cleaned
	BytesWritten   int64 // bytes after cleaning
	RecordsRead    int
	RecordsRemoved int
}

type cleanSeg struct {
	base, size int64
	f          vfs.File
	path       string
	next       int64 // the next segment's base
	data       []byte
	out        []byte
}

// Compact cleans the log. It returns zero stats when nothing is
// cleanable.
func (l *Log) Compact(o CompactOptions) (CompactStats, error) {
	l.cleaner.Lock()
	defer l.cleaner.Unlock()
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	var st CompactStats
	// The cleanable prefix of finished segments.
	l.mu.RLock()
	if l.mu.closed {
		l.mu.RUnlock()
		return st, ErrClosed
	}
	var segs []*cleanSeg
	var dirty, total int64
	var oldestDirty int64 = -1
	for i := 0; i+1 < len(l.mu.segs); i++ {
		s, next := l.mu.segs[i], l.mu.segs[i+1]
		if next.base > o.UpTo {
			break
		}
		ts, err := l.segMaxTimestampLocked(s)
		if err != nil {
			l.mu.RUnlock()
			return st, err
		}
		if o.MinCompactionLag > 0 && ts >= 0 && now.Sub(time.UnixMilli(ts)) < o.MinCompactionLag {
			break
		}
		segs = append(segs, &cleanSeg{base: s.base, size: s.size, f: s.f, path: s.path, next: next.base})
		total += s.size
		if next.base > l.mu.cleanedTo {
			dirty += s.size
			if oldestDirty < 0 || (ts >= 0 && ts < oldestDirty) {
				oldestDirty = ts
			}
		}
	}
	horizon := l.mu.horizon
	l.mu.RUnlock()
	// A forced clean (no ratio) or a tombstone whose horizon passed
	// cleans even when nothing is dirty.
	due := o.MinDirtyRatio <= 0 || (horizon > 0 && now.UnixMilli() >= horizon)
	if len(segs) == 0 || (dirty == 0 && !due) {
		return st, nil
	}
	if o.MinDirtyRatio > 0 && !due && float64(dirty)/float64(total) < o.MinDirtyRatio {
		overdue := o.MaxCompactionLag > 0 && oldestDirty >= 0 && now.Sub(time.UnixMilli(oldestDirty)) >= o.MaxCompactionLag
		if !overdue {
			return st, nil
		}
	}
	// Read the segments (finished segments change only under this
	// cleaner's lock or by being deleted, which the swap checks) and
	// build the offset map: the latest offset of every key.
	latest := map[string]int64{}
	lastOfProducer := map[int64]int64{} // producer id → base offset of its last batch
	dec := kgo.DefaultDecompressor()
	for _, s := range segs {
		s.data = make([]byte, s.size)
		if _, err := s.f.ReadAt(s.data, 0); err != nil && err != io.EOF {
			return st, fmt.Errorf("segment: cleaner reading %s: %w", s.path, err)
		}
		for rest := s.data; len(rest) > 0; {
			h, recs, err := BatchRecords(rest, dec)
			if err != nil {
				return st, fmt.Errorf("segment: cleaner reading %s: %w", s.path, err)
			}
			rest = rest[h.TotalSize():]
			if h.ProducerID >= 0 {
				lastOfProducer[h.ProducerID] = h.BaseOffset
			}
			if h.IsControl() || h.IsTransactional() {
				continue
			}
			for _, r := range recs {
				if r.Key != nil {
					latest[string(r.Key)] = r.Offset
				}
			}
		}
	}
	comps := map[int8]kgo.Compressor{}
	var next int64 // the earliest delete horizon still ahead
	for _, s := range segs {
		out, n, removed, err := l.cleanSegment(s.data, latest, lastOfProducer, now, o.DeleteRetention, dec, comps, &next)
		if err != nil {
			return st, err
		}
		s.out = out
		st.RecordsRead += n
		st.RecordsRemoved += removed
		st.BytesRead += s.size
		st.BytesWritten += int64(len(out))
		s.data = nil
	}
	return st, l.swapCleaned(segs, &st, next)
}

// cleanSegment filters one segment's batches.
func (l *Log) cleanSegment(data []byte, latest map[string]int64, lastOfProducer map[int64]int64, now time.Time, deleteRetention time.Duration, dec kgo.Decompressor, comps map[int8]kgo.Compressor, nextHorizon *int64) (out []byte, read, removed int, err error) {
	noteHorizon := func(h int64) {
		if *nextHorizon == 0 || h < *nextHorizon {
			*nextHorizon = h
		}
	}
	out = make([]byte, 0, len(data))
	for rest := data; len(rest) > 0; {
		h, recs, err := BatchRecords(rest, dec)
		if err != nil {
			return nil, 0, 0, err
		}
		raw := rest[:h.TotalSize()]
		rest = rest[h.TotalSize():]
		read += len(recs)
		if h.IsControl() || h.IsTransactional() {
			out = append(out, raw...)
			continue
		}
		horizonSet := h.Attributes&attrDeleteHorizon != 0
		var keep []Record
		tombstones := false
		for _, r := range recs {
			if r.Key == nil || latest[string(r.Key)] != r.Offset {
				continue
			}
			if r.Value == nil {
				if horizonSet && now.UnixMilli() >= h.FirstTimestamp {
					continue // past its delete horizon
				}
				tombstones = true
			}
			keep = append(keep, r)
		}
		removed += len(recs) - len(keep)
		stamp := tombstones && !horizonSet
		if stamp {
			noteHorizon(now.Add(deleteRetention).UnixMilli())
		} else if tombstones {
			noteHorizon(h.FirstTimestamp)
		}
		if len(keep) == len(recs) && !stamp {
			out = append(out, raw...)
			continue
		}
		if len(keep) == 0 && (h.ProducerID < 0 || lastOfProducer[h.ProducerID] != h.BaseOffset) {
			continue
		}
		// An idempotent producer's last batch stays, empty if need be,
		// so its sequence numbers survive (as Kafka keeps it).
		nb, err := rebuildBatch(h, keep, stamp, now.Add(deleteRetention).UnixMilli(), comps)
		if err != nil {
			return nil, 0, 0, err
		}
		out = append(out, nb...)
	}
	return out, read, removed, nil
}

// rebuildBatch encodes a batch with h's offsets, producer fields and
// codec, holding only recs.
func rebuildBatch(h BatchHeader, recs []Record, stamp bool, horizon int64, comps map[int8]kgo.Compressor) ([]byte, error) {
	first := h.FirstTimestamp
	attrs := h.Attributes
	if len(recs) == 0 {
		attrs &^= 0x07 // an empty batch is not compressed
	}
	if stamp {
		first = horizon
		attrs |= attrDeleteHorizon
	}
	var body []byte
	for _, r := range recs {
		kr := kmsg.Record{
			TimestampDelta64: r.Timestamp - first,
			OffsetDelta:      int32(r.Offset - h.BaseOffset),
			Key:              r.Key,
			Value:            r.Value,
			Headers:          r.Headers,
		}
		kr.Length = recordBodyLen(kr)
		body = kr.AppendTo(body)
	}
	if codec := h.Codec(); codec != 0 && len(recs) > 0 {
		c := comps[codec]
		if c == nil {
			var cc kgo.CompressionCodec
			switch codec {
			case 1:
				cc = kgo.GzipCompression()
			case 2:
				cc = kgo.SnappyCompression()
			case 3:
				cc = kgo.Lz4Compression()
			case 4:
				cc = kgo.ZstdCompression()
			default:
				return nil, fmt.Errorf("%w: codec %d", ErrCorrupt, codec)
			}
			var err error
			if c, err = kgo.DefaultCompressor(cc); err != nil {
				return nil, err
			}
			comps[codec] = c
		}
		var buf bytes.Buffer
		comp, _ := c.Compress(&buf, body)
		body = append([]byte(nil), comp...)
	}
	b := kmsg.RecordBatch{
		FirstOffset:          h.BaseOffset,
		PartitionLeaderEpoch: h.PartitionLeaderEpoch,
		Magic:                2,
		Attributes:           attrs,
		LastOffsetDelta:      h.LastOffsetDelta,
		FirstTimestamp:       first,
		MaxTimestamp:         h.MaxTimestamp,
		ProducerID:           h.ProducerID,
		ProducerEpoch:        h.ProducerEpoch,
		FirstSequence:        h.BaseSequence,
		NumRecords:           int32(len(recs)),
		Records:              body,
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crcTable))
	return raw, nil
}

// recordBodyLen is the encoded size of a record after its length field.
func recordBodyLen(r kmsg.Record) int32 {
	r.Length = 0
	return int32(len(r.AppendTo(nil)) - 1)
}

// swapCleaned writes each cleaned segment to a new file and, under the
// log's lock, renames it over the old one and rebuilds its offset index.
func (l *Log) swapCleaned(segs []*cleanSeg, st *CompactStats, horizon int64) (err error) {
	fs := l.s.fs
	for _, s := range segs {
		tmp := s.path + ".cleaned"
		f, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
		if err != nil {
			return err
		}
		if _, err := f.Write(append([]byte(nil), s.out...)); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
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
	b := l.s.db.NewBatch()
	defer b.Close()
	cleanedTo := l.mu.cleanedTo
	for _, s := range segs {
		tmp := s.path + ".cleaned"
		var cur *segFile
		for _, x := range l.mu.segs[:len(l.mu.segs)-1] {
			if x.base == s.base {
				cur = x
			}
		}
		if cur == nil || cur.size != s.size {
			// Deleted (retention) or truncated meanwhile.
			fs.Remove(tmp)
			continue
		}
		if err := fs.Rename(tmp, s.path); err != nil {
			return err
		}
		nf, err := fs.Open(s.path)
		if err != nil {
			return err
		}
		cur.f.Close()
		cur.f, cur.size, cur.tsScanned = nf, int64(len(s.out)), 0
		if err := b.DeleteRange(l.key('o', uint64(s.base)), l.key('o', uint64(s.next)), nil); err != nil {
			return err
		}
		var since int64
		for pos := 0; pos < len(s.out); {
			h, err := ParseBatchHeader(s.out[pos:])
			if err != nil {
				return err
			}
			if pos == 0 || since >= l.opts.IndexIntervalBytes {
				l.putIndex(b, h.BaseOffset, s.base, int64(pos))
				since = 0
			}
			since += int64(h.TotalSize())
			pos += h.TotalSize()
		}
		st.Segments++
		cleanedTo = max(cleanedTo, s.next)
	}
	if err := syncDir(fs, l.dir); err != nil {
		return err
	}
	l.mu.cleanedTo = cleanedTo
	l.mu.horizon = horizon
	return b.Commit(pebble.Sync)
}

// DeleteHorizon returns the earliest delete horizon of the tombstones a
// clean has kept (the first clean after it drops them), or the zero time
// if there is none.
func (l *Log) DeleteHorizon() time.Time {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.horizon <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(l.mu.horizon)
}
