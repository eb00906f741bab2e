package kcluster

// KIP-848 consumer groups: the coordinator owns the assignment. Every
// member change (join, leave, expiry, a new subscription, a subscribed
// topic's partition count) bumps the group epoch and recomputes the target
// assignment with the group's server-side assignor (uniform or range).
// Each member then reconciles to its target on its heartbeats, as Kafka's
// CurrentAssignmentBuilder does: partitions it must give up are revoked
// first (the member keeps its epoch until it acknowledges by no longer
// reporting them), and partitions another member still owns are withheld
// until released; a member with its whole target is Stable at the target
// epoch. Runs with the group's shard locked, like group_classic.go.
//
// Consumer-group records (ConsumerGroupMetadata, members, target and
// current assignments) are not in kmsg, so, unlike classic groups, they are
// kept in memory only: after a coordinator failover, members get
// UNKNOWN_MEMBER_ID and rejoin at epoch 0. Their committed offsets are
// OffsetCommit records and survive.

import (
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

// serverAssignors are the assignors a consumer group may name, the first
// the default (group.consumer.assignors).
var serverAssignors = []string{"uniform", "range"}

// consumerGroup is a KIP-848 consumer group's state.
type consumerGroup struct {
	state           string
	epoch           int32 // group epoch
	assignmentEpoch int32
	assignor        string
	members         map[string]*cgMember
	target          map[string]map[string][]int32 // member → topic → partitions
	topicSizes      map[string]int                // subscribed topics' partition counts at the last assignment
}

type cgMember struct {
	id                   string
	instanceID           *string
	rackID               *string
	clientID, clientHost string
	epoch, prevEpoch     int32
	topics               []string // subscribed topic names
	regex                *string
	assignor             string
	rebalance            time.Duration
	deadline             time.Time          // session expiry
	revokeDeadline       time.Time          // unrevoked partitions must be released by then
	assigned             map[string][]int32 // current assignment
	revoking             map[string][]int32 // partitions pending revocation
	leftStatic           bool               // left with epoch -2, expected back
}

func newConsumerGroup() *consumerGroup {
	return &consumerGroup{state: stateEmpty, members: map[string]*cgMember{}, target: map[string]map[string][]int32{}, assignor: serverAssignors[0]}
}

func cgError(code int16, msg string) *kmsg.ConsumerGroupHeartbeatResponse {
	r := kmsg.NewPtrConsumerGroupHeartbeatResponse()
	r.ErrorCode = code
	if msg != "" {
		r.ErrorMessage = kmsg.StringPtr(msg)
	}
	return r
}

// heartbeatConsumerLocked handles a ConsumerGroupHeartbeat.
func (gs *groupShard) heartbeatConsumerLocked(req *kmsg.ConsumerGroupHeartbeatRequest, clientID, clientHost string, now time.Time) *kmsg.ConsumerGroupHeartbeatResponse {
	cfg := gs.gc.cfg
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
	case req.MemberEpoch < -2:
		return cgError(kerr.InvalidRequest.Code, "MemberEpoch is invalid.")
	case req.ServerAssignor != nil && !slices.Contains(serverAssignors, *req.ServerAssignor):
		return cgError(kerr.UnsupportedAssignor.Code, "ServerAssignor "+*req.ServerAssignor+" is not supported.")
	}
	g := gs.groups[req.Group]
	if g != nil && g.kind == kindClassic {
		if !g.isEmptyState() {
			return cgError(kerr.GroupIDNotFound.Code, "Group "+req.Group+" is not a consumer group.")
		}
		g.kind = kindConsumer
	}
	if g == nil {
		if req.MemberEpoch != 0 {
			return cgError(kerr.UnknownMemberID.Code, "")
		}
		g = gs.getOrCreateLocked(req.Group)
		g.kind = kindConsumer
	}
	if g.cg == nil {
		g.cg = newConsumerGroup()
	}
	cg := g.cg
	defer func() {
		if g.isDeletable() && len(cg.members) == 0 && g.numOffsets() == 0 {
			delete(gs.groups, g.name)
		}
	}()

	if req.MemberEpoch < 0 { // leave (-1) or static leave (-2)
		m := cg.members[req.MemberID]
		if m == nil && req.InstanceID != nil {
			for _, mm := range cg.members {
				if mm.instanceID != nil && *mm.instanceID == *req.InstanceID {
					m = mm
				}
			}
		}
		if m == nil {
			return cgError(kerr.UnknownMemberID.Code, "")
		}
		if req.MemberEpoch == -2 && m.instanceID != nil {
			// KIP-848 static member leaving for a restart: it keeps
			// its assignment until it rejoins or its session ends.
			m.leftStatic = true
			m.deadline = now.Add(cfg.cgSession)
			gs.gc.kick()
		} else {
			g.removeConsumerMemberLocked(gs, m, now)
		}
		r := kmsg.NewPtrConsumerGroupHeartbeatResponse()
		r.MemberID, r.MemberEpoch = kmsg.StringPtr(req.MemberID), req.MemberEpoch
		return r
	}

	m := cg.members[req.MemberID]
	changed, rejoined := false, false
	if req.MemberEpoch == 0 {
		if m == nil && req.InstanceID != nil {
			for _, mm := range cg.members {
				if mm.instanceID == nil || *mm.instanceID != *req.InstanceID {
					continue
				}
				if !mm.leftStatic {
					return cgError(kerr.UnreleasedInstanceID.Code, "Static member "+*req.InstanceID+" has not left the group.")
				}
				// The static member is back under a new member id: it
				// takes over its assignment and epoch, no rebalance.
				delete(cg.members, mm.id)
				cg.target[req.MemberID] = cg.target[mm.id]
				delete(cg.target, mm.id)
				mm.id, mm.leftStatic = req.MemberID, false
				cg.members[mm.id] = mm
				m = mm
				rejoined = true
			}
		}
		if m == nil {
			if int32(len(cg.members)) >= cfg.cgMaxSize {
				return cgError(kerr.GroupMaxSizeReached.Code, "")
			}
			id := req.MemberID
			if id == "" {
				id = newMemberID("")[1:]
			}
			m = &cgMember{id: id, assigned: map[string][]int32{}, revoking: map[string][]int32{}}
			cg.members[id] = m
			changed = true
		} else if !rejoined {
			// A rejoin at epoch 0 of a known member: it lost its
			// assignment; start it over.
			m.assigned, m.revoking, m.epoch = map[string][]int32{}, map[string][]int32{}, 0
		}
	} else {
		if m == nil {
			return cgError(kerr.UnknownMemberID.Code, "")
		}
		if req.MemberEpoch != m.epoch {
			if req.MemberEpoch != m.prevEpoch || !gs.ownsExactly(req.Topics, m.assigned) {
				return cgError(kerr.FencedMemberEpoch.Code, "")
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
	if changed || !maps.Equal(cg.topicSizes, gs.subscribedSizes(g)) {
		cg.epoch++
		gs.assignLocked(g)
	}
	prevEpoch, prevAssigned := m.epoch, m.assigned
	var owned map[string][]int32
	if req.Topics != nil {
		owned = gs.topicNames(req.Topics)
	}
	gs.reconcileLocked(g, m, owned, now)
	g.updateConsumerStateLocked(now)
	gs.gc.kick()
	gs.gc.b.c.notifyEvent()

	r := kmsg.NewPtrConsumerGroupHeartbeatResponse()
	r.MemberID = kmsg.StringPtr(m.id)
	r.MemberEpoch = m.epoch
	r.HeartbeatIntervalMillis = int32(cfg.cgHeartbeat.Milliseconds())
	if req.MemberEpoch == 0 || m.epoch != prevEpoch || !assignmentsEqual(m.assigned, prevAssigned) ||
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

// ownsExactly reports whether the owned partitions a heartbeat reports
// match an assignment (a member whose last response was lost).
func (gs *groupShard) ownsExactly(ts []kmsg.ConsumerGroupHeartbeatRequestTopic, assigned map[string][]int32) bool {
	return ts != nil && assignmentsEqual(gs.topicNames(ts), assigned)
}

func (gs *groupShard) topicNames(ts []kmsg.ConsumerGroupHeartbeatRequestTopic) map[string][]int32 {
	out := map[string][]int32{}
	b := gs.gc.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, t := range ts {
		if tt := b.mu.state.TopicsByID[t.TopicID]; tt != nil {
			out[tt.Name] = append(out[tt.Name], t.Partitions...)
		}
	}
	return out
}

func (gs *groupShard) topicIDs() map[string][16]byte {
	out := map[string][16]byte{}
	b := gs.gc.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	for name, t := range b.mu.state.Topics {
		out[name] = t.ID
	}
	return out
}

// subscribedSizes is the partition count of every topic a member
// subscribes to that exists (by name, or by regex; as Kafka's broker-side
// resolution, a regex can match internal topics too).
func (gs *groupShard) subscribedSizes(g *group) map[string]int {
	out := map[string]int{}
	b := gs.gc.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, m := range g.cg.members {
		for _, t := range memberTopics(m, b.mu.state) {
			out[t] = len(b.mu.state.Topics[t].Partitions)
		}
	}
	return out
}

// memberTopics is the existing topics m subscribes to.
func memberTopics(m *cgMember, st *metadata.State) []string {
	var out []string
	for _, t := range m.topics {
		if st.Topics[t] != nil {
			out = append(out, t)
		}
	}
	if m.regex != nil {
		if re, err := compileRE2(*m.regex); err == nil {
			for _, name := range st.TopicNames() {
				if re.MatchString(name) && !slices.Contains(out, name) {
					out = append(out, name)
				}
			}
		}
	}
	return out
}

// assignLocked recomputes the target assignment at the group epoch with
// the group's assignor: the one most members ask for (ties and none: the
// default).
func (gs *groupShard) assignLocked(g *group) {
	cg := g.cg
	votes := map[string]int{}
	for _, m := range cg.members {
		if m.assignor != "" {
			votes[m.assignor]++
		}
	}
	cg.assignor = serverAssignors[0]
	for _, a := range serverAssignors {
		if votes[a] > votes[cg.assignor] {
			cg.assignor = a
		}
	}
	b := gs.gc.b
	subs := map[string][]string{} // member → topics
	sizes := map[string]int{}
	b.mu.RLock()
	for id, m := range cg.members {
		subs[id] = memberTopics(m, b.mu.state)
		for _, t := range subs[id] {
			sizes[t] = len(b.mu.state.Topics[t].Partitions)
		}
	}
	b.mu.RUnlock()
	cg.topicSizes = sizes
	if cg.assignor == "range" {
		cg.target = assignRange(subs, sizes)
	} else {
		cg.target = assignUniform(subs, sizes, cg.target)
	}
	cg.assignmentEpoch = cg.epoch
}

// assignRange gives each member, per topic, a contiguous range of
// partitions: members subscribed to the topic in id order, the first
// (partitions % members) one more.
func assignRange(subs map[string][]string, sizes map[string]int) map[string]map[string][]int32 {
	out := map[string]map[string][]int32{}
	for id := range subs {
		out[id] = map[string][]int32{}
	}
	for _, t := range sortedKeys(sizes) {
		var ms []string
		for id, ts := range subs {
			if slices.Contains(ts, t) {
				ms = append(ms, id)
			}
		}
		sort.Strings(ms)
		if len(ms) == 0 {
			continue
		}
		n, per, extra := sizes[t], sizes[t]/len(ms), sizes[t]%len(ms)
		p := 0
		for i, id := range ms {
			cnt := per
			if i < extra {
				cnt++
			}
			for j := 0; j < cnt && p < n; j++ {
				out[id][t] = append(out[id][t], int32(p))
				p++
			}
		}
	}
	return out
}

// assignUniform spreads every subscribed partition evenly over the
// members subscribed to its topic, keeping each partition with its
// previous target owner while that owner is under its share (sticky, as
// Kafka's UniformAssignor aims to be).
func assignUniform(subs map[string][]string, sizes map[string]int, prev map[string]map[string][]int32) map[string]map[string][]int32 {
	out := map[string]map[string][]int32{}
	count := map[string]int{}
	ids := sortedKeys(subs)
	for _, id := range ids {
		out[id] = map[string][]int32{}
	}
	if len(ids) == 0 {
		return out
	}
	type tp struct {
		t string
		p int32
	}
	var all []tp
	for _, t := range sortedKeys(sizes) {
		for p := 0; p < sizes[t]; p++ {
			all = append(all, tp{t, int32(p)})
		}
	}
	// Fair shares: len(all)/members each, remainder to the first ones.
	members := 0
	for _, id := range ids {
		if len(subs[id]) > 0 {
			members++
		}
	}
	floor := 0
	extra := 0
	if members > 0 {
		floor, extra = len(all)/members, len(all)%members
	}
	owner := map[tp]string{}
	// Keep previous targets up to the floor share first.
	for _, id := range ids {
		for _, t := range sortedKeys(prev[id]) {
			if !slices.Contains(subs[id], t) {
				continue
			}
			for _, p := range prev[id][t] {
				x := tp{t, p}
				if int(p) < sizes[t] && owner[x] == "" && count[id] < floor {
					owner[x] = id
					count[id]++
				}
			}
		}
	}
	// Then up to floor+1 for as many members as the remainder allows.
	for _, id := range ids {
		if extra == 0 {
			break
		}
		for _, t := range sortedKeys(prev[id]) {
			if !slices.Contains(subs[id], t) || count[id] > floor {
				continue
			}
			for _, p := range prev[id][t] {
				x := tp{t, p}
				if int(p) < sizes[t] && owner[x] == "" && count[id] == floor && extra > 0 {
					owner[x] = id
					count[id]++
					extra--
				}
			}
		}
	}
	// Hand out the rest to the least-loaded subscribed member.
	for _, x := range all {
		if owner[x] != "" {
			continue
		}
		best := ""
		for _, id := range ids {
			if !slices.Contains(subs[id], x.t) {
				continue
			}
			if best == "" || count[id] < count[best] {
				best = id
			}
		}
		if best == "" {
			continue
		}
		owner[x] = best
		count[best]++
	}
	for x, id := range owner {
		out[id][x.t] = append(out[id][x.t], x.p)
	}
	for _, m := range out {
		for t := range m {
			slices.Sort(m[t])
		}
	}
	return out
}

// reconcileLocked moves m toward its target assignment (Kafka's
// CurrentAssignmentBuilder). owned is what the member reports owning, nil
// if unchanged.
func (gs *groupShard) reconcileLocked(g *group, m *cgMember, owned map[string][]int32, now time.Time) {
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
// passed, and returns the next deadline.
func (g *group) tickConsumerLocked(gs *groupShard, now time.Time) time.Time {
	var next time.Time
	if g.cg == nil {
		return next
	}
	for _, id := range sortedKeys(g.cg.members) {
		m := g.cg.members[id]
		expired := !now.Before(m.deadline)
		revokeLate := len(m.revoking) > 0 && !now.Before(m.revokeDeadline)
		if expired || revokeLate {
			gs.gc.b.log.Debug("consumer group member fenced", "group", g.name, "member", m.id, "session_expired", expired)
			g.removeConsumerMemberLocked(gs, m, now)
			continue
		}
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
