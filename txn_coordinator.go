package kcluster

// The transaction coordinator (KIP-98, Kafka's TransactionCoordinator), on
// the coordinator runtime (coordinator.go): a transactional id's
// coordinator is the leader of partition abs(javaHash(id)) %
// transaction.state.log.num.partitions of the internal topic
// __transaction_state. Every state change of a transaction is a
// TxnMetadataKey/TxnMetadataValue record in that partition, appended
// through the normal leader path and answered only once the high watermark
// covers it (Kafka's TransactionStateManager). Each partition is a shard
// (txnShard) holding its transactional ids. A broker that loads a shard
// finishes every transaction it finds in PrepareCommit or PrepareAbort: it
// sends the markers again and writes the Complete state, so a coordinator
// failover never leaves a transaction half-done (txn_markers.go).
//
// States are Kafka's (kmsg.TransactionState): Empty → Ongoing (first
// AddPartitionsToTxn / AddOffsetsToTxn, or a partition leader's add for a
// Produce v12+ / TxnOffsetCommit v5) → PrepareCommit / PrepareAbort
// (EndTxn, a transaction timeout, or fencing by a new InitProducerId) →
// CompleteCommit / CompleteAbort once WriteTxnMarkers has reached every
// partition of the transaction. At transaction version 2 (KIP-890 part 2,
// EndTxn v5) the Prepare state bumps the producer epoch, the markers carry
// it, and an exhausted epoch completes with a new producer id. Records
// are TxnMetadataValue v1 (PreviousProducerId, NextProducerId,
// ClientTransactionVersion) from transaction.version 1, v0 below it, as
// Kafka's; both load.
//
// Timeouts are Kafka's: a state change waits for its replication up to
// the transaction's own timeout; the coordinator's other waits (a read
// behind a write, an id's tombstone, its inter-broker requests) up to
// request.timeout.ms. The runtime's goroutine (run) also aborts the
// transactions that ran past their timeout and forgets expired ids.

