package kcluster

// The share-group gauges: ShareGroup (the group as its coordinator holds
// it, and its share-partitions as their leaders hold them) and the
// ShareGroupStable and ShareAcknowledged conditions.

import (
	"cmp"
	"fmt"
	"slices"
)

// ShareGroupState is a share group (KIP-932): its members and assignments
// from its coordinator (Group's view), and its share-partitions.
type ShareGroupState struct {
	GroupState
	// Partitions are the share-partitions loaded by the running
	// partition leaders, by topic and partition.
	Partitions []SharePartitionState
	// Initialized are the partitions whose share-partition state the
	// group's coordinator has initialized, and Initializing those it is
	// initializing, by topic (Kafka's ShareGroupStatePartitionMetadata);
	// nil when the coordinator does not hold the group. Only initialized
	// partitions are assigned, and a leader answers a share fetch of
	// another UNKNOWN_TOPIC_OR_PARTITION.
	Initialized, Initializing map[string][]int32
}

// SharePartitionState is one share-partition as its leader holds it.
type SharePartitionState struct {
	Topic     string
	Partition int32
	Leader    int32
	// StartOffset is the share-partition start offset: every record
	// below it is acknowledged or archived. EndOffset is where the next
	// new record is acquired from.
	StartOffset, EndOffset int64
	// InFlight are the records between, by offset.
	InFlight []InFlightRecord
}

// InFlightRecord is a record between a share-partition's start and end.
type InFlightRecord struct {
	Offset int64
	// State is Kafka's name: AVAILABLE, ACQUIRED, ACKNOWLEDGED or
	// ARCHIVED.
	State         string
	DeliveryCount int16
	Member        string // the member holding an ACQUIRED record
}

func recordStateName(s int8) string {
	switch s {
	case recAvailable:
		return "AVAILABLE"
	case recAcquired:
		return "ACQUIRED"
	case recAcknowledged:
		return "ACKNOWLEDGED"
	case recArchived:
		return "ARCHIVED"
	}
	return "UNKNOWN"
}

// ShareGroup returns a share group's state: the group from its
// coordinator, and the share-partitions the running brokers lead. A group
// its coordinator does not hold (no member ever joined, or its coordinator
// is down) is Empty, with its share-partitions; ErrUnknownGroup is
// returned when there are none either, or the group is not a share group.
func (c *Cluster) ShareGroup(name string) (st ShareGroupState, retErr error) {
	g, err := c.Group(name)
	st = ShareGroupState{GroupState: g}
	if err == nil && g.Type != kindShare {
		return st, fmt.Errorf("%w: %s is a %s group", ErrUnknownGroup, name, g.Type)
	}
	if err != nil {
		st.Type, st.State = kindShare, stateEmpty
		defer func() {
			if len(st.Partitions) == 0 {
				retErr = err
			}
		}()
	}
	if err == nil && c.ext == nil {
		if b, berr := c.brokerByID(g.Coordinator); berr == nil && b != nil {
			_ = b.groups.withGroupNow(name, func(_ *groupShard, g *group) error {
				if g != nil && g.sg != nil {
					st.Initialized, st.Initializing = cloneAssignment(g.sg.initialized), cloneAssignment(g.sg.initializing)
				}
				return nil
			})
		}
	}
	for _, b := range c.running() {
		for _, sp := range b.shares.partitions(name) {
			if !b.leads(sp.rep, sp.leaderEpoch) {
				continue
			}
			ps := SharePartitionState{Topic: sp.topic, Partition: sp.key.partition, Leader: b.id}
			sp.mu.Lock()
			if sp.mu.closed {
				sp.mu.Unlock()
				continue
			}
			ps.StartOffset, ps.EndOffset = sp.mu.start, sp.mu.end
			for o := sp.mu.start; o < sp.mu.end; o++ {
				if r := sp.mu.inflight[o]; r != nil {
					ps.InFlight = append(ps.InFlight, InFlightRecord{Offset: o, State: recordStateName(r.state), DeliveryCount: r.count, Member: r.member})
				}
			}
			sp.mu.Unlock()
			st.Partitions = append(st.Partitions, ps)
		}
	}
	slices.SortFunc(st.Partitions, func(a, b SharePartitionState) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return st, nil
}

// ShareGroupStable holds when the share group is Stable with exactly
// members members, each at the group's assignment epoch.
func ShareGroupStable(group string, members int) Condition {
	return func(c *Cluster) bool {
		st, err := c.Group(group)
		if err != nil || st.Type != kindShare || st.State != stateStable || len(st.Members) != members {
			return false
		}
		for _, m := range st.Members {
			if m.Epoch != st.Generation {
				return false
			}
		}
		return true
	}
}

// ShareGroupInitialized holds when the share group's coordinator has
// initialized the share-partition state of partitions 0 to partitions-1
// of topic (the group's members subscribe to it, or an
// AlterShareGroupOffsets set it).
func ShareGroupInitialized(group, topic string, partitions int32) Condition {
	return func(c *Cluster) bool {
		st, err := c.ShareGroup(group)
		if err != nil {
			return false
		}
		for p := range partitions {
			if !slices.Contains(st.Initialized[topic], p) {
				return false
			}
		}
		return true
	}
}

// ShareAcknowledged holds when the group's share-partition of
// topic/partition, at its running leader, has its start offset at offset
// or beyond: every record below is acknowledged or archived.
func ShareAcknowledged(group, topic string, partition int32, offset int64) Condition {
	return func(c *Cluster) bool {
		st, err := c.ShareGroup(group)
		if err != nil {
			return false
		}
		for _, p := range st.Partitions {
			if p.Topic == topic && p.Partition == partition {
				return p.StartOffset >= offset
			}
		}
		return false
	}
}
