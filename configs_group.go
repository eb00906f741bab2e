package kcluster

// Group configs (KIP-848's and KIP-932's GROUP config resource, type 32):
// dynamic configs of one group, kept in the metadata log as Kafka's
// ConfigRecords are, set with IncrementalAlterConfigs and AlterConfigs and
// read with DescribeConfigs. kcluster knows the share-group ones (Kafka's
// GroupConfig names): share.auto.offset.reset, share.isolation.level,
// share.record.lock.duration.ms, share.delivery.count.limit,
// share.session.timeout.ms and share.heartbeat.interval.ms. A group
// config not set falls back to the broker's group.share.* config.

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// srcGroupConfig is Kafka's ConfigSource GROUP_CONFIG.
const srcGroupConfig int8 = 8

type groupConfigDef struct {
	name, doc string
	typ       int8
	// broker is the broker config the group config falls back to ("":
	// def).
	broker string
	def    string
	valid  func(string) error
}

var groupConfigResourceDefs = []groupConfigDef{
	{name: "share.auto.offset.reset", typ: cfgString, def: "latest", valid: func(v string) error {
		if v == "latest" || v == "earliest" {
			return nil
		}
		if d, ok := strings.CutPrefix(v, "by_duration:"); ok {
			_, err := time.ParseDuration(strings.ToLower(strings.TrimPrefix(d, "P")))
			if err == nil {
				return nil
			}
		}
		return fmt.Errorf("must be latest, earliest or by_duration:<ISO-8601 duration>")
	}, doc: "where a share-partition starts when the group has no state for it"},
	{name: "share.isolation.level", typ: cfgString, def: "read_uncommitted", valid: func(v string) error {
		if v == "read_uncommitted" || v == "read_committed" {
			return nil
		}
		return fmt.Errorf("must be read_uncommitted or read_committed")
	}, doc: "read_committed share fetches skip aborted records and stop at the last stable offset"},
	{name: "share.record.lock.duration.ms", typ: cfgInt, broker: "group.share.record.lock.duration.ms", valid: intAtLeast(1000), doc: "how long an acquired record stays locked to its member"},
	{name: "share.delivery.count.limit", typ: cfgInt, broker: "group.share.delivery.count.limit", valid: intAtLeast(2), doc: "deliveries after which a record is archived"},
	{name: "share.session.timeout.ms", typ: cfgInt, broker: "group.share.session.timeout.ms", valid: intAtLeast(1), doc: "a member without a heartbeat this long is removed"},
	{name: "share.heartbeat.interval.ms", typ: cfgInt, broker: "group.share.heartbeat.interval.ms", valid: intAtLeast(1), doc: "how often members heartbeat"},
}

func groupConfigDefByName(name string) *groupConfigDef {
	for i := range groupConfigResourceDefs {
		if groupConfigResourceDefs[i].name == name {
			return &groupConfigResourceDefs[i]
		}
	}
	return nil
}

// validateGroupConfig validates a group config's new value (nil: deleted).
func validateGroupConfig(name string, value *string) error {
	d := groupConfigDefByName(name)
	if d == nil {
		return fmt.Errorf("%w: unknown group config name: %s", errInvalidConfig, name)
	}
	if value == nil {
		return nil
	}
	if err := d.valid(*value); err != nil {
		return fmt.Errorf("%w: invalid value %s for configuration %s: %v", errInvalidConfig, *value, name, err)
	}
	return nil
}

// groupConfigValueLocked resolves a group config: the group's value, else
// its broker config's, else its default. The caller holds b.mu.
func (b *broker) groupConfigValueLocked(group, name string) (string, int8) {
	if v, ok := b.mu.state.GroupConfigs[group][name]; ok {
		return v, srcGroupConfig
	}
	d := groupConfigDefByName(name)
	if d == nil {
		return "", srcDefault
	}
	if d.broker != "" {
		if v, ok := b.c.cfg.bcfg[d.broker]; ok {
			return v, srcStaticBroker
		}
		return brokerConfigDefs[d.broker].def, srcDefault
	}
	return d.def, srcDefault
}

// shareGroupConfig is a group config's value for a share group.
func (b *broker) shareGroupConfig(group, name string) string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	v, _ := b.groupConfigValueLocked(group, name)
	return v
}

// shareGroupDuration is a group config in milliseconds, or def when it is
// not a number.
func (b *broker) shareGroupDuration(group, name string, def time.Duration) time.Duration {
	n, err := strconv.ParseInt(b.shareGroupConfig(group, name), 10, 64)
	if err != nil || n <= 0 {
		return def
	}
	return time.Duration(n) * time.Millisecond
}

// groupConfigEntriesLocked describes a group's configs.
func (b *broker) groupConfigEntriesLocked(group string) []configEntry {
	var out []configEntry
	for _, d := range groupConfigResourceDefs {
		v, src := b.groupConfigValueLocked(group, d.name)
		e := configEntry{name: d.name, value: v, source: src, synonyms: []configSynonym{{d.name, v, src}}}
		out = append(out, e)
	}
	return out
}
