package segment

// Retention: whole segments go from the front of a log when they are older
// than retention.ms or the log is larger than retention.bytes (Kafka's
// LogManager cleanupLogs), and the active segment rolls when it is older
// than segment.ms. Only data below the high watermark the caller gives is
// ever deleted, as Kafka's deletable segments.

import (
	"time"
)

// SetOptions changes a log's segment size, index interval and flush
// interval (a topic's segment.bytes, index.interval.bytes and
// flush.messages altered at run time); they apply from the next append.
// Zero values are left unchanged.
func (l *Log) SetOptions(o LogOptions) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if o.SegmentBytes > 0 {
		l.opts.SegmentBytes = o.SegmentBytes
	}
	if o.IndexIntervalBytes > 0 {
		l.opts.IndexIntervalBytes = o.IndexIntervalBytes
	}
	if o.FlushMessages > 0 {
		l.opts.FlushMessages = o.FlushMessages
	}
}

// SegmentInfo describes one segment.
type SegmentInfo struct {
	Base         int64 // first offset the segment may hold
	Size         int64 // bytes
	MaxTimestamp int64 // largest batch max timestamp, -1 when empty
	Created      time.Time
	Active       bool
}

// Segments describes every segment, oldest first.
func (l *Log) Segments() ([]SegmentInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil, ErrClosed
	}
	out := make([]SegmentInfo, len(l.mu.segs))
	for i, s := range l.mu.segs {
		ts, err := l.segMaxTimestampLocked(s)
		if err != nil {
			return nil, err
		}
		out[i] = SegmentInfo{Base: s.base, Size: s.size, MaxTimestamp: ts, Created: s.created, Active: i == len(l.mu.segs)-1}
	}
	return out, nil
}

// segMaxTimestampLocked scans a segment's batch headers for its largest
// timestamp; finished segments keep the answer.
func (l *Log) segMaxTimestampLocked(s *segFile) (int64, error) {
	if s.tsScanned == s.size && s.size > 0 {
		return s.maxTS, nil
	}
	ts := int64(-1)
	hdr := make([]byte, BatchHeaderSize)
	for pos := int64(0); pos < s.size; {
		if _, err := s.f.ReadAt(hdr, pos); err != nil {
			return -1, err
		}
		h, err := ParseBatchHeader(hdr)
		if err != nil {
			return -1, err
		}
		ts = max(ts, h.MaxTimestamp)
		pos += int64(h.TotalSize())
	}
	s.maxTS, s.tsScanned = ts, s.size
	return ts, nil
}

// RetentionPolicy is what ApplyRetention enforces. A negative Ms or Bytes
// means no limit on that axis.
type RetentionPolicy struct {
	Ms, Bytes int64
	// SegmentMs rolls the active segment once its first batch's
	// timestamp (or, without one, its creation) is older (segment.ms);
	// zero or negative never rolls by time.
	SegmentMs int64
	// Delete is cleanup.policy containing delete: without it nothing is
	// deleted, only rolled.
	Delete bool
	// HighWatermark bounds deletion: a segment goes only if every offset
	// in it is below it.
	HighWatermark int64
	Now           time.Time
}

// ApplyRetention rolls the active segment if it is older than SegmentMs,
// then deletes the oldest segments that break the policy and advances the
// log start offset to the first remaining segment. It returns the new log
// start offset and the bytes deleted.
func (l *Log) ApplyRetention(p RetentionPolicy) (start, freed int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, 0, ErrClosed
	}
	if l.mu.failed != nil {
		return l.mu.start, 0, l.mu.failed
	}
	defer l.failOnIOErrorLocked(&err)
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	act := l.mu.segs[len(l.mu.segs)-1]
	if p.SegmentMs > 0 && act.size > 0 {
		// Kafka's rolling-based timestamp: the first batch's max
		// timestamp, or the segment's creation when it has none.
		since := act.created
		hdr := make([]byte, BatchHeaderSize)
		if _, err := act.f.ReadAt(hdr, 0); err == nil {
			if h, err := ParseBatchHeader(hdr); err == nil && h.MaxTimestamp >= 0 {
				since = time.UnixMilli(h.MaxTimestamp)
			}
		}
		if now.Sub(since) >= time.Duration(p.SegmentMs)*time.Millisecond {
			if err := l.rollLocked(l.mu.leo); err != nil {
				return l.mu.start, 0, err
			}
		}
	}
	if !p.Delete || (p.Ms < 0 && p.Bytes < 0) {
		return l.mu.start, 0, nil
	}
	var total int64
	for _, s := range l.mu.segs {
		total += s.size
	}
	// Segments that may go: every one but the active, each entirely
	// below the high watermark (the next segment's base bounds it).
	n := 0
	for n < len(l.mu.segs)-1 {
		s, next := l.mu.segs[n], l.mu.segs[n+1]
		if next.base > p.HighWatermark {
			break
		}
		expired := false
		if p.Ms >= 0 {
			ts, err := l.segMaxTimestampLocked(s)
			if err != nil {
				return l.mu.start, 0, err
			}
			expired = ts >= 0 && now.UnixMilli()-ts > p.Ms
		}
		oversize := p.Bytes >= 0 && total-freed-s.size >= p.Bytes
		if !expired && !oversize {
			break
		}
		freed += s.size
		n++
	}
	if n == 0 {
		return l.mu.start, 0, nil
	}
	to := l.mu.segs[n].base
	l.mu.Unlock()
	err = l.DeleteBefore(to)
	l.mu.Lock()
	return l.mu.start, freed, err
}

// RetentionDue returns when ApplyRetention with policy p (its Now aside)
// would next roll or delete something on time alone, if the log and p's
// high watermark stay as they are: the active segment's roll at
// SegmentMs, or the oldest segment's expiry at Ms. It is the zero time if
// neither can come; a time at or before now if one is due already. What
// appends bring (size, new segments) is not foreseen: the caller looks
// again after them.
func (l *Log) RetentionDue(p RetentionPolicy) (time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return time.Time{}, ErrClosed
	}
	if l.mu.failed != nil {
		return time.Time{}, nil
	}
	var due time.Time
	earlier := func(t time.Time) {
		if due.IsZero() || t.Before(due) {
			due = t
		}
	}
	act := l.mu.segs[len(l.mu.segs)-1]
	if p.SegmentMs > 0 && act.size > 0 {
		since := act.created
		hdr := make([]byte, BatchHeaderSize)
		if _, err := act.f.ReadAt(hdr, 0); err == nil {
			if h, err := ParseBatchHeader(hdr); err == nil && h.MaxTimestamp >= 0 {
				since = time.UnixMilli(h.MaxTimestamp)
			}
		}
		earlier(since.Add(time.Duration(p.SegmentMs) * time.Millisecond))
	}
	if p.Delete && p.Ms >= 0 && len(l.mu.segs) > 1 && l.mu.segs[1].base <= p.HighWatermark {
		ts, err := l.segMaxTimestampLocked(l.mu.segs[0])
		if err != nil {
			return time.Time{}, err
		}
		if ts >= 0 {
			// Expired once now-ts > Ms: a millisecond after ts+Ms.
			earlier(time.UnixMilli(ts + p.Ms + 1))
		}
	}
	return due, nil
}
