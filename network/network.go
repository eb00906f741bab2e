// Package network owns every listener and every node-to-node connection of a
// cluster, so that faults (cuts, isolation) apply to real TCP traffic.
//
// Nodes are identified by int32 ids (brokers and, later, controllers).
// Client connections (from outside the cluster) are accepted through the
// node's listener and tracked as coming from node -1.
//
// Concurrency: all state sits in mu; every method is safe for concurrent use.
package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Client is the node id given to connections accepted from outside the
// cluster (Kafka clients).
const Client int32 = -1

// ErrCut is returned by Dial when the link between two nodes is cut.
var ErrCut = fmt.Errorf("network: link cut: %w", syscall.ECONNREFUSED)

// ErrClosed is returned by Listen and Dial after Close.
var ErrClosed = errors.New("network: closed")

type link struct{ a, b int32 }

func mkLink(a, b int32) link {
	if a > b {
		a, b = b, a
	}
	return link{a, b}
}

// Network is one cluster's network. The zero value is not usable; use New.
type Network struct {
	mu struct {
		sync.Mutex
		closed    bool
		listeners map[int32]map[*listener]struct{}
		conns     map[*conn]struct{}
		cuts      map[link]int // count of active cuts per link
		// dialedFrom maps the address pair of each connection dialed
		// through the network to the dialing node, so the accepting side
		// knows its peer. The pair, not the local address alone: the
		// kernel gives one ephemeral port to connections to different
		// destinations, so a client's connection to one listener can
		// come from the port a node's connection to another listener
		// uses at the same time.
		dialedFrom map[addrPair]int32
		// dialing counts the TCP dials in flight to each node: the
		// listener may accept a connection before its dialer has
		// recorded it in dialedFrom, so Accept waits for them
		// (dialsDone is closed and replaced whenever one ends).
		dialing   map[int32]int
		dialsDone chan struct{}
		// delays holds the added latency per link (SetDelay).
		delays map[link]time.Duration
		// losses holds the loss of each lossy link (SetLoss, loss.go).
		losses map[link]*loss
		// connSeq counts the connections made per from, to and side
		// (conn.seq); lossGen counts SetLoss calls (loss.gen).
		connSeq map[connKey]uint64
		// reserved holds the ports of closed listeners, by port, until
		// a listener takes them again (reserve.go).
		reserved map[int]io.Closer
		lossGen  uint64
		// watches are the Watch channels not yet closed (watch.go);
		// pairs the connections' address pairs with an end tracked.
		watches map[*watch]struct{}
		pairs   map[addrPair]*pairEnds
	}
	// onStall, if set (by tests, before any connection), is called when
	// a write or read starts a retransmission stall.
	onStall func()
	// mem is set on an in-memory network (mem.go).
	mem *memState
}

// New returns an empty network.
func New() *Network {
	n := new(Network)
	n.mu.listeners = make(map[int32]map[*listener]struct{})
	n.mu.conns = make(map[*conn]struct{})
	n.mu.cuts = make(map[link]int)
	n.mu.dialedFrom = make(map[addrPair]int32)
	n.mu.dialing = make(map[int32]int)
	n.mu.dialsDone = make(chan struct{})
	n.mu.delays = make(map[link]time.Duration)
	n.mu.losses = make(map[link]*loss)
	n.mu.connSeq = make(map[connKey]uint64)
	n.mu.reserved = make(map[int]io.Closer)
	n.mu.watches = make(map[*watch]struct{})
	n.mu.pairs = make(map[addrPair]*pairEnds)
	return n
}

