package metadata

// The controller's snapshots (KRaft's SnapshotGenerator): after applying
// records, the controller writes a snapshot of its state once the records
// since the last one reach metadata.log.max.record.bytes.between.snapshots
// (SnapshotMaxBytes), or once metadata.log.max.snapshot.interval.ms
// (SnapshotInterval) has passed since the last one and records arrived
// since; the log then drops what the snapshot covers. Every controller of
// a quorum snapshots its own state, as each KRaft controller does.
// Unlike Kafka's interval trigger, which is a timer, the interval is
// checked when records are applied: an idle log needs no new snapshot.

import (
	"context"
	"fmt"
	"time"
)

// snapshotTrigger counts toward the next snapshot; the controller's mu
// guards it.
type snapshotTrigger struct {
	bytes int64     // record bytes applied since the last snapshot
	last  time.Time // when the last snapshot was taken (or the start)
}

// maybeSnapshotLocked takes a snapshot of the state if a trigger fired
// with es applied.
func (c *Controller) maybeSnapshotLocked(es []Entry) {
	t := &c.mu.snaps
	for _, e := range es {
		t.bytes += int64(e.Size)
	}
	if t.bytes == 0 {
		return
	}
	bytesDue := c.cfg.SnapshotMaxBytes > 0 && t.bytes >= c.cfg.SnapshotMaxBytes
	now := c.cfg.Now()
	timeDue := c.cfg.SnapshotInterval > 0 && now.Sub(t.last) >= c.cfg.SnapshotInterval
	if !bytesDue && !timeDue {
		return
	}
	t.bytes, t.last = 0, now
	c.log.Compact(c.mu.state.Snapshot(0))
}

// restoreLocked replaces the state with the log's latest snapshot: the
// records the controller has yet to apply were compacted away (a Raft
// snapshot from the leader replaced this node's log).
func (c *Controller) restoreLocked() error {
	if c.mu.state.Offset+1 >= c.log.Start() {
		return nil // the state moved on since the read that failed
	}
	sn := c.log.LatestSnapshot()
	if sn == nil || sn.Offset <= c.mu.state.Offset {
		at := int64(-2)
		if sn != nil {
			at = sn.Offset
		}
		return fmt.Errorf("metadata: controller at %d is below the log start %d, without a newer snapshot (latest at %d)", c.mu.state.Offset, c.log.Start(), at)
	}
	st, err := sn.State()
	if err != nil {
		return err
	}
	c.mu.state = st
	c.applied.Store(st.Offset)
	if c.cfg.OnChange != nil {
		c.cfg.OnChange(nil, st)
	}
	return nil
}

// Propose appends records the caller has validated against the state, in
// one proposal, and returns once they are applied. It is the fast path
// for tools and tests that write many records (a churn of topics); the
// records must fit the state, as the controller's own would.
func (c *Controller) Propose(ctx context.Context, recs ...Record) error {
	if err := c.lockActive(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	return c.proposeLocked(ctx, recs...)
}
