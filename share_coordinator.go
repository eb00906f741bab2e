package kcluster

// The share coordinator (KIP-932, Kafka's ShareCoordinatorService and
// ShareCoordinatorShard), on the coordinator runtime (coordinator.go): the
// state of share-partition groupId/topicId/partition is kept by the
// leader of partition abs(javaHash("groupId:topicId:partition")) %
// share.coordinator.state.topic.num.partitions of the internal topic
// __share_group_state (Kafka's SharePartitionKey.asCoordinatorKey, the
// topic id in its base64 form). The topic's cleanup policy is delete, not
// compact, as Kafka's: an update means nothing without the snapshot
// before it.
//
// Every change is a record in that partition, appended through the
// normal leader path and answered once the high watermark covers it. A
// ShareSnapshot record is the whole state of one share-partition; a
// ShareUpdate record is a change laid over the snapshot and the updates
// since (PersisterStateBatchCombiner). A write is an update, except the
// first after share.coordinator.snapshot.update.records.per.snapshot
// updates, or one of a higher state epoch, which is a snapshot of the
// merged state. A new leader of the partition replays both in log order.
//
// The partition leaders and the group coordinator reach it through the
// five state RPCs (api_sharestate.go) over the network, from their
// persister (share_persister.go). Fencing is Kafka's: a read in a higher
// leader epoch is written (an update with no batches), and a later read or
// write in a lower one is refused FENCED_LEADER_EPOCH; a write or an
// initialization of a lower state epoch, FENCED_STATE_EPOCH; a read or
// write of a share-partition never initialized, UNKNOWN_TOPIC_OR_PARTITION
// (KAFKA-19338).

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/internal/grouprecords"
	"github.com/kcluster/kcluster/internal/invariants"
)

const shareStateTopic = "__share_group_state"

// shareCoordConfig holds the share coordinator's configs (Kafka's
// ShareCoordinatorConfig; names in comments); brokerConfig.share.
type shareCoordConfig struct {
	partitions   int32         // share.coordinator.state.topic.num.partitions
	rf           int16         // share.coordinator.state.topic.replication.factor
	minISR       int32         // share.coordinator.state.topic.min.isr
	segmentBytes int32         // share.coordinator.state.topic.segment.bytes
	perSnapshot  int32         // share.coordinator.snapshot.update.records.per.snapshot
	writeTimeout time.Duration // share.coordinator.write.timeout.ms
	prune        time.Duration // share.coordinator.state.topic.prune.interval.ms
}

var shareCoordConfigDefs = map[string]configDef{
	// Test-friendly: Kafka's default is 50.
	"share.coordinator.state.topic.num.partitions": {"10", func(b *brokerConfig, v string) error { return parseInt32(&b.share.partitions, v, 1) }},
	// Kafka's default; lowered to the number of brokers when the cluster
	// has fewer.
	"share.coordinator.state.topic.replication.factor": {"3", func(b *brokerConfig, v string) error {
		var n int32
		err := parseInt32(&n, v, 1)
		b.share.rf = int16(n)
		return err
	}},
	"share.coordinator.state.topic.min.isr":                  {"2", func(b *brokerConfig, v string) error { return parseInt32(&b.share.minISR, v, 1) }},
	"share.coordinator.state.topic.segment.bytes":            {"104857600", func(b *brokerConfig, v string) error { return parseInt32(&b.share.segmentBytes, v, 1024) }},
	"share.coordinator.snapshot.update.records.per.snapshot": {"500", func(b *brokerConfig, v string) error { return parseInt32(&b.share.perSnapshot, v, 0) }},
	"share.coordinator.write.timeout.ms":                     {"5000", func(b *brokerConfig, v string) error { return parseMillis(&b.share.writeTimeout, v) }},
	// Kafka's default. The job runs only after a write (share_prune.go).
	"share.coordinator.state.topic.prune.interval.ms": {"300000", func(b *brokerConfig, v string) error { return parseMillis(&b.share.prune, v) }},
}

func init() { regBrokerConfigs(shareCoordConfigDefs) }

// shareCoordinator is one broker's share coordinator.
type shareCoordinator struct {
	b   *broker
	cfg *shareCoordConfig
	rt  *coordinatorRuntime[*shareShard]
}

