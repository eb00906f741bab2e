package kcluster

import (
	"context"
	"fmt"
	"time"

	"github.com/kcluster/kcluster/metadata"
)

// KillBroker stops broker id abruptly, as a crashed process: its listener
// and every connection to and from it close at once, in-flight requests get
// no answer, nothing is checkpointed or synced. The controller learns of it
// only by missed heartbeats (broker.session.timeout.ms), then fences it and
// elects new leaders from the ISR. Data already written to its storage
// stays, as the OS page cache would keep it after a process crash.
func (c *Cluster) KillBroker(id int32) error {
	b, err := c.takeBroker(id)
	if err != nil {
		return err
	}
	// Client connections first: a request in flight must get no answer,
	// not an error caused by the broker's own links going down.
	b.dropConns()
	c.net.CloseNode(id)
	b.close(false)
	c.notifyEvent()
	return nil
}

// StopBroker shuts broker id down the controlled way, as Kafka's controlled
// shutdown: the controller first fences it, which moves the leadership of
// its partitions to other ISR members and removes it from every ISR; then
// the broker checkpoints its high watermarks, syncs its logs and stops.
// StopBroker returns once the broker is down.
func (c *Cluster) StopBroker(id int32) error {
	b, err := c.brokerByID(id)
	if err != nil {
		return err
	}
	if b == nil {
		return fmt.Errorf("%w: %d", ErrBrokerDown, id)
	}
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	if err := b.controlledShutdown(ctx); err != nil {
		// As Kafka, a broker that cannot reach the controller shuts
		// down anyway; the controller fences it by its session.
		b.log.Warn("controlled shutdown failed; stopping anyway", "err", err)
	}
	// Let the other live brokers learn the new leaders before this one
	// goes, so clients are redirected rather than refused.
	end := c.mlog.End() - 1
	for _, o := range c.running() {
		if o != b {
			o.waitMetadata(ctx, end)
		}
	}
	if b, err = c.takeBroker(id); err != nil {
		return err
	}
	b.close(true)
	c.net.CloseNode(id)
	c.notifyEvent()
	return nil
}

// takeBroker removes a running broker from the cluster's table.
func (c *Cluster) takeBroker(id int32) (*broker, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil, ErrClosed
	}
	if id < 1 || int(id) > len(c.mu.brokers) {
		return nil, fmt.Errorf("%w: %d", ErrUnknownBroker, id)
	}
	b := c.mu.brokers[id-1]
	if b == nil {
		return nil, fmt.Errorf("%w: %d", ErrBrokerDown, id)
	}
	c.mu.brokers[id-1] = nil
	return b, nil
}

// RestartBroker starts a stopped or killed broker again with the same id,
// port and storage. It registers anew (a new broker epoch), recovers its
// logs, and returns once it is listening and unfenced; its replicas then
// truncate any diverged suffix (by leader epoch) and catch up, and leaders
// add them back to the ISR.
func (c *Cluster) RestartBroker(id int32) error {
	b, err := c.brokerByID(id)
	if err != nil {
		return err
	}
	if b != nil {
		return fmt.Errorf("%w: %d", ErrBrokerUp, id)
	}
	if err := c.startBroker(id, true); err != nil {
		return err
	}
	if b, err = c.brokerByID(id); err != nil || b == nil {
		return fmt.Errorf("%w: %d", ErrBrokerDown, id)
	}
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	return b.waitState(ctx, func(st *metadata.State) bool {
		br := st.Brokers[id]
		return br != nil && br.Epoch == b.epoch && !br.Fenced
	})
}
