package kcluster

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/kcluster/kcluster/metadata"
)

// PartitionState is a snapshot of one partition: the controller's committed
// view (leader, epoch, replicas, ISR) and what the replicas on running
// brokers hold.
type PartitionState struct {
	Topic       string
	Partition   int32
	Leader      int32 // -1 while the partition has no leader (offline)
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
	// HighWatermark, LogStartOffset and LastStableOffset are the leader's;
	// -1 while the leader is not running.
	HighWatermark    int64
	LogStartOffset   int64
	LastStableOffset int64
	// LogEndOffsets has the log-end offset of every replica on a running
	// broker, by broker id.
	LogEndOffsets map[int32]int64
	// HighWatermarks has each running replica's own high watermark (a
	// follower's trails the leader's).
	HighWatermarks map[int32]int64
}

// ErrUnknownPartition is returned by PartitionState for a topic or
// partition the metadata does not have.
var ErrUnknownPartition = errors.New("kcluster: unknown topic or partition")

// PartitionState returns the state of topic/partition.
func (c *Cluster) PartitionState(topic string, partition int32) (PartitionState, error) {
	st := PartitionState{Topic: topic, Partition: partition, Leader: -1, HighWatermark: -1, LogStartOffset: -1, LastStableOffset: -1,
		LogEndOffsets: map[int32]int64{}, HighWatermarks: map[int32]int64{}}
	var found bool
	var tid [16]byte
	c.ctrl.State(func(s *metadata.State) {
		t := s.Topics[topic]
		if t == nil || partition < 0 || int(partition) >= len(t.Partitions) {
			return
		}
		p := t.Partitions[partition]
		found = true
		tid = t.ID
		st.Leader, st.LeaderEpoch = p.Leader, p.LeaderEpoch
		st.Replicas, st.ISR = slices.Clone(p.Replicas), slices.Clone(p.ISR)
	})
	if !found {
		return st, fmt.Errorf("%w: %s/%d", ErrUnknownPartition, topic, partition)
	}
	for _, b := range c.running() {
		r := b.replica(tid, partition)
		if r == nil {
			continue
		}
		r.mu.Lock()
		closed, hw, leader := r.mu.closed, r.mu.hw, r.mu.leader == b.id
		r.mu.Unlock()
		if closed {
			continue
		}
		st.LogEndOffsets[b.id] = r.log.LogEndOffset()
		st.HighWatermarks[b.id] = hw
		if leader && b.id == st.Leader {
			st.HighWatermark, st.LastStableOffset = hw, hw
			st.LogStartOffset = r.log.LogStartOffset()
		}
	}
	return st, nil
}

// Condition is a predicate on the cluster, re-checked by WaitFor on every
// cluster event.
type Condition func(*Cluster) bool

// WaitFor blocks until cond holds or ctx ends (returning ctx's error). It
// wakes on the cluster's own events — a broker applying metadata, data
// appended, a high watermark moving, a broker stopping — not on a timer.
func (c *Cluster) WaitFor(ctx context.Context, cond Condition) error {
	for {
		ch := c.eventCh()
		if cond(c) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			return ErrClosed
		}
	}
}
