package kcluster

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

// GroupState is a snapshot of one group as its coordinator holds it.
type GroupState struct {
	Group string
	// Type is "classic" (JoinGroup/SyncGroup, or offsets only),
	// "consumer" (KIP-848 ConsumerGroupHeartbeat) or "share" (KIP-932
	// ShareGroupHeartbeat; ShareGroup has its share-partitions).
	Type string
	// State is Kafka's name: Empty, PreparingRebalance,
	// CompletingRebalance, Stable (classic); Empty, Assigning,
	// Reconciling, Stable (consumer).
	State string
	// Generation is a classic group's generation, or a consumer group's
	// group epoch.
	Generation   int32
	ProtocolType string // classic: e.g. "consumer"
	Protocol     string // classic: the chosen assignor; consumer: the server assignor
	Leader       string // classic: the leader's member id
	Coordinator  int32  // the broker coordinating the group
	Members      []GroupMember
	// Offsets holds the committed offsets by topic and partition.
	Offsets map[string]map[int32]int64
	// Lag is the partition's high watermark minus the committed offset,
	// for every committed partition whose leader is running.
	Lag map[string]map[int32]int64
}

// GroupMember is one member of a group.
type GroupMember struct {
	ID         string
	InstanceID string // static membership (KIP-345); "" for none
	ClientID   string
	ClientHost string
	// Epoch is a consumer group member's epoch (0 for classic members).
	Epoch int32
	// Assigned is the member's assignment by topic: for classic groups
	// of protocol type "consumer" decoded from the leader's assignment,
	// for consumer groups what the member has reconciled to.
	Assigned map[string][]int32
}

// ErrUnknownGroup is returned by Group for a group no running coordinator
// has (never created, deleted, or its coordinator is down or loading).
var ErrUnknownGroup = errors.New("kcluster: unknown group")

// Group returns the state of a consumer group, from its coordinator.
func (c *Cluster) Group(name string) (GroupState, error) {
	if c.ext != nil {
		return c.ext.group(c, name)
	}
	st := GroupState{Group: name, Coordinator: -1}
	var leader int32 = -1
	c.viewState(func(s *metadata.State) {
		t := s.Topics[offsetsTopic]
		if t == nil || len(t.Partitions) == 0 {
			return
		}
		leader = t.Partitions[keyPartition(name, int32(len(t.Partitions)))].Leader
	})
	if leader < 0 {
		return st, fmt.Errorf("%w: %s (no coordinator)", ErrUnknownGroup, name)
	}
	b, err := c.brokerByID(leader)
	if err != nil || b == nil {
		return st, fmt.Errorf("%w: %s (coordinator %d is down)", ErrUnknownGroup, name, leader)
	}
	st.Coordinator = leader
	found := false
	snap := st
	err = b.groups.withGroupNow(name, func(gs *groupShard, g *group) error {
		if g == nil {
			return nil
		}
		found = true
		g.snapshotLocked(&snap)
		return nil
	})
	if err != nil || !found {
		return st, fmt.Errorf("%w: %s", ErrUnknownGroup, name)
	}
	st = snap
	st.Lag = map[string]map[int32]int64{}
	for t, ps := range st.Offsets {
		for p, off := range ps {
			if ps, err := c.PartitionState(t, p); err == nil && ps.HighWatermark >= 0 {
				if st.Lag[t] == nil {
					st.Lag[t] = map[int32]int64{}
				}
				st.Lag[t][p] = max(ps.HighWatermark-off, 0)
			}
		}
	}
	return st, nil
}

func (g *group) snapshotLocked(st *GroupState) {
	st.Type = g.kind
	st.Offsets = map[string]map[int32]int64{}
	for t, ps := range g.offsets {
		st.Offsets[t] = map[int32]int64{}
		for p, o := range ps {
			st.Offsets[t][p] = o.offset
		}
	}
	if g.kind == kindConsumer && g.cg != nil {
		st.State, st.Generation, st.ProtocolType, st.Protocol = g.cg.state, g.cg.epoch, "consumer", g.cg.assignor
		for _, id := range sortedKeys(g.cg.members) {
			m := g.cg.members[id]
			gm := GroupMember{ID: m.id, ClientID: m.clientID, ClientHost: m.clientHost, Epoch: m.epoch, Assigned: map[string][]int32{}}
			if m.instanceID != nil {
				gm.InstanceID = *m.instanceID
			}
			for t, ps := range m.assigned {
				gm.Assigned[t] = slices.Sorted(slices.Values(ps))
			}
			st.Members = append(st.Members, gm)
		}
		return
	}
	if g.kind == kindShare && g.sg != nil {
		st.State, st.Generation, st.ProtocolType, st.Protocol = g.sg.state, g.sg.epoch, "share", "simple"
		for _, id := range sortedKeys(g.sg.members) {
			m := g.sg.members[id]
			gm := GroupMember{ID: m.id, ClientID: m.clientID, ClientHost: m.clientHost, Epoch: m.epoch, Assigned: map[string][]int32{}}
			for t, ps := range m.assigned {
				gm.Assigned[t] = slices.Sorted(slices.Values(ps))
			}
			st.Members = append(st.Members, gm)
		}
		return
	}
	st.State, st.Generation, st.ProtocolType, st.Protocol, st.Leader = g.state, g.generation, g.protocolType, g.protocol, g.leader
	for _, id := range g.joinOrder {
		m := g.members[id]
		gm := GroupMember{ID: m.id, ClientID: m.clientID, ClientHost: m.clientHost, Assigned: map[string][]int32{}}
		if m.instanceID != nil {
			gm.InstanceID = *m.instanceID
		}
		if g.protocolType == "consumer" && len(m.assignment) > 0 {
			var a kmsg.ConsumerMemberAssignment
			if a.ReadFrom(m.assignment) == nil {
				for _, t := range a.Topics {
					gm.Assigned[t.Topic] = slices.Sorted(slices.Values(t.Partitions))
				}
			}
		}
		st.Members = append(st.Members, gm)
	}
}

// GroupStable holds when group is Stable with exactly members members
// (classic: the leader's assignment is in; consumer: every member has
// reconciled to its target assignment).
func GroupStable(group string, members int) Condition {
	return func(c *Cluster) bool {
		st, err := c.Group(group)
		return err == nil && st.State == "Stable" && len(st.Members) == members
	}
}

// GroupCommitted holds when group has committed at least offset for
// topic/partition.
func GroupCommitted(group, topic string, partition int32, offset int64) Condition {
	return func(c *Cluster) bool {
		st, err := c.Group(group)
		return err == nil && st.Offsets[topic] != nil && st.Offsets[topic][partition] >= offset
	}
}

// Groups returns the names of the groups the running coordinators hold,
// sorted.
func (c *Cluster) Groups() []string {
	if c.ext != nil {
		return c.ext.groups(c)
	}
	return c.coordinatorKeys(func(b *broker) []string {
		names, _ := gather(b.groups.rt, func(gs *groupShard) []string { return slices.Collect(maps.Keys(gs.groups)) })
		return names
	})
}
