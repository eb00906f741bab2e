package network

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// pairOf dials from node 1 to node 2 (TCP, or in memory) and returns both
// ends.
func pairOf(t *testing.T, n *Network) (dialed, accepted net.Conn) {
	t.Helper()
	ln, err := n.Listen(2, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(got)
			return
		}
		got <- c
	}()
	d, err := n.Dial(context.Background(), 1, 2, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-got
	if a == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { d.Close(); a.Close() })
	return d, a
}

// watchesKept is how many watches the network keeps.
func watchesKept(n *Network) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.mu.watches)
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestWatchEndsOnEveryFault: a watch of either end of a connection ends
// when the other end closes, and when a cut, a latency or a loss is set on
// its link; a link with a fault gives no watch; a fault on another link
// leaves it alone. The same for WatchFunc, whose function is called once.
func TestWatchEndsOnEveryFault(t *testing.T) {
	for _, mem := range []bool{false, true} {
		faults := map[string]func(n *Network) func(){
			"peer closes": nil,
			"cut":         func(n *Network) func() { return n.Cut(1, 2) },
			"delay": func(n *Network) func() {
				n.SetDelay(2, 1, time.Millisecond)
				return func() { n.SetDelay(1, 2, 0) }
			},
			"loss": func(n *Network) func() {
				n.SetLoss(1, 2, 0.5, 1)
				return func() { n.SetLoss(1, 2, 0, 0) }
			},
		}
		for name, fault := range faults {
			n := New()
			if mem {
				n = NewInMemory()
			}
			d, a := pairOf(t, n)
			wd, ok1 := n.Watch(d)
			wa, ok2 := n.Watch(a)
			if !ok1 || !ok2 {
				t.Fatalf("mem=%v %s: no watch on a healthy connection", mem, name)
			}
			var calls [2]atomic.Int32
			_, ok1 = n.WatchFunc(d, func() { calls[0].Add(1) })
			_, ok2 = n.WatchFunc(a, func() { calls[1].Add(1) })
			if !ok1 || !ok2 {
				t.Fatalf("mem=%v %s: no WatchFunc on a healthy connection", mem, name)
			}
			other := n.Cut(1, 3) // another link
			n.SetDelay(2, 3, time.Millisecond)
			if isClosed(wd) || isClosed(wa) || calls[0].Load() != 0 || calls[1].Load() != 0 {
				t.Fatalf("mem=%v %s: a fault on another link ended the watch", mem, name)
			}
			other()
			if fault == nil {
				d.Close()
			} else {
				heal := fault(n)
				if _, ok := n.Watch(a); ok {
					t.Fatalf("mem=%v %s: a watch on a faulty link", mem, name)
				}
				if _, ok := n.WatchFunc(a, func() {}); ok {
					t.Fatalf("mem=%v %s: a WatchFunc on a faulty link", mem, name)
				}
				defer heal()
			}
			if !isClosed(wd) || !isClosed(wa) {
				t.Fatalf("mem=%v %s: watch still open (dialed end %v, accepted end %v)", mem, name, isClosed(wd), isClosed(wa))
			}
			if c0, c1 := calls[0].Load(), calls[1].Load(); c0 != 1 || c1 != 1 {
				t.Fatalf("mem=%v %s: WatchFunc called %d and %d times, want once each", mem, name, c0, c1)
			}
			n.Close()
		}
	}
}

// TestUnwatchForgets: Unwatch closes the channel and forgets it; closing
// the network ends every watch.
func TestUnwatchForgets(t *testing.T) {
	n := New()
	d, a := pairOf(t, n)
	w1, _ := n.Watch(d)
	w2, _ := n.Watch(a)
	n.Unwatch(w1)
	if !isClosed(w1) || isClosed(w2) {
		t.Fatal("Unwatch closed the wrong watch")
	}
	if left := watchesKept(n); left != 1 {
		t.Fatalf("%d watches kept, want 1", left)
	}
	n.Close()
	if !isClosed(w2) {
		t.Fatal("Close left a watch open")
	}
}

// TestWatchFuncStop: a WatchFunc stopped before its connection stops
// standing is never called and is forgotten; stopping twice, or after the
// call, is harmless; closing the network calls those still in force.
func TestWatchFuncStop(t *testing.T) {
	n := New()
	d, a := pairOf(t, n)
	var stopped, kept atomic.Int32
	stop, ok := n.WatchFunc(d, func() { stopped.Add(1) })
	if !ok {
		t.Fatal("no WatchFunc on a healthy connection")
	}
	stop2, _ := n.WatchFunc(a, func() { kept.Add(1) })
	stop()
	stop()
	if left := watchesKept(n); left != 1 {
		t.Fatalf("%d watches kept, want 1", left)
	}
	n.Close()
	if stopped.Load() != 0 || kept.Load() != 1 {
		t.Fatalf("stopped watch called %d times (want 0), kept one %d (want 1)", stopped.Load(), kept.Load())
	}
	stop2()
	if kept.Load() != 1 {
		t.Fatal("stop after the call called it again")
	}
	if _, ok := n.WatchFunc(d, func() {}); ok {
		t.Fatal("a WatchFunc on a closed network")
	}
}

