package kcluster

// The initialization of a share group's share-partitions by its group
// coordinator (Kafka 4.2's GroupMetadataManager
// maybeCreateInitializeShareGroupStateRequest and GroupCoordinatorService
// persisterInitialize), kept in the ShareGroupStatePartitionMetadata
// record:
//
//  1. A heartbeat finds the partitions of the subscribed topics the group
//     has neither initialized nor is initializing, and writes them as
//     initializing with the rest of the heartbeat's records.
//  2. The coordinator's goroutine (groupCoordinator.tick) then starts a
//     goroutine for the group, which sends the share coordinator
//     InitializeShareGroupState for each, at the group epoch as state
//     epoch and start offset -1 (uninitialized): the share-partition's
//     leader resolves share.auto.offset.reset when it first loads it.
//     Each partition initialized moves to initialized; one that failed
//     (and those after it) leaves the initializing set, for a later
//     heartbeat to try again (Kafka's uninitializeShareGroupState).
//  3. Only initialized partitions are assigned (assignShareLocked). The
//     next heartbeat sees initialized partitions outside the target and
//     bumps the group epoch, so the members get them.
//
// A partition leader never initializes a state itself: one it reads that
// does not exist answers its share fetches UNKNOWN_TOPIC_OR_PARTITION, as
// Kafka's SharePartition does. Partitions still initializing when the
// group's shard loads on a new coordinator are initialized again (an
// initialization at the same state epoch is idempotent).

import (
	"slices"
	"time"
)

// subscribedPartitionsLocked returns every partition of the topics the
// group's members subscribe to, by topic name, with the topics' ids.
func (gs *groupShard) subscribedPartitionsLocked(sg *shareGroup) map[string][]int32 {
	b := gs.gc.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := map[string][]int32{}
	for _, m := range sg.members {
		for _, t := range m.topics {
			if tt := b.mu.state.Topics[t]; tt != nil && out[t] == nil {
				ps := make([]int32, len(tt.Partitions))
				for i := range ps {
					ps[i] = int32(i)
				}
				out[t] = ps
			}
		}
	}
	return out
}

// initializedUnassignedLocked reports whether an initialized partition of
// a subscribed topic is in no member's target.
func (gs *groupShard) initializedUnassignedLocked(sg *shareGroup) bool {
	subscribed := gs.subscribedPartitionsLocked(sg)
	for t, ps := range sg.initialized {
		if subscribed[t] == nil {
			continue
		}
		for _, p := range ps {
			found := false
			for _, a := range sg.target {
				if slices.Contains(a[t], p) {
					found = true
					break
				}
			}
			if !found && slices.Contains(subscribed[t], p) {
				return true
			}
		}
	}
	return false
}

// maybeInitializeShareLocked adds the subscribed partitions neither
// initialized nor initializing to the initializing set (step 1).
func (gs *groupShard) maybeInitializeShareLocked(sg *shareGroup) {
	for t, ps := range gs.subscribedPartitionsLocked(sg) {
		for _, p := range ps {
			if !slices.Contains(sg.initialized[t], p) && !slices.Contains(sg.initializing[t], p) {
				sg.initializing[t] = append(sg.initializing[t], p)
				slices.Sort(sg.initializing[t])
			}
		}
	}
}

// initializeShareStates does step 2 for every group with partitions
// initializing and no initialization in flight: one goroutine a group
// (counted in the broker's WaitGroup, ended by its context), so a share
// coordinator that does not answer holds up no other group and none of
// the coordinator's deadlines. It returns zero: what it starts kicks run
// when done.
func (gc *groupCoordinator) initializeShareStates(time.Time) time.Time {
	for _, c := range gc.rt.contexts() {
		c.locked(func(gs *groupShard) {
			for _, name := range sortedKeys(gs.groups) {
				g := gs.groups[name]
				if g.sg == nil || len(g.sg.initializing) == 0 || gs.initInFlight[name] {
					continue
				}
				if gs.initInFlight == nil {
					gs.initInFlight = map[string]bool{}
				}
				gs.initInFlight[name] = true
				parts, ids, epoch := cloneAssignment(g.sg.initializing), gs.topicIDs(), g.sg.epoch
				gc.b.wg.Add(1)
				go func() {
					defer gc.b.wg.Done()
					gc.initializeGroup(c, name, epoch, parts, ids)
				}()
			}
		})
	}
	return time.Time{}
}

// initializeGroup initializes one group's partitions at the share
// coordinator, then records the outcome in the group: initialized, or
// (failed, or not tried after a failure) no longer initializing.
func (gc *groupCoordinator) initializeGroup(c *coordinatorContext[*groupShard], group string, epoch int32, parts map[string][]int32, ids map[string][16]byte) {
	done := map[string][]int32{}
	var failed error
	for _, t := range sortedKeys(parts) {
		id, ok := ids[t]
		if !ok {
			continue
		}
		for _, p := range parts[t] {
			if failed != nil {
				break
			}
			if failed = gc.b.shares.persister.initializeState(sharePartitionKey{group, id, p}, epoch, -1); failed != nil {
				gc.b.log.Debug("initializing share-partition", "group", group, "topic", t, "partition", p, "err", failed)
				break
			}
			done[t] = append(done[t], p)
		}
	}
	c.locked(func(gs *groupShard) {
		delete(gs.initInFlight, group)
		g := gs.groups[group]
		if g == nil || g.sg == nil {
			return
		}
		before := g.sg.clone()
		sg := g.sg
		for t, ps := range parts {
			for _, p := range ps {
				if !slices.Contains(sg.initializing[t], p) {
					continue
				}
				sg.initializing[t] = slices.DeleteFunc(sg.initializing[t], func(q int32) bool { return q == p })
				if len(sg.initializing[t]) == 0 {
					delete(sg.initializing, t)
				}
				if slices.Contains(done[t], p) && !slices.Contains(sg.initialized[t], p) {
					sg.initialized[t] = append(sg.initialized[t], p)
					slices.Sort(sg.initialized[t])
				}
			}
		}
		if err := gs.writeLocked(shareGroupRecords(group, before, sg, gs.topicIDs())); err != nil {
			g.sg = before // still initializing: the next kick tries again
			gs.gc.b.log.Debug("recording share-partition initialization", "group", group, "err", err)
		}
	})
	gc.b.c.notifyEvent()
}
