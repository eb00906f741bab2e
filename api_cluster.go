package kcluster

// FindCoordinator v0-v6 (KIP-699 batched keys from v4) and DescribeCluster
// v0-v2 (KIP-919 endpoint type from v1: a broker describes brokers, and
// answers a request for controllers MISMATCHED_ENDPOINT_TYPE; KIP-1073
// fenced brokers on request from v2). A group's coordinator is the leader of its __consumer_offsets
// partition (created on the first FindCoordinator, group_coordinator.go); a
// transactional id's is the leader of its __transaction_state partition
// (txn_coordinator.go); a share-partition's (key type 2, v6) is the
// leader of its __share_group_state partition (share_coordinator.go).

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	reg(0, 6, (*broker).handleFindCoordinator)
	reg(0, 2, (*broker).handleDescribeCluster)
}

// coordinatorFor returns the broker coordinating key of keyType (0 group,
// 1 transaction, 2 share: a share-partition's "groupId:topicId:partition",
// from v6), or an error.
func (b *broker) coordinatorFor(version int16, keyType int8, key string) (int32, error) {
	switch {
	case keyType == 2 && version >= 6:
		if !validShareCoordinatorKey(key) {
			return -1, kerr.InvalidRequest
		}
		return b.shareCoordinatorFor(key)
	case keyType != 0 && keyType != 1:
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

// validShareCoordinatorKey reports whether key is a share coordinator's
// key: "groupId:topicId:partition", a non-empty group, a topic id in
// Kafka's base64 form and a partition (Kafka's
// SharePartitionKey.validate).
func validShareCoordinatorKey(key string) bool {
	i := strings.LastIndexByte(key, ':')
	if i < 0 {
		return false
	}
	j := strings.LastIndexByte(key[:i], ':')
	if j <= 0 {
		return false
	}
	id, err := base64.RawURLEncoding.DecodeString(key[j+1 : i])
	p, perr := strconv.ParseInt(key[i+1:], 10, 32)
	return err == nil && len(id) == 16 && perr == nil && p >= 0
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
		id, err := b.coordinatorFor(req.Version, req.CoordinatorType, k)
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
