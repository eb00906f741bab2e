package kcluster

import (
	"errors"
	"maps"
	"slices"
	"time"
)

// TransactionState is a snapshot of one transactional id as its
// transaction coordinator holds it.
type TransactionState struct {
	TransactionalID string
	// State is Kafka's name: Empty, Ongoing, PrepareCommit,
	// PrepareAbort, CompleteCommit, CompleteAbort, PrepareEpochFence.
	State         string
	ProducerID    int64
	ProducerEpoch int16
	Timeout       time.Duration
	// Coordinator is the broker coordinating the id: the leader of its
	// __transaction_state partition.
	Coordinator int32
	// Partitions are the partitions of the transaction, by topic (empty
	// outside Ongoing and the Prepare states).
	Partitions map[string][]int32
}

// ErrUnknownTransaction is returned by Transaction for a transactional id
// no running coordinator has loaded (never used, or its coordinator is
// down or still loading).
var ErrUnknownTransaction = errors.New("kcluster: unknown transactional id")

// Transaction returns the state of a transactional id, from its
// coordinator.
func (c *Cluster) Transaction(id string) (TransactionState, error) {
	if err := c.embedded("Transaction"); err != nil {
		return TransactionState{}, err
	}
	for _, b := range c.running() {
		ctx, err := b.txns.rt.contextForNow(id)
		if err != nil {
			continue
		}
		var st TransactionState
		found := false
		if ctx.run(func(ts *txnShard) error {
			if m := ts.txns[id]; m != nil {
				st, found = txnStateOf(m, b.id), true
			}
			return nil
		}) == nil && found {
			return st, nil
		}
	}
	return TransactionState{TransactionalID: id, Coordinator: -1}, ErrUnknownTransaction
}

func txnStateOf(m *txnMeta, coord int32) TransactionState {
	st := TransactionState{TransactionalID: m.id, State: m.state.String(), ProducerID: m.pid, ProducerEpoch: m.epoch,
		Timeout: time.Duration(m.timeout) * time.Millisecond, Coordinator: coord, Partitions: map[string][]int32{}}
	byTopic(m.sortedParts(), func(topic string, partitions []int32) { st.Partitions[topic] = partitions })
	return st
}

// Transactions returns the transactional ids every running coordinator
// has, sorted.
func (c *Cluster) Transactions() []string {
	c.mustEmbed("Transactions")
	return c.coordinatorKeys(func(b *broker) []string {
		ids, _ := gather(b.txns.rt, func(ts *txnShard) []string { return slices.Collect(maps.Keys(ts.txns)) })
		return ids
	})
}

// TransactionSettled holds when transactional id's coordinator is running
// and has loaded it, and no transaction of it is open or ending: its state
// is Empty, CompleteCommit or CompleteAbort.
func TransactionSettled(id string) Condition {
	return func(c *Cluster) bool {
		st, err := c.Transaction(id)
		return err == nil && (st.State == "Empty" || st.State == "CompleteCommit" || st.State == "CompleteAbort")
	}
}

// PartitionStable holds when topic/partition's leader is running and no
// transaction holds its last stable offset back: LSO equals the high
// watermark.
func PartitionStable(topic string, partition int32) Condition {
	return func(c *Cluster) bool {
		st, err := c.PartitionState(topic, partition)
		return err == nil && st.HighWatermark >= 0 && st.LastStableOffset == st.HighWatermark
	}
}
