package kcluster

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The authorization rules (authz.go) of the APIs of consumer groups:
// offsets, coordinators, group descriptions and deletion.

// OffsetCommit: READ on the group, READ on each topic (named by id from
// v10: an id the metadata does not have is left to the handler, which
// answers UNKNOWN_TOPIC_ID).
func authorizeOffsetCommit(a authCtx, req *kmsg.OffsetCommitRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	fill := func(resp *kmsg.OffsetCommitResponse, ts []kmsg.OffsetCommitRequestTopic, code int16) {
		for _, t := range ts {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
	}
	if !a.ok(kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		fill(resp, req.Topics, errGroupAuthz)
		return resp, nil
	}
	readable := a.topic(kmsg.ACLOperationRead)
	keep, denied := split(req.Topics, func(t kmsg.OffsetCommitRequestTopic) kmsg.OffsetCommitRequestTopic { return t }, func(t kmsg.OffsetCommitRequestTopic) bool {
		if req.Version >= 10 {
			n := a.topicName(t.TopicID)
			return n == "" || readable(n)
		}
		return readable(t.Topic)
	})
	if len(denied) == 0 {
		return next()
	}
	req.Topics = keep
	resp, err := runKept[*kmsg.OffsetCommitResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	fill(resp, denied, errTopicAuthz)
	return resp, nil
}

// OffsetFetch: DESCRIBE on each group, DESCRIBE on each topic (refused
// named topics answer the error, and a fetch of every topic leaves the
// refused ones out), as Kafka.
func authorizeOffsetFetch(a authCtx, req *kmsg.OffsetFetchRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	groupOK := func(g string) bool { return a.ok(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, g) }
	topicOK := a.topic(kmsg.ACLOperationDescribe)
	patch := func(ts []kmsg.OffsetFetchResponseGroupTopic, all bool) []kmsg.OffsetFetchResponseGroupTopic {
		out := ts[:0]
		for _, t := range ts {
			n := t.Topic
			if n == "" {
				n = a.topicName(t.TopicID)
			}
			if n == "" && !all {
				out = append(out, t) // an unknown topic id: UNKNOWN_TOPIC_ID
				continue
			}
			if !topicOK(n) {
				if all {
					continue
				}
				for j := range t.Partitions {
					p := &t.Partitions[j]
					p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode = -1, -1, nil, errTopicAuthz
				}
			}
			out = append(out, t)
		}
		return out
	}
	if req.Version < 8 {
		if !groupOK(req.Group) {
			resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
			resp.ErrorCode = errGroupAuthz
			for _, t := range req.Topics {
				rt := kmsg.NewOffsetFetchResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetFetchResponseTopicPartition()
					rp.Partition, rp.Offset, rp.ErrorCode = p, -1, errGroupAuthz
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			return resp, nil
		}
		kresp, err := next()
		if err != nil {
			return nil, err
		}
		resp := kresp.(*kmsg.OffsetFetchResponse)
		for i := range resp.Topics {
			t := &resp.Topics[i]
			if topicOK(t.Topic) {
				continue
			}
			for j := range t.Partitions {
				p := &t.Partitions[j]
				p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode = -1, -1, nil, errTopicAuthz
			}
		}
		if req.Topics == nil {
			resp.Topics = slices.DeleteFunc(resp.Topics, func(t kmsg.OffsetFetchResponseTopic) bool { return !topicOK(t.Topic) })
		}
		return resp, nil
	}
	keep, denied := split(req.Groups, func(g kmsg.OffsetFetchRequestGroup) string { return g.Group }, groupOK)
	allTopics := map[string]bool{}
	for _, g := range req.Groups {
		allTopics[g.Group] = g.Topics == nil
	}
	req.Groups = keep
	resp, err := runKept[*kmsg.OffsetFetchResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	for i := range resp.Groups {
		resp.Groups[i].Topics = patch(resp.Groups[i].Topics, allTopics[resp.Groups[i].Group])
	}
	for _, g := range denied {
		rg := kmsg.NewOffsetFetchResponseGroup()
		rg.Group, rg.ErrorCode = g.Group, errGroupAuthz
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}

// FindCoordinator: DESCRIBE on the group or transactional id; a share
// coordinator's key (type 2): CLUSTER_ACTION (brokers only).
func authorizeFindCoordinator(a authCtx, req *kmsg.FindCoordinatorRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	if req.CoordinatorType == 2 {
		if a.cluster(kmsg.ACLOperationClusterAction) {
			return next()
		}
		resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
		keys := req.CoordinatorKeys
		if req.Version < 4 {
			resp.ErrorCode, resp.NodeID, resp.Port = kerr.ClusterAuthorizationFailed.Code, -1, -1
			return resp, nil
		}
		for _, k := range keys {
			c := kmsg.NewFindCoordinatorResponseCoordinator()
			c.Key, c.NodeID, c.Port, c.ErrorCode = k, -1, -1, kerr.ClusterAuthorizationFailed.Code
			resp.Coordinators = append(resp.Coordinators, c)
		}
		return resp, nil
	}
	rt, code := kmsg.ACLResourceTypeGroup, errGroupAuthz
	if req.CoordinatorType == 1 {
		rt, code = kmsg.ACLResourceTypeTransactionalId, errTxnAuthz
	}
	if req.Version < 4 {
		if !a.ok(kmsg.ACLOperationDescribe, rt, req.CoordinatorKey) {
			resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
			resp.ErrorCode, resp.NodeID, resp.Port = code, -1, -1
			return resp, nil
		}
		return next()
	}
	keep, denied := split(req.CoordinatorKeys, func(k string) string { return k }, func(k string) bool { return a.ok(kmsg.ACLOperationDescribe, rt, k) })
	req.CoordinatorKeys = keep
	resp, err := runKept[*kmsg.FindCoordinatorResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	for _, k := range denied {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.NodeID, c.Port, c.ErrorCode = k, -1, -1, code
		resp.Coordinators = append(resp.Coordinators, c)
	}
	return resp, nil
}

// DescribeGroups: DESCRIBE on each group.
func authorizeDescribeGroups(a authCtx, req *kmsg.DescribeGroupsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	keep, denied := split(req.Groups, func(g string) string { return g }, func(g string) bool { return a.ok(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, g) })
	req.Groups = keep
	resp, err := runKept[*kmsg.DescribeGroupsResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	for _, g := range denied {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group, rg.ErrorCode = g, errGroupAuthz
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}

// ListGroups: every group with DESCRIBE on the cluster, else the groups
// the principal may DESCRIBE.
func authorizeListGroups(a authCtx, req *kmsg.ListGroupsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	kresp, err := next()
	if err != nil || a.cluster(kmsg.ACLOperationDescribe) {
		return kresp, err
	}
	resp := kresp.(*kmsg.ListGroupsResponse)
	resp.Groups = slices.DeleteFunc(resp.Groups, func(g kmsg.ListGroupsResponseGroup) bool {
		return !a.ok(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, g.Group)
	})
	return resp, nil
}

// DeleteGroups: DELETE on each group.
func authorizeDeleteGroups(a authCtx, req *kmsg.DeleteGroupsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	keep, denied := split(req.Groups, func(g string) string { return g }, func(g string) bool { return a.ok(kmsg.ACLOperationDelete, kmsg.ACLResourceTypeGroup, g) })
	req.Groups = keep
	resp, err := runKept[*kmsg.DeleteGroupsResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	for _, g := range denied {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group, rg.ErrorCode = g, errGroupAuthz
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}

// OffsetDelete: DELETE on the group, READ on each topic.
func authorizeOffsetDelete(a authCtx, req *kmsg.OffsetDeleteRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	if !a.ok(kmsg.ACLOperationDelete, kmsg.ACLResourceTypeGroup, req.Group) {
		resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
		resp.ErrorCode = errGroupAuthz
		return resp, nil
	}
	keep, denied := split(req.Topics, func(t kmsg.OffsetDeleteRequestTopic) string { return t.Topic }, a.topic(kmsg.ACLOperationRead))
	if len(denied) == 0 {
		return next()
	}
	req.Topics = keep
	resp, err := runKept[*kmsg.OffsetDeleteResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	for _, t := range denied {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, errTopicAuthz
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// ConsumerGroupDescribe: DESCRIBE on each group.
func authorizeConsumerGroupDescribe(a authCtx, req *kmsg.ConsumerGroupDescribeRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	keep, denied := split(req.Groups, func(g string) string { return g }, func(g string) bool { return a.ok(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, g) })
	req.Groups = keep
	resp, err := runKept[*kmsg.ConsumerGroupDescribeResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	for _, g := range denied {
		rg := kmsg.NewConsumerGroupDescribeResponseGroup()
		rg.Group, rg.ErrorCode = g, errGroupAuthz
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}

// groupOperations are the operations an ACL may grant on a group
// (Kafka's AclEntry.supportedOperations(GROUP)).
var groupOperations = []kmsg.ACLOperation{kmsg.ACLOperationRead, kmsg.ACLOperationDescribe, kmsg.ACLOperationDelete}

// authorizedOperations is Kafka's AuthHelper.authorizedOperations for a
// describe that asks for them (IncludeAuthorizedOperations): the bit
// field, bit n for operation code n, of the operations of ops the
// principal may do on the resource; all of them without an authorizer.
func (a authCtx) authorizedOperations(rt kmsg.ACLResourceType, name string, ops []kmsg.ACLOperation) int32 {
	var bits int32
	for _, op := range ops {
		if !a.b.cfg.security.authorizer || a.ok(op, rt, name) {
			bits |= 1 << op
		}
	}
	return bits
}

// ShareGroupDescribe: DESCRIBE on each group.
func authorizeShareGroupDescribe(a authCtx, req *kmsg.ShareGroupDescribeRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	keep, denied := split(req.GroupIDs, func(g string) string { return g }, func(g string) bool { return a.ok(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, g) })
	req.GroupIDs = keep
	resp, err := runKept[*kmsg.ShareGroupDescribeResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	for _, g := range denied {
		rg := kmsg.NewShareGroupDescribeResponseGroup()
		rg.GroupID, rg.ErrorCode = g, errGroupAuthz
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}

// DescribeShareGroupOffsets: DESCRIBE on each group.
func authorizeDescribeShareGroupOffsets(a authCtx, req *kmsg.DescribeShareGroupOffsetsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	keep, denied := split(req.Groups, func(g kmsg.DescribeShareGroupOffsetsRequestGroup) string { return g.GroupID },
		func(g string) bool { return a.ok(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, g) })
	req.Groups = keep
	resp, err := runKept[*kmsg.DescribeShareGroupOffsetsResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	for _, g := range denied {
		rg := kmsg.NewDescribeShareGroupOffsetsResponseGroup()
		rg.GroupID, rg.ErrorCode = g.GroupID, errGroupAuthz
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}
