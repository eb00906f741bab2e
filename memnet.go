package kcluster

import (
	"context"
	"net"

	"github.com/kcluster/kcluster/network"
)

// InMemoryNetwork makes the brokers listen on an in-memory network instead
// of loopback TCP: nothing is bound, connections are net.Pipe pairs, and
// clients connect only through Cluster.Dial (with franz-go,
// kgo.Dialer(c.Dial)). Addrs still reports 127.0.0.1:port addresses, which
// name the brokers for Dial. Cuts, slow and lossy links work as on TCP.
//
// Its use is testing/synctest: a goroutine blocked on a socket is not
// durably blocked in a bubble, one blocked on a pipe is, so a cluster on
// this network inside synctest.Test runs Kafka's real timeouts
// (broker.session.timeout.ms=9000, ...) on the bubble's fake clock, in
// milliseconds of wall time. The default is TCP.
func InMemoryNetwork() Option { return optionFunc(func(c *config) { c.memNet = true }) }

// Dial connects a client to a broker's address (one of Addrs), for
// clients of an InMemoryNetwork cluster; on TCP it is an ordinary dial.
// Its signature is net.Dialer.DialContext's, which franz-go's kgo.Dialer
// takes.
func (c *Cluster) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := c.embedded("Dial"); err != nil {
		return nil, err
	}
	return c.net.DialClient(ctx, network, addr)
}

func newNetwork(cfg *config) *network.Network {
	if cfg.memNet {
		return network.NewInMemory()
	}
	return network.New()
}
