package kcluster

// The classic group protocol: JoinGroup v0-v9 (KIP-62 rebalance timeout
// from v1, KIP-394 MEMBER_ID_REQUIRED from v4, KIP-345 static members from
// v5, KIP-559 protocol type/name from v7, KIP-800 reason from v8, KIP-814
// skip assignment from v9), SyncGroup v0-v5 (KIP-345 v3, KIP-559 v5),
// Heartbeat v0-v4 (KIP-345 v3) and LeaveGroup v0-v5 (KIP-345 batch leave
// from v3, KIP-800 reason from v5). Each is answered by the group's
// coordinator (group_coordinator.go); other brokers answer NOT_COORDINATOR.

import (
	"context"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	reg(0, 9, (*broker).handleJoinGroup)
	reg(0, 5, (*broker).handleSyncGroup)
	reg(0, 4, (*broker).handleHeartbeat)
	reg(0, 5, (*broker).handleLeaveGroup)
}

func clientIDOf(r *request) string {
	if r.hdr.ClientID != nil {
		return *r.hdr.ClientID
	}
	return ""
}

func clientHostOf(r *request) string {
	if r.conn == nil {
		return ""
	}
	if host, _, err := net.SplitHostPort(r.conn.RemoteAddr().String()); err == nil {
		return "/" + host
	}
	return ""
}

func (b *broker) handleJoinGroup(req *kmsg.JoinGroupRequest, r *request) (*kmsg.JoinGroupResponse, error) {
	if req.Group == "" {
		return joinError(kerr.InvalidGroupID.Code, req.MemberID), nil
	}
	if req.InstanceID != nil && req.Version < 5 {
		return joinError(kerr.UnsupportedVersion.Code, req.MemberID), nil
	}
	fail := func(code int16) *kmsg.JoinGroupResponse { return joinError(code, req.MemberID) }
	resp := awaitGroup(b, req.Group, fail, func(gs *groupShard, g *group) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse, time.Duration) {
		if g == nil {
			if req.MemberID != "" {
				return fail(kerr.UnknownMemberID.Code), nil, 0
			}
			g = gs.getOrCreateLocked(req.Group)
		}
		resp, ch := g.joinLocked(gs, req, clientIDOf(r), clientHostOf(r), time.Now())
		if resp == nil && ch == nil {
			resp = fail(kerr.UnknownServerError.Code)
		}
		if g.isDeletable() && len(g.pending) == 0 && len(g.members) == 0 {
			delete(gs.groups, g.name)
		}
		// The join phase ends at the latest at the rebalance timeout,
		// after the initial delay; and some slack.
		return resp, ch, g.maxRebalanceTimeout() + b.cfg.group.initialDelay + 5*time.Second
	})
	if req.Version < 7 {
		resp.ProtocolType = nil
	}
	if resp.Protocol == nil && req.Version < 7 {
		resp.Protocol = kmsg.StringPtr("")
	}
	return resp, nil
}

func (b *broker) handleSyncGroup(req *kmsg.SyncGroupRequest, r *request) (*kmsg.SyncGroupResponse, error) {
	fail := func(code int16) *kmsg.SyncGroupResponse {
		r := kmsg.NewPtrSyncGroupResponse()
		r.ErrorCode = code
		return r
	}
	return awaitGroup(b, req.Group, fail, func(gs *groupShard, g *group) (*kmsg.SyncGroupResponse, chan *kmsg.SyncGroupResponse, time.Duration) {
		resp, ch := g.syncLocked(gs, req, time.Now())
		var timeout time.Duration
		if g != nil {
			timeout = g.maxRebalanceTimeout()
		}
		return resp, ch, timeout + 5*time.Second
	}), nil
}

// awaitGroup serves a JoinGroup or SyncGroup: fn answers at once, or
// hands back the channel its answer arrives on when the rebalance moves
// on, waited for up to timeout (then REBALANCE_IN_PROGRESS). An answer
// that arrives so, made under the shard's lock, leaves once what the
// shard had written by then is committed.
func awaitGroup[R any](b *broker, name string, fail func(code int16) R, fn func(gs *groupShard, g *group) (R, chan R, time.Duration)) R {
	var resp R
	var ch chan R
	var timeout time.Duration
	var shard *groupShard
	if err := b.groups.withGroup(name, func(gs *groupShard, g *group) error {
		shard = gs
		resp, ch, timeout = fn(gs, g)
		return nil
	}); err != nil {
		return fail(errCode(err))
	}
	if ch == nil {
		return resp
	}
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	select {
	case resp = <-ch:
		if err := shard.c.awaitWritten(); err != nil {
			return fail(errCode(err))
		}
		return resp
	case <-ctx.Done():
		return fail(kerr.RebalanceInProgress.Code)
	}
}

func (b *broker) handleHeartbeat(req *kmsg.HeartbeatRequest, r *request) (*kmsg.HeartbeatResponse, error) {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	err := b.groups.withGroup(req.Group, func(gs *groupShard, g *group) error {
		resp.ErrorCode = g.heartbeatLocked(req, time.Now())
		return nil
	})
	if err != nil {
		resp.ErrorCode = errCode(err)
	}
	return resp, nil
}

func (b *broker) handleLeaveGroup(req *kmsg.LeaveGroupRequest, r *request) (*kmsg.LeaveGroupResponse, error) {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	members := req.Members
	if req.Version < 3 {
		members = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	err := b.groups.withGroup(req.Group, func(gs *groupShard, g *group) error {
		now := time.Now()
		for _, m := range members {
			code := g.leaveLocked(gs, m.MemberID, m.InstanceID, now)
			if req.Version < 3 {
				resp.ErrorCode = code
				continue
			}
			rm := kmsg.NewLeaveGroupResponseMember()
			rm.MemberID, rm.InstanceID, rm.ErrorCode = m.MemberID, m.InstanceID, code
			resp.Members = append(resp.Members, rm)
		}
		return nil
	})
	if err != nil {
		resp.ErrorCode = errCode(err)
		resp.Members = nil
	}
	return resp, nil
}
