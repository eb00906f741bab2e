package segment

// Growing the active segment file in preallocated chunks. Appending to a
// file the file system must find blocks for at every write costs more
// than writing into blocks reserved ahead (on ext4, twice the CPU for 1 MiB
// appends): once a segment passes preallocMin, each append that passes
// the reserved end reserves as much again as the segment holds, up to
// preallocMax ahead and never past segment.bytes (Kafka's file.preallocate
// reserves the whole segment.bytes at once). The space is reserved with
// the file's size kept (fallocate's FALLOC_FL_KEEP_SIZE), so the file is
// what it would be without it: its size is what was appended, a crash
// leaves nothing else to recover, and readers see the same bytes. When a
// segment rolls or its log closes, what it did not use is given back. A
// file system that cannot preallocate (in memory, or one without
// fallocate) is simply appended to.

const (
	preallocMin = 1 << 20
	preallocMax = 16 << 20
)

// preallocateLocked reserves space for n more bytes of the active segment
// s, and more ahead, if the segment is big enough to be worth it. Failing
// is not an error: the write that follows reports a full disk.
func (l *Log) preallocateLocked(s *segFile, n int64) {
	need := s.size + n
	if need <= s.alloc || need < preallocMin {
		return
	}
	end := min(need+min(need, preallocMax), max(l.opts.SegmentBytes, need))
	from := max(s.alloc, s.size)
	if err := s.f.Preallocate(from, end-from); err != nil {
		// Not supported here, or no room: do not try again for this
		// segment.
		s.alloc = 1<<63 - 1
		return
	}
	s.alloc = end
}

// trimPreallocated gives back the space s reserved past its end.
func trimPreallocated(s *segFile) {
	if s.alloc <= s.size || s.alloc == 1<<63-1 {
		return
	}
	truncateFile(s.f, s.size)
	s.alloc = s.size
}