// A watch asked for after the other end closed is refused: it would never
// end, as the end asking is not reading and would not learn of the close.
func TestWatchRefusedOnceThePeerClosed(t *testing.T) {
	for _, mem := range []bool{false, true} {
		n := New()
		if mem {
			n = NewInMemory()
		}
		d, a := pairOf(t, n)
		d.Close()
		if _, ok := n.Watch(a); ok {
			t.Fatalf("mem=%v: a watch on a connection whose dialing end closed", mem)
		}
		n.mu.Lock()
		left := len(n.mu.pairs)
		n.mu.Unlock()
		if left != 1 {
			t.Fatalf("mem=%v: %d pairs known with the accepting end open, want 1", mem, left)
		}
		a.Close()
		n.mu.Lock()
		left = len(n.mu.pairs)
		n.mu.Unlock()
		if left != 0 {
			t.Fatalf("mem=%v: %d pairs known after both ends closed", mem, left)
		}
		n.Close()
	}
}

// TestNudge: a nudge from the dialing end reaches the accepting end's
// Nudged at once, or at its next Nudged if none is in force; done ends the
// nudge; only the dialing end nudges and only the accepting end is nudged;
// a link with a fault, or a closed peer, takes no nudge.
func TestNudge(t *testing.T) {
	for _, mem := range []bool{false, true} {
		newNet := New
		if mem {
			newNet = NewInMemory
		}
		n := newNet()
		d, a := pairOf(t, n)
		received := func(ch <-chan struct{}) bool {
			select {
			case <-ch:
				return true
			default:
				return false
			}
		}

		// In force: the nudge arrives at once.
		ch, done := n.Nudged(a)
		if received(ch) {
			t.Fatalf("mem=%v: a nudge before any was given", mem)
		}
		if !n.Nudge(d) {
			t.Fatalf("mem=%v: a nudge on a healthy link was refused", mem)
		}
		if !received(ch) {
			t.Fatalf("mem=%v: a nudge did not reach the Nudged in force", mem)
		}
		done()

		// Ended by done: the next Nudged starts with none.
		ch, done = n.Nudged(a)
		if received(ch) {
			t.Fatalf("mem=%v: a nudge outlived the done that followed it", mem)
		}
		done()

		// Given while nothing is in force: the next Nudged has it.
		if !n.Nudge(d) {
			t.Fatalf("mem=%v: a nudge with no Nudged in force was refused", mem)
		}
		ch, done = n.Nudged(a)
		if !received(ch) {
			t.Fatalf("mem=%v: a nudge given before Nudged was lost", mem)
		}
		done()

		// Directions: the accepting end does not nudge, the dialing end is
		// not nudged.
		if n.Nudge(a) {
			t.Fatalf("mem=%v: the accepting end nudged", mem)
		}
		if ch, done := n.Nudged(d); ch != nil {
			done()
			t.Fatalf("mem=%v: the dialing end took nudges", mem)
		}

		// A fault on the link: no nudge, nothing pending after heal.
		n.SetDelay(1, 2, time.Millisecond)
		if n.Nudge(d) {
			t.Fatalf("mem=%v: a nudge on a slowed link was given", mem)
		}
		n.SetDelay(1, 2, 0)
		ch, done = n.Nudged(a)
		if received(ch) {
			t.Fatalf("mem=%v: a refused nudge arrived", mem)
		}
		done()

		// The peer closed: refused.
		a.Close()
		if n.Nudge(d) {
			t.Fatalf("mem=%v: a nudge to a closed end was given", mem)
		}
		n.Close()
	}
}

// TestDials counts each node's dials to another.
func TestDials(t *testing.T) {
	n := New()
	defer n.Close()
	if got := n.Dials(1, 2); got != 0 {
		t.Fatalf("dials before any: %d", got)
	}
	pairOf(t, n)
	pairOf(t, n)
	if got, back := n.Dials(1, 2), n.Dials(2, 1); got != 2 || back != 0 {
		t.Fatalf("dials 1 to 2: %d, 2 to 1: %d; want 2 and 0", got, back)
	}
}
