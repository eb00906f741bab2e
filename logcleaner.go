package kcluster

// Retention and compaction on every replica (Kafka's LogManager
// cleanupLogs and LogCleaner): each broker, every
// log.retention.check.interval.ms, rolls active segments older than
// segment.ms, deletes segments past retention.ms and retention.bytes
// (cleanup.policy=delete) below the high watermark, and cleans logs with
// cleanup.policy=compact whose dirty ratio reached
// min.cleanable.dirty.ratio (or whose dirty part is older than
// max.compaction.lag.ms). Followers also follow the leader's log start
// from fetch responses (fetcher.go). Cluster.CleanLogs runs all of it now.

import (
	"errors"
	"fmt"
	"time"

	"github.com/kcluster/kcluster/segment"
)

// cleanerLoop runs retention and the cleaner at ticks
// log.retention.check.interval.ms apart, but only at those that can find
// work: after a pass it sleeps until the first tick at or after the
// earliest time-based event of any replica (cleanerDue: a roll, an
// expiry, a delete horizon), or until a partition changes (an append, a
// new high watermark or config: partition.notify arms it), whichever
// comes first. What a ticker would have found, it finds at the same tick.
func (b *broker) cleanerLoop() {
	tk := newTicks(b.cfg.retentionCheck)
	defer tk.stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-tk.c():
		case <-b.cleanerArm.ch:
			tk.atNextTick() // a change: look at the next tick
			continue
		}
		tk.none()
		b.cleanerArm.listen()
		if err := b.cleanLogs(false); err != nil && b.ctx.Err() == nil {
			b.log.Warn("cleaning logs", "err", err)
		}
		due, err := b.cleanerDue(time.Now())
		switch {
		case err != nil:
			tk.atNextTick()
		case !due.IsZero():
			tk.atTick(due)
		}
	}
}

// cleanerDue is the earliest time at which retention or the cleaner
// would find work on one of the broker's replicas by time alone (zero:
// none): a roll at segment.ms, an expiry at retention.ms, a tombstone's
// delete horizon, or, for compacted topics with min.compaction.lag.ms or
// max.compaction.lag.ms, the next tick (their data ages into cleaning).
func (b *broker) cleanerDue(now time.Time) (time.Time, error) {
	var due time.Time
	earlier := func(t time.Time) {
		if !t.IsZero() && (due.IsZero() || t.Before(due)) {
			due = t
		}
	}
	for _, r := range b.replicasSnapshot() {
		r.mu.Lock()
		closed, lc, hw := r.mu.closed, r.mu.lc, r.mu.hw
		r.mu.Unlock()
		if closed {
			continue
		}
		d, err := r.log.RetentionDue(segment.RetentionPolicy{
			Ms: lc.retentionMs, Bytes: lc.retentionBytes, SegmentMs: lc.segmentMs,
			Delete: lc.cleanupDelete, HighWatermark: hw,
		})
		if err != nil {
			if errors.Is(err, segment.ErrClosed) {
				continue
			}
			return time.Time{}, err
		}
		earlier(d)
		if lc.cleanupCompact && b.cfg.cleanerEnable {
			earlier(r.log.DeleteHorizon())
			if lc.minCompactionLagMs > 0 || lc.maxCompactionLagMs < int64(1<<62)/int64(time.Millisecond) {
				earlier(now)
			}
		}
	}
	return due, nil
}

func (b *broker) replicasSnapshot() []*partition {
	b.mu.RLock()
	defer b.mu.RUnlock()
	reps := make([]*partition, 0, len(b.mu.replicas))
	for _, r := range b.mu.replicas {
		reps = append(reps, r)
	}
	return reps
}

// cleanLogs runs retention on every replica of the broker, then the
// cleaner on compacted ones; force cleans whatever the dirty ratio.
func (b *broker) cleanLogs(force bool) error {
	var errs []error
	for _, r := range b.replicasSnapshot() {
		if err := r.applyRetention(time.Now()); err != nil && !errors.Is(err, segment.ErrClosed) {
			errs = append(errs, fmt.Errorf("%s/%d: retention: %w", r.topic, r.part, err))
		}
		if b.cfg.cleanerEnable || force {
			if err := r.compact(time.Now(), force); err != nil && !errors.Is(err, segment.ErrClosed) {
				errs = append(errs, fmt.Errorf("%s/%d: compaction: %w", r.topic, r.part, err))
			}
		}
	}
	return errors.Join(errs...)
}

// applyRetention enforces the topic's retention on this replica.
func (r *partition) applyRetention(now time.Time) error {
	r.mu.Lock()
	if r.mu.closed {
		r.mu.Unlock()
		return nil
	}
	lc, hw := r.mu.lc, r.mu.hw
	r.mu.Unlock()
	before := r.log.LogStartOffset()
	start, freed, err := r.log.ApplyRetention(segment.RetentionPolicy{
		Ms: lc.retentionMs, Bytes: lc.retentionBytes, SegmentMs: lc.segmentMs,
		Delete: lc.cleanupDelete, HighWatermark: hw, Now: now,
	})
	if err != nil {
		return err
	}
	if start != before {
		r.b.log.Debug("retention deleted segments", "topic", r.topic, "partition", r.part, "log_start", start, "bytes", freed)
		r.notify()
	}
	return nil
}

// CleanLogs runs log retention and the log cleaner on every replica of
// every running broker now, instead of at the next
// log.retention.check.interval.ms: active segments older than segment.ms
// roll, segments past retention.ms or retention.bytes go (below the high
// watermark), and compacted topics are cleaned whatever their dirty ratio
// (min.compaction.lag.ms and the active segment still hold records back).
// Followers learn a leader's new log start from their next fetch.
func (c *Cluster) CleanLogs() error {
	if err := c.embedded("CleanLogs"); err != nil {
		return err
	}
	var errs []error
	for _, b := range c.running() {
		errs = append(errs, b.cleanLogs(true))
	}
	return errors.Join(errs...)
}
