package kcluster

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// createTopicWith creates a topic with configs and returns the response
// topic (its error is the caller's to check).
func createTopicWith(t *testing.T, c *Cluster, name string, parts int32, rf int16, cfg map[string]string) kmsg.CreateTopicsResponseTopic {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, parts, rf
	for k, v := range cfg {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10000
	resp := do[*kmsg.CreateTopicsResponse](t, dial(t, c.Addrs()[0]), req, -1)
	if resp.Topics[0].ErrorCode == 0 {
		waitFor(t, c, "every broker to know topic "+name, func(*Cluster) bool { return true })
	}
	return resp.Topics[0]
}

type configOp struct {
	op          kmsg.IncrementalAlterConfigOp
	name, value string
}

// alterTopic sends IncrementalAlterConfigs for one topic to broker addr
// and returns the resource's error.
func alterTopic(t *testing.T, c *Cluster, topic string, ops ...configOp) error {
	t.Helper()
	return alterResource(t, c, kmsg.ConfigResourceTypeTopic, topic, ops...)
}

func alterResource(t *testing.T, c *Cluster, typ kmsg.ConfigResourceType, name string, ops ...configOp) error {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = typ, name
	for _, o := range ops {
		cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		cfg.Name, cfg.Op = o.name, o.op
		if o.op != kmsg.IncrementalAlterConfigOpDelete {
			cfg.Value = kmsg.StringPtr(o.value)
		}
		res.Configs = append(res.Configs, cfg)
	}
	req.Resources = append(req.Resources, res)
	resp := do[*kmsg.IncrementalAlterConfigsResponse](t, dial(t, c.Addrs()[0]), req, -1)
	if err := kerr.ErrorForCode(resp.Resources[0].ErrorCode); err != nil {
		return err
	}
	waitFor(t, c, "every broker to apply the config change", func(*Cluster) bool { return true })
	return nil
}

func set(name, value string) configOp {
	return configOp{kmsg.IncrementalAlterConfigOpSet, name, value}
}

func describeTopic(t *testing.T, addr, topic string, synonyms bool) map[string]kmsg.DescribeConfigsResponseResourceConfig {
	t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, topic
	req.Resources = append(req.Resources, res)
	req.IncludeSynonyms, req.IncludeDocumentation = synonyms, true
	resp := do[*kmsg.DescribeConfigsResponse](t, dial(t, addr), req, -1)
	if err := kerr.ErrorForCode(resp.Resources[0].ErrorCode); err != nil {
		t.Fatalf("DescribeConfigs %s: %v", topic, err)
	}
	out := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
	for _, c := range resp.Resources[0].Configs {
		out[c.Name] = c
	}
	return out
}

// DescribeConfigs reports each config's value and source, and its
// synonyms in precedence order: topic, static broker (in the broker
// config's own unit), default.
func TestDescribeConfigsSourcesAndSynonyms(t *testing.T) {
	c := Start(t, Brokers(1), BrokerConfig("log.retention.hours", "2"))
	if rt := createTopicWith(t, c, "cfg", 1, 1, map[string]string{"cleanup.policy": "compact"}); rt.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rt.ErrorCode))
	}
	cfgs := describeTopic(t, c.Addrs()[0], "cfg", true)
	if len(cfgs) != len(topicConfigDefs) {
		t.Fatalf("%d configs described, want %d", len(cfgs), len(topicConfigDefs))
	}
	cp := cfgs["cleanup.policy"]
	if *cp.Value != "compact" || cp.Source != kmsg.ConfigSourceDynamicTopicConfig || len(cp.ConfigSynonyms) != 2 ||
		cp.ConfigSynonyms[1].Name != "log.cleanup.policy" || *cp.ConfigSynonyms[1].Value != "delete" || cp.ConfigType != kmsg.ConfigTypeList {
		t.Fatalf("cleanup.policy described as %+v", cp)
	}
	rm := cfgs["retention.ms"]
	if *rm.Value != "7200000" || rm.Source != kmsg.ConfigSourceStaticBrokerConfig || rm.ConfigSynonyms[0].Name != "log.retention.hours" ||
		*rm.ConfigSynonyms[0].Value != "2" || rm.ConfigSynonyms[len(rm.ConfigSynonyms)-1].Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("retention.ms described as %+v", rm)
	}
	if mi := cfgs["min.insync.replicas"]; *mi.Value != "1" || mi.Source != kmsg.ConfigSourceDefaultConfig || mi.Documentation == nil {
		t.Fatalf("min.insync.replicas described as %+v", mi)
	}
	got, err := c.TopicConfigs("cfg")
	if err != nil || got["cleanup.policy"] != (TopicConfig{"compact", "DYNAMIC_TOPIC_CONFIG"}) || got["retention.ms"].Value != "7200000" {
		t.Fatalf("TopicConfigs: %v %v", got, err)
	}
}

