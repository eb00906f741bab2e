package kcluster

// The classic protocol's rebalance (the JoinGroup and SyncGroup half of
// Kafka's GroupMetadataManager for classic groups): a rebalance starts
// (PreparingRebalance), members rejoin within the rebalance timeout (after
// the initial delay for a group starting from Empty), the join phase ends
// with a new generation and the leader chosen (CompletingRebalance), and
// the leader's assignment, once written, makes the group Stable. Blocked
// requests wait on a channel in their member. Every method runs with the
// group's shard locked.

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func joinError(code int16, memberID string) *kmsg.JoinGroupResponse {
	r := kmsg.NewPtrJoinGroupResponse()
	r.ErrorCode, r.MemberID, r.Generation = code, memberID, -1
	return r
}

// joinLocked handles a JoinGroup. It returns either an immediate response
// or a channel the response will arrive on.
func (g *group) joinLocked(gs *groupShard, req *kmsg.JoinGroupRequest, clientID, clientHost string, now time.Time) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse) {
	cfg := gs.gc.cfg
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	rebalance := time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if req.Version == 0 || rebalance <= 0 {
		rebalance = session
	}
	if session < cfg.minSession || session > cfg.maxSession {
		return joinError(kerr.InvalidSessionTimeout.Code, req.MemberID), nil
	}
	if g.kind == kindShare {
		return joinError(kerr.GroupIDNotFound.Code, req.MemberID), nil
	}
	if g.kind == kindConsumer {
		if !g.isEmptyState() {
			return joinError(kerr.InconsistentGroupProtocol.Code, req.MemberID), nil
		}
		// An empty consumer group becomes a classic group: its records
		// are tombstoned first (Kafka's maybeDeleteEmptyConsumerGroup).
		if g.cg != nil {
			if err := gs.writeLocked(consumerGroupTombstones(g.name, g.cg)); err != nil {
				return joinError(errCode(err), req.MemberID), nil
			}
		}
		g.kind, g.cg = kindClassic, nil
	}
	if !g.supportsProtocols(req.ProtocolType, req.Protocols) {
		return joinError(kerr.InconsistentGroupProtocol.Code, req.MemberID), nil
	}
	if req.MemberID == "" {
		if int32(len(g.members)+len(g.pending)) >= cfg.maxSize {
			return joinError(kerr.GroupMaxSizeReached.Code, ""), nil
		}
		id := newMemberID(clientID)
		if req.InstanceID != nil {
			if old, ok := g.statics[*req.InstanceID]; ok && g.members[old] != nil {
				return g.replaceStaticLocked(gs, old, id, req, clientID, clientHost, session, rebalance, now)
			}
		} else if req.Version >= 4 {
			// KIP-394: hand out the id; the member joins again with it.
			g.pending[id] = now.Add(session)
			gs.gc.kick()
			return joinError(kerr.MemberIDRequired.Code, id), nil
		}
		return nil, g.addMemberLocked(gs, id, req, clientID, clientHost, session, rebalance, now)
	}
	if _, ok := g.pending[req.MemberID]; ok {
		delete(g.pending, req.MemberID)
		return nil, g.addMemberLocked(gs, req.MemberID, req, clientID, clientHost, session, rebalance, now)
	}
	m := g.members[req.MemberID]
	if m == nil {
		return joinError(kerr.UnknownMemberID.Code, req.MemberID), nil
	}
	if req.InstanceID != nil && g.statics[*req.InstanceID] != m.id {
		return joinError(kerr.FencedInstanceID.Code, req.MemberID), nil
	}
	switch g.state {
	case statePreparing:
		ch := g.updateMemberLocked(m, req, session, rebalance, now)
		g.maybeCompleteJoinLocked(gs, now)
		return nil, ch
	case stateCompleting:
		if m.sameProtocols(req.Protocols) {
			// A member that lost its join response rejoins: answer with
			// the current generation.
			return g.joinResponseLocked(m), nil
		}
		ch := g.updateMemberLocked(m, req, session, rebalance, now)
		g.prepareRebalanceLocked(gs, now)
		g.maybeCompleteJoinLocked(gs, now) // it may be the only member
		return nil, ch
	case stateStable:
		if m.id != g.leader && m.sameProtocols(req.Protocols) {
			m.deadline = now.Add(m.session)
			return g.joinResponseLocked(m), nil
		}
		ch := g.updateMemberLocked(m, req, session, rebalance, now)
		g.prepareRebalanceLocked(gs, now)
		g.maybeCompleteJoinLocked(gs, now) // it may be the only member
		return nil, ch
	}
	return joinError(kerr.UnknownMemberID.Code, req.MemberID), nil
}

