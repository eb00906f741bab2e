package compat

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
)

// killAndRestart kills broker id, waits until cond holds (a new leader or
// coordinator elsewhere), and restarts it.
func killAndRestart(ctx context.Context, t *testing.T, c *kcluster.Cluster, id int32, what string, cond kcluster.Condition) {
	t.Helper()
	t.Logf("killing broker %d (%s)", id, what)
	if err := c.KillBroker(id); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := c.WaitFor(wctx, cond); err != nil {
		t.Fatalf("after killing broker %d (%s): %v\n%s", id, what, err, c)
	}
	if err := c.RestartBroker(id); err != nil {
		t.Fatal(err)
	}
}

// Consume-transform-produce with franz-go's GroupTransactSession across 3
// brokers: every input record is copied to the output inside a
// transaction that also commits the group's offsets. Meanwhile the leader
// of the output partition is killed, then the transaction coordinator.
// read_committed output holds each input exactly once.
func TestTxnExactlyOnceUnderKills(t *testing.T) {
	ctx := testContext(t)
	c := kcluster.Start(t, kcluster.Brokers(3), kcluster.BrokerConfig("min.insync.replicas", "2"))
	const total = 2000
	const txnID, group = "eos-copier", "eos-group"
	seed, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("eos-in"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MetadataMinAge(50*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Close()
	adm := kadm.NewClient(seed)
	if _, err := adm.CreateTopic(ctx, 3, 3, nil, "eos-in"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, "eos-out"); err != nil {
		t.Fatal(err)
	}
	// The input arrives while the copier runs, a few records at a time,
	// so the transactions are small and many span the kills.
	inputDone := make(chan error, 1)
	go func() {
		for i := 0; i < total; i += 6 {
			var rs []*kgo.Record
			for j := i; j < min(i+6, total); j++ {
				rs = append(rs, &kgo.Record{Value: []byte(fmt.Sprintf("in-%05d", j)), Partition: int32(j % 3)})
			}
			if err := seed.ProduceSync(ctx, rs...).FirstErr(); err != nil {
				inputDone <- fmt.Errorf("input %d: %w", i, err)
				return
			}
		}
		inputDone <- nil
	}()

	newSession := func() (*kgo.GroupTransactSession, error) {
		return kgo.NewGroupTransactSession(
			kgo.SeedBrokers(c.Addrs()...),
			kgo.TransactionalID(txnID),
			kgo.TransactionTimeout(10*time.Second),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics("eos-in"),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DefaultProduceTopic("eos-out"),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.MetadataMinAge(50*time.Millisecond),
			kgo.FetchMaxWait(100*time.Millisecond),
			kgo.SessionTimeout(3*time.Second),
			kgo.HeartbeatInterval(300*time.Millisecond),
			kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }),
		)
	}
	sess, err := newSession()
	if err != nil {
		t.Fatal(err)
	}

	var (
		mu        sync.Mutex
		committed int // input records whose transaction committed
		commits   int
		restarts  int
	)
	progress := make(chan int, 1)
	loopDone := make(chan error, 1)
	var halt atomic.Bool
	exited := make(chan struct{})
	// The loop owns the session; the test waits for it to stop however
	// it ends.
	defer func() { halt.Store(true); <-exited }()
	go func() {
		defer close(exited)
		defer func() { sess.Close() }()
		loopDone <- func() error {
			for !halt.Load() && ctx.Err() == nil {
				// Poll briefly so the loop notices halt between
				// transactions, never inside one.
				pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				fs := sess.PollFetches(pctx)
				cancel()
				var recs []*kgo.Record
				fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
				if len(recs) == 0 {
					continue
				}
				if err := sess.Begin(); err != nil {
					// The client gave up on its producer id (franz-go
					// does so when a request went to a broker its
					// metadata no longer lists, the one just killed).
					// An application restarts it: the new session
					// fences the old producer and resumes from the
					// committed offsets.
					t.Logf("begin: %v; restarting the session", err)
					sess.Close()
					if sess, err = newSession(); err != nil {
						return fmt.Errorf("new session: %w", err)
					}
					restarts++
					continue
				}
				for _, r := range recs {
					sess.Produce(ctx, &kgo.Record{Value: r.Value, Partition: 0}, nil)
				}
				ok, err := sess.End(ctx, kgo.TryCommit)
				if err != nil || !ok {
					t.Logf("end transaction: %v (committed=%v)", err, ok)
				}
				if ok && err == nil {
					mu.Lock()
					committed += len(recs)
					commits++
					n := committed
					mu.Unlock()
					select {
					case progress <- n:
					default:
					}
				}
			}
			return nil
		}()
	}()
	waitProgress := func(n int) {
		t.Helper()
		for {
			mu.Lock()
			have := committed
			mu.Unlock()
			if have >= n {
				return
			}
			select {
			case <-progress:
			case err := <-loopDone:
				t.Fatalf("transform loop ended: %v", err)
			case <-ctx.Done():
				ts, err := c.Transaction(txnID)
				g, _ := c.Group(group)
				t.Fatalf("waiting for %d committed inputs, have %d; transaction %+v (%v); group %+v\n%s", n, have, ts, err, g, c)
			}
		}
	}

	waitProgress(total / 4)
	out, err := c.PartitionState("eos-out", 0)
	if err != nil {
		t.Fatal(err)
	}
	killAndRestart(ctx, t, c, out.Leader, "eos-out leader", func(c *kcluster.Cluster) bool {
		s, err := c.PartitionState("eos-out", 0)
		return err == nil && s.Leader >= 0 && s.Leader != out.Leader
	})

	waitProgress(total / 2)
	var coord int32 = -1
	if err := c.WaitFor(ctx, func(c *kcluster.Cluster) bool {
		ts, err := c.Transaction(txnID)
		coord = ts.Coordinator
		return err == nil
	}); err != nil {
		t.Fatalf("transaction %s has no coordinator: %v", txnID, err)
	}
	killAndRestart(ctx, t, c, coord, "transaction coordinator", func(c *kcluster.Cluster) bool {
		ts, err := c.Transaction(txnID)
		return err == nil && ts.Coordinator >= 0 && ts.Coordinator != coord
	})

	// Every input must come through; the transactions left in a Prepare
	// state by the dead coordinator are finished by the new one. Then a
	// last, non-transactional record: read_committed reaches it only
	// once every transaction before it has ended, so everything before
	// it is the whole output.
	if err := <-inputDone; err != nil {
		t.Fatal(err)
	}
	waitProgress(total)
	halt.Store(true)
	if err := <-loopDone; err != nil {
		t.Fatalf("transform loop: %v", err)
	}
	if err := seed.ProduceSync(ctx, &kgo.Record{Topic: "eos-out", Value: []byte("end")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := readUntil(ctx, t, c, "eos-out", true, func(vs []string) bool { return len(vs) > 0 && vs[len(vs)-1] == "end" })
	got = got[:len(got)-1]
	seen := map[string]int{}
	for _, v := range got {
		seen[v]++
	}
	for i := 0; i < total; i++ {
		v := fmt.Sprintf("in-%05d", i)
		if seen[v] != 1 {
			t.Errorf("%s seen %d times in read_committed output", v, seen[v])
		}
	}
	if len(got) != total {
		t.Errorf("read_committed output has %d records, want %d", len(got), total)
	}
	// The group's offsets, committed with the transactions, cover the
	// whole input.
	if err := c.WaitFor(ctx, func(c *kcluster.Cluster) bool {
		g, err := c.Group(group)
		if err != nil {
			return false
		}
		var sum int64
		for _, o := range g.Offsets["eos-in"] {
			sum += o
		}
		return sum == total
	}); err != nil {
		g, _ := c.Group(group)
		t.Fatalf("group offsets %v, want %d in all", g.Offsets, total)
	}
	mu.Lock()
	t.Logf("%d transactions committed, %d session restarts; %d records in read_committed output", commits, restarts, len(got))
	mu.Unlock()
}
