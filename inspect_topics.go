package kcluster

import (
	"fmt"

	"github.com/kcluster/kcluster/metadata"
)

// TopicConfig is one effective topic config as the cluster resolves it.
type TopicConfig struct {
	Value string
	// Source is Kafka's ConfigSource name: DYNAMIC_TOPIC_CONFIG,
	// DYNAMIC_BROKER_CONFIG, DYNAMIC_DEFAULT_BROKER_CONFIG,
	// STATIC_BROKER_CONFIG or DEFAULT_CONFIG.
	Source string
}

var sourceNames = map[int8]string{
	srcDynamicTopic:         "DYNAMIC_TOPIC_CONFIG",
	srcDynamicBroker:        "DYNAMIC_BROKER_CONFIG",
	srcDynamicDefaultBroker: "DYNAMIC_DEFAULT_BROKER_CONFIG",
	srcStaticBroker:         "STATIC_BROKER_CONFIG",
	srcDefault:              "DEFAULT_CONFIG",
}

// TopicConfigs returns every config of topic, by Kafka's name, with the
// value in effect and where it comes from (as DescribeConfigs answers,
// for the cluster-wide view: per-broker dynamic configs are not applied).
func (c *Cluster) TopicConfigs(topic string) (map[string]TopicConfig, error) {
	if err := c.embedded("TopicConfigs"); err != nil {
		return nil, err
	}
	out := map[string]TopicConfig{}
	var found bool
	c.viewState(func(s *metadata.State) {
		t := s.Topics[topic]
		if t == nil {
			return
		}
		found = true
		for i := range topicConfigDefs {
			e := c.cfg.resolveTopicConfig(&topicConfigDefs[i], t.Configs, s, -1)
			out[e.name] = TopicConfig{Value: e.value, Source: sourceNames[e.source]}
		}
	})
	if !found {
		return nil, fmt.Errorf("%w: %s", ErrUnknownPartition, topic)
	}
	return out, nil
}

// Reassignments returns the state of every partition whose replicas are
// being moved (KIP-455), in topic and partition order: AddingReplicas and
// RemovingReplicas say what moves, LogEndOffsets how far each adding
// replica has copied the leader's log (HighWatermark).
func (c *Cluster) Reassignments() []PartitionState {
	c.mustEmbed("Reassignments")
	type tp struct {
		topic string
		part  int32
	}
	var moving []tp
	c.viewState(func(s *metadata.State) {
		for _, name := range s.TopicNames() {
			for _, p := range s.Topics[name].Partitions {
				if len(p.AddingReplicas) > 0 || len(p.RemovingReplicas) > 0 {
					moving = append(moving, tp{name, p.Partition})
				}
			}
		}
	})
	var out []PartitionState
	for _, m := range moving {
		if st, err := c.PartitionState(m.topic, m.part); err == nil {
			out = append(out, st)
		}
	}
	return out
}
