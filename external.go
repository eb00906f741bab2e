package kcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// External mode: a Cluster that is a handle on a Kafka cluster kcluster
// did not start (Apache Kafka, or another cmd/kcluster process), so that
// the same tests run against it. This file is the one switch: Start (with
// BootstrapEnv set) and Connect make such a handle; the gauges a Kafka
// client can see work through the Kafka protocol (external_gauges.go);
// everything else calls embedded first, which skips the test or returns
// ErrExternal.

// BootstrapEnv is the environment variable that points Start at an
// external Kafka cluster: comma-separated host:port bootstrap servers.
// Unset or empty, Start starts an embedded cluster.
const BootstrapEnv = "KCLUSTER_BOOTSTRAP"

// ErrExternal is returned by a lever or gauge that needs kcluster's
// embedded cluster (KillBroker, FailDisk, Transaction, CleanLogs, ...)
// when it is called on a Cluster made by Connect. On a Cluster made by
// Start with BootstrapEnv set, such a call skips the test instead (when
// Start's TB has Skipf, as *testing.T does: the skip is that test's, so
// call levers from its goroutine). Levers and gauges that return
// no error (Cut, Heal, Events, ...) panic with an error wrapping
// ErrExternal in the cases where this one would be returned.
var ErrExternal = errors.New("kcluster: this needs kcluster's embedded cluster, not an external one")

// ExternalPollInterval is how often WaitFor re-checks its condition on an
// external cluster: an external cluster sends kcluster no events, so
// WaitFor polls it through the Kafka protocol there.
const ExternalPollInterval = 25 * time.Millisecond

// externalTimeout bounds one protocol round of a gauge on an external
// cluster (the gauges take no context).
const externalTimeout = 10 * time.Second

// ExternalBootstrap returns the bootstrap servers BootstrapEnv names, or
// nil when it is unset or empty.
func ExternalBootstrap() []string {
	var out []string
	for _, a := range strings.Split(os.Getenv(BootstrapEnv), ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// external is an external cluster's handle: a franz-go client on it.
type external struct {
	addrs     []string
	cl        *kgo.Client
	clusterID string
	// skip is Start's t.Skipf; nil for Connect.
	skip func(format string, args ...any)
}

// Connect returns a Cluster handle on the external Kafka cluster whose
// bootstrap servers are given, after one Metadata round trip shows it is
// reachable. Addrs, ClusterID, Brokers, Topics, PartitionState (without
// the per-replica maps), Group, Groups, CreateTopic, WaitFor (which polls
// every ExternalPollInterval) and the conditions on them work through the
// Kafka protocol; everything else returns ErrExternal. Close closes the
// handle only, never the external cluster.
func Connect(bootstrap ...string) (*Cluster, error) {
	if len(bootstrap) == 0 {
		return nil, errors.New("kcluster: Connect needs the external cluster's bootstrap servers")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...), kgo.RetryTimeout(3*time.Second))
	if err != nil {
		return nil, fmt.Errorf("kcluster: connecting to %s: %w", strings.Join(bootstrap, ","), err)
	}
	c := &Cluster{ext: &external{addrs: slices.Clone(bootstrap), cl: cl}}
	c.ctx, c.stop = context.WithCancel(context.Background())
	resp, err := c.ext.metadata(c.ctx, nil)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("kcluster: the external cluster at %s: %w", strings.Join(bootstrap, ","), err)
	}
	if resp.ClusterID != nil {
		c.ext.clusterID = *resp.ClusterID
	}
	return c, nil
}

