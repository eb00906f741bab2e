package metadata

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newTestController(t *testing.T, brokers int) (*Controller, *MemLog) {
	t.Helper()
	log := NewMemLog()
	t.Cleanup(log.Close)
	c, err := NewController(context.Background(), log, "test", ControllerConfig{SessionTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= brokers; i++ {
		epoch, err := c.RegisterBroker(context.Background(), RegisterBroker{ID: int32(i), Host: "h", Port: int32(9000 + i)}, -1)
		if err != nil {
			t.Fatal(err)
		}
		if fenced, err := c.Heartbeat(context.Background(), int32(i), epoch, nil); err != nil || fenced {
			t.Fatalf("first heartbeat: fenced %v, %v", fenced, err)
		}
	}
	return c, log
}

func TestPlacementDistinctAndSpread(t *testing.T) {
	c, _ := newTestController(t, 3)
	id, err := c.CreateTopic(context.Background(), TopicSpec{Name: "t", Partitions: 6, ReplicationFactor: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	leaders := map[int32]int{}
	c.State(func(s *State) {
		tp := s.TopicsByID[id]
		for _, p := range tp.Partitions {
			seen := map[int32]bool{}
			for _, r := range p.Replicas {
				if seen[r] {
					t.Fatalf("partition %d has replica %d twice: %v", p.Partition, r, p.Replicas)
				}
				seen[r] = true
			}
			if p.Leader != p.Replicas[0] || len(p.ISR) != 3 {
				t.Fatalf("partition %d: leader %d isr %v", p.Partition, p.Leader, p.ISR)
			}
			leaders[p.Leader]++
		}
	})
	for b := int32(1); b <= 3; b++ {
		if leaders[b] != 2 {
			t.Fatalf("leaders not spread: %v", leaders)
		}
	}
	if _, err := c.CreateTopic(context.Background(), TopicSpec{Name: "u", Partitions: 1, ReplicationFactor: 4}, false); !errors.Is(err, kerr.InvalidReplicationFactor) {
		t.Fatalf("RF 4 on 3 brokers: %v", err)
	}
	if _, err := c.CreateTopic(context.Background(), TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 1}, false); !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatalf("duplicate: %v", err)
	}
}

// TestReplayAgrees replays the controller's log into a fresh State, as a
// broker does, and checks it equals the controller's own.
func TestReplayAgrees(t *testing.T) {
	c, log := newTestController(t, 3)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if _, err := c.CreateTopic(ctx, TopicSpec{Name: fmt.Sprintf("t%d", i), Partitions: int32(i + 1), ReplicationFactor: 2}, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.DeleteTopic(ctx, "t2", TopicID{}); err != nil {
		t.Fatal(err)
	}
	leader := int32(3)
	var tid TopicID
	c.State(func(s *State) { tid = s.Topics["t4"].ID })
	if err := c.ChangePartition(ctx, PartitionChange{TopicID: tid, Partition: 0, Leader: &leader}, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.ChangePartition(ctx, PartitionChange{TopicID: tid, Partition: 0, Leader: &leader}, 0); !errors.Is(err, kerr.InvalidUpdateVersion) {
		t.Fatalf("stale partition epoch: %v", err)
	}
	replay := NewState()
	es, err := log.Read(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if err := replay.Apply(e.Offset, e.Record); err != nil {
			t.Fatal(err)
		}
	}
	c.State(func(s *State) {
		if got, want := dump(replay), dump(s); got != want {
			t.Fatalf("replayed state differs:\n%s\n%s", got, want)
		}
		p := s.Topics["t4"].Partitions[0]
		if p.Leader != 3 || p.LeaderEpoch != 1 || p.PartitionEpoch != 1 {
			t.Fatalf("after leader change: %+v", p)
		}
		if _, ok := s.Topics["t2"]; ok {
			t.Fatal("deleted topic still present")
		}
	})
}

func dump(s *State) string {
	out := fmt.Sprint(s.Offset, s.BrokerIDs(), s.TopicNames())
	for _, n := range s.TopicNames() {
		for _, p := range s.Topics[n].Partitions {
			out += fmt.Sprintf(" %s/%d:%v:%v:%d:%d:%d", n, p.Partition, p.Replicas, p.ISR, p.Leader, p.LeaderEpoch, p.PartitionEpoch)
		}
	}
	return out
}

func TestMemLogReadBlocksUntilAppend(t *testing.T) {
	l := NewMemLog()
	defer l.Close()
	got := make(chan []Entry, 1)
	go func() {
		es, _ := l.Read(context.Background(), 0, 10)
		got <- es
	}()
	select {
	case <-got:
		t.Fatal("read of an empty log returned")
	case <-time.After(20 * time.Millisecond):
	}
	l.Append(context.Background(), &FenceBroker{ID: 1})
	select {
	case es := <-got:
		if len(es) != 1 || es[0].Offset != 0 {
			t.Fatalf("entries %v", es)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read did not wake on append")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Read(ctx, 5, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v", err)
	}
	l.Close()
	if _, err := l.Read(context.Background(), 5, 1); !errors.Is(err, ErrLogClosed) {
		t.Fatalf("read after close: %v", err)
	}
}

func TestRecordCodecRoundTrip(t *testing.T) {
	leader := int32(2)
	v := "compact"
	rack := "r1"
	recs := []Record{
		&RegisterBroker{ID: 1, Host: "h", Port: 9, Rack: &rack, Epoch: 3, Fenced: true, Listeners: []Listener{{Name: "PLAINTEXT", Host: "h", Port: 9}}},
		&FenceBroker{ID: 1, Fenced: true}, &UnregisterBroker{ID: 4},
		&CreateTopic{Name: "t", ID: TopicID{1, 2}, Configs: map[string]string{"cleanup.policy": "compact"}},
		&PartitionRecord{TopicID: TopicID{1}, Partition: 3, Replicas: []int32{1, 2}, ISR: []int32{2}, Leader: 2, LeaderEpoch: 5},
		&PartitionChange{TopicID: TopicID{1}, Partition: 3, Leader: &leader, ISR: []int32{2, 1}},
		&RemoveTopic{ID: TopicID{9}}, &ConfigChange{ResourceType: 2, Name: "t", Key: "cleanup.policy", Value: &v},
		&ProducerIDs{Broker: 1, First: 1000, Size: 1000},
	}
	for _, r := range recs {
		b, err := EncodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("%T %+v", got, deref(got)) != fmt.Sprintf("%T %+v", r, deref(r)) {
			t.Fatalf("round trip changed %T: %s", r, b)
		}
	}
	if _, err := DecodeRecord([]byte(`{"type":"Nope","data":{}}`)); err == nil {
		t.Fatal("unknown record type decoded")
	}
	recs = append(recs, &ClientQuota{}, &AccessControlEntry{}, &RemoveAccessControlEntry{}, &ScramCredential{},
		&RemoveScramCredential{}, &FeatureLevelRecord{Name: "metadata.version", FeatureLevel: 27})
	for _, r := range recs {
		// EncodeRecord writes the envelope itself: the bytes must be
		// encoding/json's, so logs and snapshots written before read the
		// same.
		b, err := EncodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(envelope{Type: r.recordType(), Data: data})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want) {
			t.Fatalf("EncodeRecord(%T) = %s, encoding/json writes %s", r, b, want)
		}
		// Any other form of the envelope still decodes, to the same record.
		others := []string{
			fmt.Sprintf(`{"data":%s,"type":%q}`, data, r.recordType()),
			fmt.Sprintf(`{ "type" : %q , "data" : %s }`, r.recordType(), data),
			fmt.Sprintf(`{"type":%q,"data":%s,"more":1}`, r.recordType(), data),
		}
		for _, o := range others {
			got, err := DecodeRecord([]byte(o))
			if err != nil {
				t.Fatalf("decoding %s: %v", o, err)
			}
			if deref(got) != string(want) {
				t.Fatalf("decoding %s gave %s", o, deref(got))
			}
		}
	}
	for _, bad := range []string{`{"type":"FenceBroker","data":}`, `{"type":"FenceBroker","data":{"ID":1}`, `{"type":"FenceBroker","data":{}}}`} {
		if _, err := DecodeRecord([]byte(bad)); err == nil {
			t.Fatalf("decoded %s", bad)
		}
	}
	// An escape in the type name is encoding/json's to read.
	if r, err := DecodeRecord([]byte(`{"type":"Fence\u0042roker","data":{"ID":7}}`)); err != nil || r.(*FenceBroker).ID != 7 {
		t.Fatalf("escaped type: %v, %v", r, err)
	}
}

func deref(r Record) string {
	b, _ := EncodeRecord(r)
	return string(b)
}
