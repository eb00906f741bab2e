package kcluster

// KIP-848 consumer groups: the coordinator owns the assignment. Every
// member change (join, leave, expiry, a new subscription, a change in the
// subscribed topics' metadata) bumps the group epoch and recomputes the
// target assignment with the group's server-side assignor (uniform or
// range). Each member then reconciles to its target on its heartbeats, as
// Kafka's CurrentAssignmentBuilder does: partitions it must give up are
// revoked first (the member keeps its epoch until it acknowledges by no
// longer reporting them), and partitions another member still owns are
// withheld until released; a member with its whole target is Stable at
// the target epoch. Runs with the group's shard locked, like
// group_classic.go.
//
// The group's state is persisted as Kafka's GroupMetadataManager
// persists it, in records of the group's __consumer_offsets partition
// (group_consumer_records.go): a heartbeat (or an expiry) changes the
// group in memory, the change is written as the records that describe it,
// and the change is undone if they cannot be appended. A new coordinator
// replays them, so members keep their epochs and assignments across a
// coordinator failover.

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/internal/grouprecords"
)

// serverAssignors are the assignors a consumer group may name, the first
// the default (group.consumer.assignors).
var serverAssignors = []string{"uniform", "range"}

// Member epochs with a meaning of their own (Kafka's
// ConsumerGroupMember.LEAVE_GROUP_*).
const (
	leaveEpoch       = -1 // the member leaves
	leaveStaticEpoch = -2 // a static member leaves for a restart and keeps its place
)

// consumerGroup is a KIP-848 consumer group's state.
type consumerGroup struct {
	state           string
	epoch           int32 // group epoch
	assignmentEpoch int32
	assignor        string
	members         map[string]*cgMember
	target          map[string]map[string][]int32 // member → topic → partitions
	// metadataHash is the hash of the subscribed topics' metadata at the
	// last epoch bump (KIP-1101): a different hash bumps the epoch.
	metadataHash int64
}

type cgMember struct {
	id                   string
	instanceID           *string
	rackID               *string
	clientID, clientHost string
	// epoch is the member epoch, leaveStaticEpoch for a static member
	// away for a restart.
	epoch, prevEpoch int32
	state            int8     // grouprecords.Member*: where its reconciliation is
	topics           []string // subscribed topic names
	regex            *string
	assignor         string
	rebalance        time.Duration
	deadline         time.Time          // session expiry
	revokeDeadline   time.Time          // unrevoked partitions must be released by then
	assigned         map[string][]int32 // current assignment
	revoking         map[string][]int32 // partitions pending revocation
}

func newConsumerGroup() *consumerGroup {
	return &consumerGroup{state: stateEmpty, members: map[string]*cgMember{}, target: map[string]map[string][]int32{}, assignor: serverAssignors[0]}
}

func newCGMember(id string) *cgMember {
	return &cgMember{id: id, assigned: map[string][]int32{}, revoking: map[string][]int32{}}
}

// staticMember returns the member holding instance id, or nil.
func (cg *consumerGroup) staticMember(instanceID string) *cgMember {
	for _, m := range cg.members {
		if m.instanceID != nil && *m.instanceID == instanceID {
			return m
		}
	}
	return nil
}

func cgError(code int16, msg string) *kmsg.ConsumerGroupHeartbeatResponse {
	r := kmsg.NewPtrConsumerGroupHeartbeatResponse()
	r.ErrorCode = code
	if msg != "" {
		r.ErrorMessage = kmsg.StringPtr(msg)
	}
	return r
}

