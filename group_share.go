package kcluster

// KIP-932 share groups on the group coordinator (Kafka's
// GroupMetadataManager.shareGroupHeartbeat and ShareGroup). The coordinator
// owns the assignment, as for KIP-848 consumer groups, but a share group has
// no reconciliation: several members may read one partition, so a member
// never has to give a partition up before another takes it. Every member
// change (join, leave, session expiry, a new subscription, a change in the
// subscribed topics' metadata) bumps the group epoch and recomputes the
// target assignment with the simple assignor (group_share_assign.go); a
// member takes its target, and the target epoch as its member epoch, on its
// next heartbeat. States are Kafka's ShareGroupState: Empty, Stable, Dead.
//
// The group is persisted in its __consumer_offsets partition as Kafka's
// share-group records (group_share_records.go, internal/grouprecords), so
// it fails over with its coordinator: a heartbeat changes the group in
// memory, the change is written as the records that describe it, and the
// change is undone if they cannot be appended. Runs with the group's shard
// locked.

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const kindShare = "share"

// shareGroup is a share group's state.
type shareGroup struct {
	state           string
	epoch           int32 // group epoch
	assignmentEpoch int32
	metadataHash    int64
	members         map[string]*sgMember
	target          map[string]map[string][]int32 // member → topic → partitions
	// initialized are the partitions whose share-partition state the
	// group has initialized, by topic name; initializing, those it has
	// asked the share coordinator to initialize and not yet heard back
	// of (ShareGroupStatePartitionMetadata, group_share_init.go).
	initialized, initializing map[string][]int32
}

type sgMember struct {
	id                   string
	rackID               *string
	clientID, clientHost string
	epoch, prevEpoch     int32
	topics               []string // subscribed topic names
	deadline             time.Time
	assigned             map[string][]int32
}

func newShareGroup() *shareGroup {
	return &shareGroup{state: stateEmpty, members: map[string]*sgMember{}, target: map[string]map[string][]int32{}, initialized: map[string][]int32{}, initializing: map[string][]int32{}}
}

func (sg *shareGroup) clone() *shareGroup {
	c := *sg
	c.members = make(map[string]*sgMember, len(sg.members))
	for id, m := range sg.members {
		mc := *m
		mc.topics = slices.Clone(m.topics)
		mc.assigned = cloneAssignment(m.assigned)
		c.members[id] = &mc
	}
	c.target = make(map[string]map[string][]int32, len(sg.target))
	for id, a := range sg.target {
		c.target[id] = cloneAssignment(a)
	}
	c.initialized = cloneAssignment(sg.initialized)
	c.initializing = cloneAssignment(sg.initializing)
	return &c
}

func sgError(code int16, msg string) *kmsg.ShareGroupHeartbeatResponse {
	r := kmsg.NewPtrShareGroupHeartbeatResponse()
	r.ErrorCode = code
	if msg != "" {
		r.ErrorMessage = kmsg.StringPtr(msg)
	}
	return r
}

// heartbeatShareLocked handles a ShareGroupHeartbeat: it changes the group
// in memory, then writes the records of the change; if the request is
// refused or the records cannot be written, the group is as it was.
func (gs *groupShard) heartbeatShareLocked(req *kmsg.ShareGroupHeartbeatRequest, clientID, clientHost string, now time.Time) *kmsg.ShareGroupHeartbeatResponse {
	switch {
	case req.GroupID == "":
		return sgError(kerr.InvalidRequest.Code, "GroupId can't be empty.")
	case req.MemberID == "":
		return sgError(kerr.InvalidRequest.Code, "MemberId can't be empty.")
	case len(req.MemberID) > 36:
		return sgError(kerr.InvalidRequest.Code, "MemberId can't be longer than 36 characters.")
	case req.MemberEpoch < leaveEpoch:
		return sgError(kerr.InvalidRequest.Code, "MemberEpoch is invalid.")
	case req.MemberEpoch == 0 && len(req.SubscribedTopicNames) == 0:
		return sgError(kerr.InvalidRequest.Code, "SubscribedTopicNames must be set in first request.")
	}
	g := gs.groups[req.GroupID]
	var before *shareGroup
	existed := g != nil
	if g != nil && g.sg != nil {
		before = g.sg.clone()
	}
	resp := gs.shareHeartbeatChangeLocked(req, clientID, clientHost, now)
	g = gs.groups[req.GroupID]
	if resp.ErrorCode != 0 {
		gs.restoreShareLocked(req.GroupID, existed, before)
		return resp
	}
	if recs := shareGroupRecords(req.GroupID, before, g.sg, gs.topicIDs()); len(recs) > 0 {
		if err := gs.writeLocked(recs); err != nil {
			gs.restoreShareLocked(req.GroupID, existed, before)
			return sgError(errCode(err), "")
		}
	}
	gs.gc.kick()
	gs.gc.b.c.notifyEvent()
	return resp
}

