package kcluster

// The per-API authorization rules of authz.go, one per API whose check is
// more than a gate on one resource, in API key order where it helps.

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Produce: WRITE on the transactional id of a transactional produce, WRITE
// on each topic (v13 names topics by id: an id this broker does not know
// is left to the handler, UNKNOWN_TOPIC_ID, as Kafka).
func authorizeProduce(a authCtx, req *kmsg.ProduceRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	all := func(code int16, ts []kmsg.ProduceRequestTopic, resp *kmsg.ProduceResponse) {
		for _, t := range ts {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
	}
	if req.TransactionID != nil && !a.ok(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, *req.TransactionID) {
		if req.Acks == 0 {
			return nil, errCloseConn
		}
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		all(errTxnAuthz, req.Topics, resp)
		return resp, nil
	}
	keep, denied := split(req.Topics, func(t kmsg.ProduceRequestTopic) kmsg.ProduceRequestTopic { return t }, func(t kmsg.ProduceRequestTopic) bool {
		name := t.Topic
		if req.Version >= 13 {
			if name = a.topicName(t.TopicID); name == "" {
				return true
			}
		}
		return a.ok(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, name)
	})
	if len(denied) == 0 {
		return next()
	}
	if req.Acks == 0 {
		// Kafka answers acks=0 errors by closing the connection.
		return nil, errCloseConn
	}
	req.Topics = keep
	resp, err := runKept[*kmsg.ProduceResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	all(errTopicAuthz, denied, resp)
	return resp, nil
}

// Fetch: CLUSTER_ACTION for a follower's fetch, READ on each topic for a
// consumer's. Refused partitions are answered with the error and no data
// (the handler's answer for them is replaced, which keeps fetch sessions
// as they are).
func authorizeFetch(a authCtx, req *kmsg.FetchRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	replica := req.ReplicaID >= 0 || (req.Version >= 15 && req.ReplicaState.ID >= 0)
	name := func(topic string, id [16]byte) string {
		if req.Version >= 13 {
			return a.topicName(id)
		}
		return topic
	}
	var allowed func(string) bool
	if replica {
		ok := a.cluster(kmsg.ACLOperationClusterAction)
		allowed = func(string) bool { return ok }
	} else {
		cache := map[string]bool{}
		allowed = func(n string) bool {
			v, seen := cache[n]
			if !seen {
				v = a.ok(kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, n)
				cache[n] = v
			}
			return v
		}
	}
	denyAll := len(req.Topics) > 0
	for _, t := range req.Topics {
		if allowed(name(t.Topic, t.TopicID)) {
			denyAll = false
		}
	}
	if denyAll {
		req.MaxWaitMillis = 0 // nothing to wait for
	}
	kresp, err := next()
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.FetchResponse)
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if allowed(name(t.Topic, t.TopicID)) {
			continue
		}
		for j := range t.Partitions {
			p := kmsg.NewFetchResponseTopicPartition()
			p.Partition, p.ErrorCode = t.Partitions[j].Partition, errTopicAuthz
			p.HighWatermark, p.LastStableOffset, p.LogStartOffset = -1, -1, -1
			t.Partitions[j] = p
		}
	}
	return resp, nil
}