func (g *group) updateMemberLocked(m *member, req *kmsg.JoinGroupRequest, session, rebalance time.Duration, now time.Time) chan *kmsg.JoinGroupResponse {
	// Request bytes alias the connection's read buffer: copy what is kept.
	m.protocols = make([]kmsg.JoinGroupRequestProtocol, len(req.Protocols))
	for i, p := range req.Protocols {
		m.protocols[i] = kmsg.JoinGroupRequestProtocol{Name: p.Name, Metadata: slices.Clone(p.Metadata)}
	}
	m.session, m.rebalance = session, rebalance
	m.deadline = now.Add(session)
	m.joinVersion = req.Version
	if m.joinCh != nil {
		// A second join from the same member replaces the first.
		m.joinCh <- joinError(kerr.UnknownMemberID.Code, m.id)
	}
	m.joinCh = make(chan *kmsg.JoinGroupResponse, 1)
	return m.joinCh
}

func (g *group) addMemberLocked(gs *groupShard, id string, req *kmsg.JoinGroupRequest, clientID, clientHost string, session, rebalance time.Duration, now time.Time) chan *kmsg.JoinGroupResponse {
	m := &member{id: id, instanceID: req.InstanceID, clientID: clientID, clientHost: clientHost}
	if len(g.members) == 0 {
		g.protocolType = req.ProtocolType
	}
	g.members[id] = m
	g.joinOrder = append(g.joinOrder, id)
	if m.instanceID != nil {
		g.statics[*m.instanceID] = id
	}
	if g.leader == "" || g.members[g.leader] == nil {
		g.leader = id
	}
	ch := g.updateMemberLocked(m, req, session, rebalance, now)
	g.newMember = true
	if g.state != statePreparing {
		g.prepareRebalanceLocked(gs, now)
	}
	g.maybeCompleteJoinLocked(gs, now)
	return ch
}

// replaceStaticLocked handles a static member rejoining with a new member
// id (KIP-345): the old id is fenced; in a Stable group with unchanged
// protocols the member gets its old assignment back without a rebalance.
func (g *group) replaceStaticLocked(gs *groupShard, old, id string, req *kmsg.JoinGroupRequest, clientID, clientHost string, session, rebalance time.Duration, now time.Time) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse) {
	m := g.members[old]
	if m.joinCh != nil {
		m.joinCh <- joinError(kerr.FencedInstanceID.Code, old)
		m.joinCh = nil
	}
	if m.syncCh != nil {
		r := kmsg.NewPtrSyncGroupResponse()
		r.ErrorCode = kerr.FencedInstanceID.Code
		m.syncCh <- r
		m.syncCh = nil
	}
	delete(g.members, old)
	m.id, m.clientID, m.clientHost = id, clientID, clientHost
	g.members[id] = m
	g.joinOrder[slices.Index(g.joinOrder, old)] = id
	g.statics[*req.InstanceID] = id
	wasLeader := g.leader == old
	if wasLeader {
		g.leader = id
	}
	switch g.state {
	case stateStable:
		if m.sameProtocols(req.Protocols) {
			m.session, m.rebalance, m.deadline = session, rebalance, now.Add(session)
			if err := gs.writeLocked([]kmsg.Record{g.groupRecord(now)}); err != nil {
				// Undo: the old member id stays the group's.
				delete(g.members, id)
				m.id = old
				g.members[old] = m
				g.joinOrder[slices.Index(g.joinOrder, id)] = old
				g.statics[*req.InstanceID] = old
				if wasLeader {
					g.leader = old
				}
				return joinError(errCode(err), ""), nil
			}
			r := g.joinResponseLocked(m)
			if wasLeader && req.Version >= 9 {
				// The leader learns the members but must not
				// reassign (KIP-814).
				r.SkipAssignment = true
				r.Members = g.joinMembersLocked()
			}
			return r, nil
		}
		ch := g.updateMemberLocked(m, req, session, rebalance, now)
		g.prepareRebalanceLocked(gs, now)
		return nil, ch
	case stateCompleting:
		ch := g.updateMemberLocked(m, req, session, rebalance, now)
		g.prepareRebalanceLocked(gs, now)
		return nil, ch
	default: // PreparingRebalance
		ch := g.updateMemberLocked(m, req, session, rebalance, now)
		g.maybeCompleteJoinLocked(gs, now)
		return nil, ch
	}
}

