package kcluster

// The connection server every node runs, brokers and controller nodes
// alike: it accepts connections on the node's listeners and runs Kafka's
// request loop on each (wire.ReadFrameInto's size limit, one request at a
// time, so responses go out in request order, as Kafka mutes a connection
// while a request is in flight). A panic while serving one request is
// logged and closes that connection; it never takes down the process that
// embeds the cluster. Each node brings its own dispatch: the broker's
// handle (the API keys of api*.go) and the controller node's dispatch
// (ctrlHandlers).

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/wire"
)

// server is a node's connection server: the node's context, logger and
// WaitGroup (which every connection goroutine joins), and the set of open
// connections, guarded by its own mu so that accepting a connection never
// waits on the node's other locks.
type server struct {
	ctx  context.Context
	log  *slog.Logger
	pool *bufPool
	wg   *sync.WaitGroup
	// served counts the requests served (a gauge for tests: an idle
	// cluster serves none).
	served atomic.Int64

	mu struct {
		sync.Mutex
		conns  map[net.Conn]struct{}
		closed bool // closeConns was called: no connection is taken on
	}
}

func (s *server) init(ctx context.Context, log *slog.Logger, pool *bufPool, wg *sync.WaitGroup) {
	s.ctx, s.log, s.pool, s.wg = ctx, log, pool, wg
	s.mu.conns = make(map[net.Conn]struct{})
}

// accept accepts connections on ln until it is closed and runs serve on
// each, on a goroutine of its own.
func (s *server) accept(ln net.Listener, serve func(net.Conn)) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log.Warn("accept", "err", err)
			}
			return
		}
		if !s.track(conn) {
			return
		}
		go func() {
			defer s.wg.Done()
			defer s.untrack(conn)
			serve(conn)
		}()
	}
}

// track registers an accepted connection and adds its goroutine to the
// node's WaitGroup. Once the node is stopping it closes the connection
// instead and returns false: a connection taken after closeConns would
// keep the node's Close waiting for a client to hang up.
func (s *server) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed || s.ctx.Err() != nil {
		conn.Close()
		return false
	}
	s.mu.conns[conn] = struct{}{}
	s.wg.Add(1)
	return true
}

// untrack closes a connection and forgets it.
func (s *server) untrack(conn net.Conn) {
	conn.Close()
	s.mu.Lock()
	delete(s.mu.conns, conn)
	s.mu.Unlock()
}

// closeConns closes every open connection at once, so that no request in
// flight gets an answer, and refuses those accepted later. Safe to call
// more than once.
func (s *server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.closed = true
	for c := range s.mu.conns {
		c.Close()
	}
}

// errCloseConn is returned by a handler that wants the connection closed
// without a response (as Kafka does for some malformed requests).
var errCloseConn = errors.New("close connection")

// dispatchFunc handles one request of a connection and returns its
// response; errNoResponse sends none, any other error closes the
// connection.
type dispatchFunc func(hdr wire.RequestHeader, body []byte, log *slog.Logger) (kmsg.Response, error)

