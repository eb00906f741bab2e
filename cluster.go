package kcluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/kcluster/kcluster/metadata"
	"github.com/kcluster/kcluster/network"
)

// Cluster is a running Kafka-compatible cluster. Its methods are safe for
// concurrent use. The zero value is not usable: use New or Start.
type Cluster struct {
	cfg  config
	net  *network.Network
	mlog metadata.Log
	ctrl *metadata.Controller
	// ctrlNode serves the controller's APIs over the network; brokers
	// reach the controller only through it.
	ctrlNode *controllerNode
	ctx      context.Context
	stop     context.CancelFunc
	dec      decompressor
	bg       sync.WaitGroup // controller goroutine

	// ports and hosts are fixed at New: a restarted broker keeps its port.
	ports []int

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
	icpt  intercepts // request hooks (Intercept)
	disks disks      // every broker's storage device (faults_storage.go)
	evlog eventLog   // Events
	heals struct {   // every heal of a Cut, Isolate or Partition, for Heal
		sync.Mutex
		m []func()
	}
	close sync.Once
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
	if cfg.clusterID == "" {
		var b [16]byte
		rand.Read(b[:])
		cfg.clusterID = base64.RawURLEncoding.EncodeToString(b[:])
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cluster{cfg: cfg, net: newNetwork(&cfg), ctx: ctx, stop: cancel}
	c.mu.brokers = make([]*broker, cfg.brokers)
	c.ports = make([]int, cfg.brokers)
	copy(c.ports, cfg.ports)
	c.mlog = metadata.NewMemLog()
	ctrl, err := metadata.NewController(ctx, c.mlog, cfg.clusterID, metadata.ControllerConfig{
		SessionTimeout:       cfg.broker.sessionTimeout,
		UncleanElection:      cfg.broker.uncleanElection,
		AutoLeaderRebalance:  cfg.broker.autoRebalance,
		LeaderImbalanceCheck: cfg.broker.imbalanceCheck,
		OnChange:             c.onMetadata,
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	c.ctrl = ctrl
	if c.ctrlNode, err = startControllerNode(c, controllerNodeID, ctrl); err != nil {
		c.Close()
		return nil, fmt.Errorf("kcluster: starting the controller: %w", err)
	}
	for i := range cfg.brokers {
		if err := c.startBroker(int32(i+1), false); err != nil {
			c.Close()
			return nil, err
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
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
	out := make([]string, len(c.ports))
	for i, p := range c.ports {
		out[i] = net.JoinHostPort(c.cfg.advertised, strconv.Itoa(p))
	}
	return out
}

// ClusterID returns the cluster id.
func (c *Cluster) ClusterID() string { return c.cfg.clusterID }

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
	c.close.Do(func() {
		c.mu.Lock()
		c.mu.closed = true
		brokers := c.mu.brokers
		c.mu.brokers = make([]*broker, len(brokers))
		c.mu.Unlock()
		c.stop()
		if c.mlog != nil {
			c.mlog.Close()
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
		if c.ctrlNode != nil {
			c.ctrlNode.close()
		}
		c.bg.Wait()
		c.dec.close()
	})
}
