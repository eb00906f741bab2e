package kcluster

// CreatePartitions v0-v3, ElectLeaders v0-v2 (KIP-460: preferred and
// unclean elections, ElectionType from v1), AlterPartitionReassignments
// v0-v1 (KIP-455; KIP-1102's AllowReplicationFactorChange from v1) and
// ListPartitionReassignments v0. Brokers forward all but the listing to
// the controller (metadata/reassign.go has the state machine) and answer
// once their own metadata shows the change; any broker lists
// reassignments from its metadata.

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

func init() {
	reg(0, 3, (*broker).forwardCreatePartitions)
	reg(0, 2, (*broker).forwardElectLeaders)
	reg(0, 1, (*broker).forwardAlterPartitionReassignments)
	reg(0, 0, (*broker).handleListPartitionReassignments)
	regCtrl(0, 3, (*controllerNode).handleCreatePartitions)
	regCtrl(0, 2, (*controllerNode).handleElectLeaders)
	regCtrl(0, 1, (*controllerNode).handleAlterPartitionReassignments)
}

func (b *broker) forwardCreatePartitions(req *kmsg.CreatePartitionsRequest, r *request) (*kmsg.CreatePartitionsResponse, error) {
	ctx, cancel := context.WithTimeout(b.ctx, requestTimeout(req.TimeoutMillis))
	defer cancel()
	kresp, err := b.ac.request(ctx, req)
	if err != nil {
		resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
		for _, t := range req.Topics {
			rt := kmsg.NewCreatePartitionsResponseTopic()
			rt.Topic, rt.ErrorCode = t.Topic, kerr.NotController.Code
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	}
	resp := kresp.(*kmsg.CreatePartitionsResponse)
	if !req.ValidateOnly {
		b.waitState(ctx, func(st *metadata.State) bool {
			for i, t := range req.Topics {
				if i < len(resp.Topics) && resp.Topics[i].ErrorCode == 0 {
					if tt := st.Topics[t.Topic]; tt == nil || int32(len(tt.Partitions)) < t.Count {
						return false
					}
				}
			}
			return true
		})
	}
	return resp, nil
}

func (n *controllerNode) handleCreatePartitions(req *kmsg.CreatePartitionsRequest) (*kmsg.CreatePartitionsResponse, error) {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	ctx, cancel := context.WithTimeout(n.ctx, requestTimeout(req.TimeoutMillis))
	defer cancel()
	seen := map[string]int{}
	for _, t := range req.Topics {
		seen[t.Topic]++
	}
	for _, t := range req.Topics {
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic = t.Topic
		if seen[t.Topic] > 1 {
			rt.ErrorCode = kerr.InvalidRequest.Code
		} else {
			var assign [][]int32
			if t.Assignment != nil {
				assign = [][]int32{}
				for _, a := range t.Assignment {
					assign = append(assign, a.Replicas)
				}
			}
			err := n.ctrl.CreatePartitions(ctx, t.Topic, t.Count, assign, req.ValidateOnly)
			rt.ErrorCode = errCode(err)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func (b *broker) forwardElectLeaders(req *kmsg.ElectLeadersRequest, r *request) (*kmsg.ElectLeadersResponse, error) {
	ctx, cancel := context.WithTimeout(b.ctx, requestTimeout(req.TimeoutMillis))
	defer cancel()
	kresp, err := b.ac.request(ctx, req)
	if err != nil {
		resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
		resp.ErrorCode = kerr.NotController.Code
		return resp, nil
	}
	resp := kresp.(*kmsg.ElectLeadersResponse)
	b.waitState(ctx, func(st *metadata.State) bool {
		for _, t := range resp.Topics {
			tt := st.Topics[t.Topic]
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 || tt == nil || int(p.Partition) >= len(tt.Partitions) {
					continue
				}
				sp := tt.Partitions[p.Partition]
				if sp.Leader < 0 || (req.ElectionType == 0 && sp.Leader != sp.Replicas[0]) {
					return false
				}
			}
		}
		return true
	})
	return resp, nil
}

func (n *controllerNode) handleElectLeaders(req *kmsg.ElectLeadersRequest) (*kmsg.ElectLeadersResponse, error) {
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	ctx, cancel := context.WithTimeout(n.ctx, requestTimeout(req.TimeoutMillis))
	defer cancel()
	if !n.ctrl.Active() {
		resp.ErrorCode = kerr.NotController.Code
		return resp, nil
	}
	unclean := req.Version >= 1 && req.ElectionType == 1
	if req.Version >= 1 && req.ElectionType != 0 && req.ElectionType != 1 {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	type tp struct {
		topic string
		parts []int32
	}
	var want []tp
	all := req.Topics == nil
	if all {
		// Every partition that needs an election.
		n.ctrl.State(func(st *metadata.State) {
			for _, name := range st.TopicNames() {
				var ps []int32
				for _, p := range st.Topics[name].Partitions {
					if (!unclean && p.Leader != p.Replicas[0]) || (unclean && p.Leader < 0) {
						ps = append(ps, p.Partition)
					}
				}
				if len(ps) > 0 {
					want = append(want, tp{name, ps})
				}
			}
		})
	} else {
		for _, t := range req.Topics {
			want = append(want, tp{t.Topic, t.Partitions})
		}
	}
	for _, t := range want {
		rt := kmsg.NewElectLeadersResponseTopic()
		rt.Topic = t.topic
		for _, p := range t.parts {
			rp := kmsg.NewElectLeadersResponseTopicPartition()
			rp.Partition = p
			err := n.ctrl.ElectLeader(ctx, t.topic, p, unclean)
			if err != nil {
				rp.ErrorCode = errCode(err)
				msg := err.Error()
				rp.ErrorMessage = &msg
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func (b *broker) forwardAlterPartitionReassignments(req *kmsg.AlterPartitionAssignmentsRequest, r *request) (*kmsg.AlterPartitionAssignmentsResponse, error) {
	ctx, cancel := context.WithTimeout(b.ctx, requestTimeout(req.TimeoutMillis))
	defer cancel()
	kresp, err := b.ac.request(ctx, req)
	if err != nil {
		resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
		resp.ErrorCode = kerr.NotController.Code
		return resp, nil
	}
	resp := kresp.(*kmsg.AlterPartitionAssignmentsResponse)
	b.waitState(ctx, func(st *metadata.State) bool {
		for i, t := range req.Topics {
			tt := st.Topics[t.Topic]
			for j, p := range t.Partitions {
				if i >= len(resp.Topics) || j >= len(resp.Topics[i].Partitions) || resp.Topics[i].Partitions[j].ErrorCode != 0 {
					continue
				}
				if tt == nil || int(p.Partition) >= len(tt.Partitions) {
					continue
				}
				sp := tt.Partitions[p.Partition]
				if p.Replicas == nil {
					if len(sp.AddingReplicas) > 0 || len(sp.RemovingReplicas) > 0 {
						return false
					}
				} else {
					for _, r := range p.Replicas {
						if !slices.Contains(sp.Replicas, r) {
							return false
						}
					}
				}
			}
		}
		return true
	})
	return resp, nil
}

func (n *controllerNode) handleAlterPartitionReassignments(req *kmsg.AlterPartitionAssignmentsRequest) (*kmsg.AlterPartitionAssignmentsResponse, error) {
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	ctx, cancel := context.WithTimeout(n.ctx, requestTimeout(req.TimeoutMillis))
	defer cancel()
	allowRF := req.Version < 1 || req.AllowReplicationFactorChange
	for _, t := range req.Topics {
		rt := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			rp.Partition = p.Partition
			err := n.ctrl.Reassign(ctx, t.Topic, p.Partition, p.Replicas, allowRF)
			if err != nil {
				rp.ErrorCode = errCode(err)
				msg := err.Error()
				rp.ErrorMessage = &msg
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func (b *broker) handleListPartitionReassignments(req *kmsg.ListPartitionReassignmentsRequest, r *request) (*kmsg.ListPartitionReassignmentsResponse, error) {
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	b.mu.RLock()
	defer b.mu.RUnlock()
	st := b.mu.state
	add := func(t *metadata.Topic, parts []int32) {
		rt := kmsg.NewListPartitionReassignmentsResponseTopic()
		rt.Topic = t.Name
		for _, pi := range parts {
			if pi < 0 || int(pi) >= len(t.Partitions) {
				continue
			}
			p := t.Partitions[pi]
			if len(p.AddingReplicas) == 0 && len(p.RemovingReplicas) == 0 {
				continue
			}
			rp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
			rp.Partition = p.Partition
			rp.Replicas = slices.Clone(p.Replicas)
			rp.AddingReplicas = slices.Clone(p.AddingReplicas)
			rp.RemovingReplicas = slices.Clone(p.RemovingReplicas)
			rt.Partitions = append(rt.Partitions, rp)
		}
		if len(rt.Partitions) > 0 {
			resp.Topics = append(resp.Topics, rt)
		}
	}
	if req.Topics == nil {
		for _, name := range st.TopicNames() {
			t := st.Topics[name]
			parts := make([]int32, len(t.Partitions))
			for i := range parts {
				parts[i] = int32(i)
			}
			add(t, parts)
		}
		return resp, nil
	}
	for _, rt := range req.Topics {
		if t := st.Topics[rt.Topic]; t != nil {
			add(t, rt.Partitions)
		}
	}
	return resp, nil
}
