package kcluster

// The group coordinator, stored the way Kafka stores it: a group's
// coordinator is the leader of partition abs(javaHash(group)) %
// offsets.topic.num.partitions of the internal topic __consumer_offsets.
// Group metadata (GroupMetadataKey/Value, key version 2) and committed
// offsets (OffsetCommitKey/Value, key version 1) are records in that
// partition, appended through the normal leader path and answered only once
// the high watermark covers them (acks=all). A broker that becomes the
// partition's leader replays the partition into memory first; meanwhile it
// answers COORDINATOR_LOAD_IN_PROGRESS, and every other broker answers
// NOT_COORDINATOR.
//
// Concurrency: each coordinated partition (coordPartition) has one mutex
// over all its groups, as Kafka runs one partition's events serially.
// Appends are made and waited on with that mutex held, so the in-memory
// state changes in log order. One goroutine per broker (run) follows the
// partition leaderships in the metadata, loads and unloads partitions, and
// fires the groups' deadlines (session timeouts, rebalance timeouts, the
// initial rebalance delay, offsets retention).

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"sort"
	"sync"
	"time"
	"unicode/utf16"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
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
}

type configDef = struct {
	def   string
	parse func(*brokerConfig, string) error
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
	"group.initial.rebalance.delay.ms": {"50", func(b *brokerConfig, v string) error { return parseMillis(&b.group.initialDelay, v) }},
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

func init() {
	for k, d := range groupConfigDefs {
		brokerConfigDefs[k] = d
	}
}

// groupPartition is Kafka's partitionFor: Utils.abs(groupId.hashCode()) %
// partitions, with Java's String.hashCode over UTF-16 code units.
func groupPartition(group string, partitions int32) int32 {
	var h int32
	for _, u := range utf16.Encode([]rune(group)) {
		h = 31*h + int32(u)
	}
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % partitions
}

// groupCoordinator is one broker's group coordinator.
type groupCoordinator struct {
	b    *broker
	cfg  *groupConfig
	wake chan struct{} // a deadline may have moved: re-arm the timer
	mu   struct {
		sync.Mutex
		parts  map[int32]*coordPartition
		loadCh chan struct{} // closed when a partition is loaded or unloaded
	}
}

// coordPartition is one __consumer_offsets partition this broker leads.
type coordPartition struct {
	gc    *groupCoordinator
	p     int32
	rep   *partition
	epoch int32
	mu    struct {
		sync.Mutex
		loaded bool
		gone   bool // leadership lost: every request answers NOT_COORDINATOR
		groups map[string]*group
		// txnOffsets are transactional offset commits awaiting their
		// transaction's marker, by producer id (txn_offsets.go).
		txnOffsets map[int64][]txnOffset
		// lateMarkers are markers written while the partition loads,
		// applied once it has (txn_offsets.go).
		lateMarkers []txnMarker
	}
}

func newGroupCoordinator(b *broker) *groupCoordinator {
	gc := &groupCoordinator{b: b, cfg: &b.cfg.group, wake: make(chan struct{}, 1)}
	gc.mu.parts = make(map[int32]*coordPartition)
	return gc
}

// kick wakes run to recompute the next deadline.
func (gc *groupCoordinator) kick() {
	select {
	case gc.wake <- struct{}{}:
	default:
	}
}

// run follows leadership of __consumer_offsets and fires deadlines until
// the broker stops.
func (gc *groupCoordinator) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	nextRetention := time.Now().Add(gc.cfg.retentionCheck)
	for {
		gc.b.mu.RLock()
		changed := gc.b.mu.changed
		gc.b.mu.RUnlock()
		gc.reconcile()
		now := time.Now()
		if !now.Before(nextRetention) {
			gc.expireOffsets(now)
			nextRetention = now.Add(gc.cfg.retentionCheck)
		}
		next := gc.tick(now)
		if next.IsZero() || next.After(nextRetention) {
			next = nextRetention
		}
		timer.Reset(time.Until(next))
		select {
		case <-gc.b.ctx.Done():
			gc.unloadAll()
			return
		case <-changed:
		case <-gc.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// reconcile loads the partitions this broker now leads and unloads those it
// no longer leads (or leads in a new epoch: reloaded from the log).
func (gc *groupCoordinator) reconcile() {
	type lead struct {
		rep   *partition
		epoch int32
	}
	want := map[int32]lead{}
	gc.b.mu.RLock()
	if t := gc.b.mu.state.Topics[offsetsTopic]; t != nil {
		for _, p := range t.Partitions {
			if p.Leader != gc.b.id {
				continue
			}
			if r := gc.b.mu.replicas[tpKey{t.ID, p.Partition}]; r != nil {
				r.mu.Lock()
				ok := r.mu.leader == gc.b.id && r.mu.epoch == p.LeaderEpoch && !r.mu.closed
				r.mu.Unlock()
				if ok {
					want[p.Partition] = lead{r, p.LeaderEpoch}
				}
			}
		}
	}
	gc.b.mu.RUnlock()

	var load []*coordPartition
	gc.mu.Lock()
	for p, cp := range gc.mu.parts {
		if w, ok := want[p]; !ok || w.rep != cp.rep || w.epoch != cp.epoch {
			delete(gc.mu.parts, p)
			cp.unload()
		}
	}
	for p, w := range want {
		if gc.mu.parts[p] == nil {
			cp := &coordPartition{gc: gc, p: p, rep: w.rep, epoch: w.epoch}
			cp.mu.groups = make(map[string]*group)
			gc.mu.parts[p] = cp
			load = append(load, cp)
		}
	}
	gc.mu.Unlock()
	for _, cp := range load {
		start := time.Now()
		if err := cp.load(); err != nil {
			gc.b.log.Error("loading group coordinator partition", "partition", cp.p, "err", err)
			continue
		}
		gc.b.log.Debug("loaded group coordinator partition", "partition", cp.p, "epoch", cp.epoch, "took", time.Since(start))
	}
	gc.notifyLoad()
	if len(load) > 0 {
		gc.b.c.notifyEvent()
	}
}

func (gc *groupCoordinator) unloadAll() {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	for p, cp := range gc.mu.parts {
		delete(gc.mu.parts, p)
		cp.unload()
	}
}

// unload marks the partition gone and answers every waiting request with
// NOT_COORDINATOR.
func (cp *coordPartition) unload() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.mu.gone = true
	for _, g := range cp.mu.groups {
		g.failWaitersLocked(kerr.NotCoordinator.Code)
	}
	cp.mu.groups = nil
	cp.mu.txnOffsets = nil
}

// load replays the partition's log, from its start to its end (as leader,
// everything in its log is or will be committed), into groups and offsets.
func (cp *coordPartition) load() error {
	log := cp.rep.log
	end := log.LogEndOffset()
	groups := map[string]*group{}
	now := time.Now()
	var txns txnReplay
	for off := log.LogStartOffset(); off < end; {
		data, err := log.Read(off, 1<<20, end)
		if err != nil {
			return err
		}
		if len(data) == 0 {
			break
		}
		next, err := txns.replayBatches(&cp.gc.b.c.dec, data, func(key, value []byte) {
			replayRecord(groups, key, value, now, cp.gc.cfg)
		})
		if err != nil {
			return err
		}
		if next <= off {
			break
		}
		off = next
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.mu.gone {
		return nil
	}
	cp.mu.groups = groups
	cp.mu.txnOffsets = txns.open()
	cp.mu.loaded = true
	cp.applyLateMarkersLocked(end)
	return nil
}

// replayRecord applies one __consumer_offsets record. Record types this
// coordinator does not keep (KIP-848 and share-group records, transactional
// markers) are skipped, as a Kafka broker skips unknown record versions.
func replayRecord(groups map[string]*group, key, value []byte, now time.Time, cfg *groupConfig) {
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
			commitTs: val.CommitTimestamp, expireTs: val.ExpireTimestamp,
		})
	case 2:
		var k kmsg.GroupMetadataKey
		if k.ReadFrom(key) != nil {
			return
		}
		if value == nil {
			if g := groups[k.Group]; g != nil {
				g.resetClassic(now)
				g.offsets = nil
				delete(groups, k.Group)
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

// writeRecords appends records to the partition as its leader and waits
// until the high watermark covers them. Called with cp.mu held. Errors are
// mapped as Kafka's coordinator maps append errors.
func (cp *coordPartition) writeRecordsLocked(recs []kmsg.Record) error {
	if len(recs) == 0 {
		return nil
	}
	batch := encodeBatch(recs, time.Now().UnixMilli())
	_, end, err := cp.rep.appendAsLeader(batch, -1)
	if err == nil {
		ctx, cancel := context.WithTimeout(cp.gc.b.ctx, cp.gc.cfg.commitTimeout)
		err = cp.rep.waitHW(ctx, end)
		cancel()
	}
	return coordinatorAppendError(err)
}

// coordinatorAppendError maps an append error to the error a group client
// gets (Kafka's CoordinatorRuntime / GroupMetadataManager mapping).
func coordinatorAppendError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.NotEnoughReplicas),
		errors.Is(err, kerr.NotEnoughReplicasAfterAppend), errors.Is(err, kerr.RequestTimedOut):
		return kerr.CoordinatorNotAvailable
	case errors.Is(err, kerr.NotLeaderForPartition), errors.Is(err, kerr.KafkaStorageError):
		return kerr.NotCoordinator
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return kerr.InvalidCommitOffsetSize
	}
	return kerr.UnknownServerError
}

// encodeBatch builds an uncompressed v2 record batch of recs (offsets and
// lengths filled in here).
func encodeBatch(recs []kmsg.Record, ts int64) []byte {
	var raw []byte
	for i := range recs {
		r := &recs[i]
		r.OffsetDelta = int32(i)
		r.Length = 0
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		raw = r.AppendTo(raw)
	}
	b := kmsg.RecordBatch{Magic: 2, LastOffsetDelta: int32(len(recs) - 1), FirstTimestamp: ts, MaxTimestamp: ts,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(recs)), Records: raw, PartitionLeaderEpoch: -1}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], castagnoli))
	return out
}

