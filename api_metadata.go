package kcluster

// Metadata v0-v13 (KIP-516 topic ids from v10; v10+ may name topics by id;
// KIP-430 authorized operations are answered as "not requested"; KIP-1102's
// top-level error code from v13, for REBOOTSTRAP_REQUIRED, is never set: a
// broker always answers from its own metadata).
// Topics are auto-created (num.partitions, default.replication.factor) when
// auto.create.topics.enable is true and the request allows it (v4+; always
// for v0-v3). Under an authorizer (authz.go) a topic the principal may
// not DESCRIBE is left out of an every-topic answer and answered
// TOPIC_AUTHORIZATION_FAILED when named, and auto-creation needs CREATE on
// the cluster or the topic, as Kafka.

import (
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

func init() { reg(0, 13, (*broker).handleMetadata) }

func (b *broker) handleMetadata(req *kmsg.MetadataRequest, r *request) (*kmsg.MetadataResponse, error) {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	allTopics := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	autoCreate := b.cfg.autoCreate && (req.Version < 4 || req.AllowAutoTopicCreation)
	authz := b.cfg.security.authorizer
	a := authCtx{b, r.sess}
	describable := func(name string) bool {
		return !authz || a.ok(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, name)
	}
	creatable := func(name string) bool {
		return !authz || a.cluster(kmsg.ACLOperationCreate) || a.ok(kmsg.ACLOperationCreate, kmsg.ACLResourceTypeTopic, name)
	}
	refused := map[string]bool{}

	if !allTopics && b.unknownTopics(req) {
		b.readYourWrites()
	}
	// Auto-create missing topics first, then describe from the state.
	if !allTopics && autoCreate {
		var missing []string
		b.mu.RLock()
		for _, t := range req.Topics {
			if t.Topic != nil && *t.Topic != "" && b.mu.state.Topics[*t.Topic] == nil {
				missing = append(missing, *t.Topic)
			}
		}
		b.mu.RUnlock()
		missing = slices.DeleteFunc(missing, func(n string) bool {
			refused[n] = !describable(n) || !creatable(n)
			return refused[n]
		})
		for _, name := range missing {
			b.autoCreateTopic(name)
		}
	}

	// Decide what the principal may see before taking the lock the
	// authorizer takes too.
	if authz {
		b.mu.RLock()
		var names []string
		if allTopics {
			names = b.mu.state.TopicNames()
		} else {
			for _, rt := range req.Topics {
				if rt.Topic != nil {
					names = append(names, *rt.Topic)
				} else if t := b.mu.state.TopicsByID[rt.TopicID]; t != nil {
					names = append(names, t.Name)
				}
			}
		}
		b.mu.RUnlock()
		for _, n := range names {
			if _, done := refused[n]; !done {
				refused[n] = !describable(n)
			}
		}
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	st := b.mu.state
	for _, id := range st.BrokerIDs() {
		br := st.Brokers[id]
		host, port, ok := endpoint(br, r.listener())
		if br.Fenced || !ok {
			continue
		}
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID, mb.Host, mb.Port, mb.Rack = br.ID, host, port, br.Rack
		resp.Brokers = append(resp.Brokers, mb)
	}
	cid := b.c.cfg.clusterID
	resp.ClusterID = &cid
	resp.ControllerID = b.controllerIDLocked()

	describe := func(t *metadata.Topic) kmsg.MetadataResponseTopic {
		mt := kmsg.NewMetadataResponseTopic()
		name := t.Name
		mt.Topic = &name
		mt.TopicID = t.ID
		mt.IsInternal = isInternalTopic(t.Name)
		mt.AuthorizedOperations = -2147483648
		for _, p := range t.Partitions {
			mp := kmsg.NewMetadataResponseTopicPartition()
			mp.Partition = p.Partition
			mp.Leader = p.Leader
			mp.LeaderEpoch = p.LeaderEpoch
			mp.Replicas = slices.Clone(p.Replicas)
			mp.ISR = slices.Clone(p.ISR)
			mp.OfflineReplicas = []int32{}
			for _, rid := range p.Replicas {
				if st.ReplicaOffline(p, rid) {
					mp.OfflineReplicas = append(mp.OfflineReplicas, rid)
				}
			}
			if p.Leader < 0 {
				mp.ErrorCode = kerr.LeaderNotAvailable.Code
			}
			mt.Partitions = append(mt.Partitions, mp)
		}
		return mt
	}
	if allTopics {
		for _, name := range st.TopicNames() {
			if r, seen := refused[name]; authz && (r || !seen) {
				continue // refused, or created since the check
			}
			resp.Topics = append(resp.Topics, describe(st.Topics[name]))
		}
	} else {
		for _, rt := range req.Topics {
			var t *metadata.Topic
			if rt.Topic != nil {
				t = st.Topics[*rt.Topic]
			} else if rt.TopicID != ([16]byte{}) {
				t = st.TopicsByID[rt.TopicID]
			}
			name := ""
			if rt.Topic != nil {
				name = *rt.Topic
			} else if t != nil {
				name = t.Name
			}
			if r, seen := refused[name]; authz && name != "" && (r || (t != nil && !seen)) {
				mt := kmsg.NewMetadataResponseTopic()
				mt.Topic, mt.TopicID = rt.Topic, rt.TopicID
				mt.ErrorCode = kerr.TopicAuthorizationFailed.Code
				resp.Topics = append(resp.Topics, mt)
				continue
			}
			if t == nil {
				mt := kmsg.NewMetadataResponseTopic()
				mt.Topic = rt.Topic
				mt.TopicID = rt.TopicID
				switch {
				case rt.Topic == nil:
					mt.ErrorCode = kerr.UnknownTopicID.Code
				case !metadata.ValidTopicName(*rt.Topic):
					mt.ErrorCode = kerr.InvalidTopicException.Code
				default:
					mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
				}
				resp.Topics = append(resp.Topics, mt)
				continue
			}
			resp.Topics = append(resp.Topics, describe(t))
		}
	}
	resp.AuthorizedOperations = -2147483648
	return resp, nil
}

// unknownTopics reports whether req names a topic (by name or id) this
// broker's metadata does not have.
func (b *broker) unknownTopics(req *kmsg.MetadataRequest) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, t := range req.Topics {
		switch {
		case t.Topic != nil && *t.Topic != "" && b.mu.state.Topics[*t.Topic] == nil:
			return true
		case t.Topic == nil && t.TopicID != ([16]byte{}) && b.mu.state.TopicsByID[t.TopicID] == nil:
			return true
		}
	}
	return false
}

// controllerIDLocked is the id reported as the controller: in KRaft mode
// Kafka reports a live broker, which forwards admin requests to the active
// controller. We report the lowest live broker id.
func (b *broker) controllerIDLocked() int32 {
	for _, id := range b.mu.state.BrokerIDs() {
		if !b.mu.state.Brokers[id].Fenced {
			return id
		}
	}
	return -1
}

// isInternalTopic: Kafka's Topic.INTERNAL_TOPICS, the coordinators'
// topics.
func isInternalTopic(name string) bool {
	return name == offsetsTopic || name == txnTopic || name == shareStateTopic
}

// autoCreateTopic asks the controller to create a topic with the broker
// defaults (a CreateTopics forwarded over the network) and waits until this
// broker's metadata has it. Failures (e.g. too few brokers for the
// replication factor) are logged; the caller answers from the state.
func (b *broker) autoCreateTopic(name string) {
	if !metadata.ValidTopicName(name) {
		return
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(7)
	req.TimeoutMillis = 10000
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = name, -1, -1
	req.Topics = append(req.Topics, t)
	resp, err := b.forwardCreateTopics(req, nil)
	if err != nil {
		b.log.Warn("auto-creating topic", "topic", name, "err", err)
		return
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		b.log.Warn("auto-creating topic", "topic", name, "err", err)
	}
}
