// Package pebblesched is a pebble CompactionScheduler that never wakes up
// by itself. Pebble's default (ConcurrencyLimitScheduler) samples every
// DB's compaction allowance on a 100 ms ticker, so an idle process with a
// few pebble DBs wakes up tens of times a second to find nothing to do.
// This one grants compactions, up to the DB's allowance, when the DB asks
// (TrySchedule), when a compaction ends (Done) and when the DB says the
// allowance may have grown (UpdateGetAllowedWithoutPermission, after a
// flush): the moments the allowance or the backlog change.
package pebblesched

import (
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// Scheduler is one DB's scheduler (pebble's Options.Experimental.
// CompactionScheduler); a DB registers with it once. The zero value is
// not usable; use New.
type Scheduler struct {
	db pebble.DBForCompaction // set by Register, before any other call
	wg sync.WaitGroup         // grants started by UpdateGetAllowedWithoutPermission
	mu struct {
		sync.Mutex
		running      int
		unregistered bool
		granting     bool // one grant loop at a time
		done         *sync.Cond
	}
}

var _ pebble.CompactionScheduler = (*Scheduler)(nil)

// New returns a scheduler for one DB.
func New() *Scheduler {
	s := &Scheduler{}
	s.mu.done = sync.NewCond(&s.mu.Mutex)
	return s
}

// Register implements pebble.CompactionScheduler.
func (s *Scheduler) Register(_ int, db pebble.DBForCompaction) { s.db = db }

// Unregister implements pebble.CompactionScheduler: no grant is made
// after it returns.
func (s *Scheduler) Unregister() {
	s.mu.Lock()
	s.mu.unregistered = true
	for s.mu.granting {
		s.mu.done.Wait()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// TrySchedule implements pebble.CompactionScheduler.
func (s *Scheduler) TrySchedule() (bool, pebble.CompactionGrantHandle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.unregistered || s.db.GetAllowedWithoutPermission() <= s.mu.running {
		return false, nil
	}
	s.mu.running++
	return true, s
}

// UpdateGetAllowedWithoutPermission implements pebble.CompactionScheduler.
// The DB calls it with its own lock held, and granting calls back into
// the DB, so the grant runs on a goroutine of its own.
func (s *Scheduler) UpdateGetAllowedWithoutPermission() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.unregistered || s.db.GetAllowedWithoutPermission() <= s.mu.running {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.grant()
	}()
}

// Started implements pebble.CompactionGrantHandle.
func (s *Scheduler) Started() {}

// MeasureCPU implements pebble.CompactionGrantHandle.
func (s *Scheduler) MeasureCPU(pebble.CompactionGoroutineKind) {}

// CumulativeStats implements pebble.CompactionGrantHandle.
func (s *Scheduler) CumulativeStats(pebble.CompactionGrantHandleStats) {}

// Done implements pebble.CompactionGrantHandle: a compaction ended, so
// another may run.
func (s *Scheduler) Done() {
	s.mu.Lock()
	s.mu.running--
	s.mu.Unlock()
	s.grant()
}

// grant hands the DB compactions while it has some waiting and its
// allowance is not used up. It must be called without the DB's locks.
func (s *Scheduler) grant() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.unregistered || s.mu.granting {
		return
	}
	s.mu.granting = true
	defer func() {
		s.mu.granting = false
		s.mu.done.Broadcast()
	}()
	for !s.mu.unregistered && s.db.GetAllowedWithoutPermission() > s.mu.running {
		s.mu.Unlock()
		waiting, _ := s.db.GetWaitingCompaction()
		accepted := waiting && s.db.Schedule(s)
		s.mu.Lock()
		if !accepted {
			return
		}
		s.mu.running++
	}
}