// forEachKV calls fn with the key and value (nil for a tombstone) of every
// record in batches, and returns the offset after the last batch.
// Control batches are skipped.
func (d *decompressor) forEachKV(batches []byte, fn func(key, value []byte)) (int64, error) {
	var next int64
	for len(batches) > 0 {
		var b kmsg.RecordBatch
		if err := b.ReadFrom(batches); err != nil {
			return next, err
		}
		if int(b.Length)+12 > len(batches) {
			return next, errBadRecords
		}
		batches = batches[12+int(b.Length):]
		next = b.FirstOffset + int64(b.LastOffsetDelta) + 1
		if b.Attributes&0x20 != 0 { // control batch
			continue
		}
		recs, err := d.decompress(b.Attributes&7, b.Records)
		if err != nil {
			return next, err
		}
		for i := int32(0); i < b.NumRecords; i++ {
			l, w := binary.Varint(recs)
			if w <= 0 || l < 0 || int(l) > len(recs)-w {
				return next, errBadRecords
			}
			var r kmsg.Record
			if err := r.ReadFrom(recs[:w+int(l)]); err != nil {
				return next, err
			}
			recs = recs[w+int(l):]
			fn(r.Key, r.Value)
		}
	}
	return next, nil
}

// partitionFor returns the loaded partition coordinating group, or
// NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS. A request that reaches
// the new leader of the group's partition before the coordinator has
// loaded it waits for the load (up to loadWait) rather than sending the
// client into a retry backoff.
func (gc *groupCoordinator) partitionFor(group string) (*coordPartition, error) {
	const loadWait = 2 * time.Second
	var deadline <-chan time.Time
	for {
		changed := gc.loadChanged()
		cp, err := gc.partitionForOnce(group)
		if err == nil {
			return cp, nil
		}
		if !errors.Is(err, kerr.CoordinatorLoadInProgress) && !(errors.Is(err, kerr.NotCoordinator) && gc.mayLead(group)) {
			return nil, err
		}
		if deadline == nil {
			t := time.NewTimer(loadWait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-changed:
		case <-deadline:
			return nil, err
		case <-gc.b.ctx.Done():
			return nil, kerr.NotCoordinator
		}
	}
}

// loadChanged returns a channel closed when the coordinator next
// reconciles its partitions with the metadata.
func (gc *groupCoordinator) loadChanged() <-chan struct{} {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gc.mu.loadCh == nil {
		gc.mu.loadCh = make(chan struct{})
	}
	return gc.mu.loadCh
}

func (gc *groupCoordinator) notifyLoad() {
	gc.mu.Lock()
	if gc.mu.loadCh != nil {
		close(gc.mu.loadCh)
		gc.mu.loadCh = nil
	}
	gc.mu.Unlock()
}

// mayLead reports whether this broker's metadata makes it the leader of
// group's partition (the coordinator has not caught up yet), or does not
// have __consumer_offsets yet (just created through another broker).
func (gc *groupCoordinator) mayLead(group string) bool {
	gc.b.mu.RLock()
	defer gc.b.mu.RUnlock()
	t := gc.b.mu.state.Topics[offsetsTopic]
	if t == nil || len(t.Partitions) == 0 {
		return true
	}
	return t.Partitions[groupPartition(group, int32(len(t.Partitions)))].Leader == gc.b.id
}

func (gc *groupCoordinator) partitionForOnce(group string) (*coordPartition, error) {
	p := groupPartition(group, gc.numPartitions())
	gc.mu.Lock()
	cp := gc.mu.parts[p]
	gc.mu.Unlock()
	if cp == nil {
		return nil, kerr.NotCoordinator
	}
	cp.mu.Lock()
	loaded, gone := cp.mu.loaded, cp.mu.gone
	cp.mu.Unlock()
	if gone {
		return nil, kerr.NotCoordinator
	}
	if !loaded {
		return nil, kerr.CoordinatorLoadInProgress
	}
	return cp, nil
}

// withGroup runs fn with the group's partition locked; g is nil when the
// group does not exist. fn may create it with cp.getOrCreateLocked.
func (gc *groupCoordinator) withGroup(name string, fn func(cp *coordPartition, g *group) error) error {
	cp, err := gc.partitionFor(name)
	if err != nil {
		return err
	}
	return cp.withGroup(name, fn)
}

// withGroupNow is withGroup without waiting for a load (for gauges).
func (gc *groupCoordinator) withGroupNow(name string, fn func(cp *coordPartition, g *group) error) error {
	cp, err := gc.partitionForOnce(name)
	if err != nil {
		return err
	}
	return cp.withGroup(name, fn)
}

func (cp *coordPartition) withGroup(name string, fn func(cp *coordPartition, g *group) error) error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.mu.gone {
		return kerr.NotCoordinator
	}
	return fn(cp, cp.mu.groups[name])
}

