package kcluster

// A broker's client of the active controller: registration and
// heartbeats, AlterPartition, the metadata log's fetches and forwarded
// admin requests each use one (broker.cc, pc, mc, ac).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/wire"
)

// controllerClient is a broker's connection to the active controller,
// dialed through the network package. It knows every controller's address
// (Kafka's controller.quorum.bootstrap.servers) and moves on to the next
// after a failed connection or a NOT_CONTROLLER answer.
type controllerClient struct {
	b *broker
	// sem (one slot) serializes the requests. Unlike a mutex, a caller
	// waiting for it gives up at its context's end (an AlterPartition
	// does not outwait a stalled heartbeat), and it blocks durably in a
	// testing/synctest bubble, so the bubble's clock can run meanwhile.
	once   sync.Once
	sem    chan struct{}
	cl     *wire.Client
	target int // index into the cluster's controller addresses
}

func (cc *controllerClient) lock(ctx context.Context) error {
	cc.once.Do(func() { cc.sem = make(chan struct{}, 1) })
	select {
	case cc.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (cc *controllerClient) unlock() { <-cc.sem }

var errNoController = errors.New("kcluster: controller unreachable")

func (cc *controllerClient) request(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	return cc.requestBuilt(ctx, func() kmsg.Request { return req })
}

// requestStanding is requestBuilt for a request the controller may hold
// for as long as the connection stands (a heartbeat, controller_node.go's
// standHeartbeat): while network.Watch says the connection carries every
// write at once, it waits for the answer without a deadline (a closed
// connection or a fault ends the hold at both ends at once); from the
// moment it does not, it waits at most bound, as for any request.
func (cc *controllerClient) requestStanding(ctx context.Context, bound time.Duration, build func() kmsg.Request) (kmsg.Response, error) {
	return cc.requestWith(ctx, build, func(ctx context.Context, c net.Conn) (context.Context, context.CancelFunc) {
		return cc.b.c.holdContext(ctx, c, bound)
	})
}

// requestBuilt builds the request with the client's lock held, so it
// reflects the broker's state at the moment it is sent. It tries each
// controller at most once.
func (cc *controllerClient) requestBuilt(ctx context.Context, build func() kmsg.Request) (kmsg.Response, error) {
	return cc.requestWith(ctx, build, nil)
}

// requestWith is requestBuilt; hold, if set, gives each attempt the
// context it is sent with, from the connection it goes on (holdContext).
func (cc *controllerClient) requestWith(ctx context.Context, build func() kmsg.Request, hold holdFunc) (kmsg.Response, error) {
	if err := cc.lock(ctx); err != nil {
		return nil, fmt.Errorf("%w: %v", errNoController, err)
	}
	defer cc.unlock()
	addrs := cc.b.c.ctrlAddrs()
	var last error
	for range addrs {
		resp, err := cc.tryLocked(ctx, addrs, build(), hold)
		if err == nil && !notController(resp) {
			return resp, nil
		}
		if err == nil {
			last = kerr.NotController
		} else {
			last = err
		}
		if cc.cl != nil {
			cc.cl.Close()
			cc.cl = nil
		}
		cc.target = (cc.target + 1) % len(addrs)
		if ctx.Err() != nil {
			break
		}
	}
	if errors.Is(last, kerr.NotController) {
		return nil, fmt.Errorf("%w: no active controller", errNoController)
	}
	return nil, last
}

// holdFunc gives a request on conn the context it is sent with.
type holdFunc func(ctx context.Context, conn net.Conn) (context.Context, context.CancelFunc)

func (cc *controllerClient) tryLocked(ctx context.Context, addrs []ctrlAddr, req kmsg.Request, hold holdFunc) (kmsg.Response, error) {
	if cc.cl == nil {
		a := addrs[cc.target%len(addrs)]
		conn, err := cc.b.c.net.Dial(ctx, cc.b.id, a.id, a.addr)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errNoController, err)
		}
		cc.cl = wire.NewClient(conn, fmt.Sprintf("kcluster-broker-%d", cc.b.id))
	}
	if hold != nil {
		var cancel context.CancelFunc
		ctx, cancel = hold(ctx, cc.cl.Conn())
		defer cancel()
	}
	resp, err := cc.cl.Request(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoController, err)
	}
	return resp, nil
}

// notController reports a response that says the node asked is not the
// active controller: NOT_CONTROLLER in any of its error codes, top-level
// or per item (DescribeQuorum says it per partition, as
// NOT_LEADER_OR_FOLLOWER).
func notController(resp kmsg.Response) bool {
	code := kerr.NotController.Code
	if _, ok := resp.(*kmsg.DescribeQuorumResponse); ok {
		if hasErrorCode(reflect.ValueOf(resp), kerr.NotLeaderForPartition.Code) {
			return true
		}
	}
	return hasErrorCode(reflect.ValueOf(resp), code)
}

// hasErrorCode reports whether v, a kmsg message, has an ErrorCode field
// equal to code at any depth: in the message, its items, their items.
func hasErrorCode(v reflect.Value, code int16) bool {
	switch v.Kind() {
	case reflect.Pointer:
		return !v.IsNil() && hasErrorCode(v.Elem(), code)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Struct {
			return false
		}
		for i := range v.Len() {
			if hasErrorCode(v.Index(i), code) {
				return true
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Field(i)
			if v.Type().Field(i).Name == "ErrorCode" && f.Kind() == reflect.Int16 {
				if int16(f.Int()) == code {
					return true
				}
				continue
			}
			if (f.Kind() == reflect.Slice || f.Kind() == reflect.Struct || f.Kind() == reflect.Pointer) && hasErrorCode(f, code) {
				return true
			}
		}
	}
	return false
}

func (cc *controllerClient) close() {
	cc.lock(context.Background())
	defer cc.unlock()
	if cc.cl != nil {
		cc.cl.Close()
		cc.cl = nil
	}
}
