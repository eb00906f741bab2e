package kcluster

// The classic group protocol's state machine (Kafka's ClassicGroup and the
// classic half of GroupMetadataManager): Empty → PreparingRebalance →
// CompletingRebalance → Stable, with KIP-394 member ids required on the
// first join, KIP-345 static members, the initial rebalance delay, session
// and rebalance timeouts. Every method here runs with the group's shard
// locked; blocked JoinGroup and SyncGroup requests wait on a channel in
// their member, answered when the rebalance moves on.

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type member struct {
	id          string
	instanceID  *string
	clientID    string
	clientHost  string
	session     time.Duration
	rebalance   time.Duration
	protocols   []kmsg.JoinGroupRequestProtocol
	assignment  []byte
	deadline    time.Time // session expiry
	joinCh      chan *kmsg.JoinGroupResponse
	syncCh      chan *kmsg.SyncGroupResponse
	joinVersion int16
}

// resetClassic drops the group's classic state (a group tombstone).
func (g *group) resetClassic(now time.Time) {
	g.failWaitersLocked(kerr.UnknownMemberID.Code)
	g.members, g.pending, g.statics, g.joinOrder = map[string]*member{}, map[string]time.Time{}, map[string]string{}, nil
	g.protocolType, g.protocol, g.leader = "", "", ""
	g.setState(stateEmpty, now)
}

// restoreClassic loads the group from its GroupMetadataValue: with members
// it is Stable (they keep heartbeating at the same generation), without it
// is Empty.
func (g *group) restoreClassic(v *kmsg.GroupMetadataValue, now time.Time, cfg *groupConfig) {
	g.resetClassic(now)
	g.kind = kindClassic
	g.protocolType, g.generation = v.ProtocolType, v.Generation
	if v.Protocol != nil {
		g.protocol = *v.Protocol
	}
	if v.Leader != nil {
		g.leader = *v.Leader
	}
	for _, vm := range v.Members {
		m := &member{
			id: vm.MemberID, instanceID: vm.InstanceID, clientID: vm.ClientID, clientHost: vm.ClientHost,
			session:    time.Duration(vm.SessionTimeoutMillis) * time.Millisecond,
			rebalance:  time.Duration(vm.RebalanceTimeoutMillis) * time.Millisecond,
			protocols:  []kmsg.JoinGroupRequestProtocol{{Name: g.protocol, Metadata: vm.Subscription}},
			assignment: vm.Assignment,
		}
		if m.rebalance <= 0 {
			m.rebalance = m.session
		}
		m.deadline = now.Add(m.session)
		g.members[m.id] = m
		g.joinOrder = append(g.joinOrder, m.id)
		if m.instanceID != nil {
			g.statics[*m.instanceID] = m.id
		}
	}
	state := stateEmpty
	if len(g.members) > 0 {
		state = stateStable
	}
	g.state = state
	g.stateSince = now
	if v.CurrentStateTimestamp > 0 {
		g.stateSince = time.UnixMilli(v.CurrentStateTimestamp)
	}
}

// groupRecord is the group's GroupMetadataKey/Value (value version 3, as
// Kafka writes since KIP-345).
func (g *group) groupRecord(now time.Time) kmsg.Record {
	k := kmsg.GroupMetadataKey{Version: 2, Group: g.name}
	v := kmsg.NewGroupMetadataValue()
	v.Version = 3
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	if g.protocol != "" {
		v.Protocol = kmsg.StringPtr(g.protocol)
	}
	if g.leader != "" {
		v.Leader = kmsg.StringPtr(g.leader)
	}
	v.CurrentStateTimestamp = now.UnixMilli()
	for _, id := range g.joinOrder {
		m := g.members[id]
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID, vm.InstanceID, vm.ClientID, vm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
		vm.RebalanceTimeoutMillis = int32(m.rebalance.Milliseconds())
		vm.SessionTimeoutMillis = int32(m.session.Milliseconds())
		vm.Subscription = m.metadataFor(g.protocol)
		vm.Assignment = m.assignment
		v.Members = append(v.Members, vm)
	}
	return kmsg.Record{Key: k.AppendTo(nil), Value: v.AppendTo(nil)}
}

func (m *member) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

