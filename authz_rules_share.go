package kcluster

// The share coordinator's state RPCs (api_sharestate.go): CLUSTER_ACTION
// (brokers only), as Kafka's KafkaApis authorizes them; every partition
// of a refused request is answered CLUSTER_AUTHORIZATION_FAILED.

import "github.com/twmb/franz-go/pkg/kmsg"

func init() {
	authzRules[83] = rule(authorizeInitializeShareGroupState)
	authzRules[84] = rule(authorizeReadShareGroupState)
	authzRules[85] = rule(authorizeWriteShareGroupState)
	authzRules[86] = rule(authorizeDeleteShareGroupState)
	authzRules[87] = rule(authorizeReadShareGroupStateSummary)
}

func authorizeInitializeShareGroupState(a authCtx, req *kmsg.InitializeShareGroupStateRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	if a.cluster(kmsg.ACLOperationClusterAction) {
		return next()
	}
	resp := req.ResponseKind().(*kmsg.InitializeShareGroupStateResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewInitializeShareGroupStateResponseTopic()
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewInitializeShareGroupStateResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, errClusterAuthz
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func authorizeReadShareGroupState(a authCtx, req *kmsg.ReadShareGroupStateRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	if a.cluster(kmsg.ACLOperationClusterAction) {
		return next()
	}
	resp := req.ResponseKind().(*kmsg.ReadShareGroupStateResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewReadShareGroupStateResponseTopic()
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewReadShareGroupStateResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, errClusterAuthz
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func authorizeWriteShareGroupState(a authCtx, req *kmsg.WriteShareGroupStateRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	if a.cluster(kmsg.ACLOperationClusterAction) {
		return next()
	}
	resp := req.ResponseKind().(*kmsg.WriteShareGroupStateResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewWriteShareGroupStateResponseTopic()
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewWriteShareGroupStateResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, errClusterAuthz
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func authorizeDeleteShareGroupState(a authCtx, req *kmsg.DeleteShareGroupStateRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	if a.cluster(kmsg.ACLOperationClusterAction) {
		return next()
	}
	resp := req.ResponseKind().(*kmsg.DeleteShareGroupStateResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewDeleteShareGroupStateResponseTopic()
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewDeleteShareGroupStateResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, errClusterAuthz
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func authorizeReadShareGroupStateSummary(a authCtx, req *kmsg.ReadShareGroupStateSummaryRequest, next func() (kmsg.Response, error)) (kmsg.Response, error) {
	if a.cluster(kmsg.ACLOperationClusterAction) {
		return next()
	}
	resp := req.ResponseKind().(*kmsg.ReadShareGroupStateSummaryResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewReadShareGroupStateSummaryResponseTopic()
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewReadShareGroupStateSummaryResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, errClusterAuthz
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
