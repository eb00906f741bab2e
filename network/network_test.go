package network

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCutClosesAndRefusesUntilHealed(t *testing.T) {
	n := New()
	defer n.Close()
	ln, err := n.Listen(2, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	ctx := context.Background()
	c, err := n.Dial(ctx, 1, 2, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	defer srv.Close()
	heal := n.Cut(2, 1)
	// The server side of the dialed connection sees EOF or a reset.
	srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := srv.Read(make([]byte, 1)); err == nil || errors.Is(err, errTimeout(err)) {
		t.Fatalf("read after cut: %v", err)
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Fatal("write on a cut connection succeeded")
	}
	if _, err := n.Dial(ctx, 1, 2, ln.Addr().String()); !errors.Is(err, ErrCut) {
		t.Fatalf("dial across a cut: %v, want ErrCut", err)
	}
	// Other links are unaffected.
	c3, err := n.Dial(ctx, 3, 2, ln.Addr().String())
	if err != nil {
		t.Fatalf("dial on another link: %v", err)
	}
	c3.Close()
	(<-accepted).Close()
	heal()
	heal() // idempotent
	c4, err := n.Dial(ctx, 1, 2, ln.Addr().String())
	if err != nil {
		t.Fatalf("dial after heal: %v", err)
	}
	c4.Close()
	(<-accepted).Close()
	n.Close()
	if _, ok := <-accepted; ok {
		t.Fatal("listener still accepting after Close")
	}
	if _, err := n.Dial(ctx, 1, 2, ln.Addr().String()); !errors.Is(err, ErrClosed) {
		t.Fatalf("dial after Close: %v", err)
	}
}

// errTimeout returns a sentinel that matches only timeouts, so the check
// above fails on a timeout (the cut did not reach the peer).
func errTimeout(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return io.ErrNoProgress
}

// The listener's Accept can return before the dialer has recorded its
// connection; the accepted side must still know its peer is the dialing
// node, not a client, or a cut would miss it (and an authorizer would
// take a node for a client).
func TestAcceptKnowsTheDialingNode(t *testing.T) {
	n := New()
	defer n.Close()
	ln, err := n.Listen(1, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const dials = 200
	peers := make(chan int32, dials)
	go func() {
		for range dials {
			c, err := ln.Accept()
			if err != nil {
				close(peers)
				return
			}
			peers <- c.(*conn).from
			c.Close()
		}
	}()
	ctx := context.Background()
	var wg sync.WaitGroup
	conns := make(chan net.Conn, dials)
	for range dials {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := n.Dial(ctx, 2, 1, ln.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			conns <- c // open until accepted: a closed one is forgotten
		}()
	}
	wg.Wait()
	for range dials {
		if from, ok := <-peers; !ok || from != 2 {
			t.Fatalf("an accepted connection dialed by node 2 is from %d (ok %v)", from, ok)
		}
	}
	close(conns)
	for c := range conns {
		c.Close()
	}
	ln.Close()
}

// The kernel may give a client's connection to one listener the local
// port of a node's connection to another: ports are unique per
// destination, not per host. The client must still be a client (taken for
// the node, it would be authorized as the node). The test makes the
// collision on purpose by binding the client to the node's port.
func TestAcceptTellsAClientFromANodeOnTheSamePort(t *testing.T) {
	n := New()
	defer n.Close()
	lnA, err := n.Listen(1, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lnA.Close()
	lnB, err := n.Listen(3, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lnB.Close()
	accept := func(ln net.Listener) chan int32 {
		ch := make(chan int32, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				close(ch)
				return
			}
			ch <- c.(*conn).from
			c.Close()
		}()
		return ch
	}
	reuse := func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = errors.Join(syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1),
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1))
		}); err != nil {
			return err
		}
		return serr
	}
	// The node's connection, bound (to a port the kernel picks) with
	// SO_REUSEADDR and SO_REUSEPORT so that the client can share it.
	nodeConn, err := (&net.Dialer{Control: reuse, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}).Dial("tcp", lnA.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nodeConn.Close()
	// Record it as the network records a dial of node 2's.
	c := newConn(nodeConn, n, 2, 1)
	if !n.track(c) {
		t.Fatal("not tracked")
	}
	defer c.Close()
	if from := <-accept(lnA); from != 2 {
		t.Fatalf("node 2's connection accepted as from %d", from)
	}
	fromB := accept(lnB)
	client, err := (&net.Dialer{Control: reuse, LocalAddr: nodeConn.LocalAddr()}).Dial("tcp", lnB.Addr().String())
	if err != nil {
		t.Fatalf("a client on node 2's port %v: %v", nodeConn.LocalAddr(), err)
	}
	defer client.Close()
	if from := <-fromB; from != Client {
		t.Fatalf("a client's connection from node 2's port %v was taken for node %d's", client.LocalAddr(), from)
	}
}

// A closed listener's port stays held for its node while the network is
// open: a dial to it is refused, as a dead process's port is, and the
// node listens on it again (a restart keeps its address); the network's
// Close lets it go.
func TestClosedListenersPortIsHeldForItsNode(t *testing.T) {
	n := New()
	ln, err := n.Listen(1, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	n.mu.Lock()
	held := len(n.mu.reserved)
	n.mu.Unlock()
	if held != 1 {
		t.Fatalf("%d ports held after the listener closed, want 1", held)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("a dial to the closed listener's port %s connected", addr)
	}
	ln, err = n.Listen(1, addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", addr, err)
	}
	n.mu.Lock()
	held = len(n.mu.reserved)
	n.mu.Unlock()
	if held != 0 {
		t.Fatalf("%d ports held while the node listens, want 0", held)
	}
	n.CloseNode(1)
	n.Close()
	n.mu.Lock()
	held = len(n.mu.reserved)
	n.mu.Unlock()
	if held != 0 {
		t.Fatalf("%d ports held after Close", held)
	}
	free, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the port is not free after Close: %v", err)
	}
	free.Close()
}

// TestKeepAliveOnlyOffLoopback: connections on a loopback address set up no
// keep-alive probes; others keep Go's default.
func TestKeepAliveOnlyOffLoopback(t *testing.T) {
	for addr, want := range map[string]time.Duration{
		"127.0.0.1:9092": -1,
		"127.0.0.5:0":    -1,
		"[::1]:9092":     -1,
		"localhost:9092": -1,
		"0.0.0.0:9092":   0,
		"10.1.2.3:9092":  0,
		"example:9092":   0,
		"nonsense":       0,
	} {
		if got := keepAlive(addr); got != want {
			t.Errorf("keepAlive(%q) = %v, want %v", addr, got, want)
		}
	}
}
