package kcluster

// The share-partition state's persister (Kafka's Persister, as its
// DefaultStatePersister and PersisterStateManager call the share
// coordinator). A share-partition leader keeps its state
// (share_partition.go) in memory and writes its changes through a
// sharePersister before it answers; a new leader reads the state back.
// The group coordinator initializes, summarizes and deletes states
// through it (api_sharegroupoffsets.go, DeleteGroups).
//
// statePersister, the one implementation, sends Kafka's five state RPCs
// (InitializeShareGroupState, ReadShareGroupState, WriteShareGroupState,
// DeleteShareGroupState, ReadShareGroupStateSummary) to the share
// coordinator of the share-partition (share_coordinator.go) over the
// cluster network, so Cut and Isolate reach them, even when the
// coordinator is this broker. The coordinator is found as FindCoordinator
// key type 2 finds it (the leader of the key's __share_group_state
// partition, from this broker's metadata; the topic is created on first
// use). NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
// COORDINATOR_LOAD_IN_PROGRESS, REQUEST_TIMED_OUT and a failed connection
// are retried, the coordinator found again each time, with a backoff from
// 20 ms doubling to 1 s, until share.coordinator.write.timeout.ms has
// passed twice (an election and a load); then the caller gets
// COORDINATOR_NOT_AVAILABLE (or the last coordinator error). Other errors
// (FENCED_LEADER_EPOCH, FENCED_STATE_EPOCH, UNKNOWN_TOPIC_OR_PARTITION for
// a state never initialized) are the caller's at once.

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// sharePartitionKey names one share-partition: a group's view of one
// topic partition (Kafka's SharePartitionKey).
type sharePartitionKey struct {
	group     string
	topicID   [16]byte
	partition int32
}

// shareStateBatch is a range of offsets in one delivery state, with their
// delivery count (Kafka's PersisterStateBatch). The states persisted are
// AVAILABLE (with the count of deliveries so far), ACKNOWLEDGED and
// ARCHIVED.
type shareStateBatch struct {
	first, last int64
	state       int8
	count       int16
}

// shareState is a share-partition's persisted state (ReadShareGroupState's
// answer, WriteShareGroupState's request).
type shareState struct {
	stateEpoch  int32
	leaderEpoch int32
	startOffset int64 // -1: not yet known (share.auto.offset.reset decides)
	batches     []shareStateBatch
}

// sharePersister is what a share-partition leader needs of the share
// coordinator. Errors are Kafka's (kerr): FENCED_STATE_EPOCH,
// FENCED_LEADER_EPOCH, and what the coordinator's clients get.
type sharePersister interface {
	// initializeState makes a share-partition's state with its start
	// offset, or resets it (a new state epoch).
	initializeState(key sharePartitionKey, stateEpoch int32, startOffset int64) error
	// readState returns the state, and fences leaders of an epoch below
	// leaderEpoch from writing it. A share-partition never initialized
	// reads as start offset -1, state epoch 0.
	readState(key sharePartitionKey, leaderEpoch int32) (shareState, error)
	// writeState merges batches into the state, advances its start
	// offset, and drops what lies below it; a write from a leader epoch
	// below the last read's is fenced.
	writeState(key sharePartitionKey, st shareState) error
	// deleteState forgets the share-partition.
	deleteState(key sharePartitionKey) error
	// readSummary returns the state epoch, the start offset (-1 for a
	// share-partition never initialized) and how many records past it
	// are done (acknowledged or archived: KIP-1226's delivery complete
	// count).
	readSummary(key sharePartitionKey) (stateEpoch int32, startOffset, done int64, err error)
}

// statePersister is the persister over the state RPCs (see the file
// comment). Its connections are its own, one per coordinator.
type statePersister struct {
	b     *broker
	peers peerClients
}

var _ sharePersister = (*statePersister)(nil)

func newStatePersister(b *broker) *statePersister {
	p := &statePersister{b: b}
	p.peers.b = b
	return p
}

func (p *statePersister) close() { p.peers.closeAll() }

// retriableStateErr reports whether a state RPC's error calls for finding
// the coordinator again and retrying (Kafka's PersisterStateManager).
func retriableStateErr(err error) bool {
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return !errors.Is(err, context.Canceled) // a connection's failure
	}
	switch ke {
	case kerr.NotCoordinator, kerr.CoordinatorNotAvailable, kerr.CoordinatorLoadInProgress, kerr.RequestTimedOut:
		return true
	}
	return false
}

