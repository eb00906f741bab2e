package network

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// pair returns both ends of a connection from node 1 to node 2.
func pair(t *testing.T, n *Network) (client, server net.Conn) {
	t.Helper()
	ln, err := n.Listen(2, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		done <- c
	}()
	client, err = n.Dial(context.Background(), 1, 2, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-done
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// stallPattern writes n times across a lossy link and reports which
// writes stalled for a retransmission, and checks that a stall lasts the
// retransmission timeout.
func stallPattern(t *testing.T, seed uint64, n int) []bool {
	nw := New()
	defer nw.Close()
	stalls := 0
	nw.onStall = func() { stalls++ } // writes come from this goroutine only
	c, _ := pair(t, nw)
	nw.SetLoss(1, 2, 0.25, seed)
	var out []bool
	for range n {
		before := stalls
		start := time.Now()
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		stalled := stalls > before
		if d := time.Since(start); stalled && d < rtoMin {
			t.Fatalf("a stalled write took %v, less than the %v retransmission timeout", d, rtoMin)
		}
		out = append(out, stalled)
	}
	return out
}

// The same seed loses the same writes; a lost write stalls for at least
// the retransmission timeout; a different seed loses others.
func TestLossIsSeededAndStalls(t *testing.T) {
	a, b := stallPattern(t, 42, 10), stallPattern(t, 42, 10)
	if !slices.Equal(a, b) {
		t.Fatalf("seed 42 gave %v then %v", a, b)
	}
	if !slices.Contains(a, true) || !slices.Contains(a, false) {
		t.Fatalf("p=0.25 over 10 writes: stalls %v; want some of each", a)
	}
	t.Logf("stalled writes with seed 42: %v", a)
}

// A write stalled on a black-holed link ends at its deadline (a timeout
// error, as a blocked write's), or when the connection closes; undoing
// the loss ends a stall at the next retransmission.
func TestLossStallEnds(t *testing.T) {
	n := New()
	defer n.Close()
	var mu sync.Mutex
	stalls := 0
	stalled := make(chan struct{}, 64)
	n.onStall = func() {
		mu.Lock()
		stalls++
		mu.Unlock()
		stalled <- struct{}{}
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return stalls
	}
	c, srv := pair(t, n)
	n.SetLoss(1, 2, 1, 1)
	c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past its deadline: %v", err)
	}
	c.SetWriteDeadline(time.Time{})
	for len(stalled) > 0 {
		<-stalled // the deadline write's, which has returned
	}
	errc := make(chan error, 1)
	go func() { _, err := c.Write([]byte("y")); errc <- err }()
	<-stalled
	n.SetLoss(1, 2, 0, 0)
	before := count()
	if err := <-errc; err != nil {
		t.Fatalf("write after the loss was removed: %v", err)
	}
	// At most the retransmission drawn before the loss was removed.
	if again := count() - before; again > 1 {
		t.Fatalf("the write stalled %d more times after the loss was removed", again)
	}
	buf := make([]byte, 1)
	if _, err := srv.Read(buf); err != nil || buf[0] != 'y' {
		t.Fatalf("read %q %v", buf, err)
	}
	n.SetLoss(1, 2, 1, 1)
	go func() { _, err := c.Write([]byte("z")); errc <- err }()
	c.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("stalled write after close: %v", err)
	}
}

// Each connection draws its losses from a stream of its own: the writes
// of one connection stall in the same pattern whether or not another
// connection on the same link writes in between (with one stream per
// link, which connection drew which number followed the goroutines'
// interleaving). In a synctest bubble on the in-memory network, so the
// stalls take no wall time.
func TestLossIsPerConnection(t *testing.T) {
	pattern := func(interleave bool) []bool {
		var out []bool
		synctest.Test(t, func(t *testing.T) {
			nw := NewInMemory()
			defer nw.Close()
			stalls := 0
			nw.onStall = func() { stalls++ } // writes come from this goroutine only
			a, as := pair(t, nw)
			b, bs := pair(t, nw)
			go io.Copy(io.Discard, as)
			go io.Copy(io.Discard, bs)
			nw.SetLoss(1, 2, 0.3, 7)
			for range 20 {
				before := stalls
				if _, err := a.Write([]byte("x")); err != nil {
					t.Fatal(err)
				}
				out = append(out, stalls > before)
				if interleave {
					if _, err := b.Write([]byte("y")); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
		return out
	}
	alone, interleaved := pattern(false), pattern(true)
	if !slices.Equal(alone, interleaved) {
		t.Fatalf("the first connection's stalls depend on the second's writes:\nalone       %v\ninterleaved %v", alone, interleaved)
	}
	if !slices.Contains(alone, true) || !slices.Contains(alone, false) {
		t.Fatalf("p=0.3 over 20 writes: stalls %v; want some of each", alone)
	}
}
