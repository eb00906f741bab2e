package kcluster

// Invariant checks compiled in by the invariants build tag (see
// internal/invariants): each call site sits behind `if invariants.Enabled`,
// so without the tag they cost nothing.
//
// A violation is recorded in the Cluster and logged, not panicked: a panic
// inside a request handler would be recovered by the connection loop and
// lost. Start fails the test at cleanup when any was recorded; Close of a
// cluster made by New panics with them, outside any handler.

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/kcluster/kcluster/internal/invariants"
	"github.com/kcluster/kcluster/metadata"
	"github.com/kcluster/kcluster/segment"
)

// violations holds the broken invariants a cluster recorded.
type violations struct {
	sync.Mutex
	msgs []string
	// reported is set by Start, whose cleanup fails the test instead of
	// Close panicking.
	reported bool
}

// invariantViolated records a broken invariant.
func (c *Cluster) invariantViolated(msg string) {
	c.cfg.logger.Error("invariant violated", "violation", msg)
	c.inv.Lock()
	c.inv.msgs = append(c.inv.msgs, msg)
	c.inv.Unlock()
}

// invariantViolations returns the broken invariants recorded so far.
func (c *Cluster) invariantViolations() []string {
	c.inv.Lock()
	defer c.inv.Unlock()
	return append([]string(nil), c.inv.msgs...)
}

// panicOnViolations is Close's report for a cluster not made by Start.
func (c *Cluster) panicOnViolations() {
	c.inv.Lock()
	msgs, reported := c.inv.msgs, c.inv.reported
	c.inv.Unlock()
	if invariants.Enabled && len(msgs) > 0 && !reported {
		panic("kcluster: invariants violated:\n" + strings.Join(msgs, "\n"))
	}
}

// checkHWAdvance returns why moving a high watermark from old to hw breaks
// an invariant, or "": it never moves backwards, never passes the log end
// of this replica (leo), and on a leader never passes the log end of any
// ISR member (isrLEOs, the followers' log ends the leader knows).
func checkHWAdvance(old, hw, leo int64, isrLEOs map[int32]int64) string {
	if hw < old {
		return fmt.Sprintf("high watermark moved backwards from %d to %d", old, hw)
	}
	if hw > leo {
		return fmt.Sprintf("high watermark %d passes the log end %d", hw, leo)
	}
	for id, l := range isrLEOs {
		if hw > l {
			return fmt.Sprintf("high watermark %d passes ISR member %d's log end %d", hw, id, l)
		}
	}
	return ""
}

// checkHW returns why a replica's high watermark breaks an invariant at any
// time, or "": it is never past the replica's own log end (a truncation
// lowers it with the log).
func checkHW(hw, leo int64) string {
	if hw > leo {
		return fmt.Sprintf("high watermark %d passes the log end %d", hw, leo)
	}
	return ""
}

// violatedLocked records a broken invariant of this replica.
func (r *partition) violatedLocked(msg string) {
	r.b.c.invariantViolated(fmt.Sprintf("broker %d, %s-%d (leader %d, epoch %d): %s", r.b.id, r.topic, r.part, r.mu.leader, r.mu.epoch, msg))
}

// replicaLogs holds every open replica's log by broker and partition, in
// invariants builds only, so that the agreement check can read a
// follower's log beside the leader's. Its lock is a leaf: nothing is
// called with it held. (The brokers themselves never reach into each
// other's memory; only this check does.)
type replicaLogs struct {
	sync.Mutex
	m map[replicaLogKey]*partition
}

type replicaLogKey struct {
	broker int32
	topic  metadata.TopicID
	part   int32
}

func (l *replicaLogs) add(broker int32, r *partition) {
	l.Lock()
	defer l.Unlock()
	if l.m == nil {
		l.m = make(map[replicaLogKey]*partition)
	}
	l.m[replicaLogKey{broker, r.id, r.part}] = r
}

func (l *replicaLogs) remove(broker int32, r *partition) {
	l.Lock()
	defer l.Unlock()
	k := replicaLogKey{broker, r.id, r.part}
	if l.m[k] == r {
		delete(l.m, k)
	}
}

func (l *replicaLogs) get(broker int32, topic metadata.TopicID, part int32) *partition {
	l.Lock()
	defer l.Unlock()
	return l.m[replicaLogKey{broker, topic, part}]
}

// agreementRangeLocked returns the offsets [from, to) of a follower's log
// that the agreement check compares with the leader's at a fetch from
// offset (the follower's log end): what lies below both that and the high
// watermark and was not compared before. Compacted topics are left out
// (each replica's cleaner rewrites its own batches), and so are topics
// that allow unclean elections (whose committed records may be lost).
func (r *partition) agreementRangeLocked(f *replica, offset int64) (from, to int64) {
	if lc := r.mu.lc; lc == nil || lc.cleanupCompact || lc.values["unclean.leader.election.enable"] == "true" {
		return 0, 0
	}
	from, to = f.agreed, min(offset, r.mu.hw)
	if to > from {
		f.agreed = to
	}
	return from, to
}

// checkFollowerAgrees checks, on the leader, that follower's batches in
// [from, to), below the high watermark, are the leader's own: the same
// base and last offsets, leader epoch and CRC. Below the high watermark
// every replica holds the same records (KIP-101, KIP-279); a follower that
// appended an old leader's records, or skipped a truncation, breaks it.
// Ranges that either log no longer holds (a log start moved, a follower
// truncated or lost power since) are not compared.
func (r *partition) checkFollowerAgrees(follower int32, from, to int64) {
	fr := r.b.c.logs.get(follower, r.id, r.part)
	if fr == nil {
		return
	}
	from = max(from, r.log.LogStartOffset(), fr.log.LogStartOffset())
	mine, err := batchHeaders(r.log, from, to)
	if err != nil {
		return
	}
	theirs, err := batchHeaders(fr.log, from, to)
	if err != nil {
		return
	}
	for i := range min(len(mine), len(theirs)) {
		a, b := mine[i], theirs[i]
		if a.BaseOffset != b.BaseOffset || a.LastOffset() != b.LastOffset() || a.PartitionLeaderEpoch != b.PartitionLeaderEpoch || a.CRC != b.CRC {
			r.mu.Lock()
			r.violatedLocked(fmt.Sprintf("below the high watermark, follower %d's batch %d-%d (epoch %d, crc %08x) differs from the leader's %d-%d (epoch %d, crc %08x)",
				follower, b.BaseOffset, b.LastOffset(), b.PartitionLeaderEpoch, b.CRC, a.BaseOffset, a.LastOffset(), a.PartitionLeaderEpoch, a.CRC))
			r.mu.Unlock()
			return
		}
	}
}

// batchHeaders reads the headers of l's batches from the one holding from
// up to those ending below to.
func batchHeaders(l *segment.Log, from, to int64) ([]segment.BatchHeader, error) {
	var hs []segment.BatchHeader
	for off := from; off < to; {
		data, err := l.Read(off, 1<<20, to)
		if err != nil {
			return nil, err
		}
		if len(data) == 0 {
			break
		}
		for len(data) > 0 {
			h, err := segment.ParseBatchHeader(data)
			if err != nil {
				return nil, err
			}
			if h.TotalSize() > len(data) {
				return nil, errors.New("short batch")
			}
			hs = append(hs, h)
			off = h.LastOffset() + 1
			data = data[h.TotalSize():]
		}
	}
	return hs, nil
}