// Unknown names and invalid values are INVALID_CONFIG at creation and on
// alteration; valid alterations reach every broker, APPEND and SUBTRACT
// edit lists, DELETE goes back to the default, and the legacy
// AlterConfigs replaces the whole set.
func TestAlterConfigsThroughTheController(t *testing.T) {
	c := Start(t, Brokers(3))
	for cfg, v := range map[string]string{"retention.ms": "soon", "cleanup.policy": "shred", "no.such.config": "1", "min.insync.replicas": "0", "segment.bytes": "10"} {
		rt := createTopicWith(t, c, "bad", 1, 1, map[string]string{cfg: v})
		if rt.ErrorCode != kerr.InvalidConfig.Code || rt.ErrorMessage == nil {
			t.Fatalf("CreateTopics with %s=%s: %v, want INVALID_CONFIG with a message", cfg, v, kerr.ErrorForCode(rt.ErrorCode))
		}
	}
	if rt := createTopicWith(t, c, "alter", 1, 3, nil); rt.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rt.ErrorCode))
	}
	if err := alterTopic(t, c, "alter", set("retention.bytes", "-5")); err != kerr.InvalidConfig {
		t.Fatalf("retention.bytes=-5: %v, want INVALID_CONFIG", err)
	}
	if err := alterTopic(t, c, "alter", set("retention.byte", "5")); err != kerr.InvalidConfig {
		t.Fatalf("unknown name: %v, want INVALID_CONFIG", err)
	}
	if err := alterTopic(t, c, "alter", configOp{kmsg.IncrementalAlterConfigOpAppend, "retention.ms", "5"}); err != kerr.InvalidConfig {
		t.Fatalf("APPEND to a long: %v, want INVALID_CONFIG", err)
	}
	if err := alterTopic(t, c, "nope", set("retention.ms", "5")); err != kerr.UnknownTopicOrPartition {
		t.Fatalf("unknown topic: %v", err)
	}
	if err := alterTopic(t, c, "alter", set("retention.ms", "60000"), configOp{kmsg.IncrementalAlterConfigOpAppend, "cleanup.policy", "compact"}); err != nil {
		t.Fatal(err)
	}
	for _, addr := range c.Addrs() {
		cfgs := describeTopic(t, addr, "alter", false)
		if *cfgs["retention.ms"].Value != "60000" || *cfgs["cleanup.policy"].Value != "delete,compact" {
			t.Fatalf("broker %s describes retention.ms=%s cleanup.policy=%s", addr, *cfgs["retention.ms"].Value, *cfgs["cleanup.policy"].Value)
		}
	}
	if err := alterTopic(t, c, "alter", configOp{kmsg.IncrementalAlterConfigOpSubtract, "cleanup.policy", "delete"}, configOp{kmsg.IncrementalAlterConfigOpDelete, "retention.ms", ""}); err != nil {
		t.Fatal(err)
	}
	cfgs := describeTopic(t, c.Addrs()[2], "alter", false)
	if *cfgs["cleanup.policy"].Value != "compact" || *cfgs["retention.ms"].Value != "604800000" || cfgs["retention.ms"].Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("after SUBTRACT and DELETE: cleanup.policy=%s retention.ms=%s", *cfgs["cleanup.policy"].Value, *cfgs["retention.ms"].Value)
	}
	// Legacy AlterConfigs: the given set replaces everything.
	req := kmsg.NewPtrAlterConfigsRequest()
	res := kmsg.NewAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, "alter"
	rc := kmsg.NewAlterConfigsRequestResourceConfig()
	rc.Name, rc.Value = "max.message.bytes", kmsg.StringPtr("2000")
	res.Configs = append(res.Configs, rc)
	req.Resources = append(req.Resources, res)
	aresp := do[*kmsg.AlterConfigsResponse](t, dial(t, c.Addrs()[1]), req, -1)
	if err := kerr.ErrorForCode(aresp.Resources[0].ErrorCode); err != nil {
		t.Fatal(err)
	}
	cfgs = describeTopic(t, c.Addrs()[1], "alter", false)
	if *cfgs["cleanup.policy"].Value != "delete" || *cfgs["max.message.bytes"].Value != "2000" {
		t.Fatalf("after AlterConfigs: cleanup.policy=%s max.message.bytes=%s", *cfgs["cleanup.policy"].Value, *cfgs["max.message.bytes"].Value)
	}
	// A broker default of a topic config, cluster-wide and dynamic.
	if err := alterResource(t, c, kmsg.ConfigResourceTypeBroker, "", set("log.retention.ms", "1234")); err != nil {
		t.Fatal(err)
	}
	if err := alterResource(t, c, kmsg.ConfigResourceTypeBroker, "", set("broker.session.timeout.ms", "1234")); err != kerr.InvalidConfig {
		t.Fatalf("a static broker config altered: %v, want INVALID_CONFIG", err)
	}
	rm := describeTopic(t, c.Addrs()[0], "alter", false)["retention.ms"]
	if *rm.Value != "1234" || rm.Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
		t.Fatalf("retention.ms after the cluster default changed: %s from %v", *rm.Value, rm.Source)
	}
}

