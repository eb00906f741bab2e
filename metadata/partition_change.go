package metadata

// Kafka's PartitionChangeBuilder: every change of a partition's leader,
// ISR or assignment is computed here, from the partition as it is and the
// targets the caller sets, so that the ISR, the eligible leader replicas
// (KIP-966) and the election follow one set of rules.
//
// With eligible.leader.replicas.version at 1 or more:
//   - While the target ISR is at least min.insync.replicas (capped at the
//     replication factor) the ELR is empty. Below it, the ELR is the
//     current ELR and the current ISR, less the target ISR and less a
//     replica whose broker shut down uncleanly: a replica that leaves the
//     ISR while the ISR is too small to advance the high watermark keeps
//     every committed record, so it may still lead cleanly.
//   - The ISR may become empty (the last member is fenced). A leader is
//     then elected from the ELR: a live ELR member becomes leader and the
//     whole ISR.
//   - LastKnownELR keeps the last leader when the ISR first becomes empty
//     (Kafka's balanced recovery); with the ISR and ELR both empty that
//     leader, once live again, is elected (uncleanly: it is then the whole
//     ISR). It is cleared once the partition has a leader.
//   - An unclean election clears the ELR.
//
// With the feature at 0 the ISR is never written empty (its last member
// stays, and only it can lead cleanly), and the ELR is cleared by any
// change of a partition that still has one.

import "slices"

// election is how a leader is chosen (Kafka's PartitionChangeBuilder
// Election).
type election int8

const (
	// electOnline keeps the leader if it is still valid, else takes the
	// first valid replica: an ISR member, or with the ISR empty an ELR
	// member.
	electOnline election = iota
	// electPreferred is electOnline trying the first replica first.
	electPreferred
	// electUnclean is electOnline falling back to any acceptable
	// replica (unclean.leader.election.enable).
	electUnclean
)

// changeBuilder computes one PartitionChange. Its targets start as the
// partition's current values; the caller changes the ones its operation
// changes and calls build.
type changeBuilder struct {
	p          *Partition
	acceptable func(int32) bool // may lead: registered, unfenced, ...
	minISR     int              // min.insync.replicas, at most the replication factor
	elr        bool             // eligible.leader.replicas.version >= 1
	election   election
	// uncleanShutdown is a replica whose broker restarted without a
	// clean shutdown, or -1: it leaves the ELR.
	uncleanShutdown int32

	isr, replicas, adding, removing, elrs []int32
	// dirs are the target's log dirs, aligned with replicas (KIP-858);
	// defaultDir places a replica that replicas gains.
	dirs       []DirectoryID
	defaultDir func(int32) DirectoryID
}

// changeLocked returns a builder for p, a partition of t, with the
// controller's election policy: acceptable leaders are live brokers
// (acceptable, when given, decides instead), the election is unclean if
// the topic allows it.
func (c *Controller) changeLocked(t *Topic, p *Partition, acceptable func(int32) bool) *changeBuilder {
	if acceptable == nil {
		acceptable = c.liveLocked
	}
	b := &changeBuilder{
		p: p, minISR: c.minISRLocked(t, p), elr: c.elrLocked(),
		uncleanShutdown: -1,
		isr:             slices.Clone(p.ISR), replicas: slices.Clone(p.Replicas),
		adding: slices.Clone(p.AddingReplicas), removing: slices.Clone(p.RemovingReplicas),
		elrs: slices.Clone(p.ELR), dirs: partitionDirs(p), defaultDir: c.defaultDirLocked,
	}
	// A replica whose log dir is offline may not lead (Kafka's
	// LeaderAcceptor), whatever else makes it acceptable.
	b.acceptable = func(r int32) bool {
		if !acceptable(r) {
			return false
		}
		d := b.defaultDir(r)
		if i := slices.Index(b.p.Replicas, r); i >= 0 {
			d = b.dirs[i]
		}
		return c.dirOnlineLocked(d, r)
	}
	if c.uncleanLocked(t) {
		b.election = electUnclean
	}
	return b
}

