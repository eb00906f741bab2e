package kcluster

// Loops that sleep while there is nothing to do (the ISR checks, the log
// cleaner) are woken by a change, without making every change pay for a
// wake-up: an armer wakes its loop only if the loop listens, and only once.

import (
	"sync/atomic"
	"time"
)

// armer wakes a loop that sleeps until something changes.
type armer struct {
	listening atomic.Bool
	ch        chan struct{} // of capacity one
}

func (a *armer) init() { a.ch = make(chan struct{}, 1) }

// listen makes the next arm wake the loop. A loop calls it before it
// looks at what there is to do, so a change while it looks is not missed.
func (a *armer) listen() { a.listening.Store(true) }

// unlisten is for a loop that will wake up anyway: it drops a pending
// wake-up and the next arm's.
func (a *armer) unlisten() {
	a.listening.Store(false)
	select {
	case <-a.ch:
	default:
	}
}

// arm wakes the loop if it listens.
func (a *armer) arm() {
	if a.listening.Load() && a.listening.CompareAndSwap(true, false) {
		select {
		case a.ch <- struct{}{}:
		default:
		}
	}
}

// ticks is a ticker that ticks only when asked to: at the first of its
// ticks (every apart, from its creation) at or after a time. A loop that
// would check something at every tick of a ticker asks for the tick at
// which its check can next find work, and sleeps until then; what it
// finds, it finds at the tick a ticker would have found it. It starts
// with its first tick asked for. It is used by one goroutine.
type ticks struct {
	every  time.Duration
	phase  time.Time
	timer  *time.Timer
	target time.Time // the tick asked for; zero: none
}

func newTicks(every time.Duration) *ticks {
	now := time.Now()
	return &ticks{every: every, phase: now, timer: time.NewTimer(every), target: now.Add(every)}
}

// c is the channel that receives the tick asked for.
func (t *ticks) c() <-chan time.Time { return t.timer.C }

// atTick asks for the first tick at or after at, and after now, unless an
// earlier one is asked for already and has not come.
func (t *ticks) atTick(at time.Time) {
	n := max((at.Sub(t.phase)+t.every-1)/t.every, time.Since(t.phase)/t.every+1)
	next := t.phase.Add(n * t.every)
	if !t.target.IsZero() && !t.target.After(next) && time.Now().Before(t.target) {
		return
	}
	t.target = next
	t.timer.Reset(time.Until(next))
}

// atNextTick asks for the next tick.
func (t *ticks) atNextTick() { t.atTick(time.Now()) }

// none forgets the tick asked for.
func (t *ticks) none() {
	t.target = time.Time{}
	t.timer.Stop()
}

func (t *ticks) stop() { t.timer.Stop() }
