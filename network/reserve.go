package network

// A node's TCP port stays its own while the node is down. A killed or
// stopped node closes its listener, and its restart listens on the same
// port again (RestartBroker, RestartController: same id, same address).
// Between the two, the kernel may hand the free port to any outgoing
// connection as its ephemeral local port, and the restart would fail with
// EADDRINUSE, by chance. So when a listener closes while the network is
// open, its port is held by a bound, not listening, socket: a dial to it
// is refused as a dead process's port is, and connect() never picks a
// port with a bound socket for its ephemeral one. The next Listen on the
// port takes it over; Network.Close releases every port.

import (
	"io"
	"net"
)

// reserveLocked holds the port of the closed listener inner.
func (n *Network) reserveLocked(inner net.Listener) {
	if n.mem != nil || n.mu.closed {
		return
	}
	a, ok := inner.Addr().(*net.TCPAddr)
	if !ok {
		return
	}
	if r, err := reservePort(a); err == nil {
		if old := n.mu.reserved[a.Port]; old != nil {
			old.Close()
		}
		n.mu.reserved[a.Port] = r
	}
}

// listenReserved listens on addr, whose port may be held for a node that
// was down (reserveLocked). A listener can bind beside the holding socket,
// which does not listen; then the hold is released. A platform that
// refuses that gets the port after the hold is released.
func (n *Network) listenReserved(listen func() (net.Listener, error), addr string) (net.Listener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return listen()
	}
	p, err := net.LookupPort("tcp", port)
	if err != nil || p == 0 {
		return listen()
	}
	n.mu.Lock()
	r := n.mu.reserved[p]
	delete(n.mu.reserved, p)
	n.mu.Unlock()
	if r == nil {
		return listen()
	}
	l, err := listen()
	r.Close()
	if err != nil {
		l, err = listen()
	}
	return l, err
}

// releaseLocked lets go of every held port.
func (n *Network) releaseLocked() []io.Closer {
	var rs []io.Closer
	for p, r := range n.mu.reserved {
		rs = append(rs, r)
		delete(n.mu.reserved, p)
	}
	return rs
}