func (m *member) sameProtocols(ps []kmsg.JoinGroupRequestProtocol) bool {
	return slices.EqualFunc(m.protocols, ps, func(a, b kmsg.JoinGroupRequestProtocol) bool {
		return a.Name == b.Name && string(a.Metadata) == string(b.Metadata)
	})
}

func newMemberID(clientID string) string {
	var b [16]byte
	rand.Read(b[:])
	return clientID + "-" + hex.EncodeToString(b[:4]) + "-" + hex.EncodeToString(b[4:6]) + "-" + hex.EncodeToString(b[6:8]) + "-" + hex.EncodeToString(b[8:10]) + "-" + hex.EncodeToString(b[10:])
}

// failWaitersLocked answers every blocked JoinGroup and SyncGroup with code.
func (g *group) failWaitersLocked(code int16) {
	for _, m := range g.members {
		if m.joinCh != nil {
			r := kmsg.NewPtrJoinGroupResponse()
			r.ErrorCode, r.MemberID, r.Generation = code, m.id, -1
			m.joinCh <- r
			m.joinCh = nil
		}
		if m.syncCh != nil {
			r := kmsg.NewPtrSyncGroupResponse()
			r.ErrorCode = code
			m.syncCh <- r
			m.syncCh = nil
		}
	}
}

// supportsProtocols reports whether a member with this protocol type and
// protocols may join (Kafka's supportsProtocols).
func (g *group) supportsProtocols(ptype string, ps []kmsg.JoinGroupRequestProtocol) bool {
	if len(g.members) == 0 {
		return ptype != "" && len(ps) > 0
	}
	if ptype != g.protocolType {
		return false
	}
	for _, cand := range g.candidateProtocols() {
		for _, p := range ps {
			if p.Name == cand {
				return true
			}
		}
	}
	return false
}

// candidateProtocols are the protocols every member supports.
func (g *group) candidateProtocols() []string {
	var out []string
	first := true
	for _, m := range g.members {
		var names []string
		for _, p := range m.protocols {
			names = append(names, p.Name)
		}
		if first {
			out, first = names, false
			continue
		}
		out = slices.DeleteFunc(out, func(n string) bool { return !slices.Contains(names, n) })
	}
	return out
}