// Listen opens a TCP listener for node on addr (host:port; port 0 picks one).
func (n *Network) Listen(node int32, addr string) (net.Listener, error) {
	n.mu.Lock()
	closed := n.mu.closed
	n.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	var inner net.Listener
	var err error
	if n.mem != nil {
		inner, err = n.memListen(addr)
	} else {
		inner, err = n.listenReserved(func() (net.Listener, error) {
			lc := net.ListenConfig{KeepAlive: keepAlive(addr)}
			return lc.Listen(context.Background(), "tcp", addr)
		}, addr)
	}
	if err != nil {
		return nil, err
	}
	l := &listener{Listener: inner, n: n, node: node}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.closed {
		inner.Close()
		return nil, ErrClosed
	}
	m := n.mu.listeners[node]
	if m == nil {
		m = make(map[*listener]struct{})
		n.mu.listeners[node] = m
	}
	m[l] = struct{}{}
	return l, nil
}

// Dial connects node from to node to at addr.
func (n *Network) Dial(ctx context.Context, from, to int32, addr string) (net.Conn, error) {
	n.mu.Lock()
	if n.mu.closed {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	if n.mu.cuts[mkLink(from, to)] > 0 {
		n.mu.Unlock()
		return nil, ErrCut
	}
	if n.mem != nil {
		n.mu.Unlock()
		return n.memDial(ctx, addr, func(inner net.Conn) (net.Conn, bool) {
			c := newConn(inner, n, from, to)
			return c, n.track(c)
		})
	}
	n.mu.dialing[to]++
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		if n.mu.dialing[to]--; n.mu.dialing[to] == 0 {
			delete(n.mu.dialing, to)
		}
		close(n.mu.dialsDone)
		n.mu.dialsDone = make(chan struct{})
		n.mu.Unlock()
	}()
	d := net.Dialer{KeepAlive: keepAlive(addr)}
	inner, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := newConn(inner, n, from, to)
	if !n.track(c) {
		inner.Close()
		return nil, ErrCut
	}
	return c, nil
}

// keepAlive is the TCP keep-alive period for connections on addr: none on
// a loopback address, where a peer's end is never lost without the kernel
// telling the other (a killed process's sockets are closed for it, and the
// network's faults act above TCP, where the kernel answers probes anyway),
// so probes would find nothing and setting them up costs four system calls
// a connection end; Go's default (15 s) elsewhere, where a client's host
// can vanish.
func keepAlive(addr string) time.Duration {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || host == "localhost" {
		return -1
	}
	return 0
}

// addrPair names a TCP connection by its two ends: the dialer's address
// and the listener's.
type addrPair struct{ dialer, listener string }

// dialedPair is the address pair of a connection c dialed.
func dialedPair(c *conn) addrPair {
	return addrPair{dialer: c.LocalAddr().String(), listener: c.RemoteAddr().String()}
}

func (n *Network) track(c *conn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.closed || n.mu.cuts[mkLink(c.from, c.to)] > 0 {
		return false
	}
	n.mu.conns[c] = struct{}{}
	c.pair = dialedPair(c)
	n.trackPairLocked(c.pair)
	n.mu.dialedFrom[c.pair] = c.from
	c.numberLocked()
	return true
}

func (n *Network) untrack(c *conn) {
	n.mu.Lock()
	delete(n.mu.conns, c)
	if from, ok := n.mu.dialedFrom[c.pair]; ok && from == c.from && !c.accepted {
		delete(n.mu.dialedFrom, c.pair)
	}
	// Either end closing ends the watches of both, whoever the
	// accepting end took its peer for.
	n.untrackPairLocked(c.pair, c.accepted)
	n.endWatchesLocked(func(w *watch) bool { return w.pair == c.pair })
	n.mu.Unlock()
}

