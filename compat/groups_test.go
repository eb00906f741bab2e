package compat

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
)

// ledger records what a group of consumers processed and committed, to
// check at-least-once delivery with commits after processing: every record
// is processed, and no record below an offset the group committed is
// processed again (committed work is never repeated).
type ledger struct {
	mu        sync.Mutex
	seen      map[int32]map[int64]int // partition → offset → times processed
	committed map[int32]int64         // highest committed offset acknowledged by the broker
	repeated  []string                // records processed again below a committed offset
	total     int
	distinctN int
	want      int           // distinct records to wait for
	reached   chan struct{} // closed when distinctN reaches want
	lastAck   time.Time     // when the last commit was acknowledged
	acked     chan struct{} // closed and replaced on every acknowledged commit
}

func newLedger(want int) *ledger {
	return &ledger{seen: map[int32]map[int64]int{}, committed: map[int32]int64{}, want: want, reached: make(chan struct{}), acked: make(chan struct{})}
}

func (l *ledger) process(r *kgo.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[r.Partition] == nil {
		l.seen[r.Partition] = map[int64]int{}
	}
	if c, ok := l.committed[r.Partition]; ok && r.Offset < c {
		l.repeated = append(l.repeated, fmt.Sprintf("p%d@%d (committed %d)", r.Partition, r.Offset, c))
	}
	if l.seen[r.Partition][r.Offset] == 0 {
		l.distinctN++
		if l.distinctN == l.want {
			close(l.reached)
		}
	}
	l.seen[r.Partition][r.Offset]++
	l.total++
}

func (l *ledger) commit(rs []*kgo.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range rs {
		if r.Offset+1 > l.committed[r.Partition] {
			l.committed[r.Partition] = r.Offset + 1
		}
	}
	l.lastAck = time.Now()
	close(l.acked)
	l.acked = make(chan struct{})
}

// ackedAfter waits for a commit acknowledged after t and returns when it
// was acknowledged.
func (l *ledger) ackedAfter(ctx context.Context, t time.Time) (time.Time, error) {
	for {
		l.mu.Lock()
		last, ch := l.lastAck, l.acked
		l.mu.Unlock()
		if last.After(t) {
			return last, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

func (l *ledger) distinct() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.distinctN
}

// consumer is one group member: it polls, processes, then commits what it
// processed synchronously, with rebalances blocked while it does.
type consumer struct {
	cl   *kgo.Client
	done chan struct{}
}

func startConsumer(t *testing.T, ctx context.Context, addrs []string, group, topic string, l *ledger, opts ...kgo.Opt) *consumer {
	t.Helper()
	all := append([]kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.SessionTimeout(3 * time.Second),
		kgo.RebalanceTimeout(5 * time.Second),
		kgo.RetryTimeout(20 * time.Second),
	}, opts...)
	// The client's group events (info level), the last 256 KiB of them,
	// are shown if the test fails.
	logs := &tailBuffer{max: 256 << 10}
	all = append(all, kgo.WithLogger(kgo.BasicLogger(logs, kgo.LogLevelInfo, func() string { return time.Now().Format("15:04:05.000 ") })))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("consumer client log:\n%s", logs)
		}
	})
	cl := newFranzClient(t, addrs, all...)
	c := &consumer{cl: cl, done: make(chan struct{})}
	t.Cleanup(c.leave)
	go func() {
		defer close(c.done)
		for {
			fs := cl.PollFetches(ctx)
			if fs.IsClientClosed() || ctx.Err() != nil {
				cl.AllowRebalance()
				return
			}
			rs := fs.Records()
			for _, r := range rs {
				l.process(r)
			}
			if len(rs) > 0 {
				if err := cl.CommitRecords(ctx, rs...); err == nil {
					l.commit(rs)
				} else if !errors.Is(err, context.Canceled) {
					t.Logf("commit: %v", err)
				}
			}
			cl.AllowRebalance()
		}
	}()
	return c
}