import (
	"cmp"
	"encoding/binary"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

const txnTopic = "__transaction_state"

// txnConfig holds the transaction coordinator's configs (Kafka's names in
// comments, as its TransactionConfig); brokerConfig.txn.
type txnConfig struct {
	partitions     int32         // transaction.state.log.num.partitions
	rf             int16         // transaction.state.log.replication.factor
	minISR         int32         // transaction.state.log.min.isr
	maxTimeout     time.Duration // transaction.max.timeout.ms
	abortInterval  time.Duration // transaction.abort.timed.out.transaction.cleanup.interval.ms
	expiration     time.Duration // transactional.id.expiration.ms
	removeEvery    time.Duration // transaction.remove.expired.transaction.cleanup.interval.ms
	requestTimeout time.Duration // request.timeout.ms
	addRetryMax    time.Duration // add.partitions.to.txn.retry.backoff.max.ms
}

var txnConfigDefs = map[string]configDef{
	// Test-friendly: Kafka's default is 50.
	"transaction.state.log.num.partitions": {"10", func(b *brokerConfig, v string) error { return parseInt32(&b.txn.partitions, v, 1) }},
	// Kafka's default; lowered to the number of brokers when the cluster
	// has fewer.
	"transaction.state.log.replication.factor": {"3", func(b *brokerConfig, v string) error {
		var n int32
		err := parseInt32(&n, v, 1)
		b.txn.rf = int16(n)
		return err
	}},
	"transaction.state.log.min.isr": {"2", func(b *brokerConfig, v string) error { return parseInt32(&b.txn.minISR, v, 1) }},
	"transaction.max.timeout.ms":    {"900000", func(b *brokerConfig, v string) error { return parseMillis(&b.txn.maxTimeout, v) }},
	// Test-friendly: Kafka's default is 10000.
	"transaction.abort.timed.out.transaction.cleanup.interval.ms": {"200", func(b *brokerConfig, v string) error { return parseMillis(&b.txn.abortInterval, v) }},
	"transactional.id.expiration.ms":                              {"604800000", func(b *brokerConfig, v string) error { return parseMillis(&b.txn.expiration, v) }},
	// Test-friendly: Kafka's default is 3600000.
	"transaction.remove.expired.transaction.cleanup.interval.ms": {"1000", func(b *brokerConfig, v string) error { return parseMillis(&b.txn.removeEvery, v) }},
	// Test-friendly: Kafka's default is 30000. The broker's inter-broker
	// requests of transactions (WriteTxnMarkers, a partition leader's
	// verification) and the transaction coordinator's waits other than a
	// state change's.
	"request.timeout.ms": {"5000", func(b *brokerConfig, v string) error { return parseMillis(&b.txn.requestTimeout, v) }},
	// Kafka's default. How long a partition leader's add of its
	// partition to a transaction (a Produce v12+, a TxnOffsetCommit v5)
	// waits for the producer's previous transaction to complete before
	// answering CONCURRENT_TRANSACTIONS (api_txn.go's addPartitions).
	"add.partitions.to.txn.retry.backoff.max.ms": {"100", func(b *brokerConfig, v string) error { return parseMillis(&b.txn.addRetryMax, v) }},
}

func init() { regBrokerConfigs(txnConfigDefs) }

// txnMeta is one transactional id's state (Kafka's TransactionMetadata).
type txnMeta struct {
	id  string
	pid int64
	// prevPid is the producer id before the last state change (Kafka's
	// prevProducerId, its TxnMetadataValue's PreviousProducerId): a
	// retry from a producer whose id was rotated is recognized by it.
	prevPid int64
	// nextPid is the producer id the producer gets when this
	// transaction completes, allocated when its EndTxn (transaction
	// version 2) found the epoch exhausted (Kafka's nextProducerId); -1
	// otherwise.
	nextPid   int64
	epoch     int16
	lastEpoch int16 // the epoch before the last bump, for retries (-1: none; not in the record, as Kafka's)
	timeout   int32 // ms
	state     kmsg.TransactionState
	parts     map[topicPartition]struct{}
	startTs   int64 // ms, when the transaction became Ongoing
	updateTs  int64 // ms
	// tv is the transaction version of the request that made the last
	// change (Kafka's clientTransactionVersion): at 2 the transaction's
	// end bumps the epoch (KIP-890 part 2).
	tv      int16
	sending bool // markers of a Prepare state are in flight
}

func (m *txnMeta) clone() *txnMeta {
	c := *m
	c.parts = make(map[topicPartition]struct{}, len(m.parts))
	for tp := range m.parts {
		c.parts[tp] = struct{}{}
	}
	return &c
}

func (m *txnMeta) sortedParts() []topicPartition {
	out := slices.Collect(maps.Keys(m.parts))
	slices.SortFunc(out, func(a, b topicPartition) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})
	return out
}

// byTopic calls fn for each topic of ps, in order, with its partitions,
// in order.
func byTopic(ps []topicPartition, fn func(topic string, partitions []int32)) {
	groups := map[string][]int32{}
	for _, p := range ps {
		groups[p.topic] = append(groups[p.topic], p.partition)
	}
	for _, t := range sortedKeys(groups) {
		fn(t, slices.Sorted(slices.Values(groups[t])))
	}
}

// txnValueVersion is the TxnMetadataValue version Kafka writes at a
// finalized transaction.version (TransactionVersion's
// transactionLogValueVersion): 0 at level 0, the flexible 1, with the
// tagged PreviousProducerId, NextProducerId and ClientTransactionVersion,
// from level 1.
func txnValueVersion(level int16) int16 {
	if level >= 1 {
		return 1
	}
	return 0
}

