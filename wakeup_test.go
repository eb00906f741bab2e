package kcluster

import (
	"testing"
	"testing/synctest"
	"time"
)

// ticks keeps the phase of a ticker: whatever is asked for comes at the
// first tick at or after it (and after now), an earlier tick already asked
// for stands, and nothing comes when nothing is asked for.
func TestTicksKeepATickersPhase(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		tk := newTicks(time.Second)
		defer tk.stop()
		expect := func(want time.Duration) {
			t.Helper()
			<-tk.c()
			if got := time.Since(t0); got != want {
				t.Fatalf("tick at %v, want %v", got, want)
			}
			tk.none()
		}
		expect(time.Second) // the first tick is asked for
		tk.atTick(t0.Add(2500 * time.Millisecond))
		expect(3 * time.Second)
		tk.atTick(t0.Add(10 * time.Second))
		tk.atTick(t0.Add(5 * time.Second)) // earlier: it replaces the later one
		tk.atTick(t0.Add(8 * time.Second)) // later: the earlier stands
		expect(5 * time.Second)
		tk.atTick(t0) // past: the next tick
		expect(6 * time.Second)
		time.Sleep(1500 * time.Millisecond) // nothing asked for: nothing comes
		select {
		case <-tk.c():
			t.Fatal("a tick no one asked for")
		default:
		}
		tk.atNextTick()
		expect(8 * time.Second)
	})
}

// An armer wakes its loop only while the loop listens, and once.
func TestArmerWakesOnlyAListeningLoop(t *testing.T) {
	var a armer
	a.init()
	a.arm()
	if len(a.ch) != 0 {
		t.Fatal("woke a loop that did not listen")
	}
	a.listen()
	a.arm()
	a.arm()
	if len(a.ch) != 1 {
		t.Fatalf("%d wake-ups pending, want 1", len(a.ch))
	}
	<-a.ch
	a.arm()
	if len(a.ch) != 0 {
		t.Fatal("woke the loop twice for one listen")
	}
	a.listen()
	a.arm()
	a.unlisten()
	if len(a.ch) != 0 || a.listening.Load() {
		t.Fatal("unlisten left a wake-up or the loop listening")
	}
}
