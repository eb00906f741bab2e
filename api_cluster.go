package kcluster

// FindCoordinator v0-v6 (KIP-699 batched keys from v4) and DescribeCluster
// v0-v2 (KIP-919 endpoint type from v1: a broker describes brokers, and
// answers a request for controllers MISMATCHED_ENDPOINT_TYPE; KIP-1073
// fenced brokers on request from v2). A group's coordinator is the leader of its __consumer_offsets
// partition (created on the first FindCoordinator, group_coordinator.go); a
// transactional id's is the leader of its __transaction_state partition
// (txn_coordinator.go).

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	reg(0, 6, (*broker).handleFindCoordinator)
	reg(0, 2, (*broker).handleDescribeCluster)
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
	// Kafka's AuthHelper.computeDescribeClusterResponse: v0 has no
	// endpoint type field (it is brokers, 1), so its errors are
	// INVALID_REQUEST.
	switch req.EndpointType {
	case 1:
	case 2:
		resp.ErrorCode = kerr.MismatchedEndpointType.Code
		resp.ErrorMessage = kmsg.StringPtr("The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER")
	default:
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		resp.ErrorMessage = kmsg.StringPtr("Unsupported endpoint type " + strconv.Itoa(int(req.EndpointType)))
	}
	if resp.ErrorCode != 0 {
		if req.Version == 0 {
			resp.ErrorCode = kerr.InvalidRequest.Code
		}
		return resp, nil
	}
	resp.ClusterID = b.c.cfg.clusterID
	resp.EndpointType = 1
	fenced := req.Version >= 2 && req.IncludeFencedBrokers
	b.mu.RLock()
	defer b.mu.RUnlock()
	resp.ControllerID = b.controllerIDLocked()
	for _, id := range b.mu.state.BrokerIDs() {
		br := b.mu.state.Brokers[id]
		host, port, ok := endpoint(br, r.listener())
		if (br.Fenced && !fenced) || !ok {
			continue
		}
		rb := kmsg.NewDescribeClusterResponseBroker()
		rb.NodeID, rb.Host, rb.Port, rb.Rack, rb.IsFenced = br.ID, host, port, br.Rack, br.Fenced
		resp.Brokers = append(resp.Brokers, rb)
	}
	if !req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = -2147483648
	}
	return resp, nil
}