// heartbeatConsumerLocked handles a ConsumerGroupHeartbeat: it changes the
// group (heartbeatChangeLocked), then writes the records of the change;
// if the request is refused or the records cannot be written, the group
// is as it was.
func (gs *groupShard) heartbeatConsumerLocked(req *kmsg.ConsumerGroupHeartbeatRequest, clientID, clientHost string, now time.Time) *kmsg.ConsumerGroupHeartbeatResponse {
	switch {
	case req.Group == "":
		return cgError(kerr.InvalidRequest.Code, "GroupId can't be empty.")
	case req.MemberEpoch == 0 && req.Version >= 1 && req.MemberID == "":
		return cgError(kerr.InvalidRequest.Code, "MemberId can't be empty.")
	case req.MemberEpoch == 0 && req.RebalanceTimeoutMillis == -1:
		return cgError(kerr.InvalidRequest.Code, "RebalanceTimeoutMs must be provided in first request.")
	case req.MemberEpoch == 0 && len(req.Topics) > 0:
		return cgError(kerr.InvalidRequest.Code, "TopicPartitions must be empty when (re-)joining.")
	case req.MemberEpoch == 0 && req.SubscribedTopicNames == nil && req.SubscribedTopicRegex == nil:
		return cgError(kerr.InvalidRequest.Code, "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
	case req.MemberEpoch < leaveStaticEpoch:
		return cgError(kerr.InvalidRequest.Code, "MemberEpoch is invalid.")
	case req.MemberEpoch == leaveStaticEpoch && req.InstanceID == nil:
		return cgError(kerr.InvalidRequest.Code, "InstanceId can't be null.")
	case req.ServerAssignor != nil && !slices.Contains(serverAssignors, *req.ServerAssignor):
		return cgError(kerr.UnsupportedAssignor.Code, "ServerAssignor "+*req.ServerAssignor+" is not supported.")
	}
	snap := gs.snapshotLocked(req.Group)
	resp := gs.heartbeatChangeLocked(req, clientID, clientHost, now)
	if resp.ErrorCode != 0 {
		gs.restoreLocked(snap)
		return resp
	}
	if err := gs.persistConsumerLocked(snap); err != nil {
		gs.restoreLocked(snap)
		return cgError(errCode(err), "")
	}
	gs.gc.kick()
	gs.gc.b.c.notifyEvent()
	return resp
}

// heartbeatChangeLocked applies a heartbeat to the group in memory, with
// Kafka's checks in Kafka's order (GroupMetadataManager's
// consumerGroupHeartbeat and consumerGroupLeave).
func (gs *groupShard) heartbeatChangeLocked(req *kmsg.ConsumerGroupHeartbeatRequest, clientID, clientHost string, now time.Time) *kmsg.ConsumerGroupHeartbeatResponse {
	cfg := gs.gc.cfg
	g := gs.groups[req.Group]
	if g != nil && g.kind == kindShare {
		return cgError(kerr.GroupIDNotFound.Code, "Group "+req.Group+" is not a consumer group.")
	}
	if g != nil && g.kind == kindClassic {
		if req.MemberEpoch != 0 || !g.isEmptyState() {
			return cgError(kerr.GroupIDNotFound.Code, "Group "+req.Group+" is not a consumer group.")
		}
		// An empty classic group becomes a consumer group; its
		// GroupMetadata is tombstoned (persistConsumerLocked).
		g.resetClassic(now)
		g.kind = kindConsumer
	}
	if g == nil {
		// A member that is not joining (epoch != 0), or one leaving,
		// names a group this coordinator does not have: Kafka's
		// getOrMaybeCreateConsumerGroup and consumerGroupLeave answer
		// GROUP_ID_NOT_FOUND, and the member rejoins with epoch 0.
		if req.MemberEpoch != 0 {
			return cgError(kerr.GroupIDNotFound.Code, "Consumer group "+req.Group+" not found.")
		}
		g = gs.getOrCreateLocked(req.Group)
		g.kind = kindConsumer
	}
	if g.cg == nil {
		g.cg = newConsumerGroup()
	}
	cg := g.cg

	if req.MemberEpoch < 0 {
		return gs.leaveConsumerLocked(g, req, now)
	}

	// Kafka's throwIfConsumerGroupIsFull, before the member is looked up.
	if int32(len(cg.members)) >= cfg.cgMaxSize && (req.MemberID == "" || cg.members[req.MemberID] == nil) {
		return cgError(kerr.GroupMaxSizeReached.Code, "The consumer group has reached its maximum capacity of "+itoa(cfg.cgMaxSize)+" members.")
	}
	memberID := req.MemberID
	if memberID == "" {
		memberID = newMemberID("")[1:]
	}
	var owned map[string][]int32
	if req.Topics != nil {
		owned = gs.topicNames(req.Topics)
	}

	var m *cgMember
	changed := false
	if req.InstanceID != nil {
		// A static member (Kafka's getOrMaybeSubscribeStaticConsumerGroupMember).
		existing := cg.staticMember(*req.InstanceID)
		switch {
		case req.MemberEpoch == 0 && existing == nil:
			if m = cg.members[memberID]; m == nil {
				m, changed = newCGMember(memberID), true
				cg.members[memberID] = m
			}
		case req.MemberEpoch == 0:
			if existing.epoch != leaveStaticEpoch {
				return cgError(kerr.UnreleasedInstanceID.Code, "Static member "+memberID+" with instance id "+*req.InstanceID+
					" cannot join the group because the instance id is owned by "+existing.id+" member.")
			}
			// The static member is back under a new member id: it
			// replaces its old self, with its assignment and target,
			// at epoch 0; it is at the target epoch again after this
			// heartbeat's reconciliation, without a rebalance.
			m = &cgMember{
				id: memberID, instanceID: existing.instanceID, rackID: existing.rackID,
				clientID: existing.clientID, clientHost: existing.clientHost,
				topics: existing.topics, regex: existing.regex, assignor: existing.assignor, rebalance: existing.rebalance,
				assigned: existing.assigned, revoking: existing.revoking,
			}
			target := cg.target[existing.id]
			delete(cg.members, existing.id)
			delete(cg.target, existing.id)
			cg.members[memberID], cg.target[memberID] = m, target
		case existing == nil:
			return cgError(kerr.UnknownMemberID.Code, "Instance id "+*req.InstanceID+" is unknown.")
		case existing.id != memberID:
			return cgError(kerr.FencedInstanceID.Code, "Static member "+memberID+" with instance id "+*req.InstanceID+
				" was fenced by member "+existing.id+".")
		default:
			m = existing
			if code := checkMemberEpoch(m, req.MemberEpoch, owned); code != 0 {
				return cgError(code, "")
			}
		}
	} else {
		m = cg.members[memberID]
		switch {
		case req.MemberEpoch == 0 && m == nil:
			m, changed = newCGMember(memberID), true
			cg.members[memberID] = m
		case req.MemberEpoch == 0:
			// A known member back at epoch 0 lost its assignment:
			// it starts over.
			m.assigned, m.revoking, m.epoch, m.prevEpoch = map[string][]int32{}, map[string][]int32{}, 0, 0
		case m == nil:
			return cgError(kerr.UnknownMemberID.Code, "")
		default:
			if code := checkMemberEpoch(m, req.MemberEpoch, owned); code != 0 {
				return cgError(code, "")
			}
		}
	}
	m.clientID, m.clientHost = clientID, clientHost
	m.deadline = now.Add(cfg.cgSession)
	if req.InstanceID != nil {
		m.instanceID = req.InstanceID
	}
	if req.RackID != nil {
		m.rackID = req.RackID
	}
	if req.RebalanceTimeoutMillis >= 0 {
		m.rebalance = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	if req.SubscribedTopicNames != nil {
		ts := slices.Sorted(slices.Values(req.SubscribedTopicNames))
		if !slices.Equal(ts, m.topics) {
			m.topics, changed = ts, true
		}
	}
	if req.SubscribedTopicRegex != nil && (m.regex == nil || *m.regex != *req.SubscribedTopicRegex) {
		m.regex, changed = req.SubscribedTopicRegex, true
	}
	if req.ServerAssignor != nil && *req.ServerAssignor != m.assignor {
		m.assignor, changed = *req.ServerAssignor, true
	}
	if changed || cg.metadataHash != gs.subscriptionHash(g) {
		cg.epoch++
		gs.assignLocked(g)
	}
	prevEpoch, prevAssigned := m.epoch, m.assigned
	gs.reconcileLocked(g, m, owned, now)
	g.updateConsumerStateLocked(now)

	r := kmsg.NewPtrConsumerGroupHeartbeatResponse()
	r.MemberID = kmsg.StringPtr(m.id)
	r.MemberEpoch = m.epoch
	r.HeartbeatIntervalMillis = int32(cfg.cgHeartbeat.Milliseconds())
	// The assignment goes to a member that sent a full request (joining,
	// or after an error: rebalance timeout, subscription and owned
	// partitions all set), whose assignment changed, or that reports
	// owning something else.
	full := req.MemberEpoch == 0 || req.RebalanceTimeoutMillis != -1 &&
		(req.SubscribedTopicNames != nil || req.SubscribedTopicRegex != nil) && req.Topics != nil
	if full || m.epoch != prevEpoch || !assignmentsEqual(m.assigned, prevAssigned) ||
		(req.Topics != nil && !assignmentsEqual(owned, m.assigned)) {
		a := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
		ids := gs.topicIDs()
		for _, t := range sortedKeys(m.assigned) {
			at := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
			at.TopicID, at.Partitions = ids[t], slices.Clone(m.assigned[t])
			a.Topics = append(a.Topics, at)
		}
		r.Assignment = &a
	}
	return r
}

// leaveConsumerLocked handles a heartbeat with epoch -1 (leave) or -2 (a
// static member leaving for a restart), as Kafka's consumerGroupLeave.
func (gs *groupShard) leaveConsumerLocked(g *group, req *kmsg.ConsumerGroupHeartbeatRequest, now time.Time) *kmsg.ConsumerGroupHeartbeatResponse {
	cg := g.cg
	var m *cgMember
	if req.InstanceID == nil {
		if m = cg.members[req.MemberID]; m == nil {
			return cgError(kerr.UnknownMemberID.Code, "")
		}
	} else {
		if m = cg.staticMember(*req.InstanceID); m == nil {
			return cgError(kerr.UnknownMemberID.Code, "Instance id "+*req.InstanceID+" is unknown.")
		}
		if m.id != req.MemberID {
			return cgError(kerr.FencedInstanceID.Code, "Static member "+req.MemberID+" with instance id "+*req.InstanceID+
				" was fenced by member "+m.id+".")
		}
	}
	r := kmsg.NewPtrConsumerGroupHeartbeatResponse()
	r.MemberID, r.MemberEpoch = kmsg.StringPtr(req.MemberID), req.MemberEpoch
	if req.MemberEpoch == leaveStaticEpoch {
		// It keeps its assignment (and its partitions stay its own)
		// until it rejoins or its session ends.
		m.epoch, m.revoking = leaveStaticEpoch, map[string][]int32{}
		m.deadline = now.Add(gs.gc.cfg.cgSession)
		g.updateConsumerStateLocked(now)
		r.MemberID = kmsg.StringPtr(m.id)
		return r
	}
	g.removeConsumerMemberLocked(gs, m, now)
	return r
}

// checkMemberEpoch is Kafka's throwIfConsumerGroupMemberEpochIsInvalid: a
// heartbeat at an epoch ahead of the member's is fenced; one behind it is
// accepted only at the member's previous epoch while owning no more than
// its assignment (the response that bumped it was lost).
func checkMemberEpoch(m *cgMember, epoch int32, owned map[string][]int32) int16 {
	switch {
	case epoch > m.epoch:
		return kerr.FencedMemberEpoch.Code
	case epoch < m.epoch && (epoch != m.prevEpoch || owned == nil || !isSubset(owned, m.assigned)):
		return kerr.FencedMemberEpoch.Code
	}
	return 0
}

// isSubset reports whether every partition of a is in b.
func isSubset(a, b map[string][]int32) bool {
	for t, ps := range a {
		for _, p := range ps {
			if !slices.Contains(b[t], p) {
				return false
			}
		}
	}
	return true
}

func assignmentsEqual(a, b map[string][]int32) bool {
	count := func(m map[string][]int32) int {
		n := 0
		for _, ps := range m {
			if len(ps) > 0 {
				n++
			}
		}
		return n
	}
	if count(a) != count(b) {
		return false
	}
	for t, ps := range a {
		if len(ps) == 0 {
			continue
		}
		x, y := slices.Sorted(slices.Values(ps)), slices.Sorted(slices.Values(b[t]))
		if !slices.Equal(x, y) {
			return false
		}
	}
	return true
}

// reconcileLocked moves m toward its target assignment (Kafka's
// CurrentAssignmentBuilder), and sets its state. owned is what the member
// reports owning, nil if unchanged.
func (gs *groupShard) reconcileLocked(g *group, m *cgMember, owned map[string][]int32, now time.Time) {
	gs.reconcileStepLocked(g, m, owned, now)
	switch {
	case len(m.revoking) > 0:
		m.state = grouprecords.MemberUnrevokedPartitions
	case gs.hasUnreleased(g, m):
		m.state = grouprecords.MemberUnreleasedPartitions
	default:
		m.state = grouprecords.MemberStable
	}
}

func (gs *groupShard) reconcileStepLocked(g *group, m *cgMember, owned map[string][]int32, now time.Time) {
	cg := g.cg
	target := cg.target[m.id]
	if len(m.revoking) > 0 {
		// Waiting for the member to release revoked partitions: it
		// has when it no longer reports any of them.
		if owned == nil || intersects(owned, m.revoking) {
			return
		}
		m.revoking = map[string][]int32{}
	}
	if m.epoch == cg.assignmentEpoch && !gs.hasUnreleased(g, m) {
		return
	}
	keep, revoke := map[string][]int32{}, map[string][]int32{}
	for t, ps := range m.assigned {
		for _, p := range ps {
			if slices.Contains(target[t], p) {
				keep[t] = append(keep[t], p)
			} else {
				revoke[t] = append(revoke[t], p)
			}
		}
	}
	if len(revoke) > 0 {
		m.assigned, m.revoking = keep, revoke
		m.revokeDeadline = now.Add(m.rebalance)
		return
	}
	// Nothing to revoke: move to the target epoch and take every target
	// partition no other member still owns.
	next := keep
	for t, ps := range target {
		for _, p := range ps {
			if slices.Contains(next[t], p) {
				continue
			}
			if !gs.ownedByOther(g, m, t, p) {
				next[t] = append(next[t], p)
			}
		}
	}
	for t := range next {
		slices.Sort(next[t])
	}
	if m.epoch != cg.assignmentEpoch {
		m.prevEpoch = m.epoch
		m.epoch = cg.assignmentEpoch
	}
	m.assigned = next
}

func intersects(a, b map[string][]int32) bool {
	for t, ps := range a {
		for _, p := range ps {
			if slices.Contains(b[t], p) {
				return true
			}
		}
	}
	return false
}

func (gs *groupShard) ownedByOther(g *group, m *cgMember, t string, p int32) bool {
	for _, o := range g.cg.members {
		if o != m && (slices.Contains(o.assigned[t], p) || slices.Contains(o.revoking[t], p)) {
			return true
		}
	}
	return false
}

// hasUnreleased reports whether m's target has partitions it does not own
// yet (withheld while another member released them).
func (gs *groupShard) hasUnreleased(g *group, m *cgMember) bool {
	for t, ps := range g.cg.target[m.id] {
		for _, p := range ps {
			if !slices.Contains(m.assigned[t], p) {
				return true
			}
		}
	}
	return false
}

// updateConsumerStateLocked sets the group state from its members: Empty,
// Reconciling while any member is not at its target, else Stable.
func (g *group) updateConsumerStateLocked(now time.Time) {
	cg := g.cg
	state := stateStable
	switch {
	case len(cg.members) == 0:
		state = stateEmpty
	case cg.assignmentEpoch < cg.epoch:
		state = stateAssigning
	default:
		for _, m := range cg.members {
			if m.epoch != cg.assignmentEpoch || len(m.revoking) > 0 || !assignmentsEqual(m.assigned, cg.target[m.id]) {
				state = stateReconciling
				break
			}
		}
	}
	if cg.state != state {
		cg.state = state
		g.stateSince = now
	}
	g.state = state
}

// removeConsumerMemberLocked removes a member (leave, session expiry,
// revocation timeout) and reassigns its partitions.
func (g *group) removeConsumerMemberLocked(gs *groupShard, m *cgMember, now time.Time) {
	cg := g.cg
	delete(cg.members, m.id)
	delete(cg.target, m.id)
	cg.epoch++
	gs.assignLocked(g)
	g.updateConsumerStateLocked(now)
	gs.gc.b.c.notifyEvent()
}

// tickConsumerLocked expires members whose session or revocation deadline
// passed (Kafka's session and rebalance timeouts), writes the records of
// their removal, and returns the next deadline.
func (g *group) tickConsumerLocked(gs *groupShard, now time.Time) time.Time {
	if g.cg == nil {
		return time.Time{}
	}
	var expired []*cgMember
	for _, id := range sortedKeys(g.cg.members) {
		m := g.cg.members[id]
		if !now.Before(m.deadline) || len(m.revoking) > 0 && !now.Before(m.revokeDeadline) {
			expired = append(expired, m)
		}
	}
	if len(expired) > 0 {
		snap := gs.snapshotLocked(g.name)
		for _, m := range expired {
			gs.gc.b.log.Debug("consumer group member fenced", "group", g.name, "member", m.id, "session_expired", !now.Before(m.deadline))
			g.removeConsumerMemberLocked(gs, m, now)
		}
		if err := gs.persistConsumerLocked(snap); err != nil {
			gs.restoreLocked(snap)
			gs.gc.b.log.Debug("fencing consumer group members", "group", g.name, "err", err)
			return now.Add(100 * time.Millisecond) // and try again
		}
	}
	var next time.Time
	for _, m := range g.cg.members {
		d := m.deadline
		if len(m.revoking) > 0 && m.revokeDeadline.Before(d) {
			d = m.revokeDeadline
		}
		if next.IsZero() || d.Before(next) {
			next = d
		}
	}
	return next
}
