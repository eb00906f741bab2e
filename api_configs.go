package kcluster

// DescribeConfigs v0-v4 (KIP-226 sources and synonyms from v1, KIP-569
// types and documentation from v3), AlterConfigs v0-v2 and
// IncrementalAlterConfigs v0-v1 (KIP-339). Topic configs are Kafka's
// (configs.go); broker resources describe the static broker configs and
// accept, dynamically, the broker defaults of topic configs (log.*), per
// broker id or cluster-wide (""), as Kafka's cluster-wide dynamic log
// configs. Any broker describes from its metadata; alterations are
// forwarded to the controller, validated there and written as
// ConfigChange records, so every broker applies them; the broker answers
// once it has.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

func init() {
	reg(0, 4, (*broker).handleDescribeConfigs)
	reg(0, 2, (*broker).forwardAlterConfigs)
	reg(0, 1, (*broker).forwardIncrementalAlterConfigs)
	regCtrl(0, 2, (*controllerNode).handleAlterConfigs)
	regCtrl(0, 1, (*controllerNode).handleIncrementalAlterConfigs)
}

func (b *broker) handleDescribeConfigs(req *kmsg.DescribeConfigsRequest, r *request) (*kmsg.DescribeConfigsResponse, error) {
	b.readYourWrites()
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, res := range req.Resources {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = res.ResourceType, res.ResourceName
		var entries []configEntry
		var readOnly map[string]bool
		switch kmsg.ConfigResourceType(res.ResourceType) {
		case kmsg.ConfigResourceTypeTopic:
			t := b.mu.state.Topics[res.ResourceName]
			if t == nil {
				rr.ErrorCode = kerr.UnknownTopicOrPartition.Code
				break
			}
			for i := range topicConfigDefs {
				entries = append(entries, b.c.cfg.resolveTopicConfig(&topicConfigDefs[i], t.Configs, b.mu.state, b.id))
			}
		case kmsg.ConfigResourceTypeBroker:
			var err error
			entries, readOnly, err = b.brokerConfigEntriesLocked(res.ResourceName)
			rr.ErrorCode = errCode(err)
		case kmsg.ConfigResourceTypeGroupConfig:
			if res.ResourceName == "" {
				rr.ErrorCode = kerr.InvalidRequest.Code
				break
			}
			entries = b.groupConfigEntriesLocked(res.ResourceName)
		default:
			rr.ErrorCode = kerr.InvalidRequest.Code
		}
		for _, e := range entries {
			if res.ConfigNames != nil && !slices.Contains(res.ConfigNames, e.name) {
				continue
			}
			rc := kmsg.NewDescribeConfigsResponseResourceConfig()
			rc.Name = e.name
			v := e.value
			rc.Value = &v
			rc.ReadOnly = readOnly[e.name]
			rc.Source = kmsg.ConfigSource(e.source)
			rc.IsDefault = e.source == srcDefault
			if req.IncludeSynonyms && req.Version >= 1 {
				for _, s := range e.synonyms {
					sy := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
					sv := s.value
					sy.Name, sy.Value, sy.Source = s.name, &sv, kmsg.ConfigSource(s.source)
					rc.ConfigSynonyms = append(rc.ConfigSynonyms, sy)
				}
			}
			rc.ConfigType = kmsg.ConfigType(cfgString)
			if e.def != nil {
				rc.ConfigType = kmsg.ConfigType(e.def.typ)
				if req.IncludeDocumentation {
					doc := e.def.doc
					rc.Documentation = &doc
				}
			} else {
				rc.ConfigType = guessConfigType(e.value)
			}
			rr.Configs = append(rr.Configs, rc)
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp, nil
}

func guessConfigType(v string) kmsg.ConfigType {
	if v == "true" || v == "false" {
		return kmsg.ConfigType(cfgBoolean)
	}
	if _, err := strconv.ParseInt(v, 10, 64); err == nil {
		return kmsg.ConfigType(cfgLong)
	}
	return kmsg.ConfigType(cfgString)
}

// brokerConfigEntriesLocked describes a broker resource: "" is the
// cluster-wide dynamic default (only what is set, as Kafka), an id is that
// broker's configs: the static ones (read-only) and the broker defaults of
// topic configs, which may be altered.
func (b *broker) brokerConfigEntriesLocked(name string) ([]configEntry, map[string]bool, error) {
	st := b.mu.state
	if name == "" {
		var out []configEntry
		for _, k := range sortedKeys(st.BrokerConfigs[""]) {
			out = append(out, configEntry{name: k, value: st.BrokerConfigs[""][k], source: srcDynamicDefaultBroker,
				synonyms: []configSynonym{{k, st.BrokerConfigs[""][k], srcDynamicDefaultBroker}}})
		}
		return out, nil, nil
	}
	id, err := strconv.ParseInt(name, 10, 32)
	if err != nil || st.Brokers[int32(id)] == nil {
		return nil, nil, kerr.InvalidRequest
	}
	readOnly := map[string]bool{}
	var out []configEntry
	seen := map[string]bool{}
	for _, k := range sortedKeys(brokerConfigDefs) {
		if d, _ := topicConfigSynonym(k); d != nil {
			continue // described below with its dynamic sources
		}
		e := configEntry{name: k, value: brokerConfigDefs[k].def, source: srcDefault}
		if v, ok := b.c.cfg.bcfg[k]; ok {
			e.value, e.source = v, srcStaticBroker
			e.synonyms = append(e.synonyms, configSynonym{k, v, srcStaticBroker})
		}
		e.synonyms = append(e.synonyms, configSynonym{k, brokerConfigDefs[k].def, srcDefault})
		readOnly[k] = true
		out = append(out, e)
	}
	for i := range topicConfigDefs {
		d := &topicConfigDefs[i]
		s := d.synonyms[0]
		if seen[s.name] {
			continue
		}
		seen[s.name] = true
		// The topic config's resolution, without a topic value, named
		// after the broker config.
		e := b.c.cfg.resolveTopicConfig(d, nil, st, int32(id))
		e.name, e.def = s.name, nil
		out = append(out, e)
	}
	return out, readOnly, nil
}

// configError turns a validation error into a code and message.
func configError(err error) (int16, *string) {
	if err == nil {
		return 0, nil
	}
	msg := err.Error()
	if errors.Is(err, errInvalidConfig) {
		return kerr.InvalidConfig.Code, &msg
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code, nil
	}
	return errCode(err), &msg
}

// forwardAlterConfigs sends AlterConfigs to the controller and waits until
// this broker's metadata has every accepted change.
func (b *broker) forwardAlterConfigs(req *kmsg.AlterConfigsRequest, r *request) (*kmsg.AlterConfigsResponse, error) {
	ctx, cancel := context.WithTimeout(b.ctx, requestTimeout(0))
	defer cancel()
	kresp, err := b.ac.request(ctx, req)
	if err != nil {
		resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
		for _, res := range req.Resources {
			rr := kmsg.NewAlterConfigsResponseResource()
			rr.ResourceType, rr.ResourceName, rr.ErrorCode = res.ResourceType, res.ResourceName, kerr.NotController.Code
			resp.Resources = append(resp.Resources, rr)
		}
		return resp, nil
	}
	resp := kresp.(*kmsg.AlterConfigsResponse)
	if !req.ValidateOnly {
		b.waitState(ctx, func(st *metadata.State) bool {
			for i, res := range req.Resources {
				if i >= len(resp.Resources) || resp.Resources[i].ErrorCode != 0 {
					continue
				}
				cur := currentConfigs(st, int8(res.ResourceType), res.ResourceName)
				want := map[string]string{}
				for _, c := range res.Configs {
					if c.Value != nil {
						want[c.Name] = *c.Value
					}
				}
				if len(cur) != len(want) {
					return false
				}
				for k, v := range want {
					if cur[k] != v {
						return false
					}
				}
			}
			return true
		})
	}
	return resp, nil
}

func currentConfigs(st *metadata.State, typ int8, name string) map[string]string {
	if typ == metadata.ResourceGroup {
		return st.GroupConfigs[name]
	}
	if typ == metadata.ResourceTopic {
		if t := st.Topics[name]; t != nil {
			return t.Configs
		}
		return nil
	}
	return st.BrokerConfigs[name]
}

// forwardIncrementalAlterConfigs sends IncrementalAlterConfigs to the
// controller and waits until this broker's metadata shows the changes.
func (b *broker) forwardIncrementalAlterConfigs(req *kmsg.IncrementalAlterConfigsRequest, r *request) (*kmsg.IncrementalAlterConfigsResponse, error) {
	ctx, cancel := context.WithTimeout(b.ctx, requestTimeout(0))
	defer cancel()
	kresp, err := b.ac.request(ctx, req)
	if err != nil {
		resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
		for _, res := range req.Resources {
			rr := kmsg.NewIncrementalAlterConfigsResponseResource()
			rr.ResourceType, rr.ResourceName, rr.ErrorCode = res.ResourceType, res.ResourceName, kerr.NotController.Code
			resp.Resources = append(resp.Resources, rr)
		}
		return resp, nil
	}
	resp := kresp.(*kmsg.IncrementalAlterConfigsResponse)
	if !req.ValidateOnly {
		b.waitState(ctx, func(st *metadata.State) bool {
			for i, res := range req.Resources {
				if i >= len(resp.Resources) || resp.Resources[i].ErrorCode != 0 {
					continue
				}
				cur := currentConfigs(st, int8(res.ResourceType), res.ResourceName)
				for _, c := range res.Configs {
					v, ok := cur[c.Name]
					switch c.Op {
					case kmsg.IncrementalAlterConfigOpSet:
						if c.Value == nil || !ok || v != *c.Value {
							return false
						}
					case kmsg.IncrementalAlterConfigOpDelete:
						if ok {
							return false
						}
					case kmsg.IncrementalAlterConfigOpAppend:
						if c.Value != nil && !containsAll(splitList(v), splitList(*c.Value)) {
							return false
						}
					case kmsg.IncrementalAlterConfigOpSubtract:
						if c.Value != nil && slices.ContainsFunc(splitList(*c.Value), func(e string) bool { return slices.Contains(splitList(v), e) }) {
							return false
						}
					}
				}
			}
			return true
		})
	}
	return resp, nil
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// validateResourceConfig validates one config of a resource type.
func validateResourceConfig(typ int8, name string, value *string) error {
	if typ == metadata.ResourceGroup {
		return validateGroupConfig(name, value)
	}
	if typ == metadata.ResourceTopic {
		return validateTopicConfig(name, value)
	}
	return validateBrokerDynamic(name, value)
}

func (n *controllerNode) handleAlterConfigs(req *kmsg.AlterConfigsRequest) (*kmsg.AlterConfigsResponse, error) {
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, res := range req.Resources {
		rr := kmsg.NewAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = res.ResourceType, res.ResourceName
		typ := int8(res.ResourceType)
		err := func() error {
			if typ != metadata.ResourceTopic && typ != metadata.ResourceBroker && typ != metadata.ResourceGroup {
				return kerr.InvalidRequest
			}
			want := map[string]string{}
			for _, c := range res.Configs {
				if _, dup := want[c.Name]; dup {
					return kerr.InvalidRequest
				}
				if err := validateResourceConfig(typ, c.Name, c.Value); err != nil {
					return err
				}
				if c.Value != nil {
					want[c.Name] = *c.Value
				}
			}
			return n.ctrl.AlterConfigs(n.ctx, typ, res.ResourceName, func(cur map[string]string) (map[string]*string, error) {
				// AlterConfigs replaces the whole set: keys not
				// given go back to their defaults.
				ch := map[string]*string{}
				for k := range cur {
					if _, ok := want[k]; !ok {
						ch[k] = nil
					}
				}
				for k, v := range want {
					ch[k] = &v
				}
				return ch, nil
			}, req.ValidateOnly)
		}()
		rr.ErrorCode, rr.ErrorMessage = configError(err)
		resp.Resources = append(resp.Resources, rr)
	}
	return resp, nil
}

func (n *controllerNode) handleIncrementalAlterConfigs(req *kmsg.IncrementalAlterConfigsRequest) (*kmsg.IncrementalAlterConfigsResponse, error) {
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, res := range req.Resources {
		rr := kmsg.NewIncrementalAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = res.ResourceType, res.ResourceName
		typ := int8(res.ResourceType)
		err := func() error {
			if typ != metadata.ResourceTopic && typ != metadata.ResourceBroker && typ != metadata.ResourceGroup {
				return kerr.InvalidRequest
			}
			seen := map[string]bool{}
			for _, c := range res.Configs {
				if seen[c.Name] {
					return kerr.InvalidRequest
				}
				seen[c.Name] = true
				switch c.Op {
				case kmsg.IncrementalAlterConfigOpSet:
					if err := validateResourceConfig(typ, c.Name, c.Value); err != nil {
						return err
					}
				case kmsg.IncrementalAlterConfigOpDelete:
					if typ == metadata.ResourceTopic && topicConfigDefByName(c.Name) == nil {
						return configErrorf("unknown topic config name: %s", c.Name)
					}
					if err := validateBrokerDynamic(c.Name, nil); typ == metadata.ResourceBroker && err != nil {
						return err
					}
					if err := validateGroupConfig(c.Name, nil); typ == metadata.ResourceGroup && err != nil {
						return err
					}
				case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
					d := topicConfigDefByName(c.Name)
					if typ == metadata.ResourceBroker {
						d, _ = topicConfigSynonym(c.Name)
					}
					if d == nil || d.typ != cfgList {
						return configErrorf("config value append or subtract is not allowed for config key %s", c.Name)
					}
					if c.Value == nil {
						return configErrorf("null value for %s", c.Name)
					}
				default:
					return kerr.InvalidRequest
				}
			}
			return n.ctrl.AlterConfigs(n.ctx, typ, res.ResourceName, func(cur map[string]string) (map[string]*string, error) {
				ch := map[string]*string{}
				for _, c := range res.Configs {
					switch c.Op {
					case kmsg.IncrementalAlterConfigOpSet:
						v := *c.Value
						ch[c.Name] = &v
					case kmsg.IncrementalAlterConfigOpDelete:
						ch[c.Name] = nil
					case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
						old, ok := cur[c.Name]
						if !ok {
							if d := topicConfigDefByName(c.Name); d != nil {
								old = d.def
							} else if d, _ := topicConfigSynonym(c.Name); d != nil {
								old = d.def
							}
						}
						list := splitList(old)
						for _, e := range splitList(*c.Value) {
							if c.Op == kmsg.IncrementalAlterConfigOpAppend && !slices.Contains(list, e) {
								list = append(list, e)
							}
							if c.Op == kmsg.IncrementalAlterConfigOpSubtract {
								list = slices.DeleteFunc(list, func(x string) bool { return x == e })
							}
						}
						v := strings.Join(list, ",")
						if err := validateResourceConfig(typ, c.Name, &v); err != nil {
							return nil, err
						}
						ch[c.Name] = &v
					}
				}
				return ch, nil
			}, req.ValidateOnly)
		}()
		rr.ErrorCode, rr.ErrorMessage = configError(err)
		resp.Resources = append(resp.Resources, rr)
	}
	return resp, nil
}

func configErrorf(format string, args ...any) error {
	return errors.Join(errInvalidConfig, fmt.Errorf(format, args...))
}
