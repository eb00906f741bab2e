package kcluster

// The group coordinator (Kafka's GroupCoordinator), on the coordinator
// runtime (coordinator.go): a group's coordinator is the leader of
// partition abs(javaHash(group)) % offsets.topic.num.partitions of the
// internal topic __consumer_offsets. Classic group metadata
// (GroupMetadataKey/Value, key version 2), KIP-848 consumer groups (the
// ConsumerGroup* records, types 3 to 8: group_consumer_records.go) and
// committed offsets (OffsetCommitKey/Value, key version 1) are records in
// that partition, appended through the normal leader path and answered
// only once the high watermark covers them; a new leader replays them.
// Each
// partition is a shard (groupShard, Kafka's GroupCoordinatorShard) holding
// its groups and the transactional offset commits awaiting their marker.
// The runtime's goroutine (run) also fires the groups' deadlines (session
// timeouts, rebalance timeouts, the initial rebalance delay) and offsets
// retention.

import (
	"encoding/binary"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/internal/grouprecords"
)

const offsetsTopic = "__consumer_offsets"

// groupConfig holds the group coordinator's configs (Kafka's names in
// comments); brokerConfig.group.
type groupConfig struct {
	offsetsPartitions int32         // offsets.topic.num.partitions
	offsetsRF         int16         // offsets.topic.replication.factor
	initialDelay      time.Duration // group.initial.rebalance.delay.ms
	minSession        time.Duration // group.min.session.timeout.ms
	maxSession        time.Duration // group.max.session.timeout.ms
	maxSize           int32         // group.max.size
	metadataMax       int32         // offset.metadata.max.bytes
	retention         time.Duration // offsets.retention.minutes
	retentionCheck    time.Duration // offsets.retention.check.interval.ms
	commitTimeout     time.Duration // offsets.commit.timeout.ms
	cgSession         time.Duration // group.consumer.session.timeout.ms
	cgHeartbeat       time.Duration // group.consumer.heartbeat.interval.ms
	cgMaxSize         int32         // group.consumer.max.size
	shareConfig                     // group.share.*: group_share.go
}

// groupConfigDefs are merged into brokerConfigDefs at init, so the group
// configs are parsed, defaulted and validated with every other broker
// config.
var groupConfigDefs = map[string]configDef{
	// Test-friendly: Kafka's default is 50.
	"offsets.topic.num.partitions": {"10", func(b *brokerConfig, v string) error { return parseInt32(&b.group.offsetsPartitions, v, 1) }},
	// Kafka's default; lowered to the number of brokers when the cluster
	// has fewer (Kafka would refuse to create the topic).
	"offsets.topic.replication.factor": {"3", func(b *brokerConfig, v string) error {
		var n int32
		err := parseInt32(&n, v, 1)
		b.group.offsetsRF = int16(n)
		return err
	}},
	// Test-friendly: Kafka's default is 3000.
	"group.initial.rebalance.delay.ms": {"0", func(b *brokerConfig, v string) error { return parseMillis(&b.group.initialDelay, v) }},
	// Test-friendly: Kafka's default is 6000.
	"group.min.session.timeout.ms": {"100", func(b *brokerConfig, v string) error { return parseMillis(&b.group.minSession, v) }},
	"group.max.session.timeout.ms": {"1800000", func(b *brokerConfig, v string) error { return parseMillis(&b.group.maxSession, v) }},
	"group.max.size":               {"2147483647", func(b *brokerConfig, v string) error { return parseInt32(&b.group.maxSize, v, 1) }},
	"offset.metadata.max.bytes":    {"4096", func(b *brokerConfig, v string) error { return parseInt32(&b.group.metadataMax, v, 0) }},
	"offsets.retention.minutes": {"10080", func(b *brokerConfig, v string) error {
		var n int64
		err := parseInt64(&n, v, 1)
		b.group.retention = time.Duration(n) * time.Minute
		return err
	}},
	// Test-friendly: Kafka's default is 600000.
	"offsets.retention.check.interval.ms": {"1000", func(b *brokerConfig, v string) error { return parseMillis(&b.group.retentionCheck, v) }},
	"offsets.commit.timeout.ms":           {"5000", func(b *brokerConfig, v string) error { return parseMillis(&b.group.commitTimeout, v) }},
	// Test-friendly: Kafka's default is 45000.
	"group.consumer.session.timeout.ms": {"10000", func(b *brokerConfig, v string) error { return parseMillis(&b.group.cgSession, v) }},
	// Test-friendly: Kafka's default is 5000.
	"group.consumer.heartbeat.interval.ms": {"250", func(b *brokerConfig, v string) error { return parseMillis(&b.group.cgHeartbeat, v) }},
	"group.consumer.max.size":              {"2147483647", func(b *brokerConfig, v string) error { return parseInt32(&b.group.cgMaxSize, v, 1) }},
}

