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
	"fmt"
	"strings"
	"sync"

	"github.com/kcluster/kcluster/internal/invariants"
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
func (r *replica) violatedLocked(msg string) {
	r.b.c.invariantViolated(fmt.Sprintf("broker %d, %s-%d (leader %d, epoch %d): %s", r.b.id, r.topic, r.part, r.mu.leader, r.mu.epoch, msg))
}

// advanceHWLocked moves the high watermark up to hw (callers checked that
// hw > r.mu.hw). The only other ways the high watermark moves are
// truncations, which lower it with the log (lowerHWLocked).
func (r *replica) advanceHWLocked(hw int64) {
	if invariants.Enabled {
		var isr map[int32]int64
		if r.mu.leader == r.b.id {
			isr = make(map[int32]int64, len(r.mu.isr))
			for _, id := range r.mu.isr {
				if f := r.mu.followers[id]; id != r.b.id && f != nil {
					isr[id] = f.leo
				}
			}
		}
		if msg := checkHWAdvance(r.mu.hw, hw, r.log.LogEndOffset(), isr); msg != "" {
			r.violatedLocked(msg)
		}
	}
	r.mu.hw = hw
}

// lowerHWLocked sets the high watermark after the log was truncated or
// reset to off: the one way it may move backwards.
func (r *replica) lowerHWLocked(off int64) {
	r.mu.hw = off
	if invariants.Enabled {
		if msg := checkHW(r.mu.hw, r.log.LogEndOffset()); msg != "" {
			r.violatedLocked(msg)
		}
	}
}
