package bench

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster"
)

// groupAcks records the group's acknowledged commits.
type groupAcks struct {
	mu   sync.Mutex
	sent time.Time // when the latest acknowledged commit was sent
	last time.Time // when it was acknowledged
	ch   chan struct{}
}

// ack records a commit acknowledged that was sent at sent.
func (a *groupAcks) ack(sent time.Time) {
	a.mu.Lock()
	if sent.After(a.sent) {
		a.sent, a.last = sent, time.Now()
	}
	close(a.ch)
	a.ch = make(chan struct{})
	a.mu.Unlock()
}

// after waits for a commit sent after t to be acknowledged and returns
// when it was.
func (a *groupAcks) after(ctx context.Context, t time.Time) (time.Time, error) {
	for {
		a.mu.Lock()
		sent, last, ch := a.sent, a.last, a.ch
		a.mu.Unlock()
		if sent.After(t) {
			return last, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

func startGroupConsumer(b *testing.B, addrs []string, group, topic string, acks *groupAcks, opts ...kgo.Opt) (stop func()) {
	all := append([]kgo.Opt{
		kgo.SeedBrokers(addrs...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.HeartbeatInterval(100 * time.Millisecond), kgo.SessionTimeout(3 * time.Second),
	}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			// Poll for at most 50 ms, then commit what was consumed
			// (or, with nothing new, the committed offsets again), so
			// the group's commit path is exercised continuously.
			pctx, pcancel := context.WithTimeout(ctx, 50*time.Millisecond)
			fs := cl.PollFetches(pctx)
			pcancel()
			if fs.IsClientClosed() || ctx.Err() != nil {
				return
			}
			offs := cl.UncommittedOffsets()
			if len(offs) == 0 {
				offs = cl.CommittedOffsets()
			}
			if len(offs) == 0 || acks == nil {
				continue
			}
			sent := time.Now()
			ok := false
			cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
				ok = err == nil
				if resp != nil {
					for _, t := range resp.Topics {
						for _, p := range t.Partitions {
							ok = ok && p.ErrorCode == 0
						}
					}
				}
			})
			if ok {
				acks.ack(sent)
			}
		}
	}()
	return func() { cancel(); cl.Close(); <-done }
}

// settled holds when group is Stable with members members owning all
// partitions of topic between them (a cooperative group is Stable in
// between, with revoked partitions not yet reassigned).
func settled(group, topic string, members, partitions int) kcluster.Condition {
	return func(c *kcluster.Cluster) bool {
		st, err := c.Group(group)
		if err != nil || st.State != "Stable" || len(st.Members) != members {
			return false
		}
		n := 0
		for _, m := range st.Members {
			n += len(m.Assigned[topic])
		}
		return n == partitions
	}
}

var groupProtocols = []struct {
	name string
	opts []kgo.Opt
}{
	{"classic", []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer())}},
	{"kip848", []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.ServerSideBalancer()}},
}

// BenchmarkGroupStable measures the time from starting three franz-go
// consumers of a 6-partition RF=3 topic to the group being Stable with
// three members owning all six partitions: "cold" is the cluster's first
// group (FindCoordinator creates __consumer_offsets), "warm" a second
// group once the first is stable.
func BenchmarkGroupStable(b *testing.B) {
	for _, p := range groupProtocols {
		b.Run(p.name, func(b *testing.B) {
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				c, err := kcluster.New(kcluster.Brokers(3), benchLogger())
				if err != nil {
					b.Fatal(err)
				}
				adm, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := kadm.NewClient(adm).CreateTopic(ctx, 6, 3, nil, "t"); err != nil {
					b.Fatal(err)
				}
				for _, g := range []string{"cold", "warm"} {
					start := time.Now()
					var stops []func()
					for range 3 {
						stops = append(stops, startGroupConsumer(b, c.Addrs(), g, "t", nil, p.opts...))
					}
					wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					if err := c.WaitFor(wctx, settled(g, "t", 3, 6)); err != nil {
						b.Fatalf("%s group not stable: %v", g, err)
					}
					cancel()
					b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "ms/stable-"+g)
					for _, s := range stops {
						s()
					}
				}
				adm.Close()
				c.Close()
			}
		})
	}
}

// BenchmarkGroupCoordinatorFailover measures, with three consumers under a
// steady producer committing every 50 ms at most, the time from
// KillBroker(coordinator) to the group being Stable on its new coordinator
// ("ms/stable") and to the first acknowledged commit sent after the kill
// ("ms/commit").
func BenchmarkGroupCoordinatorFailover(b *testing.B) {
	for _, p := range groupProtocols {
		b.Run(p.name, func(b *testing.B) {
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				c, err := kcluster.New(kcluster.Brokers(3), benchLogger())
				if err != nil {
					b.Fatal(err)
				}
				prod, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.AllISRAcks()),
					kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := kadm.NewClient(prod).CreateTopic(ctx, 6, 3, nil, "t"); err != nil {
					b.Fatal(err)
				}
				pctx, stopProducing := context.WithCancel(ctx)
				produced := make(chan struct{})
				go func() {
					defer close(produced)
					for j := 0; pctx.Err() == nil; j++ {
						prod.ProduceSync(pctx, &kgo.Record{Topic: "t", Value: []byte(fmt.Sprint(j))})
					}
				}()
				acks := &groupAcks{ch: make(chan struct{})}
				var stops []func()
				for range 3 {
					stops = append(stops, startGroupConsumer(b, c.Addrs(), "g", "t", acks, p.opts...))
				}
				wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				if err := c.WaitFor(wctx, settled("g", "t", 3, 6)); err != nil {
					b.Fatalf("group not stable: %v", err)
				}
				// Steady state: every partition's commit moves on after
				// the group is stable (every member has its partitions,
				// has fetched their offsets and is consuming).
				at, _ := c.Group("g")
				if err := c.WaitFor(wctx, func(c *kcluster.Cluster) bool {
					s, err := c.Group("g")
					if err != nil {
						return false
					}
					for p := int32(0); p < 6; p++ {
						if s.Offsets["t"][p] <= at.Offsets["t"][p] {
							return false
						}
					}
					return true
				}); err != nil {
					b.Fatalf("no progress on every partition: %v", err)
				}
				st, err := c.Group("g")
				if err != nil {
					b.Fatal(err)
				}
				killed := time.Now()
				if err := c.KillBroker(st.Coordinator); err != nil {
					b.Fatal(err)
				}
				if err := c.WaitFor(wctx, func(c *kcluster.Cluster) bool {
					s, err := c.Group("g")
					return err == nil && s.Coordinator != st.Coordinator && settled("g", "t", 3, 6)(c)
				}); err != nil {
					b.Fatalf("group not stable on a new coordinator: %v", err)
				}
				b.ReportMetric(float64(time.Since(killed).Microseconds())/1000, "ms/stable")
				ack, err := acks.after(wctx, killed)
				if err != nil {
					b.Fatalf("no commit after the kill: %v", err)
				}
				b.ReportMetric(float64(ack.Sub(killed).Microseconds())/1000, "ms/commit")
				cancel()
				stopProducing()
				<-produced
				for _, s := range stops {
					s()
				}
				prod.Close()
				c.Close()
			}
		})
	}
}
