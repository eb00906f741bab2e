package kcluster

// The share-partition state's persister (Kafka's Persister, as
// DefaultStatePersister calls the share coordinator). A share-partition
// leader keeps its state (share_partition.go) in memory and writes every
// change through a sharePersister before it answers; a new leader reads
// the state back. The interface has the shapes of Kafka's state RPCs:
// InitializeShareGroupState, ReadShareGroupState, WriteShareGroupState,
// DeleteShareGroupState and ReadShareGroupStateSummary.
//
// memSharePersister is kcluster's stand-in for the share coordinator and
// its __share_group_state topic: the state is held by the Cluster, in
// memory, beside every broker rather than in one. It survives the
// partition leader's kill or restart within one cluster, so a new leader
// reads what the old one wrote, and it fences a deposed leader's writes
// by leader epoch as the share coordinator does. It is not replicated,
// it does not survive Close (even with Dir), and Cut and Isolate do not
// reach it, as no network is crossed: the share coordinator on the
// coordinator runtime, with __share_group_state in Kafka's ShareSnapshot
// and ShareUpdate records and the five RPCs over the network package,
// will take its place behind the same interface.

import (
	"cmp"
	"fmt"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kcluster/kcluster/internal/invariants"
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

// memSharePersister is the in-memory stand-in (see the file comment).
// Its mutex guards the maps; each call is atomic.
type memSharePersister struct {
	mu     sync.Mutex
	states map[sharePartitionKey]*shareState
	// Invariants builds: every offset ever written ACKNOWLEDGED or
	// ARCHIVED, by share-partition. Such a record is done; a write
	// that changes it again (a record acknowledged twice, or delivered
	// after it was archived) is reported to violated.
	done     map[sharePartitionKey]map[int64]int8
	violated func(string)
}

func newMemSharePersister(violated func(string)) *memSharePersister {
	return &memSharePersister{states: map[sharePartitionKey]*shareState{}, done: map[sharePartitionKey]map[int64]int8{}, violated: violated}
}

// checkDoneLocked is the invariants builds' check of a write: no done
// record changes.
func (p *memSharePersister) checkDoneLocked(key sharePartitionKey, w shareState) {
	done := p.done[key]
	if done == nil {
		done = map[int64]int8{}
		p.done[key] = done
	}
	for _, b := range w.batches {
		for o := b.first; o <= b.last; o++ {
			if was, ok := done[o]; ok {
				p.violated(fmt.Sprintf("share-partition %s %x/%d: offset %d written %s after it was %s (leader epoch %d)",
					key.group, key.topicID[:4], key.partition, o, recordStateName(b.state), recordStateName(was), w.leaderEpoch))
			}
			if b.state == recAcknowledged || b.state == recArchived {
				done[o] = b.state
			}
		}
	}
}

func (p *memSharePersister) initializeState(key sharePartitionKey, stateEpoch int32, startOffset int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st := p.states[key]; st != nil && stateEpoch < st.stateEpoch {
		return kerr.FencedStateEpoch
	}
	p.states[key] = &shareState{stateEpoch: stateEpoch, leaderEpoch: -1, startOffset: startOffset}
	delete(p.done, key)
	return nil
}

func (p *memSharePersister) readState(key sharePartitionKey, leaderEpoch int32) (shareState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.states[key]
	if st == nil {
		st = &shareState{leaderEpoch: -1, startOffset: -1}
		p.states[key] = st
	}
	if leaderEpoch < st.leaderEpoch {
		return shareState{}, kerr.FencedLeaderEpoch
	}
	st.leaderEpoch = leaderEpoch
	out := *st
	out.batches = slices.Clone(st.batches)
	return out, nil
}

func (p *memSharePersister) writeState(key sharePartitionKey, w shareState) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.states[key]
	if st == nil {
		return kerr.UnknownTopicOrPartition
	}
	if w.leaderEpoch < st.leaderEpoch {
		return kerr.FencedLeaderEpoch
	}
	if w.stateEpoch < st.stateEpoch {
		return kerr.FencedStateEpoch
	}
	if invariants.Enabled && p.violated != nil {
		p.checkDoneLocked(key, w)
	}
	st.leaderEpoch = w.leaderEpoch
	if w.startOffset > st.startOffset {
		st.startOffset = w.startOffset
	}
	st.batches = mergeStateBatches(st.batches, w.batches, st.startOffset)
	return nil
}

func (p *memSharePersister) deleteState(key sharePartitionKey) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.states, key)
	delete(p.done, key)
	return nil
}

func (p *memSharePersister) readSummary(key sharePartitionKey) (int32, int64, int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.states[key]
	if st == nil {
		return 0, -1, 0, nil
	}
	var done int64
	for _, b := range st.batches {
		if b.state == recAcknowledged || b.state == recArchived {
			done += b.last - b.first + 1
		}
	}
	return st.stateEpoch, st.startOffset, done, nil
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