// record is the meta as its __transaction_state record, its value at
// version (txnValueVersion), laid out as Kafka's TransactionLog writes it:
// no partition list (null) in the Empty state.
func (m *txnMeta) record(version int16) kmsg.Record {
	k := kmsg.TxnMetadataKey{Version: 0, TransactionalID: m.id}
	v := kmsg.NewTxnMetadataValue()
	v.Version = version
	v.ProducerID, v.ProducerEpoch, v.TimeoutMillis, v.State = m.pid, m.epoch, m.timeout, m.state
	v.LastUpdateTimestamp, v.StartTimestamp = m.updateTs, m.startTs
	v.PreviousProducerID, v.NextProducerID, v.ClientTransactionVersion = m.prevPid, m.nextPid, m.tv
	if m.state != kmsg.TransactionStateEmpty {
		v.Topics = []kmsg.TxnMetadataValueTopic{}
	}
	byTopic(m.sortedParts(), func(topic string, partitions []int32) {
		t := kmsg.NewTxnMetadataValueTopic()
		t.Topic, t.Partitions = topic, partitions
		v.Topics = append(v.Topics, t)
	})
	return kmsg.Record{Key: k.AppendTo(nil), Value: v.AppendTo(nil)}
}

// txnMetaFrom decodes a __transaction_state value. A version 0 value has
// no PreviousProducerId, NextProducerId or ClientTransactionVersion: they
// decode as -1, -1 and 0, as Kafka's TransactionLog reads them.
func txnMetaFrom(id string, v *kmsg.TxnMetadataValue) *txnMeta {
	m := &txnMeta{id: id, pid: v.ProducerID, prevPid: v.PreviousProducerID, nextPid: v.NextProducerID, epoch: v.ProducerEpoch,
		lastEpoch: -1, timeout: v.TimeoutMillis, state: v.State, startTs: v.StartTimestamp, updateTs: v.LastUpdateTimestamp,
		tv: v.ClientTransactionVersion, parts: map[topicPartition]struct{}{}}
	for _, t := range v.Topics {
		for _, p := range t.Partitions {
			m.parts[topicPartition{t.Topic, p}] = struct{}{}
		}
	}
	return m
}

// txnCoordinator is one broker's transaction coordinator.
type txnCoordinator struct {
	b   *broker
	cfg *txnConfig
	rt  *coordinatorRuntime[*txnShard]
	wg  sync.WaitGroup // marker senders
	// markers carries the WriteTxnMarkers this coordinator sends to
	// partition leaders; verify carries this broker's verifications (as a partition
	// leader) of other brokers' transactions. They are separate
	// connections, as Kafka's TransactionMarkerChannelManager and
	// AddPartitionsToTxnManager are: a broker serves a connection's
	// requests in order, and a verification must not wait behind
	// a WriteTxnMarkers that waits for its markers' replication.
	markers peerClients
	verify  peerClients
	spare   sparePids // producer ids for transitions of exhausted epochs
}

// txnShard is one __transaction_state partition's transactional ids
// (Kafka's TxnMetadataCacheEntry). Its fields are guarded by its
// context's lock (c.mu).
type txnShard struct {
	tc   *txnCoordinator
	c    *coordinatorContext[*txnShard]
	txns map[string]*txnMeta
	// done is closed when a transaction of the shard next completes (its
	// Complete state is written) or the shard unloads: a partition
	// leader's add waits on it (completions).
	done chan struct{}
}

// completions returns a channel closed when a transaction of the shard
// next completes, or the shard unloads.
func (ts *txnShard) completions() <-chan struct{} {
	if ts.done == nil {
		ts.done = make(chan struct{})
	}
	return ts.done
}

// completedLocked wakes the waiters of completions.
func (ts *txnShard) completedLocked() {
	if ts.done != nil {
		close(ts.done)
		ts.done = nil
	}
}

func newTxnCoordinator(b *broker) *txnCoordinator {
	tc := &txnCoordinator{b: b, cfg: &b.cfg.txn}
	tc.markers.b, tc.verify.b = b, b
	tc.rt = newCoordinatorRuntime(b, coordinatorConfig{
		name: "transaction", topic: txnTopic, partitions: tc.cfg.partitions, rf: tc.cfg.rf,
		topicConfigs: func(rf int16) map[string]string {
			return map[string]string{"cleanup.policy": "compact", "compression.type": "uncompressed", "segment.bytes": "104857600",
				"min.insync.replicas": strconv.Itoa(int(min(tc.cfg.minISR, int32(rf)))), "unclean.leader.election.enable": "false"}
		},
		timeout: tc.cfg.requestTimeout,
	}, func(c *coordinatorContext[*txnShard]) *txnShard {
		return &txnShard{tc: tc, c: c, txns: map[string]*txnMeta{}}
	})
	return tc
}