// restoreShareLocked puts a share group back as it was before a refused or
// unwritten change.
func (gs *groupShard) restoreShareLocked(name string, existed bool, before *shareGroup) {
	g := gs.groups[name]
	switch {
	case !existed:
		delete(gs.groups, name)
	case g != nil && before != nil:
		g.sg = before
		g.state = before.state
	case g != nil:
		g.sg, g.kind = nil, kindClassic
	}
}

func (gs *groupShard) shareHeartbeatChangeLocked(req *kmsg.ShareGroupHeartbeatRequest, clientID, clientHost string, now time.Time) *kmsg.ShareGroupHeartbeatResponse {
	cfg := gs.gc.cfg
	g := gs.groups[req.GroupID]
	if g != nil && g.kind != kindShare {
		if g.kind == kindConsumer || !g.isDeletable() {
			return sgError(kerr.GroupIDNotFound.Code, "Group "+req.GroupID+" is not a share group.")
		}
	}
	if g == nil || g.kind != kindShare {
		if req.MemberEpoch != 0 {
			return sgError(kerr.UnknownMemberID.Code, "")
		}
		if g == nil {
			g = gs.getOrCreateLocked(req.GroupID)
		}
		g.kind = kindShare
	}
	if g.sg == nil {
		g.sg = newShareGroup()
	}
	sg := g.sg
	m := sg.members[req.MemberID]
	if req.MemberEpoch == leaveEpoch {
		resp := kmsg.NewPtrShareGroupHeartbeatResponse()
		resp.MemberID, resp.MemberEpoch = kmsg.StringPtr(req.MemberID), leaveEpoch
		if m != nil {
			g.removeShareMemberLocked(gs, m, now)
		} else {
			return sgError(kerr.UnknownMemberID.Code, "")
		}
		return resp
	}
	bump := false
	switch {
	case req.MemberEpoch == 0 && m == nil:
		if int32(len(sg.members)) >= cfg.shareMaxSize {
			return sgError(kerr.GroupMaxSizeReached.Code, "The share group has reached its maximum capacity of "+itoa(cfg.shareMaxSize)+" members.")
		}
		m = &sgMember{id: req.MemberID, assigned: map[string][]int32{}}
		sg.members[m.id] = m
		bump = true
	case m == nil:
		return sgError(kerr.UnknownMemberID.Code, "Member "+req.MemberID+" is not a member of group "+req.GroupID+".")
	case req.MemberEpoch != 0 && req.MemberEpoch != m.epoch:
		return sgError(kerr.FencedMemberEpoch.Code, "The share group member has a smaller member epoch ("+itoa(req.MemberEpoch)+") than the one known by the group coordinator ("+itoa(m.epoch)+").")
	}
	if req.RackID != nil {
		m.rackID = req.RackID
	}
	m.clientID, m.clientHost = clientID, clientHost
	if req.SubscribedTopicNames != nil {
		topics := slices.Sorted(slices.Values(req.SubscribedTopicNames))
		topics = slices.Compact(topics)
		if !slices.Equal(topics, m.topics) {
			m.topics = topics
			bump = true
		}
	}
	m.deadline = now.Add(gs.gc.b.shareGroupDuration(req.GroupID, "share.session.timeout.ms", cfg.shareSession))
	if h := gs.shareSubscriptionHash(sg); h != sg.metadataHash {
		sg.metadataHash = h
		bump = true
	}
	// Partitions initialized since the target was computed join it at a
	// new group epoch (Kafka's initializedAssignmentPending).
	if gs.initializedUnassignedLocked(sg) {
		bump = true
	}
	if bump {
		sg.epoch++
		gs.assignShareLocked(sg)
	}
	full := req.MemberEpoch == 0 || req.SubscribedTopicNames != nil
	if m.epoch != sg.assignmentEpoch {
		m.prevEpoch, m.epoch = m.epoch, sg.assignmentEpoch
		m.assigned = cloneAssignment(sg.target[m.id])
		full = true
	}
	gs.maybeInitializeShareLocked(sg)
	g.updateShareStateLocked(now)
	resp := kmsg.NewPtrShareGroupHeartbeatResponse()
	resp.MemberID, resp.MemberEpoch = kmsg.StringPtr(m.id), m.epoch
	resp.HeartbeatIntervalMillis = int32(gs.gc.b.shareGroupDuration(req.GroupID, "share.heartbeat.interval.ms", cfg.shareHeartbeat).Milliseconds())
	if full {
		ids := gs.topicIDs()
		a := kmsg.NewShareGroupHeartbeatResponseAssignment()
		for _, t := range sortedKeys(m.assigned) {
			tp := kmsg.NewShareGroupHeartbeatResponseAssignmentTopicPartition()
			tp.TopicID, tp.Partitions = ids[t], slices.Clone(m.assigned[t])
			a.TopicPartitions = append(a.TopicPartitions, tp)
		}
		resp.Assignment = &a
	}
	return resp
}

