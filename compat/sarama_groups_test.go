package compat

import (
	"context"
	"sync"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kcluster/kcluster"
)

type saramaHandler struct{ got chan<- string }

func (saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.got <- string(m.Value)
		s.MarkMessage(m, "")
	}
	return nil
}

// TestSaramaGroup consumes a 4-partition topic with two sarama
// ConsumerGroup members (classic protocol, range assignor): every record
// arrives, both members get partitions, and the offsets sarama commits on
// close are the end offsets.
func TestSaramaGroup(t *testing.T) {
	const topic, n = "saramag", 400
	c := kcluster.Start(t, kcluster.Brokers(3))
	ctx := testContext(t)
	cl := newFranzClient(t, c.Addrs())
	createTopicKadm(ctx, t, kadm.NewClient(cl), topic, 4, 3)
	produceN(t, ctx, cl, topic, 0, n)

	cfg := saramaConfig()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	got := make(chan string, n)
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var groups []sarama.ConsumerGroup
	for range 2 {
		g, err := sarama.NewConsumerGroup(c.Addrs(), "sg", cfg)
		if err != nil {
			t.Fatalf("NewConsumerGroup: %v", err)
		}
		groups = append(groups, g)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cctx.Err() == nil {
				if err := g.Consume(cctx, []string{topic}, saramaHandler{got: got}); err != nil && cctx.Err() == nil {
					t.Logf("sarama Consume: %v", err)
				}
			}
		}()
	}
	seen := map[string]bool{}
	for len(seen) < n {
		select {
		case v := <-got:
			seen[v] = true
		case <-ctx.Done():
			t.Fatalf("sarama group consumed %d of %d records", len(seen), n)
		}
	}
	if err := c.WaitFor(ctx, kcluster.GroupStable("sg", 2)); err != nil {
		t.Fatalf("group not stable with 2 members: %v", err)
	}
	st, _ := c.Group("sg")
	for _, m := range st.Members {
		if len(m.Assigned[topic]) != 2 {
			t.Errorf("member %s assigned %v, want 2 partitions", m.ID, m.Assigned)
		}
	}
	cancel()
	for _, g := range groups {
		if err := g.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	wg.Wait()
	st, err := c.Group("sg")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, off := range st.Offsets[topic] {
		total += off
	}
	if total != n || len(st.Members) != 0 {
		t.Fatalf("after close: committed offsets %v (sum %d, want %d), %d members", st.Offsets, total, n, len(st.Members))
	}
}
