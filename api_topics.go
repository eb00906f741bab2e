package kcluster

// CreateTopics v0-v7 (KIP-464 defaults -1 from v4, KIP-525 configs in the
// response from v5, KIP-516 topic ids from v7) and DeleteTopics v0-v6
// (deletion by topic id from v6). Brokers forward both to the controller
// node over the network, which validates them and writes the metadata log;
// the broker answers once it has applied the change, so a Metadata request
// to the same broker sees it.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

func init() {
	reg(0, 7, (*broker).forwardCreateTopics)
	reg(0, 6, (*broker).forwardDeleteTopics)
	regCtrl(0, 7, (*controllerNode).handleCreateTopics)
	regCtrl(0, 6, (*controllerNode).handleDeleteTopics)
}

// forwardCreateTopics sends the request to the controller, as a KRaft broker
// forwards it, and answers once this broker's metadata has every topic the
// controller created or found already there, so a Metadata request to the
// same broker sees them.
func (b *broker) forwardCreateTopics(req *kmsg.CreateTopicsRequest, r *request) (*kmsg.CreateTopicsResponse, error) {
	ctx, cancel := context.WithTimeout(b.ctx, requestTimeout(req.TimeoutMillis))
	defer cancel()
	kresp, err := b.ac.request(ctx, req)
	if err != nil {
		resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, t := range req.Topics {
			rt := kmsg.NewCreateTopicsResponseTopic()
			rt.Topic = t.Topic
			rt.ErrorCode = kerr.NotController.Code
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	}
	resp := kresp.(*kmsg.CreateTopicsResponse)
	if !req.ValidateOnly {
		b.waitState(ctx, func(st *metadata.State) bool {
			for _, t := range resp.Topics {
				if (t.ErrorCode == 0 || t.ErrorCode == kerr.TopicAlreadyExists.Code) && st.Topics[t.Topic] == nil {
					return false
				}
			}
			return true
		})
	}
	return resp, nil
}

// forwardDeleteTopics sends the request to the controller and answers once
// this broker's metadata no longer has the deleted topics.
func (b *broker) forwardDeleteTopics(req *kmsg.DeleteTopicsRequest, r *request) (*kmsg.DeleteTopicsResponse, error) {
	ctx, cancel := context.WithTimeout(b.ctx, requestTimeout(req.TimeoutMillis))
	defer cancel()
	kresp, err := b.ac.request(ctx, req)
	if err != nil {
		resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
		for _, n := range req.TopicNames {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic = kmsg.StringPtr(n)
			rt.ErrorCode = kerr.NotController.Code
			resp.Topics = append(resp.Topics, rt)
		}
		for _, t := range req.Topics {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			rt.ErrorCode = kerr.NotController.Code
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	}
	resp := kresp.(*kmsg.DeleteTopicsResponse)
	b.waitState(ctx, func(st *metadata.State) bool {
		for _, t := range resp.Topics {
			if t.ErrorCode == 0 && st.TopicsByID[t.TopicID] != nil {
				return false
			}
		}
		return true
	})
	return resp, nil
}

func errCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return kerr.RequestTimedOut.Code
	}
	return kerr.UnknownServerError.Code
}

