package kcluster

import (
	"time"

	"github.com/kcluster/kcluster/segment"
)

// compact runs the log cleaner on this replica when its topic's
// cleanup.policy has compact: finished segments below the high watermark
// and older than min.compaction.lag.ms, when min.cleanable.dirty.ratio of
// them is dirty (or the dirty part is older than max.compaction.lag.ms);
// force skips the ratio.
func (r *partition) compact(now time.Time, force bool) error {
	r.mu.Lock()
	if r.mu.closed || !r.mu.lc.cleanupCompact {
		r.mu.Unlock()
		return nil
	}
	lc, hw := r.mu.lc, r.mu.hw
	r.mu.Unlock()
	o := segment.CompactOptions{
		UpTo:             hw,
		Now:              now,
		DeleteRetention:  time.Duration(lc.deleteRetentionMs) * time.Millisecond,
		MinCompactionLag: time.Duration(lc.minCompactionLagMs) * time.Millisecond,
	}
	if !force {
		o.MinDirtyRatio = max(lc.minCleanableRatio, 1e-9)
		if lc.maxCompactionLagMs < int64(1<<62)/int64(time.Millisecond) {
			o.MaxCompactionLag = time.Duration(lc.maxCompactionLagMs) * time.Millisecond
		}
	}
	st, err := r.log.Compact(o)
	if err != nil {
		return err
	}
	if st.Segments > 0 {
		r.b.log.Debug("log cleaned", "topic", r.topic, "partition", r.part, "segments", st.Segments,
			"bytes_before", st.BytesRead, "bytes_after", st.BytesWritten, "records_removed", st.RecordsRemoved)
		r.notify()
	}
	return nil
}
