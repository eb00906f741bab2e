package network

// An in-memory network: listeners bind nothing, connections are net.Pipe
// pairs. Everything else (cuts, delays, loss, the peer of an accepted
// connection) works as on TCP. Its use is testing/synctest: a goroutine
// blocked on a pipe is durably blocked in a bubble, one blocked on a socket
// is not, so only an in-memory cluster lets a bubble's fake clock jump over
// Kafka's timeouts.
//
// Addresses are 127.0.0.1:port with made-up ports; only the port names a
// listener (any host dials it). A net.Pipe is synchronous: a write returns
// once the peer has read it, as if the socket buffers were empty.

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
)

// memState is the in-memory network's address space, guarded by
// Network.mu.
type memState struct {
	listeners map[int]*memListener
	nextPort  int
}

// NewInMemory returns an empty in-memory network.
func NewInMemory() *Network {
	n := New()
	n.mem = &memState{listeners: make(map[int]*memListener), nextPort: 30000}
	return n
}

// InMemory reports whether n is an in-memory network.
func (n *Network) InMemory() bool { return n.mem != nil }

type memListener struct {
	n       *Network
	port    int
	addr    *net.TCPAddr
	backlog chan net.Conn
	done    chan struct{}
	once    sync.Once
}

func (n *Network) memListen(addr string) (net.Listener, error) {
	_, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		return nil, fmt.Errorf("network: port %q: %w", ps, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if port == 0 {
		for n.mem.listeners[n.mem.nextPort] != nil {
			n.mem.nextPort++
		}
		port = n.mem.nextPort
		n.mem.nextPort++
	} else if n.mem.listeners[port] != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Addr: memAddr(port), Err: syscall.EADDRINUSE}
	}
	l := &memListener{n: n, port: port, addr: memAddr(port), backlog: make(chan net.Conn, 128), done: make(chan struct{})}
	n.mem.listeners[port] = l
	return l, nil
}

func memAddr(port int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.backlog:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.n.mu.Lock()
		if l.n.mem.listeners[l.port] == l {
			delete(l.n.mem.listeners, l.port)
		}
		l.n.mu.Unlock()
		// Connections never accepted are refused.
		for {
			select {
			case c := <-l.backlog:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

func (l *memListener) Addr() net.Addr { return l.addr }

// pipeConn is one end of a net.Pipe with TCP-looking addresses, so the
// accepting side can tell which node dialed it.
type pipeConn struct {
	net.Conn
	local, remote net.Addr
}

func (c *pipeConn) LocalAddr() net.Addr  { return c.local }
func (c *pipeConn) RemoteAddr() net.Addr { return c.remote }

// memDial connects to the listener at addr: the client end is returned
// (tracked as from's when track is set), the server end queued for Accept.
func (n *Network) memDial(ctx context.Context, addr string, track func(net.Conn) (net.Conn, bool)) (net.Conn, error) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	_, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, _ := strconv.Atoi(ps)
	n.mu.Lock()
	l := n.mem.listeners[port]
	local := memAddr(n.mem.nextPort)
	n.mem.nextPort++
	n.mu.Unlock()
	if l == nil {
		return nil, refused
	}
	a, b := net.Pipe()
	cli := net.Conn(&pipeConn{Conn: a, local: local, remote: l.addr})
	srv := &pipeConn{Conn: b, local: l.addr, remote: local}
	if track != nil {
		var ok bool
		if cli, ok = track(cli); !ok {
			a.Close()
			b.Close()
			return nil, ErrCut
		}
	}
	select {
	case l.backlog <- srv:
		return cli, nil
	case <-l.done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	cli.Close()
	b.Close()
	if err != nil {
		return nil, err
	}
	return nil, refused
}

// DialClient connects a client from outside the cluster (the Client node)
// to addr. On TCP it is an ordinary dial; on an in-memory network it is
// the only way in.
func (n *Network) DialClient(ctx context.Context, network, addr string) (net.Conn, error) {
	if n.mem == nil {
		d := net.Dialer{KeepAlive: keepAlive(addr)}
		return d.DialContext(ctx, network, addr)
	}
	return n.memDial(ctx, addr, nil)
}
