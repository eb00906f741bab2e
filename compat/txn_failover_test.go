package compat

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster"
)

// EndTxn is answered once PrepareCommit is written; the markers follow.
// With every WriteTxnMarkers refused, the transaction stays in
// PrepareCommit and the partition's last stable offset stays before it.
// Killing the coordinator moves it to another broker, which replays
// __transaction_state, finds the PrepareCommit and finishes it.
func TestTxnCoordinatorFailoverFinishesPrepareCommit(t *testing.T) {
	ctx := testContext(t)
	c := kcluster.Start(t, kcluster.Brokers(3))
	cl := txnClient(t, c, "failover", "fo")
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, nil, "fo"); err != nil {
		t.Fatal(err)
	}
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	remove := c.Intercept(0, int16(kmsg.WriteTxnMarkers), func(kcluster.Intercepted) kcluster.Action {
		return kcluster.Action{ErrorCode: kerr.NotLeaderForPartition.Code}
	})
	defer remove()
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	ts, err := c.Transaction("failover")
	if err != nil || ts.State != "PrepareCommit" {
		t.Fatalf("transaction after EndTxn with markers refused: %+v %v", ts, err)
	}
	if st, _ := c.PartitionState("fo", 0); st.LastStableOffset != 0 || st.HighWatermark != 1 {
		t.Fatalf("LSO %d HW %d before the markers, want 0 and 1", st.LastStableOffset, st.HighWatermark)
	}
	old := ts.Coordinator
	if err := c.KillBroker(old); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, func(c *kcluster.Cluster) bool {
		ts, err := c.Transaction("failover")
		return err == nil && ts.Coordinator != old
	}); err != nil {
		t.Fatalf("no new coordinator: %v\n%s", err, c)
	}
	remove()
	if err := c.WaitFor(ctx, func(c *kcluster.Cluster) bool {
		return kcluster.TransactionSettled("failover")(c) && kcluster.PartitionStable("fo", 0)(c) &&
			kcluster.HighWatermarkAtLeast("fo", 0, 2)(c)
	}); err != nil {
		ts, _ := c.Transaction("failover")
		t.Fatalf("the new coordinator did not finish the commit: %+v\n%s", ts, c)
	}
	if ts, _ := c.Transaction("failover"); ts.State != "CompleteCommit" {
		t.Fatalf("transaction ended %s, want CompleteCommit", ts.State)
	}
	if got := readAll(ctx, t, c, "fo", true, 1); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("read_committed: %v", got)
	}
}

// A transaction left open past transaction.timeout.ms is aborted by the
// coordinator with a bumped epoch: read_committed never sees it, the last
// stable offset moves on, and the producer is fenced.
func TestTxnTimeoutAborts(t *testing.T) {
	ctx := testContext(t)
	c := kcluster.Start(t, kcluster.Brokers(3))
	cl := txnClient(t, c, "slow", "slow", kgo.TransactionTimeout(300*time.Millisecond))
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, nil, "slow"); err != nil {
		t.Fatal(err)
	}
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("late")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	before, _ := c.Transaction("slow")
	if err := c.WaitFor(ctx, func(c *kcluster.Cluster) bool {
		return kcluster.TransactionSettled("slow")(c) && kcluster.PartitionStable("slow", 0)(c) &&
			kcluster.HighWatermarkAtLeast("slow", 0, 2)(c)
	}); err != nil {
		ts, _ := c.Transaction("slow")
		t.Fatalf("the timed-out transaction was not aborted: %+v\n%s", ts, c)
	}
	after, _ := c.Transaction("slow")
	if after.State != "CompleteAbort" {
		t.Fatalf("timed-out transaction ended %s", after.State)
	}
	if after.ProducerEpoch <= before.ProducerEpoch {
		t.Fatalf("epoch %d after the timeout abort, was %d: not fenced", after.ProducerEpoch, before.ProducerEpoch)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Fatal("commit after the timeout abort succeeded")
	} else {
		t.Logf("commit after the timeout: %v", err)
	}
	if got := readAll(ctx, t, c, "slow", false, 1); !slices.Equal(got, []string{"late"}) {
		t.Fatalf("read_uncommitted: %v", got)
	}
	// A committed record after it shows read_committed skipped it.
	other := txnClient(t, c, "slow-2", "slow")
	if err := other.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := other.ProduceSync(ctx, &kgo.Record{Value: []byte("ok")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := other.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if got := readAll(ctx, t, c, "slow", true, 1); !slices.Equal(got, []string{"ok"}) {
		t.Fatalf("read_committed: %v", got)
	}
}
