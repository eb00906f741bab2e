package kcluster

// KIP-932 share groups, the group side: ShareGroupHeartbeat v1 and
// ShareGroupDescribe v1, Kafka 4.2's versions (v0 was Kafka 4.0's early
// access and was removed in 4.1). Both answer UNSUPPORTED_VERSION while
// share.version is below 1, as Kafka's KafkaApis. The coordinator is the
// group's (FindCoordinator key type GROUP), as in Kafka: key type SHARE
// finds the share coordinator of a share-partition's state
// (share_coordinator.go).

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

func init() {
	reg(1, 1, (*broker).handleShareGroupHeartbeat)
	reg(1, 1, (*broker).handleShareGroupDescribe)
}

// shareEnabled reports whether share.version turns share groups on.
func (b *broker) shareEnabled() bool { return b.featureLevel(metadata.FeatureShareVersion) >= 1 }

func (b *broker) handleShareGroupHeartbeat(req *kmsg.ShareGroupHeartbeatRequest, r *request) (*kmsg.ShareGroupHeartbeatResponse, error) {
	if !b.shareEnabled() {
		return sgError(kerr.UnsupportedVersion.Code, "The share group protocol is not enabled (share.version)."), nil
	}
	var resp *kmsg.ShareGroupHeartbeatResponse
	err := b.groups.withGroup(req.GroupID, func(gs *groupShard, g *group) error {
		resp = gs.heartbeatShareLocked(req, clientIDOf(r), clientHostOf(r), time.Now())
		return nil
	})
	if err != nil {
		return sgError(errCode(err), ""), nil
	}
	return resp, nil
}

func (b *broker) handleShareGroupDescribe(req *kmsg.ShareGroupDescribeRequest, r *request) (*kmsg.ShareGroupDescribeResponse, error) {
	resp := req.ResponseKind().(*kmsg.ShareGroupDescribeResponse)
	off := !b.shareEnabled()
	for _, name := range req.GroupIDs {
		rg := kmsg.NewShareGroupDescribeResponseGroup()
		rg.GroupID = name
		rg.AuthorizedOperations = -2147483648
		if off {
			rg.ErrorCode = kerr.UnsupportedVersion.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		err := b.groups.withGroup(name, func(gs *groupShard, g *group) error {
			if g == nil || g.kind != kindShare || g.sg == nil {
				msg := "Group " + name + " not found."
				if g != nil {
					msg = "Group " + name + " is not a share group."
				}
				rg.ErrorMessage = &msg
				return kerr.GroupIDNotFound
			}
			sg := g.sg
			ids := gs.topicIDs()
			rg.GroupState, rg.GroupEpoch, rg.AssignmentEpoch, rg.Assignor = sg.state, sg.epoch, sg.assignmentEpoch, "simple"
			for _, id := range sortedKeys(sg.members) {
				m := sg.members[id]
				rm := kmsg.NewShareGroupDescribeResponseGroupMember()
				rm.MemberID, rm.RackID, rm.MemberEpoch, rm.ClientID, rm.ClientHost = m.id, m.rackID, m.epoch, m.clientID, m.clientHost
				rm.SubscribedTopicNames = slices.Clone(m.topics)
				for _, t := range sortedKeys(m.assigned) {
					tp := kmsg.NewShareGroupDescribeResponseGroupMemberAssignmentTopicPartition()
					tp.TopicID, tp.Topic, tp.Partitions = ids[t], t, slices.Clone(m.assigned[t])
					rm.Assignment.TopicPartitions = append(rm.Assignment.TopicPartitions, tp)
				}
				rg.Members = append(rg.Members, rm)
			}
			return nil
		})
		if err != nil {
			rg.ErrorCode = errCode(err)
		} else {
			rg.ErrorMessage = nil
			if req.IncludeAuthorizedOperations {
				rg.AuthorizedOperations = authCtx{b, r.sess}.authorizedOperations(kmsg.ACLResourceTypeGroup, name, groupOperations)
			}
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}
