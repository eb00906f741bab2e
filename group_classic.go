package kcluster

// The classic group protocol's state machine (Kafka's ClassicGroup and the
// classic half of GroupMetadataManager): Empty → PreparingRebalance →
// CompletingRebalance → Stable, with KIP-394 member ids required on the
// first join, KIP-345 static members, the initial rebalance delay, session
// and rebalance timeouts. Here: the members, the protocol choice, the
// group's record, Heartbeat, LeaveGroup and the deadlines; the rebalance
// itself (JoinGroup, SyncGroup) is in group_classic_rebalance.go. Every
// method runs with the group's shard locked.

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
	g.protocolType, g.protocol, g.leader, g.generation = "", "", "", 0
	g.setState(stateEmpty, now)
}

// restoreClassic loads the group from its GroupMetadataValue: with members
// it is Stable (they keep heartbeating at the same generation), without it
// is Empty.
func (g *group) restoreClassic(v *kmsg.GroupMetadataValue, now time.Time, cfg *groupConfig) {
	g.resetClassic(now)
	g.kind, g.cg = kindClassic, nil
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
	switch g.kind {
	case kindConsumer:
		return g.tickConsumerLocked(gs, now)
	case kindShare:
		return g.tickShareLocked(gs, now)
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
