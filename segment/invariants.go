package segment

import "fmt"

// CheckAppended returns why a log whose end was prev and is now leo after
// appending the batches hs breaks the contiguity invariant, or "" when
// it holds: each batch starts where the previous one ended, the first at
// prev, and the log now ends after the last. With gaps (a follower's copy
// of a compacted log) a batch may start after the previous one's end.
func CheckAppended(prev, leo int64, hs []BatchHeader, gaps bool) string {
	next := prev
	for _, h := range hs {
		if h.BaseOffset != next && (!gaps || h.BaseOffset < next) {
			return fmt.Sprintf("append not contiguous: batch [%d, %d] at log end %d", h.BaseOffset, h.LastOffset(), next)
		}
		if h.LastOffset() < h.BaseOffset {
			return fmt.Sprintf("batch at %d ends before it starts (%d)", h.BaseOffset, h.LastOffset())
		}
		next = h.LastOffset() + 1
	}
	if leo != next {
		return fmt.Sprintf("log end %d after appending up to %d", leo, next-1)
	}
	return ""
}

// CheckEpochs returns why a leader-epoch cache breaks its invariant, or
// "": epochs strictly increase, their start offsets do not decrease, and
// none starts past the log end leo.
func CheckEpochs(es []EpochEntry, leo int64) string {
	for i, e := range es {
		if i > 0 && (e.Epoch <= es[i-1].Epoch || e.StartOffset < es[i-1].StartOffset) {
			return fmt.Sprintf("leader-epoch cache not monotonic at %d: %+v", i, es)
		}
		if e.StartOffset > leo {
			return fmt.Sprintf("epoch %d starts at %d, past the log end %d: %+v", e.Epoch, e.StartOffset, leo, es)
		}
	}
	return ""
}

// violatedLocked reports a broken invariant to StoreOptions.Invariant, or
// panics when it is nil. Only called when invariants.Enabled.
func (l *Log) violatedLocked(msg string) {
	msg = fmt.Sprintf("segment: invariant violated in log %s: %s", l.name, msg)
	if l.s.invariant == nil {
		panic(msg)
	}
	l.s.invariant(msg)
}
