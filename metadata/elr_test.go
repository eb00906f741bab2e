package metadata

import (
	"context"
	"slices"
	"testing"
	"time"
)

// newELRController is a controller of brokers 1..n, all unfenced, with
// min.insync.replicas minISR and eligible.leader.replicas.version elr, and
// a topic "t" of one partition on replicas 1..n (leader 1).
func newELRController(t *testing.T, n int, minISR int, elr int16) (*Controller, *MemLog, []int64) {
	t.Helper()
	ctx := context.Background()
	log := NewMemLog()
	t.Cleanup(log.Close)
	c, err := NewController(ctx, log, "test", ControllerConfig{SessionTimeout: time.Hour, MinInsyncReplicas: minISR})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.BootstrapFeatures(ctx, map[string]int16{FeatureMetadataVersion: 29, FeatureELRVersion: elr}); err != nil {
		t.Fatal(err)
	}
	var epochs []int64
	var replicas []int32
	for i := 1; i <= n; i++ {
		e, err := c.RegisterBroker(ctx, RegisterBroker{ID: int32(i)}, -1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Heartbeat(ctx, int32(i), e, nil); err != nil {
			t.Fatal(err)
		}
		epochs = append(epochs, e)
		replicas = append(replicas, int32(i))
	}
	if _, err := c.CreateTopic(ctx, TopicSpec{Name: "t", Assignment: [][]int32{replicas}}, false); err != nil {
		t.Fatal(err)
	}
	return c, log, epochs
}

// restart re-registers broker id, cleanly (naming its last epoch, as its
// clean shutdown file would) or not, and heartbeats it unfenced.
func restart(t *testing.T, c *Controller, epochs []int64, id int32, clean bool) {
	t.Helper()
	ctx := context.Background()
	prev := int64(-1)
	if clean {
		prev = epochs[id-1]
	}
	e, err := c.RegisterBroker(ctx, RegisterBroker{ID: id}, prev)
	if err != nil {
		t.Fatal(err)
	}
	epochs[id-1] = e
	if _, err := c.Heartbeat(ctx, id, e, nil); err != nil {
		t.Fatal(err)
	}
}

func wantPartition(t *testing.T, c *Controller, leader int32, isr, elr, lastKnown []int32) {
	t.Helper()
	p := part(c, "t")
	if p.Leader != leader || !slices.Equal(p.ISR, isr) || !slices.Equal(p.ELR, elr) || !slices.Equal(p.LastKnownELR, lastKnown) {
		t.Fatalf("leader %d isr %v elr %v last known %v; want %d %v %v %v",
			p.Leader, p.ISR, p.ELR, p.LastKnownELR, leader, isr, elr, lastKnown)
	}
}

// TestELRKeepsInSyncReplicasAndElectsFromThem: RF 3, min.insync.replicas
// 2. Fencing followers one by one shrinks the ISR; the one removed below
// min ISR joins the ELR; fencing the last ISR member empties the ISR, and
// the partition is leaderless until an ELR member comes back cleanly,
// which is elected and becomes the ISR.
func TestELRKeepsInSyncReplicasAndElectsFromThem(t *testing.T) {
	c, _, epochs := newELRController(t, 3, 2, 1)
	ctx := context.Background()
	wantPartition(t, c, 1, []int32{1, 2, 3}, nil, nil)
	c.FenceBroker(ctx, 3)
	wantPartition(t, c, 1, []int32{1, 2}, []int32{}, nil) // ISR at min ISR: no ELR
	c.FenceBroker(ctx, 2)
	wantPartition(t, c, 1, []int32{1}, []int32{2}, nil)
	c.FenceBroker(ctx, 1)
	wantPartition(t, c, -1, []int32{}, []int32{1, 2}, []int32{1})
	// Broker 3 left the ISR while it was at min ISR: it may have missed
	// committed records, so it is not eligible.
	restart(t, c, epochs, 3, true)
	wantPartition(t, c, -1, []int32{}, []int32{1, 2}, []int32{1})
	restart(t, c, epochs, 2, true)
	wantPartition(t, c, 2, []int32{2}, []int32{1}, []int32{})
	// Broker 3 catches up and joins: the ISR is at min ISR again, the
	// ELR empties.
	p := part(c, "t")
	if err := c.AlterPartition(ctx, p.TopicID, 0, 2, p.LeaderEpoch, p.PartitionEpoch, []int32{2, 3}, nil); err != nil {
		t.Fatal(err)
	}
	wantPartition(t, c, 2, []int32{2, 3}, []int32{}, []int32{})
}

// TestELRUncleanRestartLeavesELR: the last ISR member restarts without a
// clean shutdown (it may have lost unsynced records): it leaves the ELR
// and is not elected; the clean ELR member is.
func TestELRUncleanRestartLeavesELR(t *testing.T) {
	c, _, epochs := newELRController(t, 3, 2, 1)
	ctx := context.Background()
	c.FenceBroker(ctx, 3)
	c.FenceBroker(ctx, 2)
	c.FenceBroker(ctx, 1)
	wantPartition(t, c, -1, []int32{}, []int32{1, 2}, []int32{1})
	restart(t, c, epochs, 1, false)
	wantPartition(t, c, -1, []int32{}, []int32{2}, []int32{1})
	restart(t, c, epochs, 2, true)
	wantPartition(t, c, 2, []int32{2}, []int32{}, []int32{})
	// A clean restart of an ELR member keeps it in the ELR.
	c2, _, epochs2 := newELRController(t, 3, 2, 1)
	c2.FenceBroker(ctx, 3)
	c2.FenceBroker(ctx, 2)
	c2.FenceBroker(ctx, 1)
	restart(t, c2, epochs2, 1, true)
	wantPartition(t, c2, 1, []int32{1}, []int32{2}, []int32{})
}

// TestELRLastKnownLeader: with the ISR and the ELR empty (the only ELR
// member restarted uncleanly), the partition's last leader is elected
// when it is back (Kafka's balanced recovery), as an unclean election:
// it alone is the ISR.
func TestELRLastKnownLeader(t *testing.T) {
	c, _, epochs := newELRController(t, 2, 2, 1)
	ctx := context.Background()
	p := part(c, "t")
	// The follower falls out of the ISR: below min ISR, it joins the ELR.
	if err := c.AlterPartition(ctx, p.TopicID, 0, 1, p.LeaderEpoch, p.PartitionEpoch, []int32{1}, nil); err != nil {
		t.Fatal(err)
	}
	wantPartition(t, c, 1, []int32{1}, []int32{2}, nil)
	c.FenceBroker(ctx, 2)
	c.FenceBroker(ctx, 1)
	wantPartition(t, c, -1, []int32{}, []int32{1, 2}, []int32{1})
	restart(t, c, epochs, 2, false)
	wantPartition(t, c, -1, []int32{}, []int32{1}, []int32{1})
	restart(t, c, epochs, 1, false)
	// Both restarted uncleanly: the ELR is empty, and the last known
	// leader, now live, leads.
	wantPartition(t, c, 1, []int32{1}, []int32{}, []int32{})
}

// TestELRFeatureOffKeepsLastISRMember: at eligible.leader.replicas.version
// 0 the last ISR member stays in the ISR (Kafka 3.x) and no ELR is kept.
func TestELRFeatureOffKeepsLastISRMember(t *testing.T) {
	c, _, epochs := newELRController(t, 3, 2, 0)
	ctx := context.Background()
	c.FenceBroker(ctx, 3)
	c.FenceBroker(ctx, 2)
	c.FenceBroker(ctx, 1)
	wantPartition(t, c, -1, []int32{1}, nil, nil)
	restart(t, c, epochs, 2, true)
	wantPartition(t, c, -1, []int32{1}, nil, nil)
	restart(t, c, epochs, 1, false)
	wantPartition(t, c, 1, []int32{1}, nil, nil)
}

// TestELRReplayAndCodec: the ELR and last known ELR travel in the records'
// wire form and a controller replaying the log rebuilds them.
func TestELRReplayAndCodec(t *testing.T) {
	c, log, _ := newELRController(t, 3, 2, 1)
	ctx := context.Background()
	c.FenceBroker(ctx, 3)
	c.FenceBroker(ctx, 2)
	c.FenceBroker(ctx, 1)
	want := part(c, "t")
	es, err := log.Read(ctx, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// Through the wire form, into a new log and a new controller.
	log2 := NewMemLog()
	t.Cleanup(log2.Close)
	for _, e := range es {
		b, err := EncodeRecord(e.Record)
		if err != nil {
			t.Fatal(err)
		}
		r, err := DecodeRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := log2.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	c2, err := NewController(ctx, log2, "test", ControllerConfig{SessionTimeout: time.Hour, MinInsyncReplicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	got := part(c2, "t")
	if !slices.Equal(got.ELR, want.ELR) || !slices.Equal(got.LastKnownELR, want.LastKnownELR) || len(got.ISR) != 0 ||
		got.Leader != -1 || got.PartitionEpoch != want.PartitionEpoch {
		t.Fatalf("replayed %+v, want %+v", got, want)
	}
	// nil leaves, empty clears: both survive the codec.
	for _, ch := range []*PartitionChange{{ELR: nil, LastKnownELR: []int32{}}, {ELR: []int32{2, 3}, LastKnownELR: nil}} {
		b, _ := EncodeRecord(ch)
		r, err := DecodeRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		d := r.(*PartitionChange)
		if (d.ELR == nil) != (ch.ELR == nil) || !slices.Equal(d.ELR, ch.ELR) ||
			(d.LastKnownELR == nil) != (ch.LastKnownELR == nil) || !slices.Equal(d.LastKnownELR, ch.LastKnownELR) {
			t.Fatalf("%s decoded as %+v", b, d)
		}
	}
	// A PartitionChange written before the fields existed leaves them.
	r, err := DecodeRecord([]byte(`{"type":"PartitionChange","data":{"TopicID":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"Partition":0,"Leader":null,"ISR":[1]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if d := r.(*PartitionChange); d.ELR != nil || d.LastKnownELR != nil {
		t.Fatalf("old record decoded with ELR %v %v", d.ELR, d.LastKnownELR)
	}
}

// TestELRClearedWhenMinISRChanges: a change of min.insync.replicas, the
// topic's or the cluster default, clears the ELR it was kept by, as
// Kafka's controller does.
func TestELRClearedWhenMinISRChanges(t *testing.T) {
	for _, resource := range []int8{ResourceTopic, ResourceBroker} {
		c, _, _ := newELRController(t, 3, 2, 1)
		ctx := context.Background()
		c.FenceBroker(ctx, 3)
		c.FenceBroker(ctx, 2)
		wantPartition(t, c, 1, []int32{1}, []int32{2}, nil)
		name := "t"
		if resource == ResourceBroker {
			name = ""
		}
		one := "1"
		err := c.AlterConfigs(ctx, resource, name, func(map[string]string) (map[string]*string, error) {
			return map[string]*string{"min.insync.replicas": &one}, nil
		}, false)
		if err != nil {
			t.Fatal(err)
		}
		wantPartition(t, c, 1, []int32{1}, nil, nil)
	}
}

// TestELRMemberRejoiningISRLeavesELR: with min.insync.replicas 3 every
// shrink below three feeds the ELR, and a member that rejoins the ISR
// leaves the ELR while the others stay.
func TestELRMemberRejoiningISRLeavesELR(t *testing.T) {
	c, _, epochs := newELRController(t, 3, 3, 1)
	ctx := context.Background()
	c.FenceBroker(ctx, 3)
	wantPartition(t, c, 1, []int32{1, 2}, []int32{3}, nil)
	c.FenceBroker(ctx, 2)
	wantPartition(t, c, 1, []int32{1}, []int32{2, 3}, nil)
	restart(t, c, epochs, 2, true)
	p := part(c, "t")
	if err := c.AlterPartition(ctx, p.TopicID, 0, 1, p.LeaderEpoch, p.PartitionEpoch, []int32{1, 2}, []int64{epochs[0], epochs[1]}); err != nil {
		t.Fatal(err)
	}
	wantPartition(t, c, 1, []int32{1, 2}, []int32{3}, nil)
	// Broker 3 restarts uncleanly: it leaves the ELR.
	restart(t, c, epochs, 3, false)
	wantPartition(t, c, 1, []int32{1, 2}, []int32{}, nil)
}
