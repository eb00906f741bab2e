package compat

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
)

// TestKcatTransactions drives librdkafka's transactional producer and its
// isolation levels through kcat: kcat -P with a transactional.id commits
// its lines in one transaction; franz-go then aborts a transaction on the
// same partition and commits another; kcat reading read_committed sees the
// two committed transactions and not the aborted one, read_uncommitted sees
// all three; kcat -Q finds the partition's start and end offsets (the end
// counts the three control markers).
func TestKcatTransactions(t *testing.T) {
	const topic = "kcat-txn"
	kcat := kcatPath(t)
	c := kcluster.Start(t, kcluster.Brokers(3))
	ctx := testContext(t)
	bootstrap := strings.Join(c.Addrs(), ",")
	cl := newFranzClient(t, c.Addrs())
	createTopicKadm(ctx, t, kadm.NewClient(cl), topic, 1, 3)

	lines := func(prefix string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("%s-%02d", prefix, i))
		}
		return out
	}
	first, aborted, last := lines("kcat", 10), lines("aborted", 5), lines("franz", 5)

	runKcat(ctx, t, kcat, strings.Join(first, "\n")+"\n", "-P", "-b", bootstrap, "-t", topic, "-p", "0",
		"-X", "transactional.id=kcat-txn-producer", "-X", "request.required.acks=-1")

	tx, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.TransactionalID("franz-txn-producer"), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	defer tx.Close()
	for _, batch := range []struct {
		values []string
		commit bool
	}{{aborted, false}, {last, true}} {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatalf("BeginTransaction: %v", err)
		}
		for _, v := range batch.values {
			if err := tx.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("transactional produce %s: %v", v, err)
			}
		}
		if err := tx.EndTransaction(ctx, kgo.TransactionEndTry(batch.commit)); err != nil {
			t.Fatalf("EndTransaction(commit=%v): %v", batch.commit, err)
		}
	}
	if err := c.WaitFor(ctx, kcluster.PartitionStable(topic, 0)); err != nil {
		t.Fatalf("waiting for the last stable offset to reach the high watermark: %v\n%s", err, c)
	}

	consume := func(isolation string) []string {
		out := runKcat(ctx, t, kcat, "", "-C", "-b", bootstrap, "-t", topic, "-p", "0", "-o", "beginning", "-e",
			"-f", `%s\n`, "-X", "isolation.level="+isolation)
		return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	}
	if got, want := consume("read_committed"), slices.Concat(first, last); !slices.Equal(got, want) {
		t.Errorf("kcat read_committed read %q, want the committed transactions only: %q", got, want)
	}
	if got, want := consume("read_uncommitted"), slices.Concat(first, aborted, last); !slices.Equal(got, want) {
		t.Errorf("kcat read_uncommitted read %q, want every record: %q", got, want)
	}

	query := func(ts string) string {
		return strings.TrimSpace(runKcat(ctx, t, kcat, "", "-Q", "-b", bootstrap, "-t", topic+":0:"+ts))
	}
	// Three transactions, each ended by one control record.
	wantEnd := len(first) + len(aborted) + len(last) + 3
	if got, want := query("-1"), fmt.Sprintf("%s [0] offset %d", topic, wantEnd); got != want {
		t.Errorf("kcat -Q end offset: %q, want %q", got, want)
	}
	if got, want := query("-2"), topic+" [0] offset 0"; got != want {
		t.Errorf("kcat -Q start offset: %q, want %q", got, want)
	}
}