func (cp *coordPartition) getOrCreateLocked(name string) *group {
	g := cp.mu.groups[name]
	if g == nil {
		g = newGroup(name, time.Now())
		cp.mu.groups[name] = g
	}
	return g
}

// numPartitions is the partition count of __consumer_offsets as the
// metadata has it, or the configured count before it exists.
func (gc *groupCoordinator) numPartitions() int32 {
	gc.b.mu.RLock()
	defer gc.b.mu.RUnlock()
	if t := gc.b.mu.state.Topics[offsetsTopic]; t != nil && len(t.Partitions) > 0 {
		return int32(len(t.Partitions))
	}
	return gc.cfg.offsetsPartitions
}

// tick fires every deadline that has passed and returns the next one (zero
// for none).
func (gc *groupCoordinator) tick(now time.Time) time.Time {
	var next time.Time
	for _, cp := range gc.loaded() {
		cp.mu.Lock()
		if !cp.mu.gone {
			for _, g := range cp.mu.groups {
				if d := g.tickLocked(cp, now); !d.IsZero() && (next.IsZero() || d.Before(next)) {
					next = d
				}
			}
		}
		cp.mu.Unlock()
	}
	return next
}

func (gc *groupCoordinator) loaded() []*coordPartition {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	out := make([]*coordPartition, 0, len(gc.mu.parts))
	for _, cp := range gc.mu.parts {
		out = append(out, cp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].p < out[j].p })
	return out
}

