package kcluster

// Topic configs: one table with Kafka's names, types, defaults, broker
// synonyms and validators (Kafka's LogConfig and its ServerLogConfigs).
// CreateTopics, AlterConfigs and IncrementalAlterConfigs validate through
// it; DescribeConfigs describes through it; the data path reads a topic's
// effective values from it (logConfig), resolved as Kafka does: the
// topic's own value, then the broker's dynamic value, then the cluster's
// dynamic default, then the static broker config, then the default.

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/kcluster/kcluster/metadata"
)

// Kafka's ConfigType (DescribeConfigs v3+).
const (
	cfgBoolean int8 = 1
	cfgString  int8 = 2
	cfgInt     int8 = 3
	cfgLong    int8 = 5
	cfgDouble  int8 = 6
	cfgList    int8 = 7
)

// Kafka's ConfigSource.
const (
	srcDynamicTopic         int8 = 1
	srcDynamicBroker        int8 = 2
	srcDynamicDefaultBroker int8 = 3
	srcStaticBroker         int8 = 4
	srcDefault              int8 = 5
)

// synonym is a broker config a topic config falls back to; its value times
// factor is the topic config's value (log.retention.hours is in hours).
type synonym struct {
	name   string
	factor int64
}

type topicConfigDef struct {
	name     string
	typ      int8
	def      string
	synonyms []synonym // highest precedence first
	valid    func(string) error
	doc      string
}

const maxLong = "9223372036854775807"

func atLeast(min int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", v)
		}
		if n < min {
			return fmt.Errorf("value %d must be at least %d", n, min)
		}
		return nil
	}
}

func intAtLeast(min int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		if err != nil {
			return fmt.Errorf("%q is not an int", v)
		}
		if n < min {
			return fmt.Errorf("value %d must be at least %d", n, min)
		}
		return nil
	}
}

func isBool(v string) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "false":
		return nil
	}
	return fmt.Errorf("%q is not a boolean", v)
}

func oneOf(vals ...string) func(string) error {
	return func(v string) error {
		if slices.Contains(vals, strings.TrimSpace(v)) {
			return nil
		}
		return fmt.Errorf("%q is not one of %v", v, vals)
	}
}

func listOf(vals ...string) func(string) error {
	return func(v string) error {
		for _, e := range splitList(v) {
			if !slices.Contains(vals, e) {
				return fmt.Errorf("%q is not one of %v", e, vals)
			}
		}
		return nil
	}
}

