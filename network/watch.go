package network

import "net"

// A watch is a Watch channel, or a WatchFunc's function: it is closed, or
// called, when the connection it names can no longer be counted on to
// carry a write at once.
type watch struct {
	link link
	pair addrPair
	ch   chan struct{}
	fn   func()
}

// Watch reports whether c, a connection made or accepted through this
// network, is open at both ends on a link with no fault (no cut, latency
// or loss), and
// returns a channel that is closed as soon as that ends: either end of c
// closes, a fault is set on its link (Cut, SetDelay, SetLoss) or the
// network closes. Healing a fault does not reopen a closed channel; a new
// Watch does.
//
// While the channel is open, anything either end writes on c reaches the
// other end at once, and each end learns of the other's close at once: a
// side that waits for its peer (a parked request) may take the peer's
// silence for the peer's presence, as real time would have shown it, and
// a watcher need not send anything to learn that the connection still
// stands. Once the channel is closed, only what crosses c says anything.
func (n *Network) Watch(c net.Conn) (<-chan struct{}, bool) {
	w := &watch{ch: make(chan struct{})}
	if !n.addWatch(c, w) {
		return nil, false
	}
	return w.ch, true
}

// WatchFunc is Watch with a function in place of the channel: f is called
// once, when c stops standing as Watch's channel would be closed, unless
// stop was called first. It spares a caller that would only wait on the
// channel a goroutine of its own. f runs with the network's lock held, on
// the goroutine that ended the watch (one closing a connection or setting
// a fault): it must be quick, must not block and must not call the
// network. stop may be called more than once, and after f; it does not
// wait for an f already running. When ok is false there is nothing to
// stop, and f is never called.
func (n *Network) WatchFunc(c net.Conn, f func()) (stop func(), ok bool) {
	w := &watch{fn: f}
	if !n.addWatch(c, w) {
		return nil, false
	}
	return func() {
		n.mu.Lock()
		delete(n.mu.watches, w)
		n.mu.Unlock()
	}, true
}

// standsLocked returns nc's link and what is known of its two ends if nc
// stands now: the network is open, nc is open, and so is its other end (a
// watch asked for after the other end closed would never end, as the end
// asking is not reading and would not learn of the close), on a link with
// no cut, latency or loss. pe is nil when it does not.
func (n *Network) standsLocked(nc *conn) (l link, pe *pairEnds) {
	l = mkLink(nc.from, nc.to)
	if _, open := n.mu.conns[nc]; !open || n.mu.closed || n.mu.cuts[l] > 0 || n.mu.delays[l] > 0 || n.mu.losses[l] != nil {
		return l, nil
	}
	if pe = n.mu.pairs[nc.pair]; pe == nil || pe.closed {
		return l, nil
	}
	return l, pe
}

// addWatch registers w on c if c stands now (Watch).
func (n *Network) addWatch(c net.Conn, w *watch) bool {
	nc, ok := c.(*conn)
	if !ok || nc.n != n {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	l, pe := n.standsLocked(nc)
	if pe == nil {
		return false
	}
	w.link, w.pair = l, nc.pair
	n.mu.watches[w] = struct{}{}
	return true
}

// Unwatch closes a Watch channel its caller no longer needs, so that the
// network does not keep it; ch may already be closed, or nil.
func (n *Network) Unwatch(ch <-chan struct{}) {
	if ch == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.endWatchesLocked(func(w *watch) bool { return w.ch == ch })
}

// pairEnds is what the network knows of a connection's two ends.
type pairEnds struct {
	ends   int  // tracked and not closed
	seen   int  // ever tracked
	closed bool // an end closed
	// nudged is a Nudge not yet ended by a Nudged's done; nudge is the
	// channel of the Nudged in force, if any.
	nudged bool
	nudge  chan struct{}
}

func (n *Network) trackPairLocked(pair addrPair) {
	pe := n.mu.pairs[pair]
	if pe == nil {
		pe = &pairEnds{}
		n.mu.pairs[pair] = pe
	}
	pe.ends++
	pe.seen++
}

// untrackPairLocked notes that an end of pair closed. What is known of the
// pair is forgotten once no end is left, unless a dialing end closes before
// its accepting end was tracked: the accepting end, tracked later, must
// find the pair closed.
func (n *Network) untrackPairLocked(pair addrPair, accepted bool) {
	pe := n.mu.pairs[pair]
	if pe == nil {
		return
	}
	pe.closed = true
	if pe.ends--; pe.ends <= 0 && (accepted || pe.seen >= 2) {
		delete(n.mu.pairs, pair)
	}
}

// forgetPairLocked forgets a pair whose accepting end was refused.
func (n *Network) forgetPairLocked(pair addrPair) {
	if pe := n.mu.pairs[pair]; pe != nil && pe.ends <= 0 {
		delete(n.mu.pairs, pair)
	}
}

// endWatchesLocked closes (or calls) and forgets the watches that end says
// end.
func (n *Network) endWatchesLocked(end func(*watch) bool) {
	for w := range n.mu.watches {
		if end(w) {
			if w.fn != nil {
				w.fn()
			} else {
				close(w.ch)
			}
			delete(n.mu.watches, w)
		}
	}
}

// Nudge tells the end that accepted c, a connection dialed through this
// network, to answer the request it holds now, as if a newer request had
// come on c (a follower that gained a partition while the leader holds its
// fetch, which does not name it). It reports whether the nudge was given:
// c is open at both ends on a link with no fault (as for Watch), so that
// a word written on c would have reached the other end at once. A nudge
// given while the other end holds nothing waits for its next Nudged, and
// ends with the Nudged that follows, whether it was received or not: the
// request the nudge was about has been answered by then. When Nudge
// reports false, the caller has only what crosses c (or closing it).
func (n *Network) Nudge(c net.Conn) bool {
	nc, ok := c.(*conn)
	if !ok || nc.n != n || nc.accepted {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	_, pe := n.standsLocked(nc)
	if pe == nil {
		return false
	}
	pe.nudged = true
	if pe.nudge != nil {
		select {
		case pe.nudge <- struct{}{}:
		default:
		}
	}
	return true
}

// Nudged returns a channel that receives when the end that dialed c, a
// connection this network accepted, nudges it (Nudge), at once if it did
// since the last Nudged ended; done ends it, and with it any nudge given
// so far. A connection not of this network is never nudged.
func (n *Network) Nudged(c net.Conn) (ch <-chan struct{}, done func()) {
	nc, ok := c.(*conn)
	if !ok || nc.n != n || !nc.accepted {
		return nil, func() {}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	pe := n.mu.pairs[nc.pair]
	if pe == nil || pe.closed {
		return nil, func() {}
	}
	nch := make(chan struct{}, 1)
	if pe.nudged {
		nch <- struct{}{}
	}
	pe.nudge = nch
	return nch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if pe.nudge == nch {
			pe.nudge = nil
			pe.nudged = false
		}
	}
}

// Dials counts the connections node from has dialed to node to through
// this network.
func (n *Network) Dials(from, to int32) uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.connSeq[connKey{from, to, false}]
}