// tailBuffer keeps the last max bytes written to it (at least the last
// write), for concurrent writers: a client stuck in a loop that logs cannot
// grow it without bound.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 && len(t.b) > len(p) {
		t.b = append(t.b[:0], t.b[min(over, len(t.b)-len(p)):]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// leave closes the consumer's client (LeaveGroup) and waits for its loop.
func (c *consumer) leave() {
	c.cl.Close()
	<-c.done
}

func produceN(t *testing.T, ctx context.Context, cl *kgo.Client, topic string, from, n int) {
	t.Helper()
	rs := make([]*kgo.Record, 0, n)
	for i := from; i < from+n; i++ {
		rs = append(rs, &kgo.Record{Topic: topic, Key: []byte(key(i)), Value: []byte(value(topic, i))})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func waitGroup(t *testing.T, ctx context.Context, c *kcluster.Cluster, what string, cond kcluster.Condition) {
	t.Helper()
	if err := c.WaitFor(ctx, cond); err != nil {
		st, _ := c.Group("g")
		t.Fatalf("waiting for %s: %v; group: %+v", what, err, st)
	}
}

// waitConsumed waits until every record the ledger wants was processed.
func waitConsumed(t *testing.T, ctx context.Context, l *ledger) {
	t.Helper()
	select {
	case <-l.reached:
	case <-ctx.Done():
		t.Fatalf("consumed %d distinct records, want %d", l.distinct(), l.want)
	}
}

// settled holds when the group is Stable with members members that
// together own partitions partitions of topic: with cooperative protocols a
// group is Stable in between, while revoked partitions are not reassigned
// yet.
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

func assignedCounts(st kcluster.GroupState, topic string) []int {
	var out []int
	for _, m := range st.Members {
		out = append(out, len(m.Assigned[topic]))
	}
	sort.Ints(out)
	return out
}

// TestGroupSplitLeaveTakeover: three consumers of a 6-partition topic get
// two partitions each; one leaves, the other two take its partitions over
// from the committed offsets, and nothing committed is processed again.
func TestGroupSplitLeaveTakeover(t *testing.T) {
	for _, bal := range []struct {
		name string
		opts []kgo.Opt
	}{
		{"eager-range", []kgo.Opt{kgo.Balancers(kgo.RangeBalancer())}},
		{"cooperative-sticky", []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer())}},
		{"kip848-uniform", []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.ServerSideBalancer()}},
		{"kip848-range", []kgo.Opt{kgo.Balancers(kgo.RangeBalancer()), kgo.ServerSideBalancer()}},
	} {
		t.Run(bal.name, func(t *testing.T) {
			const topic, n = "work", 3000
			c := kcluster.Start(t, kcluster.Brokers(3))
			ctx := testContext(t)
			prod := newFranzClient(t, c.Addrs())
			createTopicKadm(ctx, t, kadm.NewClient(prod), topic, 6, 3)
			produceN(t, ctx, prod, topic, 0, n/2)

			l := newLedger(n)
			start := time.Now()
			var cs []*consumer
			for range 3 {
				cs = append(cs, startConsumer(t, ctx, c.Addrs(), "g", topic, l, bal.opts...))
			}
			waitGroup(t, ctx, c, "3 stable members", settled("g", topic, 3, 6))
			st, _ := c.Group("g")
			t.Logf("3 members stable after %v (%s group, generation %d)", time.Since(start), st.Type, st.Generation)
			if got := fmt.Sprint(assignedCounts(st, topic)); got != "[2 2 2]" {
				t.Fatalf("partitions per member = %s, want [2 2 2]; %+v", got, st)
			}

			cs[0].leave()
			waitGroup(t, ctx, c, "2 stable members", settled("g", topic, 2, 6))
			st, _ = c.Group("g")
			if got := fmt.Sprint(assignedCounts(st, topic)); got != "[3 3]" {
				t.Fatalf("after a leave, partitions per member = %s, want [3 3]", got)
			}
			produceN(t, ctx, prod, topic, n/2, n/2)
			waitConsumed(t, ctx, l)
			for p := int32(0); p < 6; p++ {
				hw, _ := c.PartitionState(topic, p)
				if err := c.WaitFor(ctx, kcluster.GroupCommitted("g", topic, p, hw.HighWatermark)); err != nil {
					t.Fatalf("partition %d: committed offset never reached %d", p, hw.HighWatermark)
				}
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			if len(l.repeated) > 0 {
				t.Fatalf("committed work processed again: %v", l.repeated)
			}
			t.Logf("processed %d records (%d distinct)", l.total, n)
		})
	}
}

// TestGroupCoordinatorFailover kills the coordinator's broker while three
// consumers process and commit: the group moves to the new leader of its
// __consumer_offsets partition with every committed offset intact, the
// consumers recover from NOT_COORDINATOR, and every record is processed
// with no committed work repeated.
func TestGroupCoordinatorFailover(t *testing.T) {
	// Both protocols' groups are in __consumer_offsets (GroupMetadata;
	// the KIP-848 consumer-group records), so on the new coordinator the
	// members go on at their generation or member epoch, with their
	// partitions: no committed record is processed again.
	for _, bal := range []struct {
		name string
		opts []kgo.Opt
	}{
		{"classic", []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer())}},
		{"kip848", []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.ServerSideBalancer()}},
	} {
		t.Run(bal.name, func(t *testing.T) {
			const topic, n = "work", 6000
			c := kcluster.Start(t, kcluster.Brokers(3), kcluster.BrokerConfig("min.insync.replicas", "2"))
			ctx := testContext(t)
			prod := newFranzClient(t, c.Addrs())
			createTopicKadm(ctx, t, kadm.NewClient(prod), topic, 6, 3)
			produceN(t, ctx, prod, topic, 0, n/2)

			l := newLedger(n)
			for range 3 {
				startConsumer(t, ctx, c.Addrs(), "g", topic, l, bal.opts...)
			}
			waitGroup(t, ctx, c, "3 stable members", settled("g", topic, 3, 6))
			// Steady state: every member has fetched its offsets and
			// committed all it was given.
			for p := int32(0); p < 6; p++ {
				hw, _ := c.PartitionState(topic, p)
				waitGroup(t, ctx, c, "commits", kcluster.GroupCommitted("g", topic, p, hw.HighWatermark))
			}
			// Mid-consumption: the second half is produced while the
			// coordinator dies.
			produced := make(chan struct{})
			go func() {
				defer close(produced)
				for i := n / 2; i < n; i += 100 {
					produceN(t, ctx, prod, topic, i, 100)
				}
			}()
			t.Cleanup(func() { <-produced })
			if _, err := l.ackedAfter(ctx, time.Now()); err != nil {
				t.Fatalf("no commit of the second half: %v", err)
			}
			before, err := c.Group("g")
			if err != nil {
				t.Fatal(err)
			}
			old := before.Coordinator
			killed := time.Now()
			if err := c.KillBroker(old); err != nil {
				t.Fatal(err)
			}
			waitGroup(t, ctx, c, "a new coordinator", func(c *kcluster.Cluster) bool {
				st, err := c.Group("g")
				return err == nil && st.Coordinator != old
			})
			moved := time.Since(killed)
			after, _ := c.Group("g")
			for tp, ps := range before.Offsets {
				for p, off := range ps {
					if got := after.Offsets[tp][p]; got < off {
						t.Fatalf("%s/%d: committed offset %d before the kill, %d on the new coordinator", tp, p, off, got)
					}
				}
			}
			waitGroup(t, ctx, c, "3 stable members on the new coordinator", settled("g", topic, 3, 6))
			stable := time.Since(killed)
			ack, err := l.ackedAfter(ctx, killed)
			if err != nil {
				t.Fatalf("no commit after the failover: %v", err)
			}
			<-produced
			t.Logf("coordinator %d killed; group on broker %d after %v, stable again after %v, first commit acknowledged after %v",
				old, after.Coordinator, moved, stable, ack.Sub(killed))
			waitConsumed(t, ctx, l)
			l.mu.Lock()
			defer l.mu.Unlock()
			if len(l.repeated) > 0 {
				t.Fatalf("committed work processed again: %v", l.repeated)
			}
			t.Logf("processed %d records (%d distinct, %d processed again past a commit)", l.total, n, len(l.repeated))
		})
	}
}

