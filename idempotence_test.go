package kcluster

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func initProducerID(t *testing.T, addr string) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionTimeoutMillis = 60000
	resp := do[*kmsg.InitProducerIDResponse](t, dial(t, addr), req, 4)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("InitProducerId: %v", err)
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// An idempotent producer's retry gets the original offset and is not
// written twice, across a leader failover; gaps and old epochs are refused.
func TestIdempotentProducerDedupAcrossFailover(t *testing.T) {
	c := Start(t, Brokers(3), BrokerConfig("auto.leader.rebalance.enable", "false"))
	createTopic(t, c, "idem", 1, 3)
	pid, epoch := initProducerID(t, c.Addrs()[1])
	pid2, _ := initProducerID(t, c.Addrs()[1])
	if pid2 == pid || pid < 0 || epoch != 0 {
		t.Fatalf("producer ids %d %d epoch %d", pid, pid2, epoch)
	}
	st := partState(t, c, "idem", 0)
	leader := addrOf(c, st.Leader)
	send := func(addr string, seq int32, vals ...string) *kmsg.ProduceResponseTopicPartition {
		return produce(t, nil, c, addr, "idem", 0, -1, makeProducerBatch(pid, 0, seq, 1, vals...))
	}
	if rp := send(leader, 0, "a", "b"); rp.ErrorCode != 0 || rp.BaseOffset != 0 {
		t.Fatalf("first batch: %v at %d", kerr.ErrorForCode(rp.ErrorCode), rp.BaseOffset)
	}
	if rp := send(leader, 2, "c"); rp.ErrorCode != 0 || rp.BaseOffset != 2 {
		t.Fatalf("second batch: %v at %d", kerr.ErrorForCode(rp.ErrorCode), rp.BaseOffset)
	}
	if rp := send(leader, 0, "a", "b"); rp.ErrorCode != 0 || rp.BaseOffset != 0 {
		t.Fatalf("retry of the first batch: %v at %d, want no error at 0", kerr.ErrorForCode(rp.ErrorCode), rp.BaseOffset)
	}
	if rp := send(leader, 9, "gap"); kerr.ErrorForCode(rp.ErrorCode) != kerr.OutOfOrderSequenceNumber {
		t.Fatalf("sequence gap: %v", kerr.ErrorForCode(rp.ErrorCode))
	}
	if rp := produce(t, nil, c, leader, "idem", 0, -1, makeProducerBatch(pid, 1, 0, 1, "new-epoch")); rp.ErrorCode != 0 {
		t.Fatalf("bumped epoch at sequence 0: %v", kerr.ErrorForCode(rp.ErrorCode))
	}
	if rp := send(leader, 3, "old-epoch"); kerr.ErrorForCode(rp.ErrorCode) != kerr.InvalidProducerEpoch {
		t.Fatalf("old epoch: %v", kerr.ErrorForCode(rp.ErrorCode))
	}
	// Fail over: the new leader learned the producer from replication and
	// answers a retry of the epoch-1 batch with its original offset.
	if err := c.KillBroker(st.Leader); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "a new leader", func(c *Cluster) bool {
		s, _ := c.PartitionState("idem", 0)
		return s.Leader >= 0 && s.Leader != st.Leader
	})
	now := partState(t, c, "idem", 0)
	var rp *kmsg.ProduceResponseTopicPartition
	for {
		rp = produce(t, nil, c, addrOf(c, now.Leader), "idem", 0, -1, makeProducerBatch(pid, 1, 0, 1, "new-epoch"))
		if kerr.ErrorForCode(rp.ErrorCode) != kerr.NotLeaderForPartition {
			break // the new leader may not have applied its election yet
		}
	}
	if rp.ErrorCode != 0 || rp.BaseOffset != 3 {
		t.Fatalf("retry on the new leader: %v at %d, want no error at 3", kerr.ErrorForCode(rp.ErrorCode), rp.BaseOffset)
	}
	if s := partState(t, c, "idem", 0); s.HighWatermark != 4 {
		t.Fatalf("high watermark %d, want 4: a retry was written twice", s.HighWatermark)
	}
}
