package kcluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kcluster/kcluster/metadata"
	"github.com/kcluster/kcluster/network"
)

// Cluster is a running Kafka-compatible cluster. Its methods are safe for
// concurrent use. The zero value is not usable: use New or Start.
type Cluster struct {
	cfg  config
	net  *network.Network
	bufs bufPool // large request and response buffers, shared by every node
	ctx  context.Context
	stop context.CancelFunc
	dec  decompressor

	// ports and hosts are fixed at New: a restarted broker keeps its port,
	// a restarted controller its ports.
	ports     []int
	lnPorts   [][]int // per Listener option, per broker
	ctrlPorts []int
	raftPorts []int
	// newClusterID is the id a new cluster gets when ClusterID is not
	// given (a quorum on existing storage keeps its own).
	newClusterID string
	// memLog is the in-memory mode's metadata log; it outlives its
	// controller node, as storage would.
	memLog *metadata.MemLog

	// ctrls holds the controller nodes (index id-controllerNodeID; nil
	// while down). Brokers reach controllers only over the network.
	ctrls struct {
		sync.Mutex
		nodes []*controllerNode
	}

	mu struct {
		sync.Mutex
		brokers []*broker // index id-1; nil while a broker is down
		closed  bool
	}
	// events is closed and replaced on every cluster event (metadata
	// applied by a broker, data or high watermark change): WaitFor's wake-up.
	events struct {
		sync.Mutex
		ch chan struct{}
	}
	// ext is set on a handle on an external cluster (external.go): then
	// the gauges go through the Kafka protocol and nothing else is set.
	ext *external

	icpt intercepts // request hooks (Intercept)
	// shareAudit checks, in invariants builds, that no share-partition
	// record is written again once done (share_coordinator.go).
	shareAudit shareAudit
	disks      disks    // every broker's storage device (faults_storage.go)
	evlog      eventLog // Events
	stats      meters   // BrokerMetrics (metrics.go)
	heals      struct { // every heal of a Cut, Isolate or Partition, for Heal
		sync.Mutex
		m []func()
	}
	close sync.Once
	inv   violations  // broken invariants (invariants.go)
	logs  replicaLogs // every open replica's log, in invariants builds (invariants.go)
}

// Errors returned by the levers.
var (
	// ErrUnknownBroker is returned by the broker levers for an id that is
	// not 1..n.
	ErrUnknownBroker = errors.New("kcluster: unknown broker id")
	// ErrBrokerDown is returned by KillBroker, StopBroker and PowerCut for
	// a broker that is not running.
	ErrBrokerDown = errors.New("kcluster: broker is not running")
	// ErrBrokerUp is returned by RestartBroker for a broker that is running.
	ErrBrokerUp = errors.New("kcluster: broker is running")
	// ErrClosed is returned by levers after Close.
	ErrClosed = errors.New("kcluster: cluster closed")
)