// call sends req (about key) to key's share coordinator and hands its
// response to parse, which returns the partition's error; retried as the
// file comment says.
func (p *statePersister) call(key sharePartitionKey, req kmsg.Request, parse func(kmsg.Response) error) error {
	coordKey := shareCoordinatorKey(key)
	timeout := p.b.cfg.share.writeTimeout
	deadline := time.Now().Add(2 * timeout)
	backoff := 20 * time.Millisecond
	for {
		id, err := p.b.shareCoordinatorFor(coordKey)
		if err == nil {
			ctx, cancel := context.WithTimeout(p.b.ctx, timeout+time.Second)
			var resp kmsg.Response
			resp, err = p.peers.request(ctx, id, req)
			cancel()
			if err == nil {
				err = parse(resp)
			}
		}
		if err == nil || !retriableStateErr(err) {
			return err
		}
		if p.b.ctx.Err() != nil || time.Now().Add(backoff).After(deadline) {
			var ke *kerr.Error
			if errors.As(err, &ke) {
				return err
			}
			return kerr.CoordinatorNotAvailable
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-p.b.ctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, time.Second)
	}
}

// partitionErr is a state RPC's error for its one partition.
func partitionErr(n int, code int16) error {
	if n != 1 {
		return kerr.UnknownServerError
	}
	return kerr.ErrorForCode(code)
}

func (p *statePersister) initializeState(key sharePartitionKey, stateEpoch int32, startOffset int64) error {
	req := kmsg.NewPtrInitializeShareGroupStateRequest()
	req.GroupID = key.group
	t := kmsg.NewInitializeShareGroupStateRequestTopic()
	t.TopicID = key.topicID
	pt := kmsg.NewInitializeShareGroupStateRequestTopicPartition()
	pt.Partition, pt.StateEpoch, pt.StartOffset = key.partition, stateEpoch, startOffset
	t.Partitions = append(t.Partitions, pt)
	req.Topics = append(req.Topics, t)
	return p.call(key, req, func(r kmsg.Response) error {
		resp := r.(*kmsg.InitializeShareGroupStateResponse)
		if len(resp.Topics) != 1 {
			return kerr.UnknownServerError
		}
		ps := resp.Topics[0].Partitions
		if len(ps) != 1 {
			return kerr.UnknownServerError
		}
		return partitionErr(len(ps), ps[0].ErrorCode)
	})
}

func (p *statePersister) readState(key sharePartitionKey, leaderEpoch int32) (shareState, error) {
	req := kmsg.NewPtrReadShareGroupStateRequest()
	req.GroupID = key.group
	t := kmsg.NewReadShareGroupStateRequestTopic()
	t.TopicID = key.topicID
	pt := kmsg.NewReadShareGroupStateRequestTopicPartition()
	pt.Partition, pt.LeaderEpoch = key.partition, leaderEpoch
	t.Partitions = append(t.Partitions, pt)
	req.Topics = append(req.Topics, t)
	var st shareState
	err := p.call(key, req, func(r kmsg.Response) error {
		resp := r.(*kmsg.ReadShareGroupStateResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return kerr.UnknownServerError
		}
		rp := resp.Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
			return err
		}
		st = shareState{stateEpoch: rp.StateEpoch, leaderEpoch: leaderEpoch, startOffset: rp.StartOffset}
		for _, b := range rp.StateBatches {
			st.batches = append(st.batches, shareStateBatch{first: b.FirstOffset, last: b.LastOffset, state: b.DeliveryState, count: b.DeliveryCount})
		}
		return nil
	})
	return st, err
}

func (p *statePersister) writeState(key sharePartitionKey, w shareState) error {
	req := kmsg.NewPtrWriteShareGroupStateRequest()
	req.SetVersion(1)
	req.GroupID = key.group
	t := kmsg.NewWriteShareGroupStateRequestTopic()
	t.TopicID = key.topicID
	pt := kmsg.NewWriteShareGroupStateRequestTopicPartition()
	pt.Partition, pt.StateEpoch, pt.LeaderEpoch, pt.StartOffset = key.partition, w.stateEpoch, w.leaderEpoch, w.startOffset
	for _, b := range w.batches {
		sb := kmsg.NewWriteShareGroupStateRequestTopicPartitionStateBatch()
		sb.FirstOffset, sb.LastOffset, sb.DeliveryState, sb.DeliveryCount = b.first, b.last, b.state, b.count
		pt.StateBatches = append(pt.StateBatches, sb)
	}
	t.Partitions = append(t.Partitions, pt)
	req.Topics = append(req.Topics, t)
	return p.call(key, req, func(r kmsg.Response) error {
		resp := r.(*kmsg.WriteShareGroupStateResponse)
		if len(resp.Topics) != 1 {
			return kerr.UnknownServerError
		}
		ps := resp.Topics[0].Partitions
		if len(ps) != 1 {
			return kerr.UnknownServerError
		}
		return partitionErr(len(ps), ps[0].ErrorCode)
	})
}

