package kcluster

// The pruning of __share_group_state (Kafka's ShareCoordinatorService
// record pruning and ShareCoordinatorOffsetsManager). The topic's cleanup
// policy is delete, with no retention: a share-partition's state is its
// last ShareSnapshot record and the ShareUpdate records after it, so every
// record below the oldest last snapshot of the shard's share-partitions is
// redundant. Every share.coordinator.state.topic.prune.interval.ms, and
// only after a shard has written since (the runtime's jobs run only when
// armed by a write), the share coordinator deletes the records of each of
// its partitions below that offset, capped at the high watermark, with
// the partition's DeleteRecords path: the log start moves on the leader,
// and on the followers through their fetches. A deleted share-partition
// (tombstones) no longer holds it back; with none left, nothing is
// pruned.

import "time"

// redundantOffsetLocked is the offset below which the shard's partition
// holds nothing needed: the oldest last snapshot of its share-partitions.
func (s *shareShard) redundantOffsetLocked() (int64, bool) {
	low, ok := int64(0), false
	for _, st := range s.states {
		if st.snapshotOffset < 0 {
			return 0, false // written before its offset was known
		}
		if !ok || st.snapshotOffset < low {
			low, ok = st.snapshotOffset, true
		}
	}
	return low, ok
}

// prune deletes the redundant records of every shard this broker leads.
// It returns when it has more to do (zero: at the next write).
func (sc *shareCoordinator) prune(now time.Time) time.Time {
	var next time.Time
	for _, c := range sc.rt.contexts() {
		var low int64
		var ok bool
		if _, active := c.locked(func(s *shareShard) { low, ok = s.redundantOffsetLocked() }); !active || !ok {
			continue
		}
		c.rep.mu.Lock()
		hw, start := c.rep.mu.hw, c.rep.log.LogStartOffset()
		c.rep.mu.Unlock()
		if low > hw {
			low = hw
			next = now.Add(sc.cfg.prune) // the rest once replicated
		}
		if low <= start {
			continue
		}
		if _, err := c.rep.deleteRecords(low); err != nil {
			sc.b.log.Debug("pruning share state", "partition", c.p, "offset", low, "err", err)
			continue
		}
		sc.b.log.Debug("pruned share state", "partition", c.p, "below", low)
		sc.b.c.notifyEvent()
	}
	return next
}