// ListOffsets: DESCRIBE on each topic.
func authorizeListOffsets(a authCtx, req *kmsg.ListOffsetsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	keep, denied := split(req.Topics, func(t kmsg.ListOffsetsRequestTopic) string { return t.Topic }, a.topic(kmsg.ACLOperationDescribe))
	if len(denied) == 0 {
		return next()
	}
	req.Topics = keep
	kresp, err := next()
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.ListOffsetsResponse)
	for _, t := range denied {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition, rp.ErrorCode, rp.Timestamp, rp.Offset = p.Partition, errTopicAuthz, -1, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// OffsetForLeaderEpoch: CLUSTER_ACTION for a follower, DESCRIBE on each
// topic for a client.
func authorizeOffsetForLeaderEpoch(a authCtx, req *kmsg.OffsetForLeaderEpochRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	allowed := a.topic(kmsg.ACLOperationDescribe)
	code := errTopicAuthz
	if req.ReplicaID >= 0 {
		ok := a.cluster(kmsg.ACLOperationClusterAction)
		allowed, code = func(string) bool { return ok }, errClusterAuthz
	}
	keep, denied := split(req.Topics, func(t kmsg.OffsetForLeaderEpochRequestTopic) string { return t.Topic }, allowed)
	if len(denied) == 0 {
		return next()
	}
	req.Topics = keep
	kresp, err := next()
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.OffsetForLeaderEpochResponse)
	for _, t := range denied {
		rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			rp.Partition, rp.ErrorCode, rp.LeaderEpoch, rp.EndOffset = p.Partition, code, -1, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// OffsetCommit: READ on the group, READ on each topic.
func authorizeOffsetCommit(a authCtx, req *kmsg.OffsetCommitRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	fill := func(resp *kmsg.OffsetCommitResponse, ts []kmsg.OffsetCommitRequestTopic, code int16) {
		for _, t := range ts {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
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
	keep, denied := split(req.Topics, func(t kmsg.OffsetCommitRequestTopic) string { return t.Topic }, a.topic(kmsg.ACLOperationRead))
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

// FindCoordinator: DESCRIBE on the group or transactional id.
func authorizeFindCoordinator(a authCtx, req *kmsg.FindCoordinatorRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
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

// CreateTopics: CREATE on the cluster or on each topic.
func authorizeCreateTopics(a authCtx, req *kmsg.CreateTopicsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	if a.cluster(kmsg.ACLOperationCreate) {
		return next()
	}
	keep, denied := split(req.Topics, func(t kmsg.CreateTopicsRequestTopic) string { return t.Topic }, a.topic(kmsg.ACLOperationCreate))
	req.Topics = keep
	resp, err := runKept[*kmsg.CreateTopicsResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	for _, t := range denied {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic, rt.ErrorCode = t.Topic, errTopicAuthz
		rt.NumPartitions, rt.ReplicationFactor = -1, -1
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// DeleteTopics: DELETE on each topic.
func authorizeDeleteTopics(a authCtx, req *kmsg.DeleteTopicsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	allowed := a.topic(kmsg.ACLOperationDelete)
	var deniedNames []string
	var deniedTopics []kmsg.DeleteTopicsRequestTopic
	req.TopicNames, deniedNames = split(req.TopicNames, func(n string) string { return n }, allowed)
	req.Topics, deniedTopics = split(req.Topics, func(t kmsg.DeleteTopicsRequestTopic) string {
		if t.Topic != nil {
			return *t.Topic
		}
		return a.topicName(t.TopicID)
	}, allowed)
	var resp *kmsg.DeleteTopicsResponse
	if len(req.TopicNames) > 0 || len(req.Topics) > 0 {
		kresp, err := next()
		if err != nil {
			return nil, err
		}
		resp = kresp.(*kmsg.DeleteTopicsResponse)
	} else {
		resp = req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	}
	for _, n := range deniedNames {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		rt.Topic, rt.ErrorCode = &n, errTopicAuthz
		resp.Topics = append(resp.Topics, rt)
	}
	for _, t := range deniedTopics {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		rt.Topic, rt.TopicID, rt.ErrorCode = t.Topic, t.TopicID, errTopicAuthz
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// DeleteRecords: DELETE on each topic.
func authorizeDeleteRecords(a authCtx, req *kmsg.DeleteRecordsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	keep, denied := split(req.Topics, func(t kmsg.DeleteRecordsRequestTopic) string { return t.Topic }, a.topic(kmsg.ACLOperationDelete))
	req.Topics = keep
	resp, err := runKept[*kmsg.DeleteRecordsResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	for _, t := range denied {
		rt := kmsg.NewDeleteRecordsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewDeleteRecordsResponseTopicPartition()
			rp.Partition, rp.LowWatermark, rp.ErrorCode = p.Partition, -1, errTopicAuthz
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// InitProducerId: WRITE on the transactional id; an idempotent producer
// needs IDEMPOTENT_WRITE on the cluster or WRITE on some topic.
func authorizeInitProducerID(a authCtx, req *kmsg.InitProducerIDRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		if !a.ok(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, *req.TransactionalID) {
			resp.ErrorCode = errTxnAuthz
			return resp, nil
		}
		return next()
	}
	if !a.cluster(kmsg.ACLOperationIdempotentWrite) && !a.anyTopicAllowed(kmsg.ACLOperationWrite) {
		resp.ErrorCode = errClusterAuthz
		return resp, nil
	}
	return next()
}

// AddPartitionsToTxn: v0-v3 (clients) WRITE on the transactional id and
// on each topic (if any topic is refused nothing is added: the others
// answer OPERATION_NOT_ATTEMPTED); v4+ (brokers verifying, KIP-890)
// CLUSTER_ACTION.
func authorizeAddPartitionsToTxn(a authCtx, req *kmsg.AddPartitionsToTxnRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	if req.Version >= 4 {
		if a.cluster(kmsg.ACLOperationClusterAction) {
			return next()
		}
		resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
		resp.ErrorCode = errClusterAuthz
		return resp, nil
	}
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	answer := func(code func(topic string) int16) (kmsg.Response, error) {
		for _, t := range req.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p, code(t.Topic)
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	}
	if !a.ok(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, req.TransactionalID) {
		return answer(func(string) int16 { return errTxnAuthz })
	}
	allowed := a.topic(kmsg.ACLOperationWrite)
	_, denied := split(req.Topics, func(t kmsg.AddPartitionsToTxnRequestTopic) string { return t.Topic }, allowed)
	if len(denied) == 0 {
		return next()
	}
	return answer(func(t string) int16 {
		if allowed(t) {
			return kerr.OperationNotAttempted.Code
		}
		return errTopicAuthz
	})
}

// AddOffsetsToTxn: WRITE on the transactional id, READ on the group.
func authorizeAddOffsetsToTxn(a authCtx, req *kmsg.AddOffsetsToTxnRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	switch {
	case !a.ok(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, req.TransactionalID):
		resp.ErrorCode = errTxnAuthz
	case !a.ok(kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group):
		resp.ErrorCode = errGroupAuthz
	default:
		return next()
	}
	return resp, nil
}

// WriteTxnMarkers: CLUSTER_ACTION (brokers only).
func authorizeWriteTxnMarkers(a authCtx, req *kmsg.WriteTxnMarkersRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	if a.cluster(kmsg.ACLOperationClusterAction) {
		return next()
	}
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	for _, m := range req.Markers {
		rm := kmsg.NewWriteTxnMarkersResponseMarker()
		rm.ProducerID = m.ProducerID
		for _, t := range m.Topics {
			rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				rp.Partition, rp.ErrorCode = p, errClusterAuthz
				rt.Partitions = append(rt.Partitions, rp)
			}
			rm.Topics = append(rm.Topics, rt)
		}
		resp.Markers = append(resp.Markers, rm)
	}
	return resp, nil
}

// TxnOffsetCommit: WRITE on the transactional id, READ on the group and
// on each topic.
func authorizeTxnOffsetCommit(a authCtx, req *kmsg.TxnOffsetCommitRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	fill := func(resp *kmsg.TxnOffsetCommitResponse, ts []kmsg.TxnOffsetCommitRequestTopic, code int16) {
		for _, t := range ts {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
	}
	code := int16(0)
	switch {
	case !a.ok(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, req.TransactionalID):
		code = errTxnAuthz
	case !a.ok(kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group):
		code = errGroupAuthz
	}
	if code != 0 {
		resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		fill(resp, req.Topics, code)
		return resp, nil
	}
	keep, denied := split(req.Topics, func(t kmsg.TxnOffsetCommitRequestTopic) string { return t.Topic }, a.topic(kmsg.ACLOperationRead))
	if len(denied) == 0 {
		return next()
	}
	req.Topics = keep
	resp, err := runKept[*kmsg.TxnOffsetCommitResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	fill(resp, denied, errTopicAuthz)
	return resp, nil
}

// CreateAcls and DeleteAcls: ALTER on the cluster.
func authorizeCreateACLs(a authCtx, req *kmsg.CreateACLsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	if a.cluster(kmsg.ACLOperationAlter) {
		return next()
	}
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	for range req.Creations {
		r := kmsg.NewCreateACLsResponseResult()
		r.ErrorCode = errClusterAuthz
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

func authorizeDeleteACLs(a authCtx, req *kmsg.DeleteACLsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	if a.cluster(kmsg.ACLOperationAlter) {
		return next()
	}
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	for range req.Filters {
		r := kmsg.NewDeleteACLsResponseResult()
		r.ErrorCode = errClusterAuthz
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

// configResource is the ACL resource of a config resource: a topic, a
// group, or the cluster for brokers and broker loggers; code is its
// authorization error.
func configResource(typ kmsg.ConfigResourceType, name string) (kmsg.ACLResourceType, string, int16) {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		return kmsg.ACLResourceTypeTopic, name, errTopicAuthz
	case kmsg.ConfigResourceTypeGroupConfig:
		return kmsg.ACLResourceTypeGroup, name, errGroupAuthz
	}
	return kmsg.ACLResourceTypeCluster, clusterResourceName, errClusterAuthz
}

// DescribeConfigs: DESCRIBE_CONFIGS on each resource.
func authorizeDescribeConfigs(a authCtx, req *kmsg.DescribeConfigsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	ok := func(r kmsg.DescribeConfigsRequestResource) bool {
		rt, n, _ := configResource(r.ResourceType, r.ResourceName)
		return a.ok(kmsg.ACLOperationDescribeConfigs, rt, n)
	}
	keep, denied := split(req.Resources, func(r kmsg.DescribeConfigsRequestResource) kmsg.DescribeConfigsRequestResource { return r }, ok)
	req.Resources = keep
	resp, err := runKept[*kmsg.DescribeConfigsResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	for _, r := range denied {
		_, _, code := configResource(r.ResourceType, r.ResourceName)
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName, rr.ErrorCode = r.ResourceType, r.ResourceName, code
		resp.Resources = append(resp.Resources, rr)
	}
	return resp, nil
}

// AlterConfigs and IncrementalAlterConfigs: ALTER_CONFIGS on each resource.
func authorizeAlterConfigs(a authCtx, req *kmsg.AlterConfigsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	ok := func(r kmsg.AlterConfigsRequestResource) bool {
		rt, n, _ := configResource(r.ResourceType, r.ResourceName)
		return a.ok(kmsg.ACLOperationAlterConfigs, rt, n)
	}
	keep, denied := split(req.Resources, func(r kmsg.AlterConfigsRequestResource) kmsg.AlterConfigsRequestResource { return r }, ok)
	req.Resources = keep
	resp, err := runKept[*kmsg.AlterConfigsResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	for _, r := range denied {
		_, _, code := configResource(r.ResourceType, r.ResourceName)
		rr := kmsg.NewAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName, rr.ErrorCode = r.ResourceType, r.ResourceName, code
		resp.Resources = append(resp.Resources, rr)
	}
	return resp, nil
}

func authorizeIncrementalAlterConfigs(a authCtx, req *kmsg.IncrementalAlterConfigsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	ok := func(r kmsg.IncrementalAlterConfigsRequestResource) bool {
		rt, n, _ := configResource(r.ResourceType, r.ResourceName)
		return a.ok(kmsg.ACLOperationAlterConfigs, rt, n)
	}
	keep, denied := split(req.Resources, func(r kmsg.IncrementalAlterConfigsRequestResource) kmsg.IncrementalAlterConfigsRequestResource {
		return r
	}, ok)
	req.Resources = keep
	resp, err := runKept[*kmsg.IncrementalAlterConfigsResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	for _, r := range denied {
		_, _, code := configResource(r.ResourceType, r.ResourceName)
		rr := kmsg.NewIncrementalAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName, rr.ErrorCode = r.ResourceType, r.ResourceName, code
		resp.Resources = append(resp.Resources, rr)
	}
	return resp, nil
}

// CreatePartitions: ALTER on each topic.
func authorizeCreatePartitions(a authCtx, req *kmsg.CreatePartitionsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	keep, denied := split(req.Topics, func(t kmsg.CreatePartitionsRequestTopic) string { return t.Topic }, a.topic(kmsg.ACLOperationAlter))
	req.Topics = keep
	resp, err := runKept[*kmsg.CreatePartitionsResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	for _, t := range denied {
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic, rt.ErrorCode = t.Topic, errTopicAuthz
		resp.Topics = append(resp.Topics, rt)
	}
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

// AlterClientQuotas: ALTER_CONFIGS on the cluster.
func authorizeAlterClientQuotas(a authCtx, req *kmsg.AlterClientQuotasRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	if a.cluster(kmsg.ACLOperationAlterConfigs) {
		return next()
	}
	resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
	for _, e := range req.Entries {
		re := kmsg.NewAlterClientQuotasResponseEntry()
		re.ErrorCode = errClusterAuthz
		for _, ent := range e.Entity {
			re.Entity = append(re.Entity, kmsg.AlterClientQuotasResponseEntryEntity{Type: ent.Type, Name: ent.Name})
		}
		resp.Entries = append(resp.Entries, re)
	}
	return resp, nil
}

// AlterUserScramCredentials: ALTER on the cluster.
func authorizeAlterUserSCRAM(a authCtx, req *kmsg.AlterUserSCRAMCredentialsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	if a.cluster(kmsg.ACLOperationAlter) {
		return next()
	}
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	for _, u := range scramRequestUsers(req) {
		r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		r.User, r.ErrorCode = u, errClusterAuthz
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

// DescribeProducers: READ on each topic.
func authorizeDescribeProducers(a authCtx, req *kmsg.DescribeProducersRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	keep, denied := split(req.Topics, func(t kmsg.DescribeProducersRequestTopic) string { return t.Topic }, a.topic(kmsg.ACLOperationRead))
	req.Topics = keep
	resp, err := runKept[*kmsg.DescribeProducersResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	for _, t := range denied {
		rt := kmsg.NewDescribeProducersResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewDescribeProducersResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p, errTopicAuthz
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// DescribeTransactions: DESCRIBE on each transactional id.
func authorizeDescribeTransactions(a authCtx, req *kmsg.DescribeTransactionsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	ok := func(id string) bool { return a.ok(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId, id) }
	keep, denied := split(req.TransactionalIDs, func(id string) string { return id }, ok)
	req.TransactionalIDs = keep
	resp, err := runKept[*kmsg.DescribeTransactionsResponse](req, len(keep) > 0, next)
	if err != nil {
		return nil, err
	}
	for _, id := range denied {
		s := kmsg.NewDescribeTransactionsResponseTransactionState()
		s.TransactionalID, s.ErrorCode, s.ProducerID, s.ProducerEpoch = id, errTxnAuthz, -1, -1
		resp.TransactionStates = append(resp.TransactionStates, s)
	}
	return resp, nil
}

// ListTransactions: the transactional ids the principal may DESCRIBE.
func authorizeListTransactions(a authCtx, req *kmsg.ListTransactionsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	kresp, err := next()
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.ListTransactionsResponse)
	resp.TransactionStates = slices.DeleteFunc(resp.TransactionStates, func(s kmsg.ListTransactionsResponseTransactionState) bool {
		return !a.ok(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId, s.TransactionalID)
	})
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

// DescribeTopicPartitions: DESCRIBE on each topic.
func authorizeDescribeTopicPartitions(a authCtx, req *kmsg.DescribeTopicPartitionsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	kresp, err := next()
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.DescribeTopicPartitionsResponse)
	named := len(req.Topics) > 0
	out := resp.Topics[:0]
	for _, t := range resp.Topics {
		if t.Topic != nil && !a.ok(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, *t.Topic) {
			if !named {
				continue
			}
			rt := kmsg.NewDescribeTopicPartitionsResponseTopic()
			rt.Topic, rt.ErrorCode = t.Topic, errTopicAuthz
			t = rt
		}
		out = append(out, t)
	}
	resp.Topics = out
	return resp, nil
}

// runKept answers the authorized part of a request a rule split: next
// handles it when anything is left (the rule has put only the allowed
// entries back in the request), else the response starts empty; the rule
// then adds its refused entries.
func runKept[Resp kmsg.Response](req kmsg.Request, kept bool, next func() (kmsg.Response, error)) (Resp, error) {
	if !kept {
		return req.ResponseKind().(Resp), nil
	}
	kresp, err := next()
	if err != nil {
		var zero Resp
		return zero, err
	}
	return kresp.(Resp), nil
}