// selectProtocol picks the candidate protocol most members prefer
// (each votes for its first supported candidate), as Kafka does.
func (g *group) selectProtocol() string {
	cands := g.candidateProtocols()
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if slices.Contains(cands, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, c := range cands {
		if best == "" || votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

func (g *group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalance)
	}
	return d
}

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
	if g.kind == kindConsumer {
		if !g.isEmptyState() {
			return joinError(kerr.InconsistentGroupProtocol.Code, req.MemberID), nil
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

// dropMemberLocked removes m from the group's bookkeeping.
func (g *group) dropMemberLocked(m *member) {
	if m.joinCh != nil {
		m.joinCh <- joinError(kerr.UnknownMemberID.Code, m.id)
		m.joinCh = nil
	}
	if m.syncCh != nil {
		r := kmsg.NewPtrSyncGroupResponse()
		r.ErrorCode = kerr.UnknownMemberID.Code
		m.syncCh <- r
		m.syncCh = nil
	}
	delete(g.members, m.id)
	g.joinOrder = slices.DeleteFunc(g.joinOrder, func(id string) bool { return id == m.id })
	if m.instanceID != nil && g.statics[*m.instanceID] == m.id {
		delete(g.statics, *m.instanceID)
	}
	if g.leader == m.id {
		g.leader = ""
		if len(g.joinOrder) > 0 {
			g.leader = g.joinOrder[0]
		}
	}
}

// removeMemberLocked removes a member that left or expired and moves the
// group on: a rebalance, or the end of the current join phase.
func (g *group) removeMemberLocked(gs *groupShard, m *member, now time.Time) {
	g.dropMemberLocked(m)
	switch g.state {
	case stateStable, stateCompleting:
		g.prepareRebalanceLocked(gs, now)
		g.maybeCompleteJoinLocked(gs, now)
	case statePreparing:
		g.maybeCompleteJoinLocked(gs, now)
	}
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

// checkMemberLocked validates a member id and instance id as Kafka's
// ClassicGroup.validateMember: a static member's instance id decides
// first (UNKNOWN_MEMBER_ID, or FENCED_INSTANCE_ID for a replaced id).
func (g *group) checkMemberLocked(memberID string, instanceID *string) (*member, int16) {
	if instanceID != nil {
		id, ok := g.statics[*instanceID]
		if !ok {
			return nil, kerr.UnknownMemberID.Code
		}
		if id != memberID {
			return nil, kerr.FencedInstanceID.Code
		}
	}
	m := g.members[memberID]
	if m == nil {
		return nil, kerr.UnknownMemberID.Code
	}
	return m, 0
}

// heartbeatLocked handles a classic Heartbeat.
func (g *group) heartbeatLocked(req *kmsg.HeartbeatRequest, now time.Time) int16 {
	if g == nil || g.kind != kindClassic {
		return kerr.UnknownMemberID.Code
	}
	m, code := g.checkMemberLocked(req.MemberID, req.InstanceID)
	switch {
	case code != 0:
		return code
	case req.Generation != g.generation:
		return kerr.IllegalGeneration.Code
	}
	m.deadline = now.Add(m.session)
	switch g.state {
	case statePreparing:
		return kerr.RebalanceInProgress.Code
	case stateEmpty:
		return kerr.UnknownMemberID.Code
	}
	return 0
}

// leaveLocked removes one member (by member id or, KIP-345, instance id).
func (g *group) leaveLocked(gs *groupShard, memberID string, instanceID *string, now time.Time) int16 {
	if g == nil || g.kind != kindClassic {
		return kerr.UnknownMemberID.Code
	}
	if instanceID != nil {
		id, ok := g.statics[*instanceID]
		if !ok {
			return kerr.UnknownMemberID.Code
		}
		if memberID != "" && memberID != id {
			return kerr.FencedInstanceID.Code
		}
		memberID = id
	}
	if _, ok := g.pending[memberID]; ok {
		delete(g.pending, memberID)
		g.maybeCompleteJoinLocked(gs, now)
		return 0
	}
	m := g.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	g.removeMemberLocked(gs, m, now)
	return 0
}

// tickLocked fires the group's passed deadlines and returns its next one.
func (g *group) tickLocked(gs *groupShard, now time.Time) time.Time {
	if g.kind == kindConsumer {
		return g.tickConsumerLocked(gs, now)
	}
	var next time.Time
	at := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for id, d := range g.pending {
		if !now.Before(d) {
			delete(g.pending, id)
			g.maybeCompleteJoinLocked(gs, now)
		} else {
			at(d)
		}
	}
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		m := g.members[id]
		if m == nil || m.joinCh != nil || m.syncCh != nil {
			continue
		}
		if !now.Before(m.deadline) {
			gs.gc.b.log.Debug("group member session expired", "group", g.name, "member", m.id)
			g.removeMemberLocked(gs, m, now)
			continue
		}
		at(m.deadline)
	}
	switch g.state {
	case statePreparing:
		if now.Before(g.joinDeadline) {
			at(g.joinDeadline)
			break
		}
		if g.initialJoin && g.newMember && now.Before(g.rebalanceEnd) {
			// Members keep arriving: wait one more delay, never past
			// the rebalance timeout (Kafka's InitialDelayedJoin).
			g.newMember = false
			g.joinDeadline = minTime(now.Add(gs.gc.cfg.initialDelay), g.rebalanceEnd)
			at(g.joinDeadline)
			break
		}
		g.initialJoin = false
		g.completeJoinLocked(gs, now)
		if g.state == stateCompleting {
			at(g.syncDeadline)
		}
	case stateCompleting:
		if now.Before(g.syncDeadline) {
			at(g.syncDeadline)
			break
		}
		// The leader's assignment never came: members that did not
		// sync are removed and the group rebalances.
		for _, id := range slices.Clone(g.joinOrder) {
			if m := g.members[id]; m.syncCh == nil || g.leader == id {
				g.dropMemberLocked(m)
			}
		}
		g.prepareRebalanceLocked(gs, now)
		g.maybeCompleteJoinLocked(gs, now)
		if g.state == statePreparing {
			at(g.joinDeadline)
		}
	}
	return next
}