// joinResponseLocked is the current generation's JoinGroup answer for m.
func (g *group) joinResponseLocked(m *member) *kmsg.JoinGroupResponse {
	r := kmsg.NewPtrJoinGroupResponse()
	r.Generation = g.generation
	r.ProtocolType = kmsg.StringPtr(g.protocolType)
	r.Protocol = kmsg.StringPtr(g.protocol)
	r.LeaderID = g.leader
	r.MemberID = m.id
	if m.id == g.leader && g.state == stateCompleting {
		r.Members = g.joinMembersLocked()
	}
	return r
}

func (g *group) joinMembersLocked() []kmsg.JoinGroupResponseMember {
	var out []kmsg.JoinGroupResponseMember
	for _, id := range g.joinOrder {
		m := g.members[id]
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID, jm.InstanceID, jm.ProtocolMetadata = m.id, m.instanceID, m.metadataFor(g.protocol)
		out = append(out, jm)
	}
	return out
}

// prepareRebalanceLocked starts a rebalance: members must rejoin within
// the rebalance timeout; a group starting from Empty first waits
// group.initial.rebalance.delay.ms for more members.
func (g *group) prepareRebalanceLocked(gs *groupShard, now time.Time) {
	if g.state == stateCompleting {
		for _, m := range g.members {
			m.assignment = nil
			if m.syncCh != nil {
				r := kmsg.NewPtrSyncGroupResponse()
				r.ErrorCode = kerr.RebalanceInProgress.Code
				m.syncCh <- r
				m.syncCh = nil
			}
		}
	}
	initial := g.state == stateEmpty
	g.setState(statePreparing, now)
	g.initialJoin = initial && gs.gc.cfg.initialDelay > 0
	g.newMember = false
	if g.initialJoin {
		g.joinDeadline = now.Add(gs.gc.cfg.initialDelay)
		g.rebalanceEnd = now.Add(g.maxRebalanceTimeout())
	} else {
		g.joinDeadline = now.Add(g.maxRebalanceTimeout())
	}
	gs.gc.kick()
}

// maybeCompleteJoinLocked completes the join phase once every member has
// rejoined and no KIP-394 id is outstanding (never early during the
// initial delay).
func (g *group) maybeCompleteJoinLocked(gs *groupShard, now time.Time) {
	if g.state != statePreparing || g.initialJoin || len(g.pending) > 0 {
		return
	}
	for _, m := range g.members {
		if m.joinCh == nil {
			return
		}
	}
	g.completeJoinLocked(gs, now)
}