func init() { regBrokerConfigs(groupConfigDefs) }

// groupCoordinator is one broker's group coordinator.
type groupCoordinator struct {
	b   *broker
	cfg *groupConfig
	rt  *coordinatorRuntime[*groupShard]
}

// groupShard is one __consumer_offsets partition's groups (Kafka's
// GroupCoordinatorShard). Its fields are guarded by its context's lock
// (c.mu).
type groupShard struct {
	gc     *groupCoordinator
	c      *coordinatorContext[*groupShard]
	now    time.Time // when its load began: the time of replayed state
	groups map[string]*group
	// txnOffsets are transactional offset commits awaiting their
	// transaction's marker, by producer id (txn_offsets.go).
	txnOffsets map[int64][]txnOffset
	// initInFlight are the share groups whose share-partitions are being
	// initialized (group_share_init.go).
	initInFlight map[string]bool
	// names maps topic ids to names while the shard loads (consumer
	// group assignments are written by topic id).
	names map[[16]byte]string
}

func newGroupCoordinator(b *broker) *groupCoordinator {
	gc := &groupCoordinator{b: b, cfg: &b.cfg.group}
	gc.rt = newCoordinatorRuntime(b, coordinatorConfig{
		name: "group", topic: offsetsTopic, partitions: gc.cfg.offsetsPartitions, rf: gc.cfg.offsetsRF,
		topicConfigs: func(int16) map[string]string {
			return map[string]string{"cleanup.policy": "compact", "compression.type": "producer", "segment.bytes": "104857600"}
		},
		timeout: gc.cfg.commitTimeout,
	}, func(c *coordinatorContext[*groupShard]) *groupShard {
		return &groupShard{gc: gc, c: c, now: time.Now(), groups: map[string]*group{}, txnOffsets: map[int64][]txnOffset{}}
	})
	return gc
}

// kick wakes run to recompute the next deadline.
func (gc *groupCoordinator) kick() { gc.rt.kick() }

// run follows leadership of __consumer_offsets, fires deadlines and
// expires offsets until the broker stops.
func (gc *groupCoordinator) run() {
	gc.rt.run([]coordinatorJob{{gc.cfg.retentionCheck, gc.expireOffsets}}, gc.tick)
}

// groupCoordinatorFor returns the broker leading the group's partition.
func (b *broker) groupCoordinatorFor(group string) (int32, error) {
	return b.groups.rt.coordinatorFor(group)
}

func (gs *groupShard) replay(offset, pid int64, key, value []byte) {
	if pid >= 0 {
		gs.replayTxnOffset(offset, pid, key, value)
		return
	}
	if t, ok := grouprecords.Type(key); ok && grouprecords.Known(t) {
		gs.replayConsumerRecord(key, value)
		return
	} else if ok && grouprecords.ShareKnown(t) {
		gs.replayShareRecord(key, value)
		return
	}
	replayRecord(gs.groups, offset, key, value, gs.now, gs.gc.cfg)
}