// serveConn runs Kafka's request loop on one connection: read a frame (at
// most maxFrame bytes), dispatch it, write the response, then read the
// next, so responses go out in request order. Bad frames and dispatch
// errors close the connection with a log line. sess, when not nil, is the
// connection's security state: frames that are raw SASL tokens (after
// SaslHandshake v0) go to it, and it may ask for the connection to close
// after a response.
func (s *server) serveConn(conn net.Conn, maxFrame int32, dispatch dispatchFunc, sess *session) {
	defer conn.Close()
	log := s.log.With("remote", conn.RemoteAddr().String())
	// rbuf and wbuf are the connection's own buffers, kept up to smallBuf;
	// larger frames and responses come from and go back to the pool once
	// the response is written. Nothing a handler keeps may alias the
	// frame: kmsg decodes byte and string fields in place.
	var rbuf, wbuf []byte
	frameBuf := func(n int) []byte {
		if n <= cap(rbuf) {
			return rbuf[:n]
		}
		if n <= smallBuf {
			rbuf = make([]byte, n)
			return rbuf
		}
		return s.pool.get(n)
	}
	// Reads go through a small buffer, so a small request's size and
	// body come in one read from the socket; a large body is read past
	// the buffer, straight into its frame.
	rd := bufio.NewReaderSize(conn, readBuf)
	for {
		frame, err := wire.ReadFrameInto(rd, maxFrame, frameBuf)
		if err != nil {
			if errors.Is(err, wire.ErrFrameTooLarge) {
				log.Warn("closing connection: bad frame", "err", err)
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && s.ctx.Err() == nil {
				log.Debug("connection read", "err", err)
			}
			return
		}
		if !s.serveFrame(conn, frame, &wbuf, log, dispatch, sess) {
			return
		}
		if len(frame) > smallBuf { // from the pool, not rbuf
			s.pool.put(frame)
		}
	}
}

// serveFrame serves one request frame, writing its response (if any) from
// *wbuf. It reports whether the connection stays open. A panic anywhere in
// serving the frame (its handler, an interceptor, encoding the response)
// is recovered here: it is logged and the connection is closed.
func (s *server) serveFrame(conn net.Conn, frame []byte, wbuf *[]byte, log *slog.Logger, dispatch dispatchFunc, sess *session) (open bool) {
	api, version := "unparsed request", int16(-1)
	defer func() {
		if p := recover(); p != nil {
			log.Error("handler panic; closing connection", "api", api, "version", version, "panic", p, "stack", string(debug.Stack()))
			open = false
		}
	}()
	if sess != nil && sess.rawTokens {
		api = "SASL token"
		out, err := sess.rawToken(frame)
		if err != nil {
			log.Debug("closing connection: SASL authentication failed", "err", err)
			return false
		}
		*wbuf = binary.BigEndian.AppendUint32((*wbuf)[:0], uint32(len(out)))
		_, err = conn.Write(append(*wbuf, out...))
		return err == nil
	}
	hdr, body, err := wire.ParseRequestHeader(frame)
	if err != nil {
		log.Warn("closing connection: bad request header", "err", err)
		return false
	}
	s.served.Add(1)
	api, version = kmsg.NameForKey(hdr.Key), hdr.Version
	if sess != nil {
		// Whatever the response refers to from the pool goes back once
		// it is written (or will not be).
		defer func() {
			for _, b := range sess.lent {
				s.pool.put(b)
			}
			clear(sess.lent)
			sess.lent = sess.lent[:0]
		}()
	}
	resp, err := dispatch(hdr, body, log)
	if errors.Is(err, errNoResponse) {
		return true
	}
	if err != nil {
		if !errors.Is(err, errCloseConn) && s.ctx.Err() == nil {
			log.Warn("closing connection", "api", kmsg.NameForKey(hdr.Key), "version", hdr.Version, "err", err)
		}
		return false
	}
	if need := wire.ResponseSizeHint(resp); need > smallBuf && need > cap(*wbuf) {
		*wbuf = s.pool.get(need)
	}
	*wbuf = wire.AppendResponse((*wbuf)[:0], hdr, resp)
	if _, err := conn.Write(*wbuf); err != nil {
		return false
	}
	if cap(*wbuf) > smallBuf {
		s.pool.put(*wbuf)
		*wbuf = nil
	}
	return sess == nil || !sess.closeAfter
}

// Brokers.

// request is one decoded request with its header.
type request struct {
	hdr  wire.RequestHeader
	kreq kmsg.Request
	conn net.Conn
	sess *session // nil for requests the broker makes itself
}

// acceptLoop serves the connections of one of the broker's listeners.
func (b *broker) acceptLoop(l *brokerListener) {
	b.srv.accept(l.ln, func(conn net.Conn) {
		conn = b.serveConn(conn, l)
		b.forgetConn(conn)
		b.shares.connClosed(conn)
	})
}

// serveConn serves one accepted connection of listener l: the TLS
// handshake on SSL listeners, then Kafka's request loop. It returns the
// connection it served (the TLS one on SSL listeners).
func (b *broker) serveConn(conn net.Conn, l *brokerListener) net.Conn {
	if l.protocol.tls() {
		tc := tls.Server(conn, b.c.cfg.tls)
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			b.log.Debug("TLS handshake", "listener", l.name, "remote", conn.RemoteAddr().String(), "err", err)
			conn.Close()
			return conn
		}
		conn = tc
	}
	sess := b.newSession(conn, l)
	b.srv.serveConn(conn, b.cfg.requestMaxBytes, func(hdr wire.RequestHeader, body []byte, log *slog.Logger) (kmsg.Response, error) {
		return b.handle(conn, sess, hdr, body, log)
	}, sess)
	return conn
}

