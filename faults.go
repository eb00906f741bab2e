package kcluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kcluster/kcluster/metadata"
	"github.com/kcluster/kcluster/network"
)

// KillBroker stops broker id abruptly, as a crashed process: its listener
// and every connection to and from it close at once, in-flight requests get
// no answer, nothing is checkpointed or synced, and nothing its connections'
// closing would set off runs (it writes no release of the share records
// its members held: the next leader has them as the share coordinator
// last recorded them). The controller learns of it
// only by missed heartbeats (broker.session.timeout.ms), then fences it and
// elects new leaders from the ISR. Data already written to its storage
// stays, as the OS page cache would keep it after a process crash; see
// PowerCut for a crash that loses what was not synced.
func (c *Cluster) KillBroker(id int32) error {
	if err := c.embedded("KillBroker"); err != nil {
		return err
	}
	b, err := c.takeBroker(id)
	if err != nil {
		return err
	}
	c.crash(b)
	return nil
}

// crash stops a broker already taken out of the cluster's table abruptly.
func (c *Cluster) crash(b *broker) {
	// Dead from here on: nothing its connections' closing would set off
	// runs (broker.killed).
	b.killed.Store(true)
	// Client connections first: a request in flight must get no answer,
	// not an error caused by the broker's own links going down.
	b.dropConns()
	c.net.CloseNode(b.id)
	b.close(false)
	c.record(Event{Kind: BrokerDown, Broker: b.id})
	c.stopCombinedController(b.id)
	c.notifyEvent()
}

// stopCombinedController kills the controller that shares broker id's
// node, if it runs: a combined node is one process.
func (c *Cluster) stopCombinedController(id int32) {
	if !c.cfg.combined {
		return
	}
	if i, err := c.ctrlIndex(id); err == nil {
		c.killController(i) // ErrControllerDown when it is down already
	}
}

// StopBroker shuts broker id down the controlled way, as Kafka's controlled
// shutdown: the controller first fences it, which moves the leadership of
// its partitions to other ISR members and removes it from every ISR; then
// the broker checkpoints its high watermarks, syncs its logs and stops.
// StopBroker returns once the broker is down.
func (c *Cluster) StopBroker(id int32) error {
	if err := c.embedded("StopBroker"); err != nil {
		return err
	}
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
	end := c.metadataEnd()
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
	c.record(Event{Kind: BrokerDown, Broker: id})
	c.stopCombinedController(id)
	c.notifyEvent()
	return nil
}

// takeBroker removes a running broker from the cluster's table.
func (c *Cluster) takeBroker(id int32) (*broker, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.checkIDLocked(id); err != nil {
		return nil, err
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
	if err := c.embedded("RestartBroker"); err != nil {
		return err
	}
	c.waitHalted(id)
	b, err := c.brokerByID(id)
	if err != nil {
		return err
	}
	if b != nil {
		return fmt.Errorf("%w: %d", ErrBrokerUp, id)
	}
	if i, err := c.ctrlIndex(id); err == nil && c.cfg.combined && c.controllerByID(id) == nil {
		// One process: its controller starts first, as the broker
		// needs a quorum to register.
		if err := c.restartController(i); err != nil {
			return err
		}
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

// Client stands for every Kafka client in Cut: Cut(id, Client) cuts broker
// id off from clients but not from other nodes.
const Client int32 = network.Client

// Cut breaks the link between nodes a and b (broker ids, Controller(), or
// Client) in both directions, as a network partition would look to Kafka
// code: open connections between them are closed (the peer reads EOF or a
// connection reset), and new connections are refused (dials fail with
// ECONNREFUSED; connections a listener accepts are closed at once) until the
// returned heal is called or Heal undoes every cut. Cuts nest.
//
// A broker cut from the controller misses its heartbeats and is fenced
// after broker.session.timeout.ms, and stops learning metadata. A follower
// cut from its leader stops fetching and leaves the ISR after
// replica.lag.time.max.ms.
func (c *Cluster) Cut(a, b int32) (heal func()) {
	c.mustEmbed("Cut")
	h := c.net.Cut(a, b)
	return c.trackHeal(h)
}

// Isolate cuts node id from every other node and from every client.
func (c *Cluster) Isolate(id int32) (heal func()) {
	c.mustEmbed("Isolate")
	var heals []func()
	for _, other := range c.nodeIDs() {
		if other != id {
			heals = append(heals, c.net.Cut(id, other))
		}
	}
	heals = append(heals, c.net.Cut(id, Client))
	return c.trackHeal(func() {
		for _, h := range heals {
			h()
		}
	})
}

// Partition splits the cluster: every link between nodes of different
// groups is cut (majority/minority splits in one call). Nodes in no group
// (the controller, unless listed) keep every link; clients keep theirs.
func (c *Cluster) Partition(groups ...[]int32) (heal func()) {
	c.mustEmbed("Partition")
	var heals []func()
	for i, g := range groups {
		for _, h := range groups[i+1:] {
			for _, a := range g {
				for _, b := range h {
					heals = append(heals, c.net.Cut(a, b))
				}
			}
		}
	}
	return c.trackHeal(func() {
		for _, h := range heals {
			h()
		}
	})
}

// Heal undoes every cut made with Cut, Isolate and Partition.
func (c *Cluster) Heal() {
	c.mustEmbed("Heal")
	c.heals.Lock()
	hs := c.heals.m
	c.heals.m = nil
	c.heals.Unlock()
	for _, h := range hs {
		h()
	}
	c.notifyEvent()
}

// trackHeal records a heal for Heal and returns an idempotent heal.
func (c *Cluster) trackHeal(h func()) func() {
	var once sync.Once
	heal := func() { once.Do(func() { h(); c.notifyEvent() }) }
	c.heals.Lock()
	c.heals.m = append(c.heals.m, heal)
	c.heals.Unlock()
	c.notifyEvent()
	return heal
}

// nodeIDs returns every node id: brokers 1..n and the controllers (once
// each: a combined controller shares its broker's id).
func (c *Cluster) nodeIDs() []int32 {
	ids := make([]int32, 0, len(c.ports)+c.numControllers())
	for i := range c.ports {
		ids = append(ids, int32(i+1))
	}
	for _, id := range c.ControllerIDs() {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// SlowLink adds d of latency to the link between a and b (broker ids,
// Controller(), or Client for every client connection of the other): each
// write on either end waits d first (with Client, the broker's reads of
// what clients send wait d too), so a request/response exchange takes
// about 2d longer. Zero or less removes it. The returned undo removes it;
// Heal removes it too. Drop adds loss.
func (c *Cluster) SlowLink(a, b int32, d time.Duration) (undo func()) {
	c.mustEmbed("SlowLink")
	c.net.SetDelay(a, b, d)
	return c.trackHeal(func() { c.net.SetDelay(a, b, 0) })
}