// shareCoordState is one share-partition's state as the coordinator keeps
// it (Kafka's ShareGroupOffset), with the count of updates written since
// its last snapshot.
type shareCoordState struct {
	snapshotEpoch uint16
	stateEpoch    int32
	leaderEpoch   int32
	startOffset   int64
	createTs      int64
	batches       []shareStateBatch
	updates       int32
	// snapshotOffset is the offset of its last ShareSnapshot record in
	// the shard's partition: nothing of it below is needed.
	snapshotOffset int64
}

// shareShard is one __share_group_state partition's share-partitions.
// Its fields are guarded by its context's lock (c.mu).
type shareShard struct {
	sc     *shareCoordinator
	c      *coordinatorContext[*shareShard]
	states map[sharePartitionKey]*shareCoordState
}

func newShareCoordinator(b *broker) *shareCoordinator {
	sc := &shareCoordinator{b: b, cfg: &b.cfg.share}
	sc.rt = newCoordinatorRuntime(b, coordinatorConfig{
		name: "share", topic: shareStateTopic, partitions: sc.cfg.partitions, rf: sc.cfg.rf,
		topicConfigs: func(rf int16) map[string]string {
			return map[string]string{"cleanup.policy": "delete", "compression.type": "producer", "retention.ms": "-1",
				"segment.bytes": strconv.Itoa(int(sc.cfg.segmentBytes)), "min.insync.replicas": strconv.Itoa(int(min(sc.cfg.minISR, int32(rf))))}
		},
		timeout: sc.cfg.writeTimeout,
	}, func(c *coordinatorContext[*shareShard]) *shareShard {
		return &shareShard{sc: sc, c: c, states: map[sharePartitionKey]*shareCoordState{}}
	})
	return sc
}

// run follows leadership of __share_group_state and prunes it until the
// broker stops.
func (sc *shareCoordinator) run() { sc.rt.run([]coordinatorJob{{sc.cfg.prune, sc.prune}}, nil) }

// shareCoordinatorKey is Kafka's SharePartitionKey.asCoordinatorKey:
// "groupId:topicId:partition", the topic id as Kafka prints a Uuid.
func shareCoordinatorKey(key sharePartitionKey) string {
	return key.group + ":" + base64.RawURLEncoding.EncodeToString(key.topicID[:]) + ":" + strconv.Itoa(int(key.partition))
}

// shareCoordinatorFor returns the broker leading key's partition of
// __share_group_state (FindCoordinator key type 2).
func (b *broker) shareCoordinatorFor(key string) (int32, error) {
	return b.shareCoord.rt.coordinatorFor(key)
}

func (s *shareShard) replay(offset, _ int64, key, value []byte) {
	var k grouprecords.ShareStateKey
	if k.ReadFrom(key) != nil {
		return
	}
	pk := sharePartitionKey{k.GroupID, k.TopicID, k.Partition}
	if value == nil {
		delete(s.states, pk)
		return
	}
	switch k.Type {
	case grouprecords.TypeShareSnapshot:
		var v grouprecords.ShareSnapshotValue
		if v.ReadFrom(value) != nil {
			return
		}
		s.states[pk] = &shareCoordState{snapshotEpoch: v.SnapshotEpoch, stateEpoch: v.StateEpoch, leaderEpoch: v.LeaderEpoch,
			startOffset: v.StartOffset, createTs: v.CreateTimestamp, batches: fromRecordBatches(v.StateBatches), snapshotOffset: offset}
	case grouprecords.TypeShareUpdate:
		var v grouprecords.ShareUpdateValue
		st := s.states[pk]
		if st == nil || v.ReadFrom(value) != nil {
			return // an update without its snapshot means nothing
		}
		st.leaderEpoch = max(st.leaderEpoch, v.LeaderEpoch)
		if v.StartOffset > st.startOffset {
			st.startOffset = v.StartOffset
		}
		st.batches = mergeStateBatches(st.batches, fromRecordBatches(v.StateBatches), st.startOffset)
		st.updates++
	}
}

func (s *shareShard) replayEndTransactionMarker(int64, bool) {}
func (s *shareShard) onLoaded()                              {}
func (s *shareShard) onUnloaded()                            { s.states = nil }

