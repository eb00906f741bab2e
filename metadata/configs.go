package metadata

import (
	"context"
	"maps"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Config resource types, as Kafka's.
const (
	ResourceTopic  int8 = 2
	ResourceBroker int8 = 4
	ResourceGroup  int8 = 32 // a group's dynamic configs (KIP-848, KIP-932)
)

// AlterConfigs changes the configs of one resource (a topic, a broker by
// id, or "" for the cluster-wide broker default). change is called with
// the controller's lock held and the resource's current configs (not to be
// kept); it returns the keys to set (non-nil value) or delete (nil), or an
// error that is returned as is. validateOnly checks without writing.
func (c *Controller) AlterConfigs(ctx context.Context, resourceType int8, name string, change func(cur map[string]string) (map[string]*string, error), validateOnly bool) error {
	if err := c.lockActive(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	st := c.mu.state
	var cur map[string]string
	switch resourceType {
	case ResourceTopic:
		t := st.Topics[name]
		if t == nil {
			return kerr.UnknownTopicOrPartition
		}
		cur = t.Configs
	case ResourceBroker:
		if name != "" {
			id, err := strconv.ParseInt(name, 10, 32)
			if err != nil || id < 0 {
				return kerr.InvalidRequest
			}
			if st.Brokers[int32(id)] == nil {
				return kerr.InvalidRequest
			}
		}
		cur = st.BrokerConfigs[name]
	case ResourceGroup:
		if name == "" {
			return kerr.InvalidRequest
		}
		cur = st.GroupConfigs[name]
	default:
		return kerr.InvalidRequest
	}
	changes, err := change(cur)
	if err != nil {
		return err
	}
	if validateOnly || len(changes) == 0 {
		return nil
	}
	recs := make([]Record, 0, len(changes))
	for _, k := range sortedKeys(changes) {
		v := changes[k]
		if old, ok := cur[k]; (v == nil && !ok) || (v != nil && ok && old == *v) {
			continue
		}
		recs = append(recs, &ConfigChange{ResourceType: resourceType, Name: name, Key: k, Value: v})
	}
	if len(recs) == 0 {
		return nil
	}
	return c.proposeLocked(ctx, append(recs, c.clearELRLocked(recs)...)...)
}

// clearELRLocked returns the changes that clear the eligible leader
// replicas and last known ELR of the partitions whose min.insync.replicas
// recs change: a topic's, or with the cluster default every topic's. As
// Kafka's controller (its ClearElrRecord), the ELR kept by the old min ISR
// is not trusted under the new one.
func (c *Controller) clearELRLocked(recs []Record) []Record {
	var topics []string
	for _, r := range recs {
		cc := r.(*ConfigChange)
		switch {
		case cc.Key != "min.insync.replicas":
		case cc.ResourceType == ResourceTopic:
			topics = append(topics, cc.Name)
		case cc.ResourceType == ResourceBroker && cc.Name == "":
			topics = c.mu.state.TopicNames()
		}
	}
	var out []Record
	for _, name := range topics {
		t := c.mu.state.Topics[name]
		if t == nil {
			continue
		}
		for _, p := range t.Partitions {
			if len(p.ELR) > 0 || len(p.LastKnownELR) > 0 {
				out = append(out, &PartitionChange{TopicID: p.TopicID, Partition: p.Partition, ELR: []int32{}, LastKnownELR: []int32{}})
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