// Cut breaks the link between nodes a and b in both directions: existing
// connections between them are closed (the peer sees EOF or a reset), new
// dials fail with ErrCut (connection refused) and new accepted connections
// are closed at once, until heal is called. Either node may be Client: that
// link is every connection from outside the cluster to the other node.
// Cuts nest: a link is whole again once every cut of it is healed.
func (n *Network) Cut(a, b int32) (heal func()) {
	l := mkLink(a, b)
	n.mu.Lock()
	n.mu.cuts[l]++
	n.endWatchesLocked(func(w *watch) bool { return w.link == l })
	var doomed []*conn
	for c := range n.mu.conns {
		if mkLink(c.from, c.to) == l {
			doomed = append(doomed, c)
		}
	}
	n.mu.Unlock()
	for _, c := range doomed {
		c.Close()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			n.mu.Lock()
			if n.mu.cuts[l]--; n.mu.cuts[l] <= 0 {
				delete(n.mu.cuts, l)
			}
			n.mu.Unlock()
		})
	}
}

// CloseNode closes every listener of node and every connection to or from
// it.
func (n *Network) CloseNode(node int32) {
	n.mu.Lock()
	var ls []*listener
	for l := range n.mu.listeners[node] {
		ls = append(ls, l)
	}
	delete(n.mu.listeners, node)
	var doomed []*conn
	for c := range n.mu.conns {
		if c.from == node || c.to == node {
			doomed = append(doomed, c)
		}
	}
	n.mu.Unlock()
	for _, l := range ls {
		l.Listener.Close()
	}
	n.mu.Lock()
	for _, l := range ls {
		n.reserveLocked(l.Listener)
	}
	n.mu.Unlock()
	for _, c := range doomed {
		c.Close()
	}
}

// Close closes every listener and tracked connection; later Listen and
// Dial calls fail with ErrClosed.
func (n *Network) Close() {
	n.mu.Lock()
	n.mu.closed = true
	n.endWatchesLocked(func(*watch) bool { return true })
	var ls []*listener
	for _, m := range n.mu.listeners {
		for l := range m {
			ls = append(ls, l)
		}
	}
	n.mu.listeners = make(map[int32]map[*listener]struct{})
	var cs []*conn
	for c := range n.mu.conns {
		cs = append(cs, c)
	}
	held := n.releaseLocked()
	n.mu.Unlock()
	for _, l := range ls {
		l.Listener.Close()
	}
	for _, r := range held {
		r.Close()
	}
	for _, c := range cs {
		c.Close()
	}
}

type listener struct {
	net.Listener
	n    *Network
	node int32
}

// Accept tracks the accepted connection: its peer is the node that dialed
// it through this network (recognized by address), or Client. A connection
// whose link is cut is closed at once, as a refused connection would look
// to the peer.
func (l *listener) Accept() (net.Conn, error) {
	for {
		inner, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		n := l.n
		n.mu.Lock()
		pair := addrPair{dialer: inner.RemoteAddr().String(), listener: inner.LocalAddr().String()}
		from, ok := l.peerLocked(pair)
		if !ok {
			from = Client
		}
		c := newConn(inner, n, from, l.node)
		if n.mu.closed || n.mu.cuts[mkLink(from, l.node)] > 0 {
			n.forgetPairLocked(pair)
			n.mu.Unlock()
			inner.Close()
			continue
		}
		n.mu.conns[c] = struct{}{}
		c.accepted = true
		c.pair = pair
		n.trackPairLocked(c.pair)
		c.numberLocked()
		n.mu.Unlock()
		return c, nil
	}
}

// peerLocked finds the node that dialed the connection from remote. The
// handshake can complete, and Accept return, before the dialer has
// recorded the connection, so while dials to this node are in flight it
// waits for them (a bounded wait: a dial ends when its handshake does),
// releasing n.mu meanwhile.
func (l *listener) peerLocked(remote addrPair) (int32, bool) {
	n := l.n
	var deadline *time.Timer // only when there is something to wait for
	for {
		if from, ok := n.mu.dialedFrom[remote]; ok {
			return from, true
		}
		if n.mu.closed || n.mu.dialing[l.node] == 0 {
			return 0, false
		}
		if deadline == nil {
			deadline = time.NewTimer(time.Second)
			defer deadline.Stop()
		}
		done := n.mu.dialsDone
		n.mu.Unlock()
		select {
		case <-done:
			n.mu.Lock()
		case <-deadline.C:
			n.mu.Lock()
			from, ok := n.mu.dialedFrom[remote]
			return from, ok
		}
	}
}

