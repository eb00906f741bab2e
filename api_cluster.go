package kcluster

// FindCoordinator v0-v6 (KIP-699 batched keys from v4) and DescribeCluster
// v0-v1. A group's coordinator is the leader of its __consumer_offsets
// partition (created on the first FindCoordinator, group_coordinator.go); a
// transactional id's is the leader of its __transaction_state partition
// (txn_coordinator.go).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	reg(0, 6, (*broker).handleFindCoordinator)
	reg(0, 1, (*broker).handleDescribeCluster)
}

// coordinatorFor returns the broker coordinating key of keyType (0 group,
// 1 transaction), or an error.
func (b *broker) coordinatorFor(keyType int8, key string) (int32, error) {
	if keyType != 0 && keyType != 1 {
		return -1, kerr.InvalidRequest
	}
	if keyType == 0 {
		if key == "" {
			return -1, kerr.InvalidRequest
		}
		return b.groupCoordinatorFor(key)
	}
	if key == "" {
		return -1, kerr.InvalidRequest
	}
	return b.txnCoordinatorFor(key)
}

func (b *broker) handleFindCoordinator(req *kmsg.FindCoordinatorRequest, r *request) (*kmsg.FindCoordinatorResponse, error) {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, k := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = k
		id, err := b.coordinatorFor(req.CoordinatorType, k)
		c.NodeID = id
		c.ErrorCode = errCode(err)
		if err == nil {
			b.mu.RLock()
			if br := b.mu.state.Brokers[id]; br != nil {
				if host, port, ok := endpoint(br, r.listener()); ok {
					c.Host, c.Port = host, port
				} else {
					c.NodeID, c.ErrorCode = -1, kerr.CoordinatorNotAvailable.Code
				}
			}
			b.mu.RUnlock()
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	if req.Version < 4 {
		c := resp.Coordinators[0]
		resp.ErrorCode, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.NodeID, c.Host, c.Port
		resp.Coordinators = nil
	}
	return resp, nil
}

func (b *broker) handleDescribeCluster(req *kmsg.DescribeClusterRequest, r *request) (*kmsg.DescribeClusterResponse, error) {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.ClusterID = b.c.cfg.clusterID
	if req.EndpointType != 0 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		return resp, nil
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	resp.ControllerID = b.controllerIDLocked()
	for _, id := range b.mu.state.BrokerIDs() {
		br := b.mu.state.Brokers[id]
		host, port, ok := endpoint(br, r.listener())
		if br.Fenced || !ok {
			continue
		}
		rb := kmsg.NewDescribeClusterResponseBroker()
		rb.NodeID, rb.Host, rb.Port, rb.Rack = br.ID, host, port, br.Rack
		resp.Brokers = append(resp.Brokers, rb)
	}
	if !req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = -2147483648
	}
	return resp, nil
}