// TestGroupETL is a load in the style of franz-go's TestGroupETL: many
// records on a 3-broker cluster, consumed by a group whose members keep
// leaving and joining (seeded; the seed is logged), committing after
// processing. Every record is processed and no committed record is
// processed again.
func TestGroupETL(t *testing.T) {
	for _, v := range []struct {
		name string
		opts []kgo.Opt
	}{
		{"cooperative-sticky", []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer())}},
		{"eager-range", []kgo.Opt{kgo.Balancers(kgo.RangeBalancer())}},
		{"kip848", []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.ServerSideBalancer()}},
	} {
		t.Run(v.name, func(t *testing.T) {
			const topic, n, partitions = "etl", 30000, 12
			// A fixed seed, so CI passes or fails on the code; KCLUSTER_SEED
			// replays another schedule.
			seed := uint64(20261207)
			if v := os.Getenv("KCLUSTER_SEED"); v != "" {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					t.Fatalf("KCLUSTER_SEED=%q: %v", v, err)
				}
				seed = n
			}
			rng := rand.New(rand.NewPCG(seed, 0))
			t.Logf("seed %d (replay: KCLUSTER_SEED=%d go test -race -count=1 -run '^TestGroupETL$' ./compat)", seed, seed)
			c := kcluster.Start(t, kcluster.Brokers(3))
			ctx := testContext(t)
			prod := newFranzClient(t, c.Addrs(), kgo.ProducerLinger(5*time.Millisecond))
			createTopicKadm(ctx, t, kadm.NewClient(prod), topic, partitions, 3)
			l := newLedger(n)
			live := []*consumer{}
			for range 3 {
				live = append(live, startConsumer(t, ctx, c.Addrs(), "g", topic, l, v.opts...))
			}
			// Ten rounds: produce a tenth of the records, then one
			// member leaves and one or two join while they are being
			// consumed; the round ends when the group is stable again
			// and the tenth is processed.
			churns := 0
			for step := 1; step <= 10; step++ {
				produceN(t, ctx, prod, topic, (step-1)*n/10, n/10)
				i := rng.IntN(len(live))
				live[i].leave()
				live = append(live[:i], live[i+1:]...)
				for range 1 + rng.IntN(2) {
					if len(live) < 5 {
						live = append(live, startConsumer(t, ctx, c.Addrs(), "g", topic, l, v.opts...))
					}
				}
				churns++
				waitGroup(t, ctx, c, fmt.Sprintf("round %d: %d stable members", step, len(live)), settled("g", topic, len(live), partitions))
				waitDistinct(t, ctx, l, n*step/10)
			}
			waitConsumed(t, ctx, l)
			l.mu.Lock()
			defer l.mu.Unlock()
			if len(l.repeated) > 0 {
				t.Fatalf("committed work processed again (%d records): %v", len(l.repeated), l.repeated[:min(len(l.repeated), 20)])
			}
			t.Logf("%d records, %d churns, %d processed (%d more than once, none below a commit)", n, churns, l.total, l.total-n)
		})
	}
}