// updateShareStateLocked sets the group state: Empty without members, else
// Stable (a share group has no rebalance in progress).
func (g *group) updateShareStateLocked(now time.Time) {
	state := stateStable
	if len(g.sg.members) == 0 {
		state = stateEmpty
	}
	if g.sg.state != state {
		g.sg.state = state
		g.stateSince = now
	}
	g.state = state
}

// removeShareMemberLocked removes a member (leave, session expiry) and
// reassigns its partitions.
func (g *group) removeShareMemberLocked(gs *groupShard, m *sgMember, now time.Time) {
	sg := g.sg
	delete(sg.members, m.id)
	delete(sg.target, m.id)
	sg.epoch++
	gs.assignShareLocked(sg)
	g.updateShareStateLocked(now)
	gs.gc.b.c.notifyEvent()
}

// tickShareLocked expires the members whose session passed, writes the
// records of their removal, and returns the next deadline.
func (g *group) tickShareLocked(gs *groupShard, now time.Time) time.Time {
	if g.sg == nil {
		return time.Time{}
	}
	var expired []*sgMember
	for _, id := range sortedKeys(g.sg.members) {
		if m := g.sg.members[id]; !now.Before(m.deadline) {
			expired = append(expired, m)
		}
	}
	if len(expired) > 0 {
		before := g.sg.clone()
		for _, m := range expired {
			gs.gc.b.log.Debug("share group member fenced", "group", g.name, "member", m.id)
			g.removeShareMemberLocked(gs, m, now)
		}
		if err := gs.writeLocked(shareGroupRecords(g.name, before, g.sg, gs.topicIDs())); err != nil {
			g.sg = before
			g.state = before.state
			gs.gc.b.log.Debug("fencing share group members", "group", g.name, "err", err)
			return now.Add(100 * time.Millisecond) // and try again
		}
	}
	var next time.Time
	for _, m := range g.sg.members {
		if next.IsZero() || m.deadline.Before(next) {
			next = m.deadline
		}
	}
	return next
}

// shareConfig holds the share-group configs of the group coordinator and
// the share-partition leaders (Kafka's names in comments).
type shareConfig struct {
	shareSession       time.Duration // group.share.session.timeout.ms
	shareHeartbeat     time.Duration // group.share.heartbeat.interval.ms
	shareMaxSize       int32         // group.share.max.size
	shareLock          time.Duration // group.share.record.lock.duration.ms
	shareDeliveryLimit int32         // group.share.delivery.count.limit
	shareMaxLocks      int32         // group.share.partition.max.record.locks
}

var shareConfigDefs = map[string]configDef{
	// Test-friendly: Kafka's default is 45000.
	"group.share.session.timeout.ms": {"10000", func(b *brokerConfig, v string) error { return parseMillis(&b.group.shareSession, v) }},
	// Test-friendly: Kafka's default is 5000.
	"group.share.heartbeat.interval.ms":      {"250", func(b *brokerConfig, v string) error { return parseMillis(&b.group.shareHeartbeat, v) }},
	"group.share.max.size":                   {"200", func(b *brokerConfig, v string) error { return parseInt32(&b.group.shareMaxSize, v, 1) }},
	"group.share.record.lock.duration.ms":    {"30000", func(b *brokerConfig, v string) error { return parseMillis(&b.group.shareLock, v) }},
	"group.share.delivery.count.limit":       {"5", func(b *brokerConfig, v string) error { return parseInt32(&b.group.shareDeliveryLimit, v, 2) }},
	"group.share.partition.max.record.locks": {"2000", func(b *brokerConfig, v string) error { return parseInt32(&b.group.shareMaxLocks, v, 100) }},
}

func init() { regBrokerConfigs(shareConfigDefs) }