func (l *listener) Close() error {
	l.n.mu.Lock()
	_, open := l.n.mu.listeners[l.node][l]
	delete(l.n.mu.listeners[l.node], l)
	l.n.mu.Unlock()
	err := l.Listener.Close()
	if open {
		l.n.mu.Lock()
		l.n.reserveLocked(l.Listener)
		l.n.mu.Unlock()
	}
	return err
}

type conn struct {
	net.Conn
	n        *Network
	from, to int32
	once     sync.Once
	done     chan struct{} // closed by Close: ends a stall
	// wsem (one slot) keeps writes in order while one stalls (TCP's
	// head-of-line blocking); a channel, not a mutex, so that a writer
	// waiting behind a stall blocks durably in a testing/synctest bubble.
	// lastRead is when the previous Read returned (reads come from one
	// goroutine); rdl and wdl are the deadlines in Unix ns, 0 for none
	// (loss.go).
	wsem chan struct{}
	// seq numbers the connections made with the same from, to and side
	// (dialed or accepted), in the order they were made: with the link's
	// loss seed it seeds this connection's own draws (loss.go), so which
	// write is lost does not depend on how writes on other connections
	// interleave with this one's. rng and rrng (reads, on a link to
	// Client) and their generation are guarded by Network.mu.
	seq      uint64
	accepted bool
	// pair names the connection both its ends share: the dialing
	// socket's address and the accepting one's (Watch).
	pair      addrPair
	rng, rrng *rand.Rand
	rngGen    uint64
	lastRead  time.Time
	wrote     atomic.Bool // a write since the last read
	rdl, wdl  atomic.Int64
}

// numberLocked gives c its sequence number among the connections of its
// from, to and side.
func (c *conn) numberLocked() {
	k := connKey{c.from, c.to, c.accepted}
	c.seq = c.n.mu.connSeq[k]
	c.n.mu.connSeq[k]++
}

type connKey struct {
	from, to int32
	accepted bool
}

func newConn(inner net.Conn, n *Network, from, to int32) *conn {
	return &conn{Conn: inner, n: n, from: from, to: to, done: make(chan struct{}), wsem: make(chan struct{}, 1)}
}

// Write first suffers the link's faults, if any (loss.go): both ends of a
// slowed link delay what they send, so a request and its response each
// take the delay once more.
func (c *conn) Write(p []byte) (int, error) {
	select {
	case c.wsem <- struct{}{}:
	case <-c.done:
		return 0, net.ErrClosed
	}
	defer func() { <-c.wsem }()
	if err := c.suffer(false); err != nil {
		return 0, err
	}
	c.wrote.Store(true)
	return c.Conn.Write(p)
}

// SetDelay adds d of latency to every write on the link between a and b
// (either may be Client: then the broker's reads of what clients send are
// delayed too, as the client's end is not in this network); zero removes
// it.
func (n *Network) SetDelay(a, b int32, d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if d <= 0 {
		delete(n.mu.delays, mkLink(a, b))
		return
	}
	n.mu.delays[mkLink(a, b)] = d
	n.endWatchesLocked(func(w *watch) bool { return w.link == mkLink(a, b) })
}

func (c *conn) Close() error {
	var err error
	c.once.Do(func() {
		close(c.done)
		c.n.untrack(c)
		err = c.Conn.Close()
	})
	return err
}

// Peer returns the node that dialed c through this network, Client for a
// connection from outside the cluster or one not accepted by a Network
// listener. The peer is recognized by the dialing socket's address, which
// only a dial through the network registers, so a client cannot claim to
// be a node.
func Peer(c net.Conn) int32 {
	if nc, ok := c.(*conn); ok {
		return nc.from
	}
	return Client
}