// completeJoinLocked ends the join phase: members that did not rejoin are
// removed, the generation advances, and every joined member is answered
// (the leader with the member list).
func (g *group) completeJoinLocked(gs *groupShard, now time.Time) {
	for _, id := range slices.Clone(g.joinOrder) {
		if m := g.members[id]; m.joinCh == nil {
			g.dropMemberLocked(m)
		}
	}
	g.generation++
	if len(g.members) == 0 {
		g.protocol, g.leader = "", ""
		g.setState(stateEmpty, now)
		if err := gs.writeLocked([]kmsg.Record{g.groupRecord(now)}); err != nil {
			gs.gc.b.log.Debug("storing empty group", "group", g.name, "err", err)
		}
		return
	}
	g.protocol = g.selectProtocol()
	if g.members[g.leader] == nil {
		g.leader = g.joinOrder[0]
	}
	g.setState(stateCompleting, now)
	g.syncDeadline = now.Add(g.maxRebalanceTimeout())
	for _, m := range g.members {
		r := g.joinResponseLocked(m)
		m.joinCh <- r
		m.joinCh = nil
		m.deadline = now.Add(m.session)
	}
	gs.gc.kick()
	gs.gc.b.c.notifyEvent()
}

// syncLocked handles a SyncGroup.
func (g *group) syncLocked(gs *groupShard, req *kmsg.SyncGroupRequest, now time.Time) (*kmsg.SyncGroupResponse, chan *kmsg.SyncGroupResponse) {
	fail := func(code int16) (*kmsg.SyncGroupResponse, chan *kmsg.SyncGroupResponse) {
		r := kmsg.NewPtrSyncGroupResponse()
		r.ErrorCode = code
		return r, nil
	}
	if g == nil || g.kind != kindClassic {
		return fail(kerr.UnknownMemberID.Code)
	}
	m, code := g.checkMemberLocked(req.MemberID, req.InstanceID)
	switch {
	case code != 0:
		return fail(code)
	case req.Generation != g.generation:
		return fail(kerr.IllegalGeneration.Code)
	case req.ProtocolType != nil && *req.ProtocolType != g.protocolType,
		req.Protocol != nil && *req.Protocol != g.protocol:
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	switch g.state {
	case statePreparing:
		return fail(kerr.RebalanceInProgress.Code)
	case stateStable:
		m.deadline = now.Add(m.session)
		r := kmsg.NewPtrSyncGroupResponse()
		r.ProtocolType, r.Protocol = kmsg.StringPtr(g.protocolType), kmsg.StringPtr(g.protocol)
		r.MemberAssignment = m.assignment
		return r, nil
	case stateCompleting:
	default:
		return fail(kerr.UnknownMemberID.Code)
	}
	m.deadline = now.Add(m.session)
	if m.syncCh != nil {
		m.syncCh <- &kmsg.SyncGroupResponse{ErrorCode: kerr.RebalanceInProgress.Code}
	}
	m.syncCh = make(chan *kmsg.SyncGroupResponse, 1)
	ch := m.syncCh
	if m.id != g.leader {
		return nil, ch
	}
	assigned := map[string][]byte{}
	for _, a := range req.GroupAssignment {
		assigned[a.MemberID] = slices.Clone(a.MemberAssignment) // not the read buffer's
	}
	for _, mm := range g.members {
		mm.assignment = assigned[mm.id]
	}
	if err := gs.writeLocked([]kmsg.Record{g.groupRecord(now)}); err != nil {
		code := errCode(err)
		for _, mm := range g.members {
			mm.assignment = nil
			if mm.syncCh != nil {
				r := kmsg.NewPtrSyncGroupResponse()
				r.ErrorCode = code
				mm.syncCh <- r
				mm.syncCh = nil
			}
		}
		g.prepareRebalanceLocked(gs, now)
		return nil, ch
	}
	g.setState(stateStable, now)
	for _, mm := range g.members {
		if mm.syncCh != nil {
			r := kmsg.NewPtrSyncGroupResponse()
			r.ProtocolType, r.Protocol = kmsg.StringPtr(g.protocolType), kmsg.StringPtr(g.protocol)
			r.MemberAssignment = mm.assignment
			mm.syncCh <- r
			mm.syncCh = nil
		}
	}
	gs.gc.b.c.notifyEvent()
	return nil, ch
}
