package compat

import (
	"slices"
	"testing"

	"github.com/IBM/sarama"

	"github.com/kcluster/kcluster"
)

// sarama's transactional producer: a committed and an aborted
// transaction; sarama's read_committed consumer sees only the committed
// one, its read_uncommitted consumer both.
func TestSaramaTransactions(t *testing.T) {
	c := kcluster.Start(t, kcluster.Brokers(3))
	cfg := saramaConfig()
	cfg.Producer.Idempotent = true
	cfg.Producer.Transaction.ID = "sarama-txn"
	cfg.Net.MaxOpenRequests = 1
	admin, err := sarama.NewClusterAdmin(c.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.CreateTopic("sarama-txn", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 3}, false); err != nil {
		t.Fatal(err)
	}
	prod, err := sarama.NewSyncProducer(c.Addrs(), cfg)
	if err != nil {
		t.Fatalf("transactional producer: %v", err)
	}
	defer prod.Close()
	txn := func(commit bool, vals ...string) {
		t.Helper()
		if err := prod.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: "sarama-txn", Partition: 0, Value: sarama.StringEncoder(v)}); err != nil {
				t.Fatal(err)
			}
		}
		end := prod.AbortTxn
		if commit {
			end = prod.CommitTxn
		}
		if err := end(); err != nil {
			t.Fatalf("end transaction (commit=%v): %v", commit, err)
		}
	}
	txn(true, "c1", "c2")
	txn(false, "a1")
	txn(true, "c3")
	read := func(level sarama.IsolationLevel, n int) []string {
		t.Helper()
		ccfg := saramaConfig()
		ccfg.Consumer.IsolationLevel = level
		cons, err := sarama.NewConsumer(c.Addrs(), ccfg)
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		pc, err := cons.ConsumePartition("sarama-txn", 0, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		ctx := testContext(t)
		var out []string
		for len(out) < n {
			select {
			case m := <-pc.Messages():
				out = append(out, string(m.Value))
			case err := <-pc.Errors():
				t.Fatal(err)
			case <-ctx.Done():
				t.Fatalf("read %v so far", out)
			}
		}
		return out
	}
	if got := read(sarama.ReadCommitted, 3); !slices.Equal(got, []string{"c1", "c2", "c3"}) {
		t.Fatalf("read_committed: %v", got)
	}
	if got := read(sarama.ReadUncommitted, 4); !slices.Equal(got, []string{"c1", "c2", "a1", "c3"}) {
		t.Fatalf("read_uncommitted: %v", got)
	}
}