// run follows leadership of __transaction_state, aborts timed-out
// transactions and forgets expired ids until the broker stops; then it
// waits for the marker senders and closes its inter-broker connections.
func (tc *txnCoordinator) run() {
	defer func() {
		tc.wg.Wait()
		tc.markers.closeAll()
		tc.verify.closeAll()
	}()
	tc.rt.run([]coordinatorJob{{tc.cfg.abortInterval, tc.abortTimedOut}, {tc.cfg.removeEvery, tc.removeExpired}}, nil)
}

// txnCoordinatorFor returns the broker leading id's partition.
func (b *broker) txnCoordinatorFor(id string) (int32, error) {
	return b.txns.rt.coordinatorFor(id)
}

func (ts *txnShard) replay(_, _ int64, key, value []byte) {
	if len(key) < 2 || int16(binary.BigEndian.Uint16(key)) > 1 {
		return
	}
	var k kmsg.TxnMetadataKey
	if k.ReadFrom(key) != nil {
		return
	}
	if value == nil {
		delete(ts.txns, k.TransactionalID)
		return
	}
	var v kmsg.TxnMetadataValue
	if v.ReadFrom(value) != nil {
		return
	}
	m := txnMetaFrom(k.TransactionalID, &v)
	if v.Version == 0 {
		// A record of transaction.version 0 (an older cluster's, or
		// this one's before an upgrade) has no PreviousProducerId:
		// it is known from the id's previous record.
		m.prevPid = m.pid
		if old := ts.txns[k.TransactionalID]; old != nil {
			m.prevPid = old.pid
		}
	}
	ts.txns[k.TransactionalID] = m
}

func (ts *txnShard) replayEndTransactionMarker(int64, bool) {}

// onLoaded resumes the transactions left in a Prepare state.
func (ts *txnShard) onLoaded() {
	for _, m := range ts.txns {
		switch m.state {
		case kmsg.TransactionStatePrepareEpochFence:
			m.state = kmsg.TransactionStatePrepareAbort
			fallthrough
		case kmsg.TransactionStatePrepareCommit, kmsg.TransactionStatePrepareAbort:
			ts.startMarkersLocked(m, ts.c.writtenLocked())
		}
	}
}

func (ts *txnShard) onUnloaded() {
	ts.txns = nil
	ts.completedLocked()
}

// writeLocked appends m's record, as the next state of its id (the one
// installed, if any): m's previous producer id is that state's. The
// caller installs m before it unlocks, and the response waits for the
// record up to the transaction's timeout, as Kafka's
// TransactionStateManager waits. The value's version follows the
// finalized transaction.version, as Kafka's. Errors are a client's.
func (ts *txnShard) writeLocked(m *txnMeta) error {
	m.prevPid = m.pid
	if old := ts.txns[m.id]; old != nil {
		m.prevPid = old.pid
	}
	m.updateTs = time.Now().UnixMilli()
	rec := m.record(txnValueVersion(ts.tc.b.featureLevel(metadata.FeatureTransactionVersion)))
	_, err := ts.c.appendLocked([]kmsg.Record{rec}, time.Duration(m.timeout)*time.Millisecond)
	return err
}

// withTxn runs fn with id's shard locked; m is nil when the id is unknown.
// The answer waits until what the shard wrote is committed.
func (tc *txnCoordinator) withTxn(id string, fn func(ts *txnShard, m *txnMeta) error) error {
	return tc.rt.runFor(id, func(ts *txnShard) error { return fn(ts, ts.txns[id]) })
}

