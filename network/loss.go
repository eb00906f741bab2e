package network

// Loss and latency on a link, as code above TCP sees them.
//
// TCP never hands the application a gap: a lost segment is retransmitted
// after the retransmission timeout (RTO), and everything sent after it on
// the connection waits behind it (head-of-line blocking). So what Kafka
// code sees of packet loss is stalls: an exchange that normally takes
// microseconds takes 200 ms, 600 ms, 1.4 s... and, when the loss goes on
// long enough, a request times out and the client closes the connection,
// or TCP itself gives up with ETIMEDOUT. That is what a lossy link does
// here:
//
//   - Each write crossing the link (a Kafka request or response frame, or
//     part of one) is lost with probability p, drawn from a PCG of the
//     connection's own, seeded with the seed, the link, the connection's
//     number among those made on the link (per side) and the SetLoss call:
//     the n-th write of a connection draws the same number in every replay,
//     whatever the writes on other connections do meanwhile. (Which
//     connection gets which number, and what is written when, still follow
//     the goroutines' scheduling.)
//   - A lost write is retransmitted after the RTO, 200 ms (Linux's
//     TCP_RTO_MIN) the first time, doubling for each retransmission, capped
//     at 120 s (TCP_RTO_MAX); each retransmission is lost again with the
//     link's probability at that moment, so removing the loss ends a stall
//     at the next retransmission. Later writes on the connection wait
//     behind it.
//   - After 15 lost retransmissions (Linux's tcp_retries2) the connection
//     is closed and the write fails with ETIMEDOUT.
//   - Closing the connection ends a stall at once; a deadline ends it with
//     os.ErrDeadlineExceeded, as a blocked read or write would.
//
// Loss is per write, not per packet: a large frame is one draw. On a link
// to Client, whose far end is outside this network, the broker's reads
// suffer the faults too: a burst of bytes the broker reads after it
// answered, or after waiting for them (a new request, or pipelined
// requests sent together), is delayed and may be lost as one write would;
// bytes that were already waiting arrived with the previous burst.

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"time"
)

const (
	rtoMin         = 200 * time.Millisecond // Linux TCP_RTO_MIN
	rtoMax         = 120 * time.Second      // Linux TCP_RTO_MAX
	maxRetransmits = 15                     // Linux net.ipv4.tcp_retries2
	// burstGap: a Read that returns sooner than this found its bytes
	// already waiting.
	burstGap = 100 * time.Microsecond
)

// ErrTimedOut is returned by Write (and Read, on a link to Client) when a
// lost write was retransmitted 15 times without getting through; the
// connection is closed, as TCP gives up with ETIMEDOUT.
var ErrTimedOut = fmt.Errorf("network: retransmissions exhausted: %w", syscall.ETIMEDOUT)

// loss is one lossy link.
type loss struct {
	p    float64
	seed uint64
	gen  uint64 // which SetLoss call made it: connections start new draws
}

// SetLoss makes the link between a and b (either may be Client) lose each
// write with probability p (see the package's loss model), drawing from a
// PCG seeded with seed and the link. p <= 0 removes the loss; p >= 1 loses
// every write until the connection times out.
func (n *Network) SetLoss(a, b int32, p float64, seed uint64) {
	l := mkLink(a, b)
	n.mu.Lock()
	defer n.mu.Unlock()
	if p <= 0 {
		delete(n.mu.losses, l)
		return
	}
	n.mu.lossGen++
	n.mu.losses[l] = &loss{p: min(p, 1), seed: seed, gen: n.mu.lossGen}
	n.endWatchesLocked(func(w *watch) bool { return w.link == l })
}

// suffer makes the caller wait out the link's delay, then, while the
// write is lost (drawn again for each retransmission, with the link's loss
// at that moment, so undoing the loss ends a stall at the next
// retransmission), a retransmission timeout. It returns net.ErrClosed if
// the connection closes meanwhile, os.ErrDeadlineExceeded at the read or
// write deadline (read says which), and ErrTimedOut, closing the
// connection, when the retransmissions run out.
func (c *conn) suffer(read bool) error {
	l := mkLink(c.from, c.to)
	c.n.mu.Lock()
	delay := c.n.mu.delays[l]
	c.n.mu.Unlock()
	if err := c.stall(delay, read); err != nil {
		return err
	}
	rto := rtoMin
	for i := 0; ; i++ {
		c.n.mu.Lock()
		ls := c.n.mu.losses[l]
		lost := ls != nil && c.drawLocked(ls, read) < ls.p
		c.n.mu.Unlock()
		if !lost {
			return nil
		}
		if i == maxRetransmits {
			c.Close()
			return ErrTimedOut
		}
		if c.n.onStall != nil {
			c.n.onStall()
		}
		if err := c.stall(rto, read); err != nil {
			return err
		}
		rto = min(2*rto, rtoMax)
	}
}

// drawLocked draws the next number of this connection's reads or writes
// on the lossy link ls.
func (c *conn) drawLocked(ls *loss, read bool) float64 {
	if c.rngGen != ls.gen || c.rng == nil {
		side := uint64(0)
		if c.accepted {
			side = 1
		}
		l := mkLink(c.from, c.to)
		link := uint64(uint32(l.a))<<32 | uint64(uint32(l.b))
		conn := (c.seq<<1 | side) * 0x9e3779b97f4a7c15
		c.rng = rand.New(rand.NewPCG(ls.seed^conn, link^ls.gen<<48))
		c.rrng = rand.New(rand.NewPCG(ls.seed^conn, link^ls.gen<<48^0x5bd1e995))
		c.rngGen = ls.gen
	}
	if read {
		return c.rrng.Float64()
	}
	return c.rng.Float64()
}

// stall waits d, or until the connection closes or its deadline passes.
func (c *conn) stall(d time.Duration, read bool) error {
	if d <= 0 {
		return nil
	}
	dl := &c.wdl
	if read {
		dl = &c.rdl
	}
	var expired <-chan time.Time
	if ns := dl.Load(); ns != 0 {
		until := time.Until(time.Unix(0, ns))
		if until <= 0 {
			return os.ErrDeadlineExceeded
		}
		if until < d {
			t := time.NewTimer(until)
			defer t.Stop()
			expired = t.C
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-expired:
		return os.ErrDeadlineExceeded
	case <-c.done:
		return net.ErrClosed
	}
}

// SetDeadline, SetReadDeadline and SetWriteDeadline also bound stalls.
func (c *conn) SetDeadline(t time.Time) error {
	c.rdl.Store(unixNano(t))
	c.wdl.Store(unixNano(t))
	return c.Conn.SetDeadline(t)
}

func (c *conn) SetReadDeadline(t time.Time) error {
	c.rdl.Store(unixNano(t))
	return c.Conn.SetReadDeadline(t)
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.wdl.Store(unixNano(t))
	return c.Conn.SetWriteDeadline(t)
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Read suffers the link's faults on connections from clients (see the
// package's loss model); other connections read as they are, their far
// end's writes having suffered already.
func (c *conn) Read(p []byte) (int, error) {
	if c.from != Client {
		return c.Conn.Read(p)
	}
	start := time.Now()
	n, err := c.Conn.Read(p)
	if n == 0 {
		return n, err
	}
	fresh := c.lastRead.IsZero() || c.wrote.Swap(false) || time.Since(start) >= burstGap
	if fresh {
		if serr := c.suffer(true); serr != nil {
			return 0, serr
		}
	}
	c.lastRead = time.Now()
	return n, err
}