// liveLocked reports whether broker r is registered and unfenced.
func (c *Controller) liveLocked(r int32) bool {
	b := c.mu.state.Brokers[r]
	return b != nil && !b.Fenced
}

// elrLocked reports whether eligible leader replicas are kept
// (eligible.leader.replicas.version >= 1; its dependency on
// metadata.version is checked when it is set).
func (c *Controller) elrLocked() bool {
	return c.mu.state.Features[FeatureELRVersion] >= 1
}

// build returns the change, or nil when nothing changes.
func (b *changeBuilder) build() *PartitionChange {
	ch := &PartitionChange{TopicID: b.p.TopicID, Partition: b.p.Partition}
	b.completeReassignment()
	b.populateELR()
	b.tryElection(ch)
	b.recordELR(ch)
	if ch.ISR == nil && (len(b.isr) > 0 || b.elr) && !slices.Equal(b.isr, b.p.ISR) {
		ch.ISR = nonNil(b.isr)
	}
	b.recordLastKnownLeader(ch)
	if len(b.replicas) > 0 && !slices.Equal(b.replicas, b.p.Replicas) {
		ch.Replicas = b.replicas
	}
	if dirs := b.alignedDirs(); ch.Replicas != nil || !slices.Equal(dirs, partitionDirs(b.p)) {
		ch.Directories = dirs
	}
	if !slices.Equal(b.adding, b.p.AddingReplicas) {
		ch.AddingReplicas = nonNil(b.adding)
	}
	if !slices.Equal(b.removing, b.p.RemovingReplicas) {
		ch.RemovingReplicas = nonNil(b.removing)
	}
	if ch.Leader == nil && ch.ISR == nil && ch.Replicas == nil && ch.AddingReplicas == nil &&
		ch.RemovingReplicas == nil && ch.ELR == nil && ch.LastKnownELR == nil && ch.Directories == nil {
		return nil
	}
	return ch
}

// partitionDirs is p's replicas' dirs, aligned with its replicas
// (UNASSIGNED where p records none).
func partitionDirs(p *Partition) []DirectoryID {
	out := make([]DirectoryID, len(p.Replicas))
	for i, r := range p.Replicas {
		out[i] = p.Directory(r)
	}
	return out
}

// alignedDirs is the target dirs aligned with the target replicas: a
// replica that stays keeps its dir, a new one gets defaultDir's.
func (b *changeBuilder) alignedDirs() []DirectoryID {
	if len(b.replicas) == 0 {
		return b.dirs
	}
	out := make([]DirectoryID, len(b.replicas))
	for i, r := range b.replicas {
		if j := slices.Index(b.p.Replicas, r); j >= 0 && j < len(b.dirs) {
			out[i] = b.dirs[j]
		} else {
			out[i] = b.defaultDir(r)
		}
	}
	return out
}

// completeReassignment ends a reassignment whose adding replicas are all
// in the target ISR: the replicas become the target, the removing ones
// leave the ISR.
func (b *changeBuilder) completeReassignment() {
	if len(b.adding) == 0 {
		return
	}
	for _, r := range b.adding {
		if !slices.Contains(b.isr, r) {
			return
		}
	}
	b.replicas = without(b.replicas, b.removing)
	b.isr = intersect(b.isr, b.replicas)
	b.adding, b.removing = []int32{}, []int32{}
}

// populateELR is Kafka's maybePopulateTargetElr (see the top of the file).
func (b *changeBuilder) populateELR() {
	if !b.elr {
		return
	}
	if len(b.isr) >= b.minISR {
		b.elrs = []int32{}
		return
	}
	var out []int32
	for _, r := range b.replicas {
		if (slices.Contains(b.elrs, r) || slices.Contains(b.p.ISR, r)) &&
			!slices.Contains(b.isr, r) && r != b.uncleanShutdown {
			out = append(out, r)
		}
	}
	b.elrs = nonNil(out)
}