func (n *controllerNode) handleCreateTopics(req *kmsg.CreateTopicsRequest) (*kmsg.CreateTopicsResponse, error) {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	cfg := &n.c.cfg.broker
	ctx, cancel := context.WithTimeout(n.ctx, requestTimeout(req.TimeoutMillis))
	defer cancel()
	seen := map[string]int{}
	total := 0 // partitions asked for, counted as Kafka's controller does
	for _, t := range req.Topics {
		seen[t.Topic]++
		switch {
		case len(t.ReplicaAssignment) > 0:
			total += len(t.ReplicaAssignment)
		case t.NumPartitions == -1:
			total += int(cfg.numPartitions)
		case t.NumPartitions > 0:
			total += int(t.NumPartitions)
		}
	}
	tooMany := total > metadata.MaxPartitionsPerRequest
	for _, t := range req.Topics {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		rt.NumPartitions, rt.ReplicationFactor = -1, -1
		if tooMany {
			// Kafka refuses the whole request.
			rt.ErrorCode = kerr.PolicyViolation.Code
			msg := "Excessively large number of partitions per request."
			rt.ErrorMessage = &msg
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		if seen[t.Topic] > 1 {
			rt.ErrorCode = kerr.InvalidRequest.Code
			msg := "duplicate topic name in request"
			rt.ErrorMessage = &msg
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		spec := metadata.TopicSpec{Name: t.Topic, Partitions: t.NumPartitions, ReplicationFactor: t.ReplicationFactor}
		if spec.Partitions == -1 {
			spec.Partitions = cfg.numPartitions
		}
		if spec.ReplicationFactor == -1 {
			spec.ReplicationFactor = cfg.defaultRF
		}
		if len(t.ReplicaAssignment) > 0 {
			if t.NumPartitions != -1 || t.ReplicationFactor != -1 {
				rt.ErrorCode = kerr.InvalidRequest.Code
				resp.Topics = append(resp.Topics, rt)
				continue
			}
			spec.Assignment = make([][]int32, len(t.ReplicaAssignment))
			for _, a := range t.ReplicaAssignment {
				if a.Partition < 0 || int(a.Partition) >= len(t.ReplicaAssignment) || spec.Assignment[a.Partition] != nil {
					rt.ErrorCode = kerr.InvalidReplicaAssignment.Code
					break
				}
				spec.Assignment[a.Partition] = a.Replicas
			}
			if rt.ErrorCode != 0 {
				resp.Topics = append(resp.Topics, rt)
				continue
			}
		}
		if len(t.Configs) > 0 {
			spec.Configs = make(map[string]string, len(t.Configs))
			for _, c := range t.Configs {
				if c.Value != nil {
					spec.Configs[c.Name] = *c.Value
				}
			}
		}
		if err := validateTopicConfigs(spec.Configs); err != nil {
			rt.ErrorCode, rt.ErrorMessage = configError(err)
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		for _, c := range t.Configs {
			if c.Value == nil {
				// Kafka refuses null values at creation.
				rt.ErrorCode, rt.ErrorMessage = configError(validateTopicConfig(c.Name, nil))
				break
			}
		}
		if rt.ErrorCode != 0 {
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		id, err := n.ctrl.CreateTopic(ctx, spec, req.ValidateOnly)
		rt.ErrorCode = errCode(err)
		if err == nil {
			rt.TopicID = id
			if len(spec.Assignment) > 0 {
				rt.NumPartitions = int32(len(spec.Assignment))
				rt.ReplicationFactor = int16(len(spec.Assignment[0]))
			} else {
				rt.NumPartitions, rt.ReplicationFactor = spec.Partitions, spec.ReplicationFactor
			}
			// KIP-525: every config of the new topic, with its source.
			n.ctrl.State(func(st *metadata.State) {
				for i := range topicConfigDefs {
					e := n.c.cfg.resolveTopicConfig(&topicConfigDefs[i], spec.Configs, st, -1)
					c := kmsg.NewCreateTopicsResponseTopicConfig()
					c.Name = e.name
					v := e.value
					c.Value = &v
					c.Source = e.source
					c.IsSensitive = false
					rt.Configs = append(rt.Configs, c)
				}
			})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func (n *controllerNode) handleDeleteTopics(req *kmsg.DeleteTopicsRequest) (*kmsg.DeleteTopicsResponse, error) {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	ctx, cancel := context.WithTimeout(n.ctx, requestTimeout(req.TimeoutMillis))
	defer cancel()
	type del struct {
		name string
		id   [16]byte
	}
	var dels []del
	if req.Version >= 6 {
		for _, t := range req.Topics {
			d := del{id: t.TopicID}
			if t.Topic != nil {
				d.name = *t.Topic
			}
			dels = append(dels, d)
		}
	} else {
		for _, n := range req.TopicNames {
			dels = append(dels, del{name: n})
		}
	}
	for _, d := range dels {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		if d.name != "" {
			n := d.name
			rt.Topic = &n
		}
		rt.TopicID = d.id
		if !n.c.cfg.broker.deleteTopicEnable {
			rt.ErrorCode = kerr.TopicDeletionDisabled.Code
		} else {
			id, err := n.ctrl.DeleteTopic(ctx, d.name, d.id)
			rt.ErrorCode = errCode(err)
			if err == nil {
				rt.TopicID = id
			}
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// requestTimeout turns a request's timeout into a duration, with a floor
// and a default for zero or negative values.
func requestTimeout(ms int32) time.Duration {
	if ms <= 0 {
		return 30 * time.Second
	}
	return time.Duration(ms) * time.Millisecond
}