func (gs *groupShard) replayEndTransactionMarker(pid int64, commit bool) {
	gs.completeTxnLocked(pid, commit)
}

// onLoaded starts the loaded consumer groups' member sessions and wakes
// run for their deadlines.
func (gs *groupShard) onLoaded() {
	gs.onLoadedShareLocked()
	gs.onLoadedConsumerLocked(time.Now())
	gs.gc.kick()
}

// onUnloaded answers every waiting request with NOT_COORDINATOR.
func (gs *groupShard) onUnloaded() {
	for _, g := range gs.groups {
		g.failWaitersLocked(kerr.NotCoordinator.Code)
	}
	gs.groups, gs.txnOffsets = nil, nil
}

// replayRecord applies one OffsetCommit or GroupMetadata record of
// __consumer_offsets. Record types this coordinator does not keep
// (share-group and streams-group records, consumer-group regular
// expressions) are skipped, as a Kafka broker skips unknown record
// versions; KIP-848 consumer-group records are replayConsumerRecord's.
func replayRecord(groups map[string]*group, offset int64, key, value []byte, now time.Time, cfg *groupConfig) {
	if len(key) < 2 {
		return
	}
	get := func(name string) *group {
		g := groups[name]
		if g == nil {
			g = newGroup(name, now)
			groups[name] = g
		}
		return g
	}
	switch v := int16(binary.BigEndian.Uint16(key)); v {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if k.ReadFrom(key) != nil {
			return
		}
		if value == nil {
			if g := groups[k.Group]; g != nil {
				g.deleteOffset(k.Topic, k.Partition)
				if g.isDeletable() {
					delete(groups, k.Group)
				}
			}
			return
		}
		var val kmsg.OffsetCommitValue
		if val.ReadFrom(value) != nil {
			return
		}
		get(k.Group).setOffset(k.Topic, k.Partition, offsetEntry{
			offset: val.Offset, leaderEpoch: val.LeaderEpoch, metadata: val.Metadata,
			commitTs: val.CommitTimestamp, expireTs: val.ExpireTimestamp, recordOffset: offset,
		})
	case 2:
		var k kmsg.GroupMetadataKey
		if k.ReadFrom(key) != nil {
			return
		}
		if value == nil {
			// The group's metadata goes; its offsets have records of
			// their own (DeleteGroups tombstones them first; a group
			// that became a consumer group keeps them).
			if g := groups[k.Group]; g != nil && g.kind == kindClassic {
				g.resetClassic(now)
				if g.isDeletable() {
					delete(groups, k.Group)
				}
			}
			return
		}
		var val kmsg.GroupMetadataValue
		if val.ReadFrom(value) != nil {
			return
		}
		get(k.Group).restoreClassic(&val, now, cfg)
	}
}

// writeLocked appends records to the shard's partition; the caller
// applies them before it unlocks, and the response waits for them (see
// coordinator.go). Errors are a client's.
func (gs *groupShard) writeLocked(recs []kmsg.Record) error {
	_, err := gs.c.appendLocked(recs, 0)
	return err
}

// withGroup runs fn with the group's shard locked; g is nil when the group
// does not exist. fn may create it with gs.getOrCreateLocked. The answer
// waits until what the shard wrote is committed.
func (gc *groupCoordinator) withGroup(name string, fn func(gs *groupShard, g *group) error) error {
	return gc.rt.runFor(name, func(gs *groupShard) error { return fn(gs, gs.groups[name]) })
}

// withGroupNow is withGroup without waiting for a load (for gauges).
func (gc *groupCoordinator) withGroupNow(name string, fn func(gs *groupShard, g *group) error) error {
	c, err := gc.rt.contextForNow(name)
	if err != nil {
		return err
	}
	return c.run(func(gs *groupShard) error { return fn(gs, gs.groups[name]) })
}

