package kcluster

// The broker's lifecycle with the controller (Kafka's
// BrokerLifecycleManager): registration (BrokerRegistration), heartbeats
// (BrokerHeartbeat), which the in-memory controller holds while the
// connection stands (controllerNode.standHeartbeat), and the controlled
// shutdown.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

// register registers the broker with the controller (BrokerRegistration,
// over the network). It starts fenced; its first heartbeat unfences it.
func (b *broker) register(ctx context.Context) error {
	req := kmsg.NewPtrBrokerRegistrationRequest()
	req.SetVersion(3)
	req.BrokerID = b.id
	req.ClusterID = b.c.cfg.clusterID
	for _, bl := range b.lns {
		l := kmsg.NewBrokerRegistrationRequestListener()
		l.Name, l.Host, l.Port, l.SecurityProtocol = bl.name, b.host, uint16(bl.port), bl.protocol.code()
		req.Listeners = append(req.Listeners, l)
	}
	req.PreviousBrokerEpoch = b.prevEpoch
	for _, d := range b.dirs {
		req.LogDirs = append(req.LogDirs, d.id)
	}
	// While a quorum elects there is no active controller: try again,
	// as a Kafka broker does, for up to 30 s.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var kresp kmsg.Response
	var err error
	for {
		if kresp, err = b.cc.request(ctx, req); err == nil || !errors.Is(err, errNoController) {
			break
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(b.cfg.replicaFetchBackoff):
		}
	}
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.BrokerRegistrationResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return err
	}
	b.epoch = resp.BrokerEpoch
	return nil
}

// heartbeat sends one BrokerHeartbeat to the controller. Once a controlled
// shutdown has begun, every heartbeat says so (WantShutdown), so a late one
// cannot unfence the broker.
func (b *broker) heartbeat(ctx context.Context) (*kmsg.BrokerHeartbeatResponse, error) {
	hctx, cancel := context.WithTimeout(ctx, b.cfg.sessionTimeout)
	defer cancel()
	kresp, err := b.cc.requestBuilt(hctx, b.heartbeatRequest)
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.BrokerHeartbeatResponse)
	return resp, kerr.ErrorForCode(resp.ErrorCode)
}

func (b *broker) heartbeatRequest() kmsg.Request {
	req := kmsg.NewPtrBrokerHeartbeatRequest()
	req.SetVersion(1)
	req.BrokerID, req.BrokerEpoch = b.id, b.epoch
	req.WantShutdown = b.stopping.Load()
	req.CurrentMetadataOffset = b.applied.Load()
	req.OfflineLogDirs = b.offlineDirIDs()
	return req
}

// standingHeartbeat is heartbeat for heartbeatLoop: the in-memory
// controller may hold it for as long as the connection stands
// (controllerNode.standHeartbeat), so it waits without a deadline while
// the connection is healthy (controllerClient.requestStanding), and a
// controlled shutdown cancels it.
func (b *broker) standingHeartbeat() error {
	if b.c.quorum() {
		_, err := b.heartbeat(b.ctx)
		return err
	}
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	b.standing.Lock()
	if b.stopping.Load() {
		b.standing.Unlock()
		return nil // the controlled shutdown heartbeats itself
	}
	b.standing.cancel = cancel
	b.standing.Unlock()
	defer func() {
		b.standing.Lock()
		b.standing.cancel = nil
		b.standing.Unlock()
	}()
	kresp, err := b.cc.requestStanding(ctx, b.cfg.sessionTimeout, b.heartbeatRequest)
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(kresp.(*kmsg.BrokerHeartbeatResponse).ErrorCode)
}

// heartbeatLoop waits until the broker has replayed its own registration,
// then heartbeats the controller every broker.heartbeat.interval.ms; the
// first heartbeat unfences it. A killed broker stops heartbeating and the
// controller fences it after broker.session.timeout.ms. A heartbeat the
// controller holds (standingHeartbeat) counts as one every interval for
// as long as it is held; the next is sent an interval after the previous
// one was, or at once if that time has passed.
func (b *broker) heartbeatLoop() {
	if err := b.waitState(b.ctx, func(st *metadata.State) bool {
		br := st.Brokers[b.id]
		return br != nil && br.Epoch == b.epoch
	}); err != nil {
		return
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		case <-b.hbWake:
		}
		sent := time.Now()
		if err := b.standingHeartbeat(); err != nil && b.ctx.Err() == nil {
			b.log.Debug("heartbeat", "err", err)
		}
		t.Reset(time.Until(sent.Add(b.cfg.heartbeatInterval)))
	}
}

// controlledShutdown asks the controller to move this broker's leaderships
// away (BrokerHeartbeat with WantShutdown) and waits for its go-ahead.
func (b *broker) controlledShutdown(ctx context.Context) error {
	b.standing.Lock()
	b.stopping.Store(true)
	if b.standing.cancel != nil {
		b.standing.cancel() // a held heartbeat has nothing more to say
	}
	b.standing.Unlock()
	resp, err := b.heartbeat(ctx)
	if err != nil {
		return err
	}
	if !resp.ShouldShutdown {
		return errors.New("controller did not allow the shutdown")
	}
	return nil
}
