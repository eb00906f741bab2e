package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
)

// BenchmarkTxnSmall measures small transactions with franz-go, one
// transactional producer, 3 brokers, RF=3 (acks=all, as transactions
// require): each transaction writes recs 100-byte records over parts
// partitions and commits, at transaction.version 0 and 2.
//
// At transaction.version 0 (KIP-890 part 1) each transaction is
// BeginTransaction, AddPartitionsToTxn and the produces, EndTransaction
// (PrepareCommit written), and the markers, which the next transaction's
// AddPartitionsToTxn waits for (CONCURRENT_TRANSACTIONS until then, as
// with Kafka), retried after kgo's ConcurrentTransactionsBackoff: its
// default (20 ms) bounds the rate; the 1 ms runs show what the cluster
// itself allows. At transaction.version 2 (part 2) the produces add their
// partitions themselves (Produce v12+) and EndTxn v5 bumps the epoch; a
// produce that arrives while the previous transaction's markers are in
// flight waits for them at the coordinator (Kafka's leader retries the
// add instead), so the client's backoff rarely comes into play.
func BenchmarkTxnSmall(b *testing.B) {
	for _, tv := range []int16{0, 2} {
		for _, tc := range []struct {
			recs, parts int
			backoff     time.Duration // kgo.ConcurrentTransactionsBackoff; 0 for its default (20ms)
		}{{1, 1, 0}, {10, 3, 0}, {1, 1, time.Millisecond}, {10, 3, time.Millisecond}} {
			name := fmt.Sprintf("tv%d/recs%d-parts%d", tv, tc.recs, tc.parts)
			opts := []kgo.Opt{kgo.SeedBrokers(), kgo.TransactionalID("bench"),
				kgo.DefaultProduceTopic("txn"), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0)}
			if tc.backoff > 0 {
				name += "-backoff" + tc.backoff.String()
				opts = append(opts, kgo.ConcurrentTransactionsBackoff(tc.backoff))
			}
			b.Run(name, func(b *testing.B) {
				c, err := kcluster.New(kcluster.Brokers(3), kcluster.Feature("transaction.version", tv), benchLogger())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(c.Addrs()...))...)
				if err != nil {
					b.Fatal(err)
				}
				defer cl.Close()
				ctx := context.Background()
				if _, err := kadm.NewClient(cl).CreateTopic(ctx, int32(tc.parts), 3, nil, "txn"); err != nil {
					b.Fatal(err)
				}
				val := make([]byte, 100)
				txn := func() {
					if err := cl.BeginTransaction(); err != nil {
						b.Fatal(err)
					}
					for i := 0; i < tc.recs; i++ {
						cl.Produce(ctx, &kgo.Record{Value: val, Partition: int32(i % tc.parts)}, nil)
					}
					if err := cl.Flush(ctx); err != nil {
						b.Fatal(err)
					}
					if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
						b.Fatal(err)
					}
				}
				// The coordinator, producer id and topic metadata; at
				// transaction.version 2 the client opts in to KIP-890
				// part 2 by the second transaction at the latest.
				txn()
				txn()
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					txn()
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "txn/s")
			})
		}
	}
}

// BenchmarkTxnCoordinatorFailover measures KillBroker(transaction
// coordinator) to the first transaction begun after the kill and
// committed, with one franz-go transactional producer committing
// one-record transactions back to back (RF=3). Run with -benchtime 1x
// -count n: each iteration is a new cluster. At the default
// transaction.version, 2.
func BenchmarkTxnCoordinatorFailover(b *testing.B) {
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		c, err := kcluster.New(kcluster.Brokers(3), benchLogger())
		if err != nil {
			b.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.TransactionalID("failover"),
			kgo.DefaultProduceTopic("t"), kgo.ProducerLinger(0), kgo.MetadataMinAge(10*time.Millisecond),
			kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, nil, "t"); err != nil {
			b.Fatal(err)
		}
		acks := &groupAcks{ch: make(chan struct{})}
		pctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for pctx.Err() == nil {
				began := time.Now()
				if err := cl.BeginTransaction(); err != nil {
					return
				}
				err := cl.ProduceSync(pctx, &kgo.Record{Value: []byte("v")}).FirstErr()
				commit := kgo.TransactionEndTry(err == nil)
				if err := cl.EndTransaction(pctx, commit); err == nil && commit {
					acks.ack(began)
				} else if err != nil && pctx.Err() == nil {
					// Retriable failures end in an abort; try again.
					continue
				}
			}
		}()
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		if _, err := acks.after(wctx, time.Now()); err != nil {
			b.Fatalf("no transaction committed: %v", err)
		}
		st, err := c.Transaction("failover")
		if err != nil {
			b.Fatal(err)
		}
		killed := time.Now()
		if err := c.KillBroker(st.Coordinator); err != nil {
			b.Fatal(err)
		}
		ack, err := acks.after(wctx, killed)
		if err != nil {
			b.Fatalf("no transaction committed after the kill: %v", err)
		}
		b.ReportMetric(float64(ack.Sub(killed).Microseconds())/1000, "ms/commit")
		cancel()
		stop()
		<-done
		cl.Close()
		c.Close()
	}
}