// removeExpired forgets transactional ids idle (no transaction open or
// ending) for transactional.id.expiration.ms: tombstones in
// __transaction_state, and out of memory (Kafka's
// removeExpiredTransactionalIds). The id's next InitProducerId gets a new
// producer id.
func (tc *txnCoordinator) removeExpired(now time.Time) (next time.Time) {
	for _, c := range tc.rt.contexts() {
		removed := false
		end, ok := c.locked(func(ts *txnShard) {
			var ids []string
			for id, m := range ts.txns {
				switch m.state {
				case kmsg.TransactionStateEmpty, kmsg.TransactionStateCompleteCommit, kmsg.TransactionStateCompleteAbort:
				default:
					continue
				}
				switch {
				case m.sending:
					next = now // its markers are on their way: look again
				case now.UnixMilli()-m.updateTs >= tc.cfg.expiration.Milliseconds():
					ids = append(ids, id)
				default:
					next = earliest(next, time.UnixMilli(m.updateTs+tc.cfg.expiration.Milliseconds()))
				}
			}
			if len(ids) == 0 {
				return
			}
			slices.Sort(ids)
			recs := make([]kmsg.Record, len(ids))
			for i, id := range ids {
				k := kmsg.TxnMetadataKey{Version: 0, TransactionalID: id}
				recs[i] = kmsg.Record{Key: k.AppendTo(nil)}
			}
			if _, err := ts.c.appendLocked(recs, 0); err != nil {
				tc.b.log.Debug("expiring transactional ids", "partition", c.p, "err", err)
				next = now
				return
			}
			for _, id := range ids {
				delete(ts.txns, id)
			}
			removed = true
		})
		if !ok || !removed {
			continue
		}
		if err := c.await(end, tc.cfg.requestTimeout); err != nil {
			tc.b.log.Debug("expiring transactional ids", "partition", c.p, "err", err)
		}
		tc.b.c.notifyEvent()
	}
	return next
}

// abortTimedOut aborts every Ongoing transaction older than its timeout,
// bumping the producer epoch so the producer is fenced (Kafka's
// abortTimedOutTransactions), at the finalized transaction.version. One
// whose exhausted epoch needs a new producer id (transaction.version 2)
// gets it from the controller without the shard's lock, and is aborted
// next round if it is still due then.
func (tc *txnCoordinator) abortTimedOut(now time.Time) (next time.Time) {
	tv := tc.b.featureLevel(metadata.FeatureTransactionVersion)
	for _, c := range tc.rt.contexts() {
		var needPid []string
		c.locked(func(ts *txnShard) {
			for _, m := range ts.txns {
				if m.state != kmsg.TransactionStateOngoing {
					continue
				}
				if m.sending {
					next = now // look again at the next tick
					continue
				}
				if due := m.startTs + int64(m.timeout); now.UnixMilli() < due {
					next = earliest(next, time.UnixMilli(due))
					continue
				}
				nextPid := int64(-1)
				if tv >= tv2 && epochExhausted(m.epoch) {
					if nextPid = tc.spare.take(); nextPid < 0 {
						needPid = append(needPid, m.id)
						next = now // with a spare id, at the next tick
						continue
					}
				}
				tc.b.log.Info("aborting timed-out transaction", "transactional_id", m.id, "producer_id", m.pid, "epoch", m.epoch)
				if err := ts.fenceLocked(m, tv, nextPid); err != nil {
					tc.b.log.Debug("aborting timed-out transaction", "transactional_id", m.id, "err", err)
					next = now
				}
			}
		})
		for range needPid {
			if pid, err := tc.b.nextProducerID(); err == nil {
				tc.spare.put(pid)
			}
		}
	}
	return next
}

// sparePids holds producer ids taken from the broker's block for a
// transition that needed one under a shard's lock and found none: the
// next such transition takes it (the block is the broker's; an id taken
// and never used is lost, as Kafka's are).
type sparePids struct {
	mu  sync.Mutex
	ids []int64
}

func (s *sparePids) take() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ids) == 0 {
		return -1
	}
	id := s.ids[0]
	s.ids = s.ids[1:]
	return id
}

func (s *sparePids) put(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, id)
}
