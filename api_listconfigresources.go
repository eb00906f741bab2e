package kcluster

// ListConfigResources v0-v1 (KIP-1000: v0 was ListClientMetricsResources
// and lists client metrics resources only; KIP-1142: v1 lists the config
// resources of the types asked for, all of them when none is named:
// topics, brokers, broker loggers, client metrics and groups), as Kafka's
// KafkaApis.handleListConfigResources. A type the version does not list is
// UNSUPPORTED_VERSION. Topics are every topic, brokers and broker loggers
// are the ids of the live brokers reachable on the client's listener;
// groups are those with dynamic group configs (configs_group.go); kcluster
// keeps no client metrics (KIP-714), so that type lists nothing.

import (
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { reg(0, 1, (*broker).handleListConfigResources) }

// Kafka's ConfigResource.Type codes.
const (
	configResourceTopic         int8 = 2
	configResourceBroker        int8 = 4
	configResourceBrokerLogger  int8 = 8
	configResourceClientMetrics int8 = 16
	configResourceGroup         int8 = 32
)

func (b *broker) handleListConfigResources(req *kmsg.ListConfigResourcesRequest, r *request) (*kmsg.ListConfigResourcesResponse, error) {
	resp := req.ResponseKind().(*kmsg.ListConfigResourcesResponse)
	supported := []int8{configResourceClientMetrics}
	if req.Version >= 1 {
		supported = []int8{configResourceTopic, configResourceBroker, configResourceBrokerLogger, configResourceClientMetrics, configResourceGroup}
	}
	types := req.ResourceTypes
	if len(types) == 0 {
		types = supported
	}
	for _, t := range types {
		if !slices.Contains(supported, t) {
			resp.ErrorCode = kerr.UnsupportedVersion.Code
			return resp, nil
		}
	}
	add := func(name string, typ int8) {
		cr := kmsg.NewListConfigResourcesResponseConfigResource()
		cr.Name, cr.Type = name, typ
		resp.ConfigResources = append(resp.ConfigResources, cr)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	st := b.mu.state
	var brokers []string
	for _, id := range st.BrokerIDs() {
		br := st.Brokers[id]
		if _, _, ok := endpoint(br, r.listener()); ok && !br.Fenced {
			brokers = append(brokers, strconv.Itoa(int(id)))
		}
	}
	if slices.Contains(types, configResourceTopic) {
		for _, name := range st.TopicNames() {
			add(name, configResourceTopic)
		}
	}
	for _, typ := range []int8{configResourceBroker, configResourceBrokerLogger} {
		if slices.Contains(types, typ) {
			for _, id := range brokers {
				add(id, typ)
			}
		}
	}
	if slices.Contains(types, configResourceGroup) {
		for _, name := range sortedKeys(st.GroupConfigs) {
			if len(st.GroupConfigs[name]) > 0 {
				add(name, configResourceGroup) // groups with dynamic configs
			}
		}
	}
	return resp, nil
}
