package kcluster

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The authorization rules (authz.go) of the APIs of transactions and
// producers.

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