// stateTopicExists reports whether this broker's metadata has
// __share_group_state: without it no share-partition has a state, so a
// delete or a summary needs no coordinator (and does not create the
// topic).
func (p *statePersister) stateTopicExists() bool {
	p.b.mu.RLock()
	defer p.b.mu.RUnlock()
	return p.b.mu.state.Topics[shareStateTopic] != nil
}

func (p *statePersister) deleteState(key sharePartitionKey) error {
	if !p.stateTopicExists() {
		return nil
	}
	req := kmsg.NewPtrDeleteShareGroupStateRequest()
	req.GroupID = key.group
	t := kmsg.NewDeleteShareGroupStateRequestTopic()
	t.TopicID = key.topicID
	pt := kmsg.NewDeleteShareGroupStateRequestTopicPartition()
	pt.Partition = key.partition
	t.Partitions = append(t.Partitions, pt)
	req.Topics = append(req.Topics, t)
	return p.call(key, req, func(r kmsg.Response) error {
		resp := r.(*kmsg.DeleteShareGroupStateResponse)
		if len(resp.Topics) != 1 {
			return kerr.UnknownServerError
		}
		ps := resp.Topics[0].Partitions
		if len(ps) != 1 {
			return kerr.UnknownServerError
		}
		return partitionErr(len(ps), ps[0].ErrorCode)
	})
}

func (p *statePersister) readSummary(key sharePartitionKey) (int32, int64, int64, error) {
	if !p.stateTopicExists() {
		return 0, -1, 0, nil
	}
	req := kmsg.NewPtrReadShareGroupStateSummaryRequest()
	req.SetVersion(1)
	req.GroupID = key.group
	t := kmsg.NewReadShareGroupStateSummaryRequestTopic()
	t.TopicID = key.topicID
	pt := kmsg.NewReadShareGroupStateSummaryRequestTopicPartition()
	pt.Partition, pt.LeaderEpoch = key.partition, -1
	t.Partitions = append(t.Partitions, pt)
	req.Topics = append(req.Topics, t)
	var epoch int32
	var start, done int64
	err := p.call(key, req, func(r kmsg.Response) error {
		resp := r.(*kmsg.ReadShareGroupStateSummaryResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return kerr.UnknownServerError
		}
		rp := resp.Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
			return err
		}
		epoch, start, done = rp.StateEpoch, rp.StartOffset, int64(rp.DeliveryCompleteCount)
		return nil
	})
	return epoch, start, max(done, 0), err
}

// mergeStateBatches lays the newer batches over the older ones, as the
// share coordinator combines a ShareUpdate with its snapshot: a newer
// batch replaces whatever the older ones said of its offsets. Offsets
// below start are dropped. The result is sorted and non-overlapping.
func mergeStateBatches(old, newer []shareStateBatch, start int64) []shareStateBatch {
	out := make([]shareStateBatch, 0, len(old)+len(newer))
	for _, o := range old {
		pieces := []shareStateBatch{o}
		for _, n := range newer {
			var next []shareStateBatch
			for _, p := range pieces {
				if n.last < p.first || n.first > p.last {
					next = append(next, p)
					continue
				}
				if p.first < n.first {
					q := p
					q.last = n.first - 1
					next = append(next, q)
				}
				if p.last > n.last {
					q := p
					q.first = n.last + 1
					next = append(next, q)
				}
			}
			pieces = next
		}
		out = append(out, pieces...)
	}
	out = append(out, newer...)
	kept := out[:0]
	for _, b := range out {
		if b.last < start {
			continue
		}
		b.first = max(b.first, start)
		kept = append(kept, b)
	}
	slices.SortFunc(kept, func(a, b shareStateBatch) int { return cmp.Compare(a.first, b.first) })
	return kept
}
