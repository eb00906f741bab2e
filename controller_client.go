package kcluster

// A broker's client of the active controller: registration and
// heartbeats, AlterPartition, the metadata log's fetches and forwarded
// admin requests each use one (broker.cc, pc, mc, ac).

import (
	"context"
	"errors"
	"fmt"
	"sync"

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

// requestBuilt builds the request with the client's lock held, so it
// reflects the broker's state at the moment it is sent. It tries each
// controller at most once.
func (cc *controllerClient) requestBuilt(ctx context.Context, build func() kmsg.Request) (kmsg.Response, error) {
	if err := cc.lock(ctx); err != nil {
		return nil, fmt.Errorf("%w: %v", errNoController, err)
	}
	defer cc.unlock()
	addrs := cc.b.c.ctrlAddrs()
	var last error
	for range addrs {
		resp, err := cc.tryLocked(ctx, addrs, build())
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

func (cc *controllerClient) tryLocked(ctx context.Context, addrs []ctrlAddr, req kmsg.Request) (kmsg.Response, error) {
	if cc.cl == nil {
		a := addrs[cc.target%len(addrs)]
		conn, err := cc.b.c.net.Dial(ctx, cc.b.id, a.id, a.addr)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errNoController, err)
		}
		cc.cl = wire.NewClient(conn, fmt.Sprintf("kcluster-broker-%d", cc.b.id))
	}
	resp, err := cc.cl.Request(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoController, err)
	}
	return resp, nil
}

// notController reports a response that says the node asked is not the
// active controller.
func notController(resp kmsg.Response) bool {
	nc := kerr.NotController.Code
	switch r := resp.(type) {
	case *kmsg.BrokerRegistrationResponse:
		return r.ErrorCode == nc
	case *kmsg.BrokerHeartbeatResponse:
		return r.ErrorCode == nc
	case *kmsg.AlterPartitionResponse:
		if r.ErrorCode == nc {
			return true
		}
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode == nc {
					return true
				}
			}
		}
	case *kmsg.AllocateProducerIDsResponse:
		return r.ErrorCode == nc
	case *kmsg.UpdateFeaturesResponse:
		return r.ErrorCode == nc
	case *kmsg.FetchResponse:
		return r.ErrorCode == nc
	case *kmsg.FetchSnapshotResponse:
		return r.ErrorCode == nc
	case *kmsg.CreateTopicsResponse:
		for _, t := range r.Topics {
			if t.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.DeleteTopicsResponse:
		for _, t := range r.Topics {
			if t.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.AlterConfigsResponse:
		for _, r := range r.Resources {
			if r.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.IncrementalAlterConfigsResponse:
		for _, r := range r.Resources {
			if r.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.CreatePartitionsResponse:
		for _, t := range r.Topics {
			if t.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.ElectLeadersResponse:
		if r.ErrorCode == nc {
			return true
		}
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode == nc {
					return true
				}
			}
		}
	case *kmsg.AlterPartitionAssignmentsResponse:
		if r.ErrorCode == nc {
			return true
		}
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode == nc {
					return true
				}
			}
		}
	case *kmsg.AlterClientQuotasResponse:
		for _, e := range r.Entries {
			if e.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.CreateACLsResponse:
		for _, e := range r.Results {
			if e.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.DeleteACLsResponse:
		for _, e := range r.Results {
			if e.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.AlterUserSCRAMCredentialsResponse:
		for _, e := range r.Results {
			if e.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.DescribeQuorumResponse:
		if r.ErrorCode == nc {
			return true
		}
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode == kerr.NotLeaderForPartition.Code {
					return true
				}
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
