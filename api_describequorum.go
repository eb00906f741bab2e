package kcluster

// DescribeQuorum v0-v2 (KIP-595, KIP-836 timestamps from v1, KIP-853 node
// listeners from v2). Admin clients send it to a broker, which forwards it
// to the active controller over the network, as KRaft brokers do. The
// answer describes the metadata log, __cluster_metadata partition 0: the
// leader (the active controller) and its epoch (the Raft term), the high
// watermark, every voter's log-end offset and last contact as the leader
// sees them, and the brokers as observers with the offset of their last
// metadata fetch. Offsets are metadata record offsets, as everywhere else
// in kcluster. The in-memory mode answers with its one controller as the
// only voter, at epoch 0.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	reg(0, 2, (*broker).forwardDescribeQuorum)
	regCtrl(0, 2, (*controllerNode).handleDescribeQuorum)
}

func (b *broker) forwardDescribeQuorum(req *kmsg.DescribeQuorumRequest, r *request) (*kmsg.DescribeQuorumResponse, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	kresp, err := b.ac.request(ctx, req)
	if err != nil {
		resp := req.ResponseKind().(*kmsg.DescribeQuorumResponse)
		resp.ErrorCode = kerr.NotController.Code
		return resp, nil
	}
	return kresp.(*kmsg.DescribeQuorumResponse), nil
}

func (n *controllerNode) handleDescribeQuorum(req *kmsg.DescribeQuorumRequest) (*kmsg.DescribeQuorumResponse, error) {
	resp := req.ResponseKind().(*kmsg.DescribeQuorumResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewDescribeQuorumResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewDescribeQuorumResponseTopicPartition()
			rp.Partition = p.Partition
			switch {
			case t.Topic != metadataTopic || p.Partition != 0:
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case !n.ctrl.Active():
				rp.ErrorCode = kerr.NotLeaderForPartition.Code
			default:
				n.describeQuorum(&rp)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if req.Version >= 2 {
		for i, a := range n.c.ctrlAddrs() {
			node := kmsg.NewDescribeQuorumResponseNode()
			node.NodeID = a.id
			l := kmsg.NewDescribeQuorumResponseNodeListener()
			l.Name, l.Host, l.Port = "CONTROLLER", n.c.cfg.host, uint16(n.c.ctrlPorts[i])
			node.Listeners = append(node.Listeners, l)
			resp.Nodes = append(resp.Nodes, node)
		}
	}
	return resp, nil
}

// describeQuorum fills the leader's view of the quorum.
func (n *controllerNode) describeQuorum(rp *kmsg.DescribeQuorumResponseTopicPartition) {
	end := n.mlog.End()
	rp.LeaderID, rp.HighWatermark = n.id, end
	now := time.Now()
	if n.raft == nil {
		v := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
		v.ReplicaID, v.LogEndOffset = n.id, end
		v.LastFetchTimestamp, v.LastCaughtUpTimestamp = now.UnixMilli(), now.UnixMilli()
		rp.CurrentVoters = append(rp.CurrentVoters, v)
	} else {
		st := n.raft.Status()
		rp.LeaderEpoch = int32(st.Term)
		for _, id := range n.c.ControllerIDs() {
			v := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
			v.ReplicaID = id
			v.LogEndOffset = n.raft.RecordsThrough(st.Match[uint64(id)])
			if at, ok := st.LastAck[uint64(id)]; ok {
				v.LastFetchTimestamp = at.UnixMilli()
				if v.LogEndOffset >= end {
					v.LastCaughtUpTimestamp = at.UnixMilli()
				}
			}
			rp.CurrentVoters = append(rp.CurrentVoters, v)
		}
	}
	n.mu.Lock()
	now = time.Now()
	for id, f := range n.mu.observers {
		at := f.at
		if f.held {
			at = now // a held fetch is a broker fetching all along
		}
		o := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
		o.ReplicaID, o.LogEndOffset, o.LastFetchTimestamp = id, f.offset, at.UnixMilli()
		if f.offset >= end {
			o.LastCaughtUpTimestamp = at.UnixMilli()
		}
		rp.Observers = append(rp.Observers, o)
	}
	n.mu.Unlock()
}

// observerFetch is a broker's last fetch of the metadata log; held while
// the controller holds it (handleMetadataFetch).
type observerFetch struct {
	offset int64
	at     time.Time
	held   bool
}