func fromRecordBatches(bs []grouprecords.StateBatch) []shareStateBatch {
	out := make([]shareStateBatch, len(bs))
	for i, b := range bs {
		out[i] = shareStateBatch{first: b.FirstOffset, last: b.LastOffset, state: b.DeliveryState, count: b.DeliveryCount}
	}
	return out
}

func toRecordBatches(bs []shareStateBatch) []grouprecords.StateBatch {
	out := make([]grouprecords.StateBatch, len(bs))
	for i, b := range bs {
		out[i] = grouprecords.StateBatch{FirstOffset: b.first, LastOffset: b.last, DeliveryState: b.state, DeliveryCount: b.count}
	}
	return out
}

// writeLocked appends one record of key's state and replays it into the
// shard's memory (the append failed: nothing changes).
func (s *shareShard) writeLocked(k grouprecords.ShareStateKey, value []byte) error {
	key := k.AppendTo(nil)
	end, err := s.c.appendLocked([]kmsg.Record{{Key: key, Value: value}}, 0)
	if err != nil {
		return err
	}
	s.replay(end-1, -1, key, value)
	return nil
}

func stateKey(typ int16, key sharePartitionKey) grouprecords.ShareStateKey {
	return grouprecords.ShareStateKey{Type: typ, GroupID: key.group, TopicID: key.topicID, Partition: key.partition}
}

// snapshotLocked writes the whole state st of key as a new snapshot.
func (s *shareShard) snapshotLocked(key sharePartitionKey, st shareCoordState, now int64) error {
	if cur := s.states[key]; cur != nil {
		st.snapshotEpoch = cur.snapshotEpoch + 1
	}
	v := grouprecords.ShareSnapshotValue{SnapshotEpoch: st.snapshotEpoch, StateEpoch: st.stateEpoch, LeaderEpoch: st.leaderEpoch,
		StartOffset: st.startOffset, CreateTimestamp: st.createTs, WriteTimestamp: now, StateBatches: toRecordBatches(st.batches)}
	if v.CreateTimestamp == 0 {
		v.CreateTimestamp = now
	}
	return s.writeLocked(stateKey(grouprecords.TypeShareSnapshot, key), v.AppendTo(nil))
}

// initialize makes key's state anew with a start offset and state epoch
// (InitializeShareGroupState): a snapshot with no batches.
func (s *shareShard) initialize(key sharePartitionKey, stateEpoch int32, start int64) error {
	cur := s.states[key]
	if cur != nil && stateEpoch < cur.stateEpoch {
		return kerr.FencedStateEpoch
	}
	s.sc.b.c.shareAudit.reset(key)
	return s.snapshotLocked(key, shareCoordState{stateEpoch: stateEpoch, leaderEpoch: -1, startOffset: start}, time.Now().UnixMilli())
}

// read returns key's state (ReadShareGroupState); a read in a higher
// leader epoch is written first, so the epoch fences the older leader
// after a failover of this coordinator too.
func (s *shareShard) read(key sharePartitionKey, leaderEpoch int32) (shareState, error) {
	cur := s.states[key]
	if cur == nil {
		return shareState{}, kerr.UnknownTopicOrPartition
	}
	if leaderEpoch < cur.leaderEpoch {
		return shareState{}, kerr.FencedLeaderEpoch
	}
	if leaderEpoch > cur.leaderEpoch {
		v := grouprecords.ShareUpdateValue{SnapshotEpoch: cur.snapshotEpoch, LeaderEpoch: leaderEpoch, StartOffset: -1, StateBatches: []grouprecords.StateBatch{}}
		if err := s.writeLocked(stateKey(grouprecords.TypeShareUpdate, key), v.AppendTo(nil)); err != nil {
			return shareState{}, err
		}
		cur = s.states[key]
	}
	return shareState{stateEpoch: cur.stateEpoch, leaderEpoch: cur.leaderEpoch, startOffset: cur.startOffset, batches: append([]shareStateBatch(nil), cur.batches...)}, nil
}

