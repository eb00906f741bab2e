package kcluster

// Requests held while their connection stands. Between kcluster's own
// nodes, a request that only waits for something to happen (a broker's
// heartbeat at an idle controller, a caught-up follower's fetch at an
// idle leader) is held for as long as network.Watch says its connection
// carries every write at once, instead of being answered empty every few
// milliseconds and sent again: an idle cluster then does no work. Both
// ends watch the connection, so a death, a cut, a latency or a loss ends
// the hold at both at once, and from then on the ordinary timeouts apply.

import (
	"context"
	"net"
	"sync"
	"time"
)

// holdContext returns a context for a request on conn that the other end
// may hold while conn stands: it is cancelled bound after conn stops
// standing (at once if it does not stand now: bound from now), or when
// parent ends. cancel ends it and the watch; it is safe to call more than
// once and from any goroutine. It starts no goroutine: every held
// request between the nodes (metadata fetches, heartbeats, follower
// fetches) takes one, and a goroutine, a select and a timer each were
// about 3% of a typical test's CPU.
func (c *Cluster) holdContext(parent context.Context, conn net.Conn, bound time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancelCtx := context.WithCancel(parent)
	h := &hold{cancel: cancelCtx, bound: bound}
	stop, ok := c.net.WatchFunc(conn, h.arm)
	if !ok {
		h.arm()
	}
	return ctx, func() {
		cancelCtx()
		h.mu.Lock()
		h.done = true
		if h.t != nil {
			h.t.Stop()
		}
		h.mu.Unlock()
		if stop != nil {
			stop()
		}
	}
}

// hold is a holdContext's deadline, armed once its connection stops
// standing.
type hold struct {
	cancel context.CancelFunc
	bound  time.Duration
	mu     sync.Mutex
	t      *time.Timer
	done   bool // cancelled: arm no more
}

// arm starts the bound, once. It runs under the network's lock when the
// watch ends (network.WatchFunc), so it only starts a timer.
func (h *hold) arm() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.done && h.t == nil {
		h.t = time.AfterFunc(h.bound, h.cancel)
	}
}