// startExternal is Start with BootstrapEnv set: a handle on the external
// cluster, closed on t.Cleanup, whose levers skip t. The options describe
// an embedded cluster and are ignored.
func startExternal(t TB, addrs []string, opts []Option) *Cluster {
	t.Helper()
	c, err := Connect(addrs...)
	if err != nil {
		t.Fatalf("kcluster.Start (%s=%s): %v", BootstrapEnv, strings.Join(addrs, ","), err)
		return nil
	}
	if s, ok := t.(interface{ Skipf(string, ...any) }); ok {
		c.ext.skip = s.Skipf
	}
	t.Logf("kcluster: %s is set: the test runs against the external cluster %s (options for an embedded cluster ignored: %d)",
		BootstrapEnv, strings.Join(addrs, ","), len(opts))
	t.Cleanup(c.Close)
	return c
}

// embedded returns nil on kcluster's own cluster. On an external one it
// skips the test Start made the handle for, or returns ErrExternal naming
// what needs the embedded cluster.
func (c *Cluster) embedded(what string) error {
	if c.ext == nil {
		return nil
	}
	if c.ext.skip != nil {
		c.ext.skip("kcluster: %s needs kcluster's embedded cluster; %s=%s points this test at an external one",
			what, BootstrapEnv, strings.Join(c.ext.addrs, ","))
	}
	return fmt.Errorf("%w: %s", ErrExternal, what)
}

// mustEmbed is embedded for the levers and gauges that return no error:
// where embedded would return ErrExternal, it panics with it.
func (c *Cluster) mustEmbed(what string) {
	if err := c.embedded(what); err != nil {
		panic(err)
	}
}

// close closes the handle's client and ends its waits.
func (e *external) close(c *Cluster) {
	c.stop()
	e.cl.Close()
}

// waitFor is WaitFor on an external cluster: it checks cond every
// ExternalPollInterval.
func (e *external) waitFor(ctx context.Context, c *Cluster, cond Condition) error {
	tick := time.NewTicker(ExternalPollInterval)
	defer tick.Stop()
	for {
		if cond(c) {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			return ErrClosed
		}
	}
}

// request sends req to the external cluster, bounded by externalTimeout.
func (e *external) request(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, externalTimeout)
	defer cancel()
	return e.cl.Request(ctx, req)
}

// metadata asks for topics (nil: every topic; empty: none).
func (e *external) metadata(ctx context.Context, topics []string) (*kmsg.MetadataResponse, error) {
	req := kmsg.NewPtrMetadataRequest()
	if topics != nil {
		req.Topics = []kmsg.MetadataRequestTopic{}
	}
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := e.request(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.(*kmsg.MetadataResponse), nil
}

// CreateTopic creates topic with partitions partitions of replicationFactor
// replicas through the Kafka protocol (CreateTopics, as an admin client
// on Addrs), and returns once every partition has an elected leader. On
// an external cluster it works the same. A topic that exists already is
// an error wrapping kerr.TopicAlreadyExists.
func (c *Cluster) CreateTopic(ctx context.Context, topic string, partitions int32, replicationFactor int16) error {
	cl := c.ext.client()
	if c.ext == nil {
		opts := []kgo.Opt{kgo.SeedBrokers(c.Addrs()...)}
		if c.cfg.memNet {
			opts = append(opts, kgo.Dialer(c.Dial))
		}
		var err error
		if cl, err = kgo.NewClient(opts...); err != nil {
			return err
		}
		defer cl.Close()
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, replicationFactor
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("kcluster: CreateTopic %s: %w", topic, err)
	}
	if len(resp.Topics) != 1 {
		return fmt.Errorf("kcluster: CreateTopic %s: %d topics in the answer", topic, len(resp.Topics))
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		return fmt.Errorf("kcluster: CreateTopic %s: %w", topic, err)
	}
	for p := range partitions {
		if err := c.WaitFor(ctx, LeaderElected(topic, p)); err != nil {
			return fmt.Errorf("kcluster: CreateTopic %s: waiting for partition %d's leader: %w", topic, p, err)
		}
	}
	return nil
}

// client is the external cluster's client, nil for an embedded cluster.
func (e *external) client() *kgo.Client {
	if e == nil {
		return nil
	}
	return e.cl
}
