package segment

// Reading a log: finding an offset's batch through the index, whole
// batches up to a byte and offset limit (KIP-74), offsets by timestamp,
// and the log's bounds.

import (
	"encoding/binary"
	"errors"
	"sort"

	"github.com/cockroachdb/pebble/v2"
)

// findLocked returns the segment holding offset and the position of the
// batch containing it.
func (l *Log) findLocked(offset int64) (*segFile, int64, error) {
	segs := l.mu.segs
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > offset }) - 1
	if i < 0 {
		return nil, 0, ErrOffsetOutOfRange
	}
	s := segs[i]
	if i == len(segs)-1 && len(l.mu.tail) > 0 && offset >= l.mu.tail[0].base {
		t := l.mu.tail
		j := sort.Search(len(t), func(j int) bool { return t[j].last >= offset })
		if j < len(t) {
			return s, t[j].pos, nil
		}
	}
	pos := int64(0)
	it, err := l.s.db.NewIter(&pebble.IterOptions{LowerBound: l.key('o', uint64(s.base)), UpperBound: l.key('o', uint64(offset)+1)})
	if err != nil {
		return nil, 0, err
	}
	if it.Last() {
		v := it.Value()
		if int64(binary.BigEndian.Uint64(v)) == s.base {
			pos = int64(binary.BigEndian.Uint64(v[8:]))
		}
	}
	if err := it.Close(); err != nil {
		return nil, 0, err
	}
	hdr := make([]byte, BatchHeaderSize)
	for {
		for pos < s.size {
			if _, err := s.f.ReadAt(hdr, pos); err != nil {
				return nil, 0, err
			}
			h, err := ParseBatchHeader(hdr)
			if err != nil {
				return nil, 0, err
			}
			if h.LastOffset() >= offset {
				return s, pos, nil
			}
			pos += int64(h.TotalSize())
		}
		// Past the segment's last batch: compaction left a gap at its
		// end; the offset's successor is in a later segment.
		if i+1 >= len(segs) {
			return s, pos, nil
		}
		i++
		s, pos = segs[i], 0
	}
}

// Read returns whole batches starting with the one containing offset, only
// batches whose last offset is below maxOffset, up to maxBytes but at least
// one batch (KIP-74). The result is the caller's.
func (l *Log) Read(offset int64, maxBytes int, maxOffset int64) ([]byte, error) {
	return l.ReadInto(offset, maxBytes, maxOffset, func(n int) []byte { return make([]byte, n) })
}

// ReadInto is Read with the buffer from buf: buf(n) returns n bytes to read
// the batches into (a pooled buffer, say; it need not be zeroed).
func (l *Log) ReadInto(offset int64, maxBytes int, maxOffset int64, buf func(n int) []byte) ([]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.closed {
		return nil, ErrClosed
	}
	if offset < l.mu.start || offset > l.mu.leo {
		return nil, ErrOffsetOutOfRange
	}
	if offset == l.mu.leo || offset >= maxOffset {
		return nil, nil
	}
	s, pos, end, err := l.rangeLocked(offset, maxBytes, maxOffset)
	if err != nil || end == pos {
		return nil, err
	}
	out := buf(int(end - pos))
	if _, err := s.f.ReadAt(out, pos); err != nil {
		return nil, err
	}
	return out, nil
}

// rangeLocked returns the segment and the byte range [pos, end) of the
// whole batches Read would return for offset (end == pos: none).
func (l *Log) rangeLocked(offset int64, maxBytes int, maxOffset int64) (s *segFile, pos, end int64, err error) {
	s, pos, err = l.findLocked(offset)
	if err != nil {
		return nil, 0, 0, err
	}
	end = pos
	// Batches the tail cache knows need no header read.
	var t []batchPos
	k := 0
	if s == l.mu.segs[len(l.mu.segs)-1] {
		t = l.mu.tail
		k = sort.Search(len(t), func(j int) bool { return t[j].pos >= pos })
	}
	hdr := make([]byte, BatchHeaderSize)
	for end < s.size {
		var size, last int64
		if k < len(t) && t[k].pos == end {
			size, last = int64(t[k].size), t[k].last
			k++
		} else {
			if _, err := s.f.ReadAt(hdr, end); err != nil {
				return nil, 0, 0, err
			}
			h, err := ParseBatchHeader(hdr)
			if err != nil {
				return nil, 0, 0, err
			}
			size, last = int64(h.TotalSize()), h.LastOffset()
			k = len(t)
		}
		if last >= maxOffset {
			break
		}
		if end > pos && end-pos+size > int64(maxBytes) {
			break
		}
		end += size
	}
	return s, pos, end, nil
}

// LogStartOffset is the first offset readable.
func (l *Log) LogStartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.start
}

// LogEndOffset is the offset the next appended record gets.
func (l *Log) LogEndOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.leo
}

// Size is the number of bytes in all segments.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.mu.segs {
		n += s.size
	}
	return n
}

// MaxTimestamp returns the largest batch max timestamp and that batch's
// last offset, or (-1, -1) for an empty log.
func (l *Log) MaxTimestamp() (int64, int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.maxTS, l.mu.maxTSOffset
}

// OffsetForTimestamp returns the first batch, in offset order, whose max
// timestamp is at least ts; the caller finds the record in it.
func (l *Log) OffsetForTimestamp(ts int64) ([]byte, bool, error) {
	l.mu.RLock()
	start := l.mu.start
	var from int64 = start
	it, err := l.s.db.NewIter(&pebble.IterOptions{LowerBound: l.prefix('t'), UpperBound: l.prefix('t' + 1)})
	if err != nil {
		l.mu.RUnlock()
		return nil, false, err
	}
	// The time index entry for the greatest indexed timestamp below ts
	// marks a batch that is entirely too early; the answer is after it
	// only if the index says so. Entries rise in time and offset, so the
	// first entry with timestamp >= ts bounds the answer from above and
	// the entry before it from below.
	if it.SeekGE(l.key('t', uint64(ts)^1<<63)) {
		if it.Prev() {
			from = int64(binary.BigEndian.Uint64(it.Value()))
		}
	} else {
		it.Close()
		l.mu.RUnlock()
		return nil, false, nil
	}
	it.Close()
	l.mu.RUnlock()
	if from < start {
		from = start
	}
	for {
		data, err := l.Read(from, 1, 1<<62)
		if err != nil {
			if errors.Is(err, ErrOffsetOutOfRange) {
				return nil, false, nil
			}
			return nil, false, err
		}
		if len(data) == 0 {
			return nil, false, nil
		}
		h, err := ParseBatchHeader(data)
		if err != nil {
			return nil, false, err
		}
		if h.MaxTimestamp >= ts {
			return data[:h.TotalSize()], true, nil
		}
		from = h.LastOffset() + 1
	}
}
