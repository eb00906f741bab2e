package compat

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
)

// kadm's transaction admin calls against an open transaction:
// DescribeProducers shows the producer with its transaction's first
// offset, ListTransactions filters by state, DescribeTransactions has the
// state and the partitions.
func TestTxnAdmin(t *testing.T) {
	ctx := testContext(t)
	c := kcluster.Start(t, kcluster.Brokers(3))
	cl := txnClient(t, c, "admin-txn", "adm")
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 2, 3, nil, "adm"); err != nil {
		t.Fatal(err)
	}
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []int32{0, 1, 1} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v"), Partition: p}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ts, err := c.Transaction("admin-txn")
	if err != nil {
		t.Fatal(err)
	}
	dp, err := adm.DescribeProducers(ctx, kadm.TopicsSet{"adm": {0: {}, 1: {}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []int32{0, 1} {
		part := dp["adm"].Partitions[p]
		pr, ok := part.ActiveProducers[ts.ProducerID]
		if part.Err != nil || !ok || pr.ProducerEpoch != ts.ProducerEpoch || pr.CurrentTxnStartOffset != 0 {
			t.Fatalf("DescribeProducers adm/%d: %+v (err %v)", p, part.ActiveProducers, part.Err)
		}
		if want := int32(p); pr.LastSequence != want { // one record on 0, two on 1
			t.Fatalf("adm/%d last sequence %d, want %d", p, pr.LastSequence, want)
		}
	}
	listed, err := adm.ListTransactions(ctx, nil, []string{"Ongoing"})
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := listed["admin-txn"]; !ok || l.State != "Ongoing" || l.ProducerID != ts.ProducerID || l.Coordinator != ts.Coordinator {
		t.Fatalf("ListTransactions(Ongoing): %+v", listed)
	}
	described, err := adm.DescribeTransactions(ctx, "admin-txn")
	if err != nil {
		t.Fatal(err)
	}
	d := described["admin-txn"]
	if d.Err != nil || d.State != "Ongoing" || len(d.Topics["adm"]) != 2 || d.StartTimestamp <= 0 {
		t.Fatalf("DescribeTransactions: %+v", d)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, func(c *kcluster.Cluster) bool {
		ts, err := c.Transaction("admin-txn")
		return err == nil && ts.State == "CompleteAbort"
	}); err != nil {
		t.Fatal(err)
	}
	listed, err = adm.ListTransactions(ctx, nil, []string{"Ongoing"})
	if err != nil || len(listed) != 0 {
		t.Fatalf("ListTransactions(Ongoing) after the abort: %+v %v", listed, err)
	}
	described, err = adm.DescribeTransactions(ctx, "no-such-id")
	if d := described["no-such-id"]; !errors.Is(d.Err, kerr.TransactionalIDNotFound) {
		t.Fatalf("DescribeTransactions of an unknown id: %+v (%v)", d, err)
	}
}
