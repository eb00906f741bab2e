package metadata

// Partition operations an operator runs: adding partitions, moving
// replicas (KIP-455 reassignment) and electing leaders (KIP-460).
//
// A reassignment is two PartitionChange records. The first makes the
// partition's replicas the union of the target and the current replicas,
// with AddingReplicas (target minus current) and RemovingReplicas (current
// minus target): the adding replicas' brokers open them and fetch from the
// leader like any follower. When the leader's AlterPartition brings every
// adding replica into the ISR, the controller completes the move in the
// same record: the replicas become the target, the removing replicas leave
// the ISR, and if the leader is one of them leadership moves to the first
// target replica in the ISR. So the data is fully copied before any old
// replica goes, and a topic's replication factor can be raised on a live
// cluster.

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
)

// MaxPartitionsPerRequest bounds the partitions one CreateTopics request
// (over all its topics) or one CreatePartitions call may create: Kafka's
// controller refuses more than 10,000 per request with POLICY_VIOLATION
// (ReplicationControlManager.MAX_PARTITIONS_PER_BATCH), and without a bound
// a request of a few bytes claiming 2^31-1 partitions would take the
// process's memory.
const MaxPartitionsPerRequest = 10000

// CreatePartitions raises topic's partition count to count, placing the
// new partitions' replicas round-robin over unfenced brokers with the
// topic's replication factor, or as assignment says (one replica list per
// new partition). More than MaxPartitionsPerRequest new partitions is
// kerr.PolicyViolation.
func (c *Controller) CreatePartitions(ctx context.Context, topic string, count int32, assignment [][]int32, validateOnly bool) error {
	if err := c.lockActive(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	st := c.mu.state
	t := st.Topics[topic]
	if t == nil {
		return kerr.UnknownTopicOrPartition
	}
	have := int32(len(t.Partitions))
	if count <= have {
		return kerr.InvalidPartitions
	}
	if count-have > MaxPartitionsPerRequest {
		return kerr.PolicyViolation
	}
	rf := len(t.Partitions[0].Replicas) - len(t.Partitions[0].AddingReplicas)
	if assignment != nil {
		if int32(len(assignment)) != count-have {
			return kerr.InvalidReplicaAssignment
		}
		for _, rs := range assignment {
			if len(rs) == 0 || len(rs) != rf {
				return kerr.InvalidReplicaAssignment
			}
			for i, b := range rs {
				if st.Brokers[b] == nil || slices.Contains(rs[:i], b) {
					return kerr.InvalidReplicaAssignment
				}
			}
		}
	} else {
		live := c.liveBrokersLocked()
		if rf > len(live) {
			return kerr.InvalidReplicationFactor
		}
		start := c.mu.placement
		for p := have; p < count; p++ {
			rs := make([]int32, rf)
			for i := range rs {
				rs[i] = live[(start+int(p)+i)%len(live)]
			}
			assignment = append(assignment, rs)
		}
	}
	if validateOnly {
		return nil
	}
	c.mu.placement++
	var recs []Record
	for i, rs := range assignment {
		leader := int32(-1)
		var isr []int32
		for _, b := range rs {
			if br := st.Brokers[b]; br != nil && !br.Fenced {
				isr = append(isr, b)
				if leader < 0 {
					leader = b
				}
			}
		}
		recs = append(recs, &PartitionRecord{TopicID: t.ID, Partition: have + int32(i), Replicas: slices.Clone(rs), ISR: isr, Leader: leader, Directories: c.defaultDirsLocked(rs)})
	}
	return c.proposeLocked(ctx, recs...)
}

func (c *Controller) liveBrokersLocked() []int32 {
	var live []int32
	for _, id := range c.mu.state.BrokerIDs() {
		if !c.mu.state.Brokers[id].Fenced {
			live = append(live, id)
		}
	}
	return live
}

// without returns a's elements not in b, in a's order.
func without(a, b []int32) []int32 {
	out := []int32{}
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// intersect returns a's elements also in b, in a's order.
func intersect(a, b []int32) []int32 {
	out := []int32{}
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// Reassign starts moving a partition to the target replicas, or, with a
// nil target, cancels the reassignment in progress (reverting to the
// replicas it started from). allowRFChange false refuses a target of
// another size (KIP-1102).
func (c *Controller) Reassign(ctx context.Context, topic string, part int32, target []int32, allowRFChange bool) error {
	if err := c.lockActive(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	st := c.mu.state
	t := st.Topics[topic]
	if t == nil || part < 0 || int(part) >= len(t.Partitions) {
		return kerr.UnknownTopicOrPartition
	}
	p := t.Partitions[part]
	orig := without(p.Replicas, p.AddingReplicas)
	if target == nil {
		if len(p.AddingReplicas) == 0 && len(p.RemovingReplicas) == 0 {
			return kerr.NoReassignmentInProgress
		}
		return c.proposeChangeLocked(ctx, c.finishLocked(p, orig))
	}
	if len(target) == 0 {
		return kerr.InvalidReplicaAssignment
	}
	for i, b := range target {
		if st.Brokers[b] == nil || slices.Contains(target[:i], b) {
			return kerr.InvalidReplicaAssignment
		}
	}
	if !allowRFChange && len(target) != len(orig) {
		return kerr.InvalidReplicationFactor
	}
	adding := without(target, orig)
	removing := without(orig, target)
	if len(adding) == 0 {
		// Nothing to copy: the move completes at once (when some ISR
		// member stays).
		if len(intersect(p.ISR, target)) == 0 {
			return kerr.InvalidReplicaAssignment
		}
		return c.proposeChangeLocked(ctx, c.finishLocked(p, target))
	}
	b := c.changeLocked(t, p, nil)
	b.replicas = append(slices.Clone(target), removing...)
	b.adding, b.removing = adding, removing
	return c.proposeChangeLocked(ctx, b.build())
}

// proposeChangeLocked proposes ch unless it is nil (nothing changes).
func (c *Controller) proposeChangeLocked(ctx context.Context, ch *PartitionChange) error {
	if ch == nil {
		return nil
	}
	return c.proposeLocked(ctx, ch)
}

// finishLocked is the change that makes replicas the partition's
// assignment with the ISR cut to them (or kept whole if none of it
// stays), clears the reassignment state, and moves leadership if the
// leader is not among them; nil if nothing changes.
func (c *Controller) finishLocked(p *Partition, replicas []int32) *PartitionChange {
	b := c.changeLocked(c.mu.state.TopicsByID[p.TopicID], p, nil)
	b.replicas = slices.Clone(replicas)
	if isr := intersect(p.ISR, replicas); len(isr) > 0 {
		b.isr = isr
	}
	b.adding, b.removing = []int32{}, []int32{}
	return b.build()
}

// ElectLeader elects a leader for one partition (KIP-460): preferred moves
// leadership to the first replica when it is live and in the ISR (or, with
// the ISR empty, the ELR); unclean gives a leaderless partition a leader,
// from the ISR or ELR if it can, else any live replica (which then is the
// whole ISR).
func (c *Controller) ElectLeader(ctx context.Context, topic string, part int32, unclean bool) error {
	if err := c.lockActive(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	t := c.mu.state.Topics[topic]
	if t == nil || part < 0 || int(part) >= len(t.Partitions) {
		return kerr.UnknownTopicOrPartition
	}
	p := t.Partitions[part]
	b := c.changeLocked(t, p, nil)
	if !unclean {
		if p.Leader == p.Replicas[0] {
			return kerr.ElectionNotNeeded
		}
		b.election = electPreferred
		ch := b.build()
		if ch == nil || ch.Leader == nil || *ch.Leader != p.Replicas[0] {
			return kerr.PreferredLeaderNotAvailable
		}
		return c.proposeLocked(ctx, ch)
	}
	if p.Leader >= 0 && c.liveLocked(p.Leader) {
		return kerr.ElectionNotNeeded
	}
	b.election = electUnclean
	ch := b.build()
	if ch == nil || ch.Leader == nil || *ch.Leader < 0 {
		return kerr.EligibleLeadersNotAvailable
	}
	return c.proposeLocked(ctx, ch)
}