func ratio(v string) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f < 0 || f > 1 {
		return fmt.Errorf("%q is not a number between 0 and 1", v)
	}
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// topicConfigDefs is every topic config kcluster knows, in Kafka's names
// and defaults. It is never written after package initialization.
var topicConfigDefs = []topicConfigDef{
	{"cleanup.policy", cfgList, "delete", []synonym{{"log.cleanup.policy", 1}}, listOf("compact", "delete"),
		"delete: old segments go by retention.ms and retention.bytes; compact: the log cleaner keeps the latest record of each key"},
	{"compression.type", cfgString, "producer", []synonym{{"compression.type", 1}}, oneOf("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
		"kept as given: batches are stored as the producer compressed them"},
	{"delete.retention.ms", cfgLong, "86400000", []synonym{{"log.cleaner.delete.retention.ms", 1}}, atLeast(0),
		"how long the cleaner keeps a tombstone after it first cleaned it (KIP-534 delete horizon)"},
	{"file.delete.delay.ms", cfgLong, "60000", []synonym{{"log.segment.delete.delay.ms", 1}}, atLeast(0),
		"accepted; segments are deleted at once"},
	{"flush.messages", cfgLong, maxLong, []synonym{{"log.flush.interval.messages", 1}}, atLeast(1), "the log is synced every this many records"},
	{"flush.ms", cfgLong, maxLong, []synonym{{"log.flush.interval.ms", 1}}, atLeast(0), "accepted; appends are not synced (as Kafka's default)"},
	{"index.interval.bytes", cfgInt, "4096", []synonym{{"log.index.interval.bytes", 1}}, intAtLeast(0), "bytes between offset index entries"},
	{"max.compaction.lag.ms", cfgLong, maxLong, []synonym{{"log.cleaner.max.compaction.lag.ms", 1}}, atLeast(1),
		"a dirty segment older than this is cleaned whatever the dirty ratio"},
	{"max.message.bytes", cfgInt, "1048588", []synonym{{"message.max.bytes", 1}}, intAtLeast(0), "largest record batch accepted"},
	{"message.timestamp.after.max.ms", cfgLong, maxLong, []synonym{{"log.message.timestamp.after.max.ms", 1}}, atLeast(0),
		"CreateTime batches further in the future than this are refused with INVALID_TIMESTAMP"},
	{"message.timestamp.before.max.ms", cfgLong, maxLong, []synonym{{"log.message.timestamp.before.max.ms", 1}}, atLeast(0),
		"CreateTime batches further in the past than this are refused with INVALID_TIMESTAMP"},
	{"message.timestamp.type", cfgString, "CreateTime", []synonym{{"log.message.timestamp.type", 1}}, oneOf("CreateTime", "LogAppendTime"),
		"LogAppendTime: the leader stamps each batch with its append time"},
	{"min.cleanable.dirty.ratio", cfgDouble, "0.5", []synonym{{"log.cleaner.min.cleanable.ratio", 1}}, ratio,
		"the background cleaner cleans a log once this share of it is dirty"},
	{"min.compaction.lag.ms", cfgLong, "0", []synonym{{"log.cleaner.min.compaction.lag.ms", 1}}, atLeast(0),
		"records younger than this are not compacted"},
	{"min.insync.replicas", cfgInt, "1", []synonym{{"min.insync.replicas", 1}}, intAtLeast(1), "acks=all needs this many ISR members, and the high watermark advances only with as many (at most the replication factor)"},
	{"preallocate", cfgBoolean, "false", []synonym{{"log.preallocate", 1}}, isBool, "accepted; segments are not preallocated"},
	{"retention.bytes", cfgLong, "-1", []synonym{{"log.retention.bytes", 1}}, atLeast(-1),
		"oldest segments are deleted while the partition is larger than this (-1: no limit)"},
	{"retention.ms", cfgLong, "604800000", []synonym{{"log.retention.ms", 1}, {"log.retention.minutes", 60000}, {"log.retention.hours", 3600000}}, atLeast(-1),
		"segments whose newest record is older than this are deleted (-1: no limit)"},
	{"segment.bytes", cfgInt, "1073741824", []synonym{{"log.segment.bytes", 1}}, intAtLeast(14), "a segment rolls before it passes this size"},
	{"segment.index.bytes", cfgInt, "10485760", []synonym{{"log.index.size.max.bytes", 1}}, intAtLeast(4), "accepted; the index is in pebble"},
	{"segment.jitter.ms", cfgLong, "0", []synonym{{"log.roll.jitter.ms", 1}, {"log.roll.jitter.hours", 3600000}}, atLeast(0), "accepted; no jitter"},
	{"segment.ms", cfgLong, "604800000", []synonym{{"log.roll.ms", 1}, {"log.roll.hours", 3600000}}, atLeast(1),
		"the active segment rolls once it is this old"},
	{"unclean.leader.election.enable", cfgBoolean, "false", []synonym{{"unclean.leader.election.enable", 1}}, isBool,
		"a replica outside the ISR may lead when no ISR member is left"},
}

// topicConfigDefByName returns the definition of a topic config, or nil.
func topicConfigDefByName(name string) *topicConfigDef {
	for i := range topicConfigDefs {
		if topicConfigDefs[i].name == name {
			return &topicConfigDefs[i]
		}
	}
	return nil
}

// topicConfigSynonym returns the topic config a broker config is a synonym
// of, or nil.
func topicConfigSynonym(brokerName string) (*topicConfigDef, synonym) {
	for i := range topicConfigDefs {
		for _, s := range topicConfigDefs[i].synonyms {
			if s.name == brokerName {
				return &topicConfigDefs[i], s
			}
		}
	}
	return nil, synonym{}
}

// errInvalidConfig wraps a config validation failure; it maps to
// INVALID_CONFIG.
var errInvalidConfig = errors.New("invalid config")

// validateTopicConfig checks one topic config by Kafka's rules.
func validateTopicConfig(name string, value *string) error {
	d := topicConfigDefByName(name)
	if d == nil {
		return fmt.Errorf("%w: unknown topic config name: %s", errInvalidConfig, name)
	}
	if value == nil {
		return fmt.Errorf("%w: null value not supported for topic config %s", errInvalidConfig, name)
	}
	if err := d.valid(*value); err != nil {
		return fmt.Errorf("%w: invalid value %s for configuration %s: %v", errInvalidConfig, *value, name, err)
	}
	return nil
}

// validateTopicConfigs checks a whole set and the rules between configs.
func validateTopicConfigs(cfg map[string]string) error {
	for k, v := range cfg {
		if err := validateTopicConfig(k, &v); err != nil {
			return err
		}
	}
	return nil
}

// validateBrokerDynamic checks a dynamic broker config: kcluster accepts
// the broker synonyms of topic configs (Kafka's cluster-wide dynamic log
// configs), validated as the topic config.
func validateBrokerDynamic(name string, value *string) error {
	d, s := topicConfigSynonym(name)
	if d == nil {
		return fmt.Errorf("%w: %s cannot be updated dynamically", errInvalidConfig, name)
	}
	if value == nil {
		return nil
	}
	if s.factor != 1 {
		return atLeast(-1)(*value)
	}
	if err := d.valid(*value); err != nil {
		return fmt.Errorf("%w: invalid value %s for configuration %s: %v", errInvalidConfig, *value, name, err)
	}
	return nil
}

// configEntry is one resolved config with its source and synonyms, as
// DescribeConfigs reports it.
type configEntry struct {
	name, value string
	source      int8
	synonyms    []configSynonym
	def         *topicConfigDef
}

type configSynonym struct {
	name, value string
	source      int8
}

// resolveTopicConfig resolves a topic config for broker id: the topic's
// value, the broker's dynamic value, the cluster's dynamic default, the
// static broker config, the default. Synonyms carry their own values (in
// their own units: log.retention.hours in hours); the entry's value is the
// topic config's (in milliseconds).
func (c *config) resolveTopicConfig(d *topicConfigDef, topic map[string]string, st *metadata.State, broker int32) configEntry {
	e := configEntry{name: d.name, def: d}
	first := int64(1)
	add := func(name, v string, src int8, factor int64) {
		if len(e.synonyms) == 0 {
			first = factor
		}
		e.synonyms = append(e.synonyms, configSynonym{name, v, src})
	}
	if v, ok := topic[d.name]; ok {
		add(d.name, v, srcDynamicTopic, 1)
	}
	var perBroker, clusterDyn map[string]string
	if st != nil {
		perBroker = st.BrokerConfigs[strconv.Itoa(int(broker))]
		clusterDyn = st.BrokerConfigs[""]
	}
	for _, src := range []struct {
		m   map[string]string
		src int8
	}{{perBroker, srcDynamicBroker}, {clusterDyn, srcDynamicDefaultBroker}, {c.bcfg, srcStaticBroker}} {
		for _, s := range d.synonyms {
			if v, ok := src.m[s.name]; ok {
				add(s.name, v, src.src, s.factor)
			}
		}
	}
	add(d.synonyms[0].name, d.def, srcDefault, 1)
	e.value, e.source = e.synonyms[0].value, e.synonyms[0].source
	if first != 1 {
		if n, err := strconv.ParseInt(strings.TrimSpace(e.value), 10, 64); err == nil && n >= 0 {
			e.value = strconv.FormatInt(n*first, 10)
		}
	}
	return e
}

// logConfig is a topic's effective configs as the data path uses them,
// parsed once per metadata change.
type logConfig struct {
	cleanupDelete, cleanupCompact bool
	retentionMs, retentionBytes   int64
	segmentBytes, segmentMs       int64
	indexIntervalBytes            int64
	flushMessages                 int64
	minISR                        int
	maxMessageBytes               int
	logAppendTime                 bool
	tsBeforeMax, tsAfterMax       int64
	deleteRetentionMs             int64
	minCompactionLagMs            int64
	maxCompactionLagMs            int64
	minCleanableRatio             float64
	values                        map[string]string
}

// logConfigFor resolves every topic config of t for broker id.
func (c *config) logConfigFor(t *metadata.Topic, st *metadata.State, broker int32) *logConfig {
	lc := &logConfig{values: make(map[string]string, len(topicConfigDefs))}
	for i := range topicConfigDefs {
		d := &topicConfigDefs[i]
		lc.values[d.name] = c.resolveTopicConfig(d, t.Configs, st, broker).value
	}
	i64 := func(name string) int64 {
		n, err := strconv.ParseInt(strings.TrimSpace(lc.values[name]), 10, 64)
		if err != nil {
			n, _ = strconv.ParseInt(topicConfigDefByName(name).def, 10, 64)
		}
		return n
	}
	for _, p := range splitList(lc.values["cleanup.policy"]) {
		lc.cleanupDelete = lc.cleanupDelete || p == "delete"
		lc.cleanupCompact = lc.cleanupCompact || p == "compact"
	}
	lc.retentionMs, lc.retentionBytes = i64("retention.ms"), i64("retention.bytes")
	lc.segmentBytes, lc.segmentMs = i64("segment.bytes"), i64("segment.ms")
	lc.indexIntervalBytes = i64("index.interval.bytes")
	lc.flushMessages = i64("flush.messages")
	lc.minISR = int(i64("min.insync.replicas"))
	lc.maxMessageBytes = int(min(i64("max.message.bytes"), math.MaxInt32))
	lc.logAppendTime = strings.TrimSpace(lc.values["message.timestamp.type"]) == "LogAppendTime"
	lc.tsBeforeMax, lc.tsAfterMax = i64("message.timestamp.before.max.ms"), i64("message.timestamp.after.max.ms")
	lc.deleteRetentionMs = i64("delete.retention.ms")
	lc.minCompactionLagMs, lc.maxCompactionLagMs = i64("min.compaction.lag.ms"), i64("max.compaction.lag.ms")
	lc.minCleanableRatio, _ = strconv.ParseFloat(strings.TrimSpace(lc.values["min.cleanable.dirty.ratio"]), 64)
	return lc
}

// logConfigLocked resolves t's effective configs on this broker (b.mu
// held).
func (b *broker) logConfigLocked(t *metadata.Topic) *logConfig {
	return b.c.cfg.logConfigFor(t, b.mu.state, b.id)
}
