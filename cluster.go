package kcluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
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
	cfg   config
	net   *network.Network
	mlog  metadata.Log
	ctrl  *metadata.Controller
	ctx   context.Context
	stop  context.CancelFunc
	brk   []*broker // index id-1
	dec   decompressor
	close sync.Once
}

// New starts a cluster and returns once every broker's listener is bound
// and every broker has replayed the metadata log up to the registration of
// all brokers. Close it when done.
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
	c := &Cluster{cfg: cfg, net: network.New(), ctx: ctx, stop: cancel}
	c.mlog = metadata.NewMemLog()
	ctrl, err := metadata.NewController(ctx, c.mlog, cfg.clusterID)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.ctrl = ctrl
	for i := 0; i < cfg.brokers; i++ {
		id := int32(i + 1)
		port := 0
		if len(cfg.ports) > 0 {
			port = cfg.ports[i]
		}
		b, err := newBroker(c, id, net.JoinHostPort(cfg.host, strconv.Itoa(port)))
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("kcluster: starting broker %d: %w", id, err)
		}
		c.brk = append(c.brk, b)
	}
	for _, b := range c.brk {
		if err := b.register(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("kcluster: registering broker %d: %w", b.id, err)
		}
	}
	for _, b := range c.brk {
		b.start()
	}
	end := c.mlog.End() - 1
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	for _, b := range c.brk {
		if err := b.waitMetadata(wctx, end); err != nil {
			c.Close()
			return nil, fmt.Errorf("kcluster: broker %d did not catch up with metadata: %w", b.id, err)
		}
	}
	return c, nil
}

// Addrs returns every broker's address (host:port as advertised), in broker
// id order: the bootstrap servers for a client.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.brk))
	for i, b := range c.brk {
		out[i] = b.advertisedAddr()
	}
	return out
}

// ClusterID returns the cluster id.
func (c *Cluster) ClusterID() string { return c.cfg.clusterID }

// Close stops every broker and releases every port and goroutine. It is safe
// to call more than once and from t.Cleanup. If shutdown takes more than 5
// seconds it logs what it is still waiting on.
func (c *Cluster) Close() {
	c.close.Do(func() {
		c.stop()
		if c.mlog != nil {
			c.mlog.Close()
		}
		c.net.Close()
		var wg sync.WaitGroup
		for _, b := range c.brk {
			wg.Add(1)
			go func() {
				defer wg.Done()
				done := make(chan struct{})
				go func() { b.close(); close(done) }()
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
		c.dec.close()
	})
}
