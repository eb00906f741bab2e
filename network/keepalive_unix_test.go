//go:build unix

package network

import (
	"net"
	"syscall"
	"testing"
)

// TestLoopbackConnectionsHaveNoKeepAlive: both ends of a connection on
// loopback have SO_KEEPALIVE off.
func TestLoopbackConnectionsHaveNoKeepAlive(t *testing.T) {
	n := New()
	defer n.Close()
	d, a := pairOf(t, n)
	for name, c := range map[string]net.Conn{"dialed": d, "accepted": a} {
		raw, err := c.(*conn).Conn.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var on int
		var serr error
		if err := raw.Control(func(fd uintptr) {
			on, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		}); err != nil {
			t.Fatal(err)
		}
		if serr != nil {
			t.Fatal(serr)
		}
		if on != 0 {
			t.Errorf("%s end: SO_KEEPALIVE is on", name)
		}
	}
}