// valid reports whether r may become leader cleanly: an acceptable ISR
// member or, with the ISR empty, ELR member.
func (b *changeBuilder) valid(r int32) bool {
	return (slices.Contains(b.isr, r) || (len(b.isr) == 0 && slices.Contains(b.elrs, r))) && b.acceptable(r)
}

// lastKnownLeader is the last leader of a partition whose ISR and ELR are
// empty, if it may lead again (Kafka's canElectLastKnownLeader, which since
// KAFKA-19522 requires it to be acceptable), or -1.
func (b *changeBuilder) lastKnownLeader() int32 {
	if !b.elr || len(b.elrs) > 0 || len(b.isr) > 0 || len(b.p.LastKnownELR) != 1 {
		return -1
	}
	if r := b.p.LastKnownELR[0]; b.acceptable(r) {
		return r
	}
	return -1
}

// electLeader returns the leader the election chooses and whether the
// choice was unclean.
func (b *changeBuilder) electLeader() (int32, bool) {
	if b.election == electPreferred && len(b.replicas) > 0 && b.valid(b.replicas[0]) {
		return b.replicas[0], false
	}
	if b.p.Leader >= 0 && b.valid(b.p.Leader) {
		return b.p.Leader, false
	}
	for _, r := range b.replicas {
		if b.valid(r) {
			return r, false
		}
	}
	if r := b.lastKnownLeader(); r >= 0 {
		return r, true
	}
	if b.election == electUnclean {
		for _, r := range b.replicas {
			if b.acceptable(r) {
				return r, true
			}
		}
	}
	return -1, false
}

// tryElection sets the change's leader if the election changes it. A
// leader from the ELR becomes the ISR and leaves the ELR; an unclean one
// becomes the ISR.
func (b *changeBuilder) tryElection(ch *PartitionChange) {
	leader, unclean := b.electLeader()
	if leader == b.p.Leader {
		return
	}
	if slices.Contains(b.elrs, leader) {
		b.isr = []int32{leader}
		b.elrs = without(b.elrs, []int32{leader})
	}
	ch.Leader = &leader
	if unclean {
		ch.ISR = []int32{leader}
	}
}

// recordELR writes the target ELR into the change if it differs: empty
// after an unclean election or with the feature off.
func (b *changeBuilder) recordELR(ch *PartitionChange) {
	if ch.ISR != nil || !b.elr {
		b.elrs = []int32{}
	}
	if !slices.Equal(b.elrs, b.p.ELR) {
		ch.ELR = nonNil(b.elrs)
	}
}

// recordLastKnownLeader is Kafka's maybeUpdateLastKnownLeader: the leader
// is remembered when the ISR first becomes empty, and forgotten once the
// partition has (or keeps) a leader.
func (b *changeBuilder) recordLastKnownLeader(ch *PartitionChange) {
	if !b.elr {
		if len(b.p.LastKnownELR) > 0 {
			ch.LastKnownELR = []int32{}
		}
		return
	}
	lk := b.p.LastKnownELR
	switch {
	case ch.ISR != nil && len(ch.ISR) == 0 && b.p.Leader >= 0 && !(len(lk) == 1 && lk[0] == b.p.Leader):
		ch.LastKnownELR = []int32{b.p.Leader}
	case len(lk) > 0 && ((ch.Leader != nil && *ch.Leader >= 0) || (b.p.Leader >= 0 && (ch.Leader == nil || *ch.Leader >= 0))):
		ch.LastKnownELR = []int32{}
	}
}

// nonNil returns s, or an empty non-nil slice for nil (a change's empty
// slice clears a field; nil leaves it).
func nonNil(s []int32) []int32 {
	if s == nil {
		return []int32{}
	}
	return s
}
