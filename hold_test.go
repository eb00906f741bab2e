package kcluster

import (
	"context"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kcluster/kcluster/network"
)

// TestHoldContext: a held request's context lasts while its connection
// stands, however long; it ends bound after the connection stops standing
// (a cut, or the peer's close), bound from the start on a connection that
// does not stand, with its parent, and at cancel, which is safe to call
// twice. In a synctest bubble, so the bounds are the bubble's clock.
func TestHoldContext(t *testing.T) {
	const bound = 100 * time.Millisecond
	for _, tc := range []struct {
		name string
		// stop ends the connection's standing (nil: it stands), at 1 s.
		stop func(n *network.Network, dialed, accepted net.Conn)
		// faultFirst sets the fault before the hold.
		faultFirst bool
	}{
		{name: "stands"},
		{name: "cut", stop: func(n *network.Network, _, _ net.Conn) { n.Cut(1, 2) }},
		{name: "peer closes", stop: func(_ *network.Network, _, a net.Conn) { a.Close() }},
		{name: "cut before", stop: func(n *network.Network, _, _ net.Conn) { n.Cut(1, 2) }, faultFirst: true},
	} {
		synctest.Test(t, func(t *testing.T) {
			n := network.NewInMemory()
			defer n.Close()
			c := &Cluster{net: n}
			ln, err := n.Listen(2, "127.0.0.1:9092")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				a, err := ln.Accept()
				if err == nil {
					accepted <- a
				}
			}()
			d, err := n.Dial(context.Background(), 1, 2, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			a := <-accepted
			defer a.Close()
			if tc.faultFirst {
				tc.stop(n, d, a)
			}
			start := time.Now()
			ctx, cancel := c.holdContext(context.Background(), d, bound)
			defer cancel()
			if tc.faultFirst {
				<-ctx.Done()
				if got := time.Since(start); got != bound {
					t.Fatalf("%s: ended after %v, want %v", tc.name, got, bound)
				}
				return
			}
			time.Sleep(time.Second)
			if ctx.Err() != nil {
				t.Fatalf("%s: ended while the connection stood", tc.name)
			}
			if tc.stop == nil {
				cancel()
				cancel()
				if ctx.Err() == nil {
					t.Fatal("cancel left the context open")
				}
				return
			}
			tc.stop(n, d, a)
			stopped := time.Now()
			time.Sleep(bound - time.Millisecond)
			if ctx.Err() != nil {
				t.Fatalf("%s: ended before its bound", tc.name)
			}
			<-ctx.Done()
			if got := time.Since(stopped); got != bound {
				t.Fatalf("%s: ended %v after the connection stopped standing, want %v", tc.name, got, bound)
			}
		})
	}
	// The parent's end ends it.
	synctest.Test(t, func(t *testing.T) {
		n := network.NewInMemory()
		defer n.Close()
		c := &Cluster{net: n}
		parent, end := context.WithCancel(context.Background())
		ctx, cancel := c.holdContext(parent, nil, time.Hour)
		defer cancel()
		end()
		<-ctx.Done()
	})
}
