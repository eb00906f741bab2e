package kcluster

// The per-API authorization rules of authz.go, one per API whose check is
// more than a gate on one resource: here data and admin APIs, in API key
// order where it helps; groups' in authz_rules_groups.go, transactions' in
// authz_rules_txn.go.

import (
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

// authorizeAlterReplicaLogDirs: ALTER on the cluster, or every partition
// is CLUSTER_AUTHORIZATION_FAILED (the response has no top-level error),
// as Kafka's handleAlterReplicaLogDirsRequest.
func authorizeAlterReplicaLogDirs(a authCtx, req *kmsg.AlterReplicaLogDirsRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	if a.ok(kmsg.ACLOperationAlter, kmsg.ACLResourceTypeCluster, clusterResourceName) {
		return next()
	}
	return alterReplicaLogDirsResponse(req, func(string, string, int32) int16 { return kerr.ClusterAuthorizationFailed.Code }), nil
}
