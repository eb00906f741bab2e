package compat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster"
)

// txnClient is a franz-go transactional producer for topic.
func txnClient(t *testing.T, c *kcluster.Cluster, id, topic string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Addrs()...),
		kgo.TransactionalID(id),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MetadataMinAge(50 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// readAll consumes topic from the start with the isolation level until it
// has read n records (or the context ends) and returns their values.
func readAll(ctx context.Context, t *testing.T, c *kcluster.Cluster, topic string, committed bool, n int) []string {
	t.Helper()
	return readUntil(ctx, t, c, topic, committed, func(vs []string) bool { return len(vs) >= n })
}

// readUntil consumes topic from the start with the isolation level until
// done holds for the values read so far.
func readUntil(ctx context.Context, t *testing.T, c *kcluster.Cluster, topic string, committed bool, done func([]string) bool) []string {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(iso),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []string
	for !done(out) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s (committed=%v): have %d records: %v", topic, committed, len(out), out)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
	return out
}

// A committed transaction is seen by read_committed and read_uncommitted;
// an aborted one only by read_uncommitted. While a transaction is open
// the last stable offset stays at its first record.
func TestTxnAbortedInvisibleToReadCommitted(t *testing.T) {
	ctx := testContext(t)
	c := kcluster.Start(t, kcluster.Brokers(3))
	cl := txnClient(t, c, "visibility", "vis")
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, nil, "vis"); err != nil {
		t.Fatal(err)
	}
	txn := func(commit bool, vals ...string) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	txn(true, "c1", "c2")
	txn(false, "a1", "a2")
	// An open transaction holds the last stable offset at its first
	// record (after 2 committed + marker + 2 aborted + marker).
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("c3")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	st, err := c.PartitionState("vis", 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastStableOffset != 6 || st.HighWatermark != 7 {
		t.Fatalf("open transaction: LSO %d HW %d, want 6 and 7", st.LastStableOffset, st.HighWatermark)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, func(c *kcluster.Cluster) bool {
		st, err := c.PartitionState("vis", 0)
		return err == nil && st.LastStableOffset == 8 && st.HighWatermark == 8
	}); err != nil {
		t.Fatalf("LSO after the commit: %v (%s)", err, c)
	}
	if got := readAll(ctx, t, c, "vis", true, 3); !slices.Equal(got, []string{"c1", "c2", "c3"}) {
		t.Fatalf("read_committed: %v", got)
	}
	if got := readAll(ctx, t, c, "vis", false, 5); !slices.Equal(got, []string{"c1", "c2", "a1", "a2", "c3"}) {
		t.Fatalf("read_uncommitted: %v", got)
	}
	// A new leader rebuilt the open transactions and the aborted index
	// from its own replica of the log: read_committed still hides the
	// aborted records.
	st, _ = c.PartitionState("vis", 0)
	killAndRestart(ctx, t, c, st.Leader, "vis leader", func(c *kcluster.Cluster) bool {
		s, err := c.PartitionState("vis", 0)
		return err == nil && s.Leader >= 0 && s.Leader != st.Leader && s.LastStableOffset == 8
	})
	if got := readAll(ctx, t, c, "vis", true, 3); !slices.Equal(got, []string{"c1", "c2", "c3"}) {
		t.Fatalf("read_committed from the new leader: %v", got)
	}
	// ListOffsets with read_committed answers the LSO.
	adm := kadm.NewClient(cl)
	ends, err := adm.ListCommittedOffsets(ctx, "vis")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup("vis", 0); o.Offset != 8 {
		t.Fatalf("committed end offset %d, want 8", o.Offset)
	}
}

// A second producer with the same transactional id fences the first: the
// first's open transaction is aborted, and its next writes fail with a
// fencing error.
func TestTxnZombieFenced(t *testing.T) {
	ctx := testContext(t)
	c := kcluster.Start(t, kcluster.Brokers(3))
	zombie := txnClient(t, c, "fence", "fence")
	if _, err := kadm.NewClient(zombie).CreateTopic(ctx, 1, 3, nil, "fence"); err != nil {
		t.Fatal(err)
	}
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := zombie.ProduceSync(ctx, &kgo.Record{Value: []byte("zombie-1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fresh := txnClient(t, c, "fence", "fence")
	if err := fresh.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := fresh.ProduceSync(ctx, &kgo.Record{Value: []byte("fresh-1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := fresh.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	// The zombie's next write and its commit are refused.
	zerr := zombie.ProduceSync(ctx, &kgo.Record{Value: []byte("zombie-2")}).FirstErr()
	cerr := zombie.EndTransaction(ctx, kgo.TryCommit)
	if zerr == nil && cerr == nil {
		t.Fatal("the fenced producer wrote and committed")
	}
	if !fenced(zerr) && !fenced(cerr) {
		t.Fatalf("zombie errors are not fencing errors: produce %v, commit %v", zerr, cerr)
	}
	if got := readAll(ctx, t, c, "fence", true, 1); !slices.Equal(got, []string{"fresh-1"}) {
		t.Fatalf("read_committed: %v", got)
	}
	st, _ := c.PartitionState("fence", 0)
	if st.LastStableOffset != st.HighWatermark {
		t.Fatalf("LSO %d HW %d: a transaction is left open", st.LastStableOffset, st.HighWatermark)
	}
	uncommitted := readAll(ctx, t, c, "fence", false, 2)
	for _, v := range uncommitted {
		if v == "zombie-2" {
			t.Fatalf("the fenced producer's later write is in the log: %v", uncommitted)
		}
	}
	t.Logf("zombie: produce %v, commit %v; log %v", zerr, cerr, uncommitted)
}

func fenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.InvalidProducerIDMapping) || errors.Is(err, kerr.InvalidTxnState)
}

// One broker: __transaction_state gets replication factor 1 and
// min.insync.replicas 1, and transactions work.
func TestTxnSingleBroker(t *testing.T) {
	ctx := testContext(t)
	c := kcluster.Start(t, kcluster.Brokers(1))
	cl := txnClient(t, c, "single", "single")
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "single"); err != nil {
		t.Fatal(err)
	}
	for _, commit := range []bool{false, true} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(commit))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	if got := readAll(ctx, t, c, "single", true, 1); !slices.Equal(got, []string{"true"}) {
		t.Fatalf("read_committed: %v", got)
	}
}

// A consume-transform-produce loop (franz-go's GroupTransactSession)
// against transaction.version 0 and 2 takes the path a Kafka 4.2 cluster
// at that level leads it to: at 0, AddPartitionsToTxn and AddOffsetsToTxn
// from the client and EndTxn up to v4; at 2 (KIP-890 part 2), none of
// either, Produce v12+ and TxnOffsetCommit v5 adding the partitions, and
// EndTxn v5 bumping the epoch. Either way every input comes out exactly
// once under read_committed and the group's offsets cover the input.
func TestTxnSessionTransactionVersions(t *testing.T) {
	for _, tv := range []int16{0, 2} {
		t.Run(fmt.Sprintf("tv%d", tv), func(t *testing.T) {
			ctx := testContext(t)
			c := kcluster.Start(t, kcluster.Brokers(3), kcluster.Feature("transaction.version", tv))
			var mu sync.Mutex
			versions := map[int16]map[int16]bool{} // key -> versions seen
			c.Intercept(0, -1, func(in kcluster.Intercepted) kcluster.Action {
				k := in.Request.Key()
				switch k {
				case int16(kmsg.Produce), int16(kmsg.AddPartitionsToTxn), int16(kmsg.AddOffsetsToTxn), int16(kmsg.EndTxn), int16(kmsg.TxnOffsetCommit):
					if k == int16(kmsg.Produce) && in.Request.(*kmsg.ProduceRequest).TransactionID == nil ||
						k == int16(kmsg.AddPartitionsToTxn) && in.Request.GetVersion() >= 4 { // a partition leader's
						return kcluster.Action{}
					}
					mu.Lock()
					if versions[k] == nil {
						versions[k] = map[int16]bool{}
					}
					versions[k][in.Request.GetVersion()] = true
					mu.Unlock()
				}
				return kcluster.Action{}
			})
			seed, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("tv-in"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err != nil {
				t.Fatal(err)
			}
			defer seed.Close()
			adm := kadm.NewClient(seed)
			for _, topic := range []string{"tv-in", "tv-out"} {
				if _, err := adm.CreateTopic(ctx, 2, 3, nil, topic); err != nil {
					t.Fatal(err)
				}
			}
			const total = 200
			for i := 0; i < total; i++ {
				if err := seed.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("in-%03d", i)), Partition: int32(i % 2)}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(c.Addrs()...), kgo.TransactionalID("tv-copier"),
				kgo.ConsumerGroup("tv-group"), kgo.ConsumeTopics("tv-in"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DefaultProduceTopic("tv-out"),
				kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.FetchMaxWait(100*time.Millisecond),
				kgo.FetchMaxPartitionBytes(500)) // a few records a transaction
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			copied, txns := 0, 0
			for copied < total {
				fs := sess.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Fatalf("copied %d of %d", copied, total)
				}
				var recs []*kgo.Record
				fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
				if len(recs) == 0 {
					continue
				}
				if err := sess.Begin(); err != nil {
					t.Fatal(err)
				}
				for i, r := range recs {
					sess.Produce(ctx, &kgo.Record{Value: r.Value, Partition: int32(i % 2)}, nil)
				}
				ok, err := sess.End(ctx, kgo.TryCommit)
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					copied += len(recs)
					txns++
				}
			}
			if err := seed.ProduceSync(ctx, &kgo.Record{Topic: "tv-out", Value: []byte("end"), Partition: 0},
				&kgo.Record{Topic: "tv-out", Value: []byte("end"), Partition: 1}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			ends := 0
			got := readUntil(ctx, t, c, "tv-out", true, func(vs []string) bool {
				ends = 0
				for _, v := range vs {
					if v == "end" {
						ends++
					}
				}
				return ends == 2
			})
			seen := map[string]int{}
			for _, v := range got {
				if v != "end" {
					seen[v]++
				}
			}
			for i := 0; i < total; i++ {
				if v := fmt.Sprintf("in-%03d", i); seen[v] != 1 {
					t.Errorf("%s seen %d times", v, seen[v])
				}
			}
			if err := c.WaitFor(ctx, func(c *kcluster.Cluster) bool {
				g, err := c.Group("tv-group")
				return err == nil && g.Offsets["tv-in"][0]+g.Offsets["tv-in"][1] == total
			}); err != nil {
				g, _ := c.Group("tv-group")
				t.Fatalf("group offsets %v, want %d in all", g.Offsets, total)
			}
			st, err := c.Transaction("tv-copier")
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			maxOf := func(k kmsg.Key) int16 {
				m := int16(-1)
				for v := range versions[int16(k)] {
					m = max(m, v)
				}
				return m
			}
			t.Logf("transaction.version %d: %d transactions, epoch %d; versions %v", tv, txns, st.ProducerEpoch, versions)
			if tv >= 2 {
				if versions[int16(kmsg.AddPartitionsToTxn)] != nil || versions[int16(kmsg.AddOffsetsToTxn)] != nil ||
					maxOf(kmsg.Produce) < 12 || maxOf(kmsg.EndTxn) != 5 || maxOf(kmsg.TxnOffsetCommit) != 5 || int(st.ProducerEpoch) < txns {
					t.Fatalf("transactions v2 path: versions %v, epoch %d after %d transactions", versions, st.ProducerEpoch, txns)
				}
			} else if versions[int16(kmsg.AddPartitionsToTxn)] == nil || versions[int16(kmsg.AddOffsetsToTxn)] == nil ||
				maxOf(kmsg.Produce) > 11 || maxOf(kmsg.EndTxn) > 4 || maxOf(kmsg.TxnOffsetCommit) > 4 || st.ProducerEpoch != 0 {
				t.Fatalf("transactions v1 path: versions %v, epoch %d", versions, st.ProducerEpoch)
			}
		})
	}
}