// New starts a cluster and returns once every broker's listener is bound
// and every broker is registered, unfenced and has replayed the metadata
// log. Close it when done.
func New(opts ...Option) (*Cluster, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var idb [16]byte
	rand.Read(idb[:])
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cluster{cfg: cfg, net: newNetwork(&cfg), ctx: ctx, stop: cancel,
		newClusterID: base64.RawURLEncoding.EncodeToString(idb[:])}
	c.shareAudit.violated = c.invariantViolated
	c.evlog.applied, c.evlog.controller = -1, -1
	c.mu.brokers = make([]*broker, cfg.brokers)
	c.ports = make([]int, cfg.brokers)
	copy(c.ports, cfg.ports)
	c.lnPorts = make([][]int, len(cfg.listeners))
	for i := range c.lnPorts {
		c.lnPorts[i] = make([]int, cfg.brokers)
	}
	nc := c.numControllers()
	c.ctrlPorts, c.raftPorts = make([]int, nc), make([]int, nc)
	c.ctrls.nodes = make([]*controllerNode, nc)
	if !c.quorum() {
		c.memLog = metadata.NewMemLog()
	}
	lns := make([][2]net.Listener, nc)
	for i := range nc {
		ln, rln, err := c.listenController(i)
		if err != nil {
			for _, l := range lns[:i] {
				l[0].Close()
				if l[1] != nil {
					l[1].Close()
				}
			}
			c.Close()
			return nil, err
		}
		lns[i] = [2]net.Listener{ln, rln}
	}
	for i := range nc {
		n, err := c.startController(i, lns[i][0], lns[i][1])
		if err != nil {
			for _, l := range lns[i+1:] {
				l[0].Close()
				if l[1] != nil {
					l[1].Close()
				}
			}
			c.Close()
			return nil, err
		}
		c.ctrls.Lock()
		c.ctrls.nodes[i] = n
		c.ctrls.Unlock()
		// Every controller of a quorum must be on the same cluster's
		// storage; the first settles the id.
		if id := n.ctrl.ClusterID(); c.cfg.clusterID == "" {
			c.cfg.clusterID = id
		} else if id != c.cfg.clusterID {
			c.Close()
			return nil, fmt.Errorf("kcluster: controller %d has cluster id %q, not %q: %w", n.id, id, c.cfg.clusterID, metadata.ErrClusterIDMismatch)
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := c.WaitFor(wctx, func(c *Cluster) bool { return c.Controller() >= 0 }); err != nil {
		c.Close()
		return nil, fmt.Errorf("kcluster: no controller became active: %w", err)
	}
	c.noteController()
	if err := c.bootstrapFeatures(wctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("kcluster: writing the finalized features: %w", err)
	}
	if err := c.bootstrapScram(wctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("kcluster: writing SASLUser's SCRAM credentials: %w", err)
	}
	// Brokers start side by side: each opens its storage and registers
	// with the controller on its own. On the in-memory network, whose use
	// is replaying a run in a testing/synctest bubble (where a sequential
	// start costs no wall time), they start one after another, so they
	// register in the same order in every replay.
	var g errgroup.Group
	if cfg.memNet {
		g.SetLimit(1)
	}
	for i := range cfg.brokers {
		g.Go(func() error { return c.startBroker(int32(i+1), false) })
	}
	if err := g.Wait(); err != nil {
		c.Close()
		return nil, err
	}
	// Ready: every broker sees every broker unfenced.
	for _, b := range c.running() {
		if err := b.waitState(wctx, func(st *metadata.State) bool {
			if len(st.Brokers) != cfg.brokers {
				return false
			}
			for _, br := range st.Brokers {
				if br.Fenced {
					return false
				}
			}
			return true
		}); err != nil {
			c.Close()
			return nil, fmt.Errorf("kcluster: broker %d did not become ready: %w", b.id, err)
		}
	}
	// Ready: the brokers' indexes (opened with their first logs) open
	// now, in the background, while the caller connects its clients,
	// rather than while the brokers register or with the first topic.
	for _, b := range c.running() {
		for _, d := range b.dirs {
			if st := d.store(); st != nil {
				st.PrepareIndex()
			}
		}
	}
	return c, nil
}

// startBroker creates, registers and starts broker id on its port.
func (c *Cluster) startBroker(id int32, restart bool) error {
	port := c.ports[id-1]
	b, err := newBroker(c, id, net.JoinHostPort(c.cfg.host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("kcluster: starting broker %d: %w", id, err)
	}
	if c.ports[id-1] == 0 {
		c.ports[id-1] = int(b.port) // first start only: a restart reuses it
	}
	for i, l := range b.lns[1:] {
		if c.lnPorts[i][id-1] == 0 {
			c.lnPorts[i][id-1] = int(l.port)
		}
	}
	if err := b.register(c.ctx); err != nil {
		b.close(false)
		return fmt.Errorf("kcluster: registering broker %d: %w", id, err)
	}
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		b.close(false)
		return ErrClosed
	}
	c.mu.brokers[id-1] = b
	c.mu.Unlock()
	c.record(Event{Kind: BrokerUp, Broker: id})
	b.start()
	return nil
}

func (c *Cluster) running() []*broker {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*broker
	for _, b := range c.mu.brokers {
		if b != nil {
			out = append(out, b)
		}
	}
	return out
}

// checkIDLocked returns the error for an id no lever can act on.
func (c *Cluster) checkIDLocked(id int32) error {
	if c.mu.closed {
		return ErrClosed
	}
	if id < 1 || int(id) > len(c.mu.brokers) {
		return fmt.Errorf("%w: %d", ErrUnknownBroker, id)
	}
	return nil
}

// brokerByID returns broker id, nil while it is down.
func (c *Cluster) brokerByID(id int32) (*broker, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.checkIDLocked(id); err != nil {
		return nil, err
	}
	return c.mu.brokers[id-1], nil
}

// Addrs returns every broker's address (host:port as advertised), in broker
// id order: the bootstrap servers for a client. A stopped broker keeps its
// address.
func (c *Cluster) Addrs() []string {
	if c.ext != nil {
		return slices.Clone(c.ext.addrs)
	}
	out := make([]string, len(c.ports))
	for i, p := range c.ports {
		out[i] = net.JoinHostPort(c.cfg.advertised, strconv.Itoa(p))
	}
	return out
}

// ListenerAddrs returns every broker's address on the listener named
// name (DefaultListener or one given by Listener), in broker id order, as
// Addrs does for the default one; nil for a name no listener has.
func (c *Cluster) ListenerAddrs(name string) []string {
	c.mustEmbed("ListenerAddrs")
	if name == DefaultListener {
		return c.Addrs()
	}
	for i, l := range c.cfg.listeners {
		if l.name != name {
			continue
		}
		out := make([]string, len(c.lnPorts[i]))
		for j, p := range c.lnPorts[i] {
			out[j] = net.JoinHostPort(c.cfg.advertised, strconv.Itoa(p))
		}
		return out
	}
	return nil
}

// listenerPort is the port of Listener option i on broker id: 0 before
// its first start.
func (c *Cluster) listenerPort(i int, id int32) int { return c.lnPorts[i][id-1] }

// bootstrapScram writes SASLUser's SCRAM credentials into the metadata
// log through the active controller, before any broker starts (Kafka's
// kafka-storage format --add-scram).
func (c *Cluster) bootstrapScram(ctx context.Context) error {
	if len(c.cfg.scramUsers) == 0 {
		return nil
	}
	n := c.activeController()
	if n == nil {
		return errNoController
	}
	var recs []metadata.Record
	for _, u := range c.cfg.users {
		code, _, ok := scramMechCode(u.mech)
		if !ok {
			continue
		}
		k := c.cfg.scramUsers[scramUserKey{u.user, code}]
		recs = append(recs, &metadata.ScramCredential{User: u.user, Mechanism: code, Salt: k.salt, StoredKey: k.storedKey, ServerKey: k.serverKey, Iterations: k.iters})
	}
	return n.ctrl.AlterScram(ctx, recs)
}

// bootstrapFeatures writes the finalized feature levels (Feature) into a
// new cluster's metadata log through the active controller, before any
// broker starts (kafka-storage format's bootstrap records). A log that has
// them already (a cluster restarted from its Dir) keeps its own.
func (c *Cluster) bootstrapFeatures(ctx context.Context) error {
	n := c.activeController()
	if n == nil {
		return errNoController
	}
	_, err := n.ctrl.BootstrapFeatures(ctx, c.cfg.features)
	return err
}

// isClosed reports whether Close has begun.
func (c *Cluster) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.closed
}

// ClusterID returns the cluster id.
func (c *Cluster) ClusterID() string {
	if c.ext != nil {
		return c.ext.clusterID
	}
	return c.cfg.clusterID
}

// notifyEvent wakes WaitFor callers.
func (c *Cluster) notifyEvent() {
	c.events.Lock()
	if c.events.ch != nil {
		close(c.events.ch)
		c.events.ch = nil
	}
	c.events.Unlock()
}

func (c *Cluster) eventCh() <-chan struct{} {
	c.events.Lock()
	defer c.events.Unlock()
	if c.events.ch == nil {
		c.events.ch = make(chan struct{})
	}
	return c.events.ch
}

// Close stops every broker and releases every port and goroutine. It is safe
// to call more than once and from t.Cleanup. If shutdown takes more than 5
// seconds it logs what it is still waiting on.
func (c *Cluster) Close() {
	if c.ext != nil {
		c.close.Do(func() { c.ext.close(c) })
		return
	}
	c.close.Do(func() {
		c.mu.Lock()
		c.mu.closed = true
		brokers := c.mu.brokers
		c.mu.brokers = make([]*broker, len(brokers))
		c.mu.Unlock()
		c.stop()
		c.ctrls.Lock()
		ctrls := c.ctrls.nodes
		c.ctrls.nodes = make([]*controllerNode, len(ctrls))
		c.ctrls.Unlock()
		if c.memLog != nil {
			c.memLog.Close()
		}
		c.net.Close()
		var wg sync.WaitGroup
		for _, b := range brokers {
			if b == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				done := make(chan struct{})
				go func() { b.close(true); close(done) }()
				for {
					select {
					case <-done:
						return
					case <-time.After(5 * time.Second):
						c.cfg.logger.Error("Close is still waiting on a broker", "broker", b.id, "waiting_on", b.waitingOn())
					}
				}
			}()
		}
		wg.Wait()
		c.disks.halts.Wait()
		for _, n := range ctrls {
			if n != nil {
				n.kill()
			}
		}
		c.dec.close()
		// The brokers' own memory file systems die with the cluster:
		// give their memory back now rather than at a later GC.
		c.disks.mu.Lock()
		for _, ds := range c.disks.m {
			for _, d := range ds {
				if d.mem != nil {
					d.mem.Release()
				}
			}
		}
		c.disks.mu.Unlock()
	})
	c.panicOnViolations()
}
