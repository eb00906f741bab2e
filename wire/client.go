package wire

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrClientClosed is returned by Client.Request after Close, or after an
// earlier request failed and closed the connection.
var ErrClientClosed = errors.New("wire: client closed")

// Client sends Kafka requests on one connection, one at a time. It is what
// brokers use to talk to each other and what this module's tests use to talk
// to brokers. It is safe for concurrent use; requests are serialized.
type Client struct {
	ClientID string
	// ReuseBuffer lets the client read a response into the buffer of the
	// one before: a response's byte fields (record batches) then stay
	// valid only until the next Request. Unset, every response gets a
	// buffer of its own.
	ReuseBuffer bool

	mu     sync.Mutex
	conn   net.Conn
	rd     *bufio.Reader // conn's reads: a small response's size and body in one read
	corr   int32
	buf    []byte
	closed bool
}

// NewClient wraps an established connection.
func NewClient(conn net.Conn, clientID string) *Client {
	return &Client{conn: conn, rd: bufio.NewReaderSize(conn, 4096), ClientID: clientID}
}

// Close closes the connection; it is safe to call more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.conn.Close()
}

// Conn returns the underlying connection.
func (c *Client) Conn() net.Conn { return c.conn }

// Request sends req at the version it has set (its max version if unset
// to 0 and pinned is false is not assumed: callers set the version) and
// waits for the response. A context deadline or cancellation closes the
// connection, as the response stream can no longer be trusted.
func (c *Client) Request(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClientClosed
	}
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	resp, err := c.requestLocked(req)
	if err != nil {
		c.closed = true
		c.conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return resp, nil
}

func (c *Client) requestLocked(req kmsg.Request) (kmsg.Response, error) {
	c.corr++
	corr := c.corr
	c.buf = AppendRequest(c.buf[:0], corr, c.ClientID, req)
	if _, err := c.conn.Write(c.buf); err != nil {
		return nil, err
	}
	if p, ok := req.(*kmsg.ProduceRequest); ok && p.Acks == 0 {
		return nil, nil
	}
	frame, err := ReadFrame(c.rd, c.buf, 1<<30)
	if err != nil {
		return nil, err
	}
	if len(frame) < 4 {
		return nil, fmt.Errorf("wire: short response frame")
	}
	if got := int32(binary.BigEndian.Uint32(frame)); got != corr {
		return nil, fmt.Errorf("wire: correlation id %d, want %d", got, corr)
	}
	body := frame[4:]
	if req.IsFlexible() && req.Key() != 18 {
		if body, err = skipTags(body); err != nil {
			return nil, err
		}
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("wire: decoding %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	// ReadFrom copies what it keeps except byte slices, which alias the
	// frame; unless the caller is done with them by its next request,
	// give the response its own buffer so c.buf can be reused.
	if c.ReuseBuffer {
		c.buf = frame
	} else {
		c.buf = nil
	}
	return resp, nil
}