func (gs *groupShard) getOrCreateLocked(name string) *group {
	g := gs.groups[name]
	if g == nil {
		g = newGroup(name, time.Now())
		gs.groups[name] = g
	}
	return g
}

// tick fires every deadline that has passed and returns the next one (zero
// for none).
func (gc *groupCoordinator) tick(now time.Time) time.Time {
	var next time.Time
	for _, c := range gc.rt.contexts() {
		c.locked(func(gs *groupShard) {
			for _, g := range gs.groups {
				if d := g.tickLocked(gs, now); !d.IsZero() && (next.IsZero() || d.Before(next)) {
					next = d
				}
			}
		})
	}
	return earliest(next, gc.initializeShareStates(now))
}

// expireOffsets removes expired offsets (KIP-211): those of a group that
// has been empty for offsets.retention.minutes, or of a group with no
// protocol (offsets only) committed that long ago. A group left with no
// offsets and no members is deleted. It returns once the tombstones are
// committed.
func (gc *groupCoordinator) expireOffsets(now time.Time) (next time.Time) {
	for _, c := range gc.rt.contexts() {
		end, ok := c.locked(func(gs *groupShard) {
			for name, g := range gs.groups {
				var recs []kmsg.Record
				var expired []topicPartition
				for t, ps := range g.offsets {
					for p, o := range ps {
						if g.offsetExpired(t, o, now, gc.cfg.retention) {
							recs = append(recs, offsetTombstone(name, t, p))
							expired = append(expired, topicPartition{t, p})
						} else {
							next = earliest(next, g.offsetExpiry(t, o, gc.cfg.retention))
						}
					}
				}
				// A share group never expires (Kafka's
				// ShareGroup.shouldExpire): its share-partitions'
				// state outlives its members, and only DeleteGroups
				// deletes it with them.
				deleteGroup := len(expired) == g.numOffsets() && g.isEmptyState() && g.sg == nil
				switch {
				case deleteGroup && g.cg != nil:
					recs = append(recs, consumerGroupTombstones(name, g.cg)...)
				case deleteGroup && g.protocolType != "":
					recs = append(recs, groupTombstone(name))
				}
				if len(recs) == 0 {
					continue
				}
				if err := gs.writeLocked(recs); err != nil {
					gc.b.log.Debug("expiring offsets", "group", name, "err", err)
					next = now // again at the next tick
					continue
				}
				for _, tp := range expired {
					g.deleteOffset(tp.topic, tp.partition)
				}
				if deleteGroup {
					delete(gs.groups, name)
				}
			}
		})
		if !ok {
			continue
		}
		if err := c.await(end, gc.cfg.commitTimeout); err != nil {
			gc.b.log.Debug("expiring offsets", "partition", c.p, "err", err)
		}
	}
	return next
}

type topicPartition struct {
	topic     string
	partition int32
}

func offsetTombstone(group, topic string, p int32) kmsg.Record {
	k := kmsg.OffsetCommitKey{Version: 1, Group: group, Topic: topic, Partition: p}
	return kmsg.Record{Key: k.AppendTo(nil)}
}

func groupTombstone(group string) kmsg.Record {
	k := kmsg.GroupMetadataKey{Version: 2, Group: group}
	return kmsg.Record{Key: k.AppendTo(nil)}
}

func offsetRecord(group, topic string, p int32, o offsetEntry) kmsg.Record {
	k := kmsg.OffsetCommitKey{Version: 1, Group: group, Topic: topic, Partition: p}
	v := kmsg.OffsetCommitValue{Version: 3, Offset: o.offset, LeaderEpoch: o.leaderEpoch, Metadata: o.metadata, CommitTimestamp: o.commitTs}
	if o.expireTs > 0 {
		v.Version = 1
		v.ExpireTimestamp = o.expireTs
	}
	return kmsg.Record{Key: k.AppendTo(nil), Value: v.AppendTo(nil)}
}