// Topic configs altered at run time change what the leader accepts.
func TestDynamicTopicConfigsChangeProduce(t *testing.T) {
	c := Start(t, Brokers(3))
	createTopic(t, c, "dyn", 1, 3)
	big := strings.Repeat("x", 3000)
	if _, err := produceTo(t, c, "dyn", -1, big); err != nil {
		t.Fatal(err)
	}
	if err := alterTopic(t, c, "dyn", set("max.message.bytes", "1000"), set("min.insync.replicas", "3")); err != nil {
		t.Fatal(err)
	}
	if _, err := produceTo(t, c, "dyn", -1, big); err != kerr.MessageTooLarge {
		t.Fatalf("3000-byte batch with max.message.bytes=1000: %v, want MESSAGE_TOO_LARGE", err)
	}
	if err := alterTopic(t, c, "dyn", set("min.insync.replicas", "4")); err != nil {
		t.Fatal(err)
	}
	if _, err := produceTo(t, c, "dyn", -1, "small"); err != kerr.NotEnoughReplicas {
		t.Fatalf("acks=all with min.insync.replicas=4 on RF 3: %v, want NOT_ENOUGH_REPLICAS", err)
	}
	if err := alterTopic(t, c, "dyn", set("min.insync.replicas", "2"), set("message.timestamp.before.max.ms", "3600000")); err != nil {
		t.Fatal(err)
	}
	st := partState(t, c, "dyn", 0)
	old := produce(t, nil, c, addrOf(c, st.Leader), "dyn", 0, -1, makeBatch(time.Now().Add(-2*time.Hour).UnixMilli(), "old"))
	if old.ErrorCode != kerr.InvalidTimestamp.Code {
		t.Fatalf("a batch two hours old with message.timestamp.before.max.ms=1h: %v, want INVALID_TIMESTAMP", kerr.ErrorForCode(old.ErrorCode))
	}
	if err := alterTopic(t, c, "dyn", set("message.timestamp.type", "LogAppendTime")); err != nil {
		t.Fatal(err)
	}
	before := time.Now().UnixMilli()
	rp := produce(t, nil, c, addrOf(c, st.Leader), "dyn", 0, -1, makeBatch(1000, "stamped"))
	if rp.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rp.ErrorCode))
	}
	f := fetch(t, addrOf(c, st.Leader), "dyn", [16]byte{}, 0, rp.BaseOffset, 12)
	var b kmsg.RecordBatch
	if err := b.ReadFrom(f.RecordBatches); err != nil {
		t.Fatal(err)
	}
	if b.Attributes&0x08 == 0 || b.MaxTimestamp < before {
		t.Fatalf("LogAppendTime batch: attributes %#x max timestamp %d, want the timestamp-type bit and >= %d", b.Attributes, b.MaxTimestamp, before)
	}
	if err := alterTopic(t, c, "dyn", set("cleanup.policy", "compact")); err != nil {
		t.Fatal(err)
	}
	if _, err := produceTo(t, c, "dyn", -1, "keyless"); err != kerr.InvalidRecord {
		t.Fatalf("a record without a key on a compacted topic: %v, want INVALID_RECORD", err)
	}
}

// With a Raft quorum of controllers, config changes are committed by the
// active controller and survive its death: the next one has them and
// accepts more.
func TestConfigsSurviveControllerFailover(t *testing.T) {
	c := Start(t, Brokers(3), Controllers(3))
	createTopic(t, c, "qcfg", 1, 3)
	if err := alterTopic(t, c, "qcfg", set("retention.ms", "1000")); err != nil {
		t.Fatal(err)
	}
	old := c.Controller()
	if err := c.KillController(old); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "a new active controller", func(c *Cluster) bool { n := c.Controller(); return n >= 0 && n != old })
	if err := alterTopic(t, c, "qcfg", set("retention.bytes", "1000")); err != nil {
		t.Fatal(err)
	}
	cfgs, err := c.TopicConfigs("qcfg")
	if err != nil || cfgs["retention.ms"].Value != "1000" || cfgs["retention.bytes"].Value != "1000" {
		t.Fatalf("after the failover: %v %v %v", cfgs["retention.ms"], cfgs["retention.bytes"], err)
	}
	for _, addr := range c.Addrs() {
		if v := describeTopic(t, addr, "qcfg", false)["retention.ms"].Value; *v != "1000" {
			t.Fatalf("broker %s: retention.ms=%s", addr, *v)
		}
	}
}
