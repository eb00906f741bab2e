package compat

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
)

// TestISRShrinkAndGrowWithFranzGo: with min.insync.replicas=2 on RF=3, stop
// a follower: the ISR shrinks to two and acks=all still succeeds; stop the
// second: franz-go's produce fails with NOT_ENOUGH_REPLICAS; restart both:
// they catch up, the ISR grows back to three, and a consumer reads exactly
// the acked records.
func TestISRShrinkAndGrowWithFranzGo(t *testing.T) {
	ctx := testContext(t)
	c := kcluster.Start(t, kcluster.Brokers(3), kcluster.BrokerConfig("min.insync.replicas", "2"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...),
		kgo.DefaultProduceTopic("isr"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, nil, "isr"); err != nil {
		t.Fatal(err)
	}
	var acked []string
	produce := func(v string) error {
		err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr()
		if err == nil {
			acked = append(acked, v)
		}
		return err
	}
	if err := produce("all-three"); err != nil {
		t.Fatal(err)
	}
	st, err := c.PartitionState("isr", 0)
	if err != nil {
		t.Fatal(err)
	}
	var followers []int32
	for _, r := range st.Replicas {
		if r != st.Leader {
			followers = append(followers, r)
		}
	}
	wait := func(what string, cond kcluster.Condition) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := c.WaitFor(wctx, cond); err != nil {
			s, _ := c.PartitionState("isr", 0)
			t.Fatalf("waiting for %s: %v; state %+v", what, err, s)
		}
	}
	if err := c.StopBroker(followers[0]); err != nil {
		t.Fatal(err)
	}
	wait("ISR of two", kcluster.ISRSize("isr", 0, 2))
	if err := produce("two-of-three"); err != nil {
		t.Fatalf("acks=all with ISR 2, min.insync.replicas 2: %v", err)
	}
	if err := c.StopBroker(followers[1]); err != nil {
		t.Fatal(err)
	}
	wait("ISR of one", kcluster.ISRSize("isr", 0, 1))
	// franz-go retries NOT_ENOUGH_REPLICAS (it is retriable); a client
	// that does not retry shows the broker's answer.
	once, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("isr"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DisableIdempotentWrite(), kgo.RecordRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	err = once.ProduceSync(ctx, &kgo.Record{Value: []byte("refused")}).FirstErr()
	once.Close()
	if !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Fatalf("acks=all with ISR 1: %v, want NOT_ENOUGH_REPLICAS", err)
	}
	for _, f := range followers {
		if err := c.RestartBroker(f); err != nil {
			t.Fatal(err)
		}
	}
	wait("ISR of three, caught up", kcluster.FullyReplicated("isr", 0))
	if err := produce("three-again"); err != nil {
		t.Fatal(err)
	}
	s, _ := c.PartitionState("isr", 0)
	if !slices.Equal(sorted(s.ISR), []int32{1, 2, 3}) {
		t.Fatalf("ISR %v", s.ISR)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"isr": {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []string
	for len(got) < len(acked) {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	// "refused" was never acked and never written: the leader checks
	// the ISR against min.insync.replicas before appending.
	if !slices.Equal(got, acked) {
		t.Fatalf("consumed %v, acked %v", got, acked)
	}
}

func sorted(s []int32) []int32 {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