// expireOffsets removes expired offsets (KIP-211): those of a group that
// has been empty for offsets.retention.minutes, or of a group with no
// protocol (offsets only) committed that long ago. A group left with no
// offsets and no members is deleted.
func (gc *groupCoordinator) expireOffsets(now time.Time) {
	for _, cp := range gc.loaded() {
		cp.mu.Lock()
		if !cp.mu.gone && cp.mu.loaded {
			for name, g := range cp.mu.groups {
				var recs []kmsg.Record
				var expired []topicPartition
				for t, ps := range g.offsets {
					for p, o := range ps {
						if g.offsetExpired(t, o, now, gc.cfg.retention) {
							recs = append(recs, offsetTombstone(name, t, p))
							expired = append(expired, topicPartition{t, p})
						}
					}
				}
				deleteGroup := len(expired) == g.numOffsets() && g.isEmptyState()
				if deleteGroup && g.protocolType != "" {
					recs = append(recs, groupTombstone(name))
				}
				if len(recs) == 0 {
					continue
				}
				if err := cp.writeRecordsLocked(recs); err != nil {
					gc.b.log.Debug("expiring offsets", "group", name, "err", err)
					continue
				}
				for _, tp := range expired {
					g.deleteOffset(tp.topic, tp.partition)
				}
				if deleteGroup {
					delete(cp.mu.groups, name)
				}
			}
		}
		cp.mu.Unlock()
	}
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

// ensureOffsetsTopic creates __consumer_offsets through the controller if
// the metadata does not have it yet (as Kafka does on the first
// FindCoordinator), and reports whether it exists now.
func (b *broker) ensureOffsetsTopic() bool {
	b.mu.RLock()
	exists := b.mu.state.Topics[offsetsTopic] != nil
	brokers := 0
	for _, br := range b.mu.state.Brokers {
		if !br.Fenced {
			brokers++
		}
	}
	b.mu.RUnlock()
	if exists {
		return true
	}
	cfg := &b.cfg.group
	rf := cfg.offsetsRF
	if n := len(b.c.ports); int(rf) > n {
		rf = int16(n)
	}
	if int(rf) > brokers {
		return false
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(7)
	req.TimeoutMillis = 10000
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = offsetsTopic, cfg.offsetsPartitions, rf
	for k, v := range map[string]string{"cleanup.policy": "compact", "compression.type": "producer", "segment.bytes": "104857600"} {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		t.Configs = append(t.Configs, c)
	}
	req.Topics = append(req.Topics, t)
	resp, err := b.forwardCreateTopics(req, nil)
	if err != nil {
		b.log.Warn("creating "+offsetsTopic, "err", err)
		return false
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		b.log.Warn("creating "+offsetsTopic, "err", err)
		return false
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.mu.state.Topics[offsetsTopic] != nil
}

// groupCoordinatorFor returns the broker leading the group's partition.
func (b *broker) groupCoordinatorFor(group string) (int32, error) {
	if !b.ensureOffsetsTopic() {
		return -1, kerr.CoordinatorNotAvailable
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	t := b.mu.state.Topics[offsetsTopic]
	p := t.Partitions[groupPartition(group, int32(len(t.Partitions)))]
	if p.Leader < 0 {
		return -1, kerr.CoordinatorNotAvailable
	}
	if br := b.mu.state.Brokers[p.Leader]; br == nil || br.Fenced {
		return -1, kerr.CoordinatorNotAvailable
	}
	return p.Leader, nil
}
