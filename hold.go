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
	"time"
)

// holdContext returns a context for a request on conn that the other end
// may hold while conn stands: it is cancelled bound after conn stops
// standing (at once if it does not stand now: bound from now), or when
// parent ends. cancel ends it and the watch; it is safe to call more than
// once and from any goroutine.
func (c *Cluster) holdContext(parent context.Context, conn net.Conn, bound time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancelCtx := context.WithCancel(parent)
	w, ok := c.net.Watch(conn)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		defer c.net.Unwatch(w)
		if ok {
			select {
			case <-w:
			case <-ctx.Done():
				return
			}
		}
		t := time.NewTimer(bound)
		defer t.Stop()
		select {
		case <-t.C:
			cancelCtx()
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		cancelCtx()
		<-exited
	}
}