// write applies a leader's change (WriteShareGroupState): an update, or a
// snapshot of the merged state every perSnapshot updates.
func (s *shareShard) write(key sharePartitionKey, w shareState) error {
	cur := s.states[key]
	switch {
	case cur == nil:
		return kerr.UnknownTopicOrPartition
	case w.leaderEpoch < cur.leaderEpoch:
		return kerr.FencedLeaderEpoch
	case w.stateEpoch < cur.stateEpoch:
		return kerr.FencedStateEpoch
	}
	if invariants.Enabled {
		s.sc.b.c.shareAudit.check(key, w)
	}
	if cur.updates >= s.sc.cfg.perSnapshot || w.stateEpoch > cur.stateEpoch {
		next := *cur
		next.stateEpoch = max(cur.stateEpoch, w.stateEpoch)
		next.leaderEpoch = max(cur.leaderEpoch, w.leaderEpoch)
		next.startOffset = max(cur.startOffset, w.startOffset)
		next.batches = mergeStateBatches(cur.batches, w.batches, next.startOffset)
		return s.snapshotLocked(key, next, time.Now().UnixMilli())
	}
	start := w.startOffset
	if start <= cur.startOffset {
		start = -1 // not moved
	}
	v := grouprecords.ShareUpdateValue{SnapshotEpoch: cur.snapshotEpoch, LeaderEpoch: max(cur.leaderEpoch, w.leaderEpoch), StartOffset: start,
		StateBatches: toRecordBatches(w.batches)}
	return s.writeLocked(stateKey(grouprecords.TypeShareUpdate, key), v.AppendTo(nil))
}

// remove forgets key's state (DeleteShareGroupState): tombstones of its
// snapshot and update keys.
func (s *shareShard) remove(key sharePartitionKey) error {
	if s.states[key] == nil {
		return nil
	}
	recs := []kmsg.Record{
		{Key: stateKey(grouprecords.TypeShareSnapshot, key).AppendTo(nil)},
		{Key: stateKey(grouprecords.TypeShareUpdate, key).AppendTo(nil)},
	}
	if _, err := s.c.appendLocked(recs, 0); err != nil {
		return err
	}
	delete(s.states, key)
	s.sc.b.c.shareAudit.reset(key)
	return nil
}

// summary is ReadShareGroupStateSummary's answer: the state and leader
// epochs, the start offset (-1 for a share-partition never initialized)
// and how many records past it are done (KIP-1226's delivery complete
// count).
func (s *shareShard) summary(key sharePartitionKey) (stateEpoch, leaderEpoch int32, start, done int64) {
	cur := s.states[key]
	if cur == nil {
		return 0, -1, -1, 0
	}
	for _, b := range cur.batches {
		if b.state == recAcknowledged || b.state == recArchived {
			done += b.last - b.first + 1
		}
	}
	return cur.stateEpoch, cur.leaderEpoch, cur.startOffset, done
}

// shareAudit is the invariants builds' record of every offset the share
// coordinators were told is done (ACKNOWLEDGED or ARCHIVED), with its
// delivery count, by share-partition, across coordinator failovers. A
// done record written again in another state or at another delivery
// count was delivered after it was done: reported as a broken
// invariant. (The same write again is a persister's retry.)
type shareAudit struct {
	mu       sync.Mutex
	done     map[sharePartitionKey]map[int64]shareStateBatch
	violated func(string)
}

func (a *shareAudit) check(key sharePartitionKey, w shareState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done == nil {
		a.done = map[sharePartitionKey]map[int64]shareStateBatch{}
	}
	done := a.done[key]
	if done == nil {
		done = map[int64]shareStateBatch{}
		a.done[key] = done
	}
	for _, b := range w.batches {
		for o := b.first; o <= b.last; o++ {
			if was, ok := done[o]; ok && (was.state != b.state || was.count != b.count) && a.violated != nil {
				a.violated(fmt.Sprintf("share-partition %s %x/%d: offset %d written %s (delivery %d) after it was %s (delivery %d), leader epoch %d",
					key.group, key.topicID[:4], key.partition, o, recordStateName(b.state), b.count, recordStateName(was.state), was.count, w.leaderEpoch))
			}
			if b.state == recAcknowledged || b.state == recArchived {
				done[o] = b
			}
		}
	}
}

func (a *shareAudit) reset(key sharePartitionKey) {
	if !invariants.Enabled {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.done, key)
}