// handle decodes and dispatches one request to its handler (api*.go).
// serveFrame recovers a panic in it.
func (b *broker) handle(conn net.Conn, sess *session, hdr wire.RequestHeader, body []byte, log *slog.Logger) (resp kmsg.Response, err error) {
	h, ok := handlers[hdr.Key]
	if !ok || !hdr.Known {
		// Kafka closes the connection on an unknown API key.
		return nil, fmt.Errorf("unsupported api key %d", hdr.Key)
	}
	if hdr.Version < h.min || hdr.Version > h.max {
		if hdr.Key == apiVersionsKey {
			// KIP-511: answer with UNSUPPORTED_VERSION and our
			// versions, in a v0 body every client can read.
			return b.apiVersionsUnsupported(), nil
		}
		return nil, fmt.Errorf("unsupported version %d of %s", hdr.Version, kmsg.NameForKey(hdr.Key))
	}
	if err := sess.admit(hdr.Key); err != nil {
		return nil, err
	}
	kreq, err := wire.DecodeRequest(hdr, body)
	if err != nil {
		return nil, err
	}
	defer b.c.markRequest(b.id, kreq, time.Now())
	if resp, err, ok := b.c.intercept(b.ctx, b.id, kreq); ok {
		return resp, err
	}
	b.waitUnmuted(conn)
	r := &request{hdr: hdr, kreq: kreq, conn: conn, sess: sess}
	if b.cfg.security.authorizer {
		resp, err = b.authorizeAndHandle(h, r)
	} else {
		resp, err = h.fn(b, r)
	}
	if err == nil {
		b.applyQuotas(conn, sess, hdr.ClientID, kreq, resp)
	}
	return resp, err
}

// Controller nodes.

// acceptLoop serves the connections of the controller node's Kafka
// listener (brokers' registrations, heartbeats, AlterPartition and
// metadata fetches).
func (n *controllerNode) acceptLoop() {
	n.srv.accept(n.ln, func(conn net.Conn) {
		n.srv.serveConn(conn, wire.DefaultMaxFrame, func(hdr wire.RequestHeader, body []byte, log *slog.Logger) (kmsg.Response, error) {
			return n.dispatch(conn, hdr, body, log)
		}, nil)
	})
}

// dispatch decodes one request and hands it to its handler
// (ctrlHandlers). serveFrame recovers a panic in it.
func (n *controllerNode) dispatch(conn net.Conn, hdr wire.RequestHeader, body []byte, log *slog.Logger) (kmsg.Response, error) {
	h, ok := ctrlHandlers[hdr.Key]
	if !ok || !hdr.Known || hdr.Version < h.min || hdr.Version > h.max {
		return nil, fmt.Errorf("controller does not serve %s v%d", kmsg.NameForKey(hdr.Key), hdr.Version)
	}
	req, err := wire.DecodeRequest(hdr, body)
	if err != nil {
		return nil, err
	}
	return h.fn(n, conn, req)
}