// waitDistinct waits until the ledger has k distinct records.
func waitDistinct(t *testing.T, ctx context.Context, l *ledger, k int) {
	t.Helper()
	for {
		l.mu.Lock()
		got, ch := l.distinctN, l.acked
		l.mu.Unlock()
		if got >= k {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("processed %d distinct records, want %d", got, k)
		}
	}
}

// TestGroupAdminKadm drives the group admin APIs with franz-go's kadm:
// ListGroups (with a state filter), DescribeGroups, FetchOffsets,
// CommitOffsets, DeleteOffsets, Lag, DeleteGroups.
func TestGroupAdminKadm(t *testing.T) {
	const topic = "adm"
	c := kcluster.Start(t, kcluster.Brokers(3))
	ctx := testContext(t)
	cl := newFranzClient(t, c.Addrs())
	adm := kadm.NewClient(cl)
	createTopicKadm(ctx, t, adm, topic, 2, 3)
	produceN(t, ctx, cl, topic, 0, 10)

	l := newLedger(10)
	cons := startConsumer(t, ctx, c.Addrs(), "live", topic, l, kgo.Balancers(kgo.RangeBalancer()))
	waitGroup(t, ctx, c, "a stable group", settled("live", topic, 1, 2))
	waitConsumed(t, ctx, l)

	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: 3, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: topic, Partition: 1, At: 4, LeaderEpoch: -1})
	if r, err := adm.CommitOffsets(ctx, "idle", offs); err != nil || r.Error() != nil {
		t.Fatalf("CommitOffsets: %v %v", err, r.Error())
	}

	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("ListGroups: %v", err)
	}
	if got := fmt.Sprint(listed.Groups()); got != "[idle live]" {
		t.Fatalf("ListGroups = %s", got)
	}
	stable, err := adm.ListGroups(ctx, "Stable")
	if err != nil || fmt.Sprint(stable.Groups()) != "[live]" {
		t.Fatalf("ListGroups(Stable) = %v (%v)", stable.Groups(), err)
	}
	described, err := adm.DescribeGroups(ctx, "live", "idle")
	if err != nil {
		t.Fatalf("DescribeGroups: %v", err)
	}
	if g := described["live"]; g.State != "Stable" || g.Protocol != "range" || len(g.Members) != 1 {
		t.Fatalf("DescribeGroups(live): %+v", g)
	}
	if g := described["idle"]; g.State != "Empty" || len(g.Members) != 0 {
		t.Fatalf("DescribeGroups(idle): %+v", g)
	}
	fetched, err := adm.FetchOffsets(ctx, "idle")
	if err != nil {
		t.Fatalf("FetchOffsets: %v", err)
	}
	if o, _ := fetched.Lookup(topic, 1); o.At != 4 {
		t.Fatalf("FetchOffsets(idle) %s/1 = %+v", topic, o)
	}
	lag, err := adm.Lag(ctx, "idle")
	if err != nil {
		t.Fatalf("Lag: %v", err)
	}
	if got := lag["idle"].Lag.Total(); got != 10-3-4 {
		t.Fatalf("lag of idle = %d, want 3", got)
	}
	if st, _ := c.Group("idle"); st.Lag[topic][0]+st.Lag[topic][1] != 3 {
		t.Fatalf("gauge lag of idle = %v", st.Lag)
	}

	ts := kadm.TopicsSet{}
	ts.Add(topic, 0)
	if r, err := adm.DeleteOffsets(ctx, "live", ts); err != nil || r.Error() == nil {
		t.Fatalf("DeleteOffsets of a subscribed topic: %v, want GROUP_SUBSCRIBED_TO_TOPIC", err)
	}
	if r, err := adm.DeleteOffsets(ctx, "idle", ts); err != nil || r.Error() != nil {
		t.Fatalf("DeleteOffsets(idle): %v %v", err, r.Error())
	}
	if r, err := adm.DeleteGroups(ctx, "live"); err != nil || r.Error() == nil {
		t.Fatalf("DeleteGroups of a live group: %v, want NON_EMPTY_GROUP", err)
	}
	cons.leave()
	waitGroup(t, ctx, c, "the group empty", func(c *kcluster.Cluster) bool {
		st, err := c.Group("live")
		return err == nil && st.State == "Empty"
	})
	if r, err := adm.DeleteGroups(ctx, "live", "idle"); err != nil || r.Error() != nil {
		t.Fatalf("DeleteGroups: %v %v", err, r.Error())
	}
	if got := c.Groups(); len(got) != 0 {
		t.Fatalf("groups after DeleteGroups: %v", got)
	}
}
