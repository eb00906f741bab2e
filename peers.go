package kcluster

// The broker's pool of connections to other brokers (Kafka's
// inter-broker NetworkClients): the transaction coordinator's
// WriteTxnMarkers (Kafka's TransactionMarkerChannelManager), and a
// partition leader's verification of a transaction with its coordinator
// (AddPartitionsToTxnManager), each on connections of its own.

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/wire"
)

// peerClients are a broker's connections to other brokers for one kind of
// request (the coordinator's WriteTxnMarkers, or a partition leader's
// AddPartitionsToTxn verification), dialed through the cluster network so
// cuts apply. A wire.Client serializes its requests; one per peer.
type peerClients struct {
	b  *broker
	mu struct {
		sync.Mutex
		closed bool
		cls    map[int32]*wire.Client
	}
}

func (pc *peerClients) get(ctx context.Context, id int32) (*wire.Client, error) {
	pc.mu.Lock()
	if pc.mu.closed {
		pc.mu.Unlock()
		return nil, errors.New("kcluster: broker stopping")
	}
	if cl := pc.mu.cls[id]; cl != nil {
		pc.mu.Unlock()
		return cl, nil
	}
	pc.mu.Unlock()
	pc.b.mu.RLock()
	br := pc.b.mu.state.Brokers[id]
	pc.b.mu.RUnlock()
	if br == nil {
		return nil, kerr.BrokerNotAvailable
	}
	addr := net.JoinHostPort(pc.b.c.cfg.host, strconv.Itoa(int(br.Port)))
	conn, err := pc.b.c.net.Dial(ctx, pc.b.id, id, addr)
	if err != nil {
		return nil, err
	}
	cl := wire.NewClient(conn, "kcluster-broker-"+strconv.Itoa(int(pc.b.id)))
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.mu.closed {
		cl.Close()
		return nil, errors.New("kcluster: broker stopping")
	}
	if old := pc.mu.cls[id]; old != nil {
		cl.Close()
		return old, nil
	}
	if pc.mu.cls == nil {
		pc.mu.cls = map[int32]*wire.Client{}
	}
	pc.mu.cls[id] = cl
	return cl, nil
}

// request sends req to broker id; a failed connection is dropped so the
// next request dials again.
func (pc *peerClients) request(ctx context.Context, id int32, req kmsg.Request) (kmsg.Response, error) {
	cl, err := pc.get(ctx, id)
	if err != nil {
		return nil, err
	}
	resp, err := cl.Request(ctx, req)
	if err != nil {
		cl.Close()
		pc.mu.Lock()
		if pc.mu.cls[id] == cl {
			delete(pc.mu.cls, id)
		}
		pc.mu.Unlock()
	}
	return resp, err
}

func (pc *peerClients) closeAll() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.mu.closed = true
	for id, cl := range pc.mu.cls {
		cl.Close()
		delete(pc.mu.cls, id)
	}
}
