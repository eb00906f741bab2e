package kcluster

// The transaction coordinator (KIP-98), stored the way Kafka stores it: a
// transactional id's coordinator is the leader of partition
// abs(javaHash(id)) % transaction.state.log.num.partitions of the internal
// topic __transaction_state. Every state change of a transaction is a
// TxnMetadataKey/TxnMetadataValue record in that partition, appended through
// the normal leader path and acted on only once the high watermark covers it
// (Kafka's TransactionStateManager). A broker that becomes the partition's
// leader replays it, then finishes every transaction it finds in
// PrepareCommit or PrepareAbort: it sends the markers again and writes the
// Complete state, so a coordinator failover never leaves a transaction
// half-done (Kafka's TransactionMarkerChannelManager on load).
//
// States are Kafka's (kmsg.TransactionState): Empty → Ongoing (first
// AddPartitionsToTxn / AddOffsetsToTxn) → PrepareCommit / PrepareAbort
// (EndTxn, a transaction timeout, or fencing by a new InitProducerId) →
// CompleteCommit / CompleteAbort once WriteTxnMarkers has reached every
// partition of the transaction. Markers go to the partitions' leaders over
// the cluster network, like every other inter-broker request.
//
// Concurrency: as the group coordinator, each coordinated partition
// (txnPartition) has one mutex over its transactions; appends are made and
// waited on with it held, so memory changes in log order. Marker senders
// run in goroutines of their own (tc.wg) without it. One goroutine per
// broker (run) follows the leaderships of __transaction_state and aborts
// transactions that ran past their timeout.

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/wire"
)

const txnTopic = "__transaction_state"

// txnConfig holds the transaction coordinator's configs (Kafka's names in
// comments); brokerConfig.txn.
type txnConfig struct {
	partitions    int32         // transaction.state.log.num.partitions
	rf            int16         // transaction.state.log.replication.factor
	minISR        int32         // transaction.state.log.min.isr
	maxTimeout    time.Duration // transaction.max.timeout.ms
	abortInterval time.Duration // transaction.abort.timed.out.transaction.cleanup.interval.ms
	expiration    time.Duration // transactional.id.expiration.ms
	removeEvery   time.Duration // transaction.remove.expired.transaction.cleanup.interval.ms
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
}

func init() {
	for k, d := range txnConfigDefs {
		brokerConfigDefs[k] = d
	}
}

// txnMeta is one transactional id's state (Kafka's TransactionMetadata).
type txnMeta struct {
	id        string
	pid       int64
	epoch     int16
	lastPid   int64
	lastEpoch int16
	timeout   int32 // ms
	state     kmsg.TransactionState
	parts     map[topicPartition]struct{}
	startTs   int64 // ms, when the transaction became Ongoing
	updateTs  int64 // ms
	sending   bool  // markers of a Prepare state are in flight
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
	out := make([]topicPartition, 0, len(m.parts))
	for tp := range m.parts {
		out = append(out, tp)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].topic != out[j].topic {
			return out[i].topic < out[j].topic
		}
		return out[i].partition < out[j].partition
	})
	return out
}

// record is the meta as its __transaction_state record.
func (m *txnMeta) record() kmsg.Record {
	k := kmsg.TxnMetadataKey{Version: 0, TransactionalID: m.id}
	v := kmsg.NewTxnMetadataValue()
	v.Version = 0
	v.ProducerID, v.ProducerEpoch, v.TimeoutMillis, v.State = m.pid, m.epoch, m.timeout, m.state
	v.LastUpdateTimestamp, v.StartTimestamp = m.updateTs, m.startTs
	for _, tp := range m.sortedParts() {
		if n := len(v.Topics); n == 0 || v.Topics[n-1].Topic != tp.topic {
			t := kmsg.NewTxnMetadataValueTopic()
			t.Topic = tp.topic
			v.Topics = append(v.Topics, t)
		}
		v.Topics[len(v.Topics)-1].Partitions = append(v.Topics[len(v.Topics)-1].Partitions, tp.partition)
	}
	return kmsg.Record{Key: k.AppendTo(nil), Value: v.AppendTo(nil)}
}

// txnMetaFrom decodes a __transaction_state value.
func txnMetaFrom(id string, v *kmsg.TxnMetadataValue) *txnMeta {
	m := &txnMeta{id: id, pid: v.ProducerID, epoch: v.ProducerEpoch, lastPid: -1, lastEpoch: -1, timeout: v.TimeoutMillis,
		state: v.State, startTs: v.StartTimestamp, updateTs: v.LastUpdateTimestamp, parts: map[topicPartition]struct{}{}}
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
	wg  sync.WaitGroup // marker senders
	// markers carries the WriteTxnMarkers this coordinator sends to
	// partition leaders; verify carries this broker's verifications (as a partition
	// leader) of other brokers' transactions. They are separate
	// connections, as Kafka's TransactionMarkerChannelManager and
	// AddPartitionsToTxnManager are: a broker serves a connection's
	// requests in order, and a verification queued behind a
	// WriteTxnMarkers that waits on a group lock held by a
	// TxnOffsetCommit awaiting that very verification would deadlock
	// until the request timeout.
	markers peerClients
	verify  peerClients
	mu      struct {
		sync.Mutex
		parts  map[int32]*txnPartition
		loadCh chan struct{}
	}
}

// txnPartition is one __transaction_state partition this broker leads.
type txnPartition struct {
	tc    *txnCoordinator
	p     int32
	rep   *partition
	epoch int32 // the leader epoch: Kafka's coordinator epoch
	mu    struct {
		sync.Mutex
		loaded bool
		gone   bool
		txns   map[string]*txnMeta
	}
}

func newTxnCoordinator(b *broker) *txnCoordinator {
	tc := &txnCoordinator{b: b, cfg: &b.cfg.txn}
	tc.markers.b, tc.verify.b = b, b
	tc.mu.parts = make(map[int32]*txnPartition)
	return tc
}

// run follows leadership of __transaction_state and aborts timed-out
// transactions until the broker stops; then it waits for the marker
// senders and closes its inter-broker connections.
func (tc *txnCoordinator) run() {
	defer func() {
		tc.unloadAll()
		tc.wg.Wait()
		tc.markers.closeAll()
		tc.verify.closeAll()
	}()
	t := time.NewTicker(tc.cfg.abortInterval)
	defer t.Stop()
	r := time.NewTicker(tc.cfg.removeEvery)
	defer r.Stop()
	for {
		tc.b.mu.RLock()
		changed := tc.b.mu.changed
		tc.b.mu.RUnlock()
		tc.reconcile()
		select {
		case <-tc.b.ctx.Done():
			return
		case <-changed:
		case <-t.C:
			tc.abortTimedOut(time.Now())
		case <-r.C:
			tc.removeExpired(time.Now())
		}
	}
}

// removeExpired forgets transactional ids idle (no transaction open or
// ending) for transactional.id.expiration.ms: a tombstone in
// __transaction_state, then out of memory (Kafka's
// removeExpiredTransactionalIds). The id's next InitProducerId gets a new
// producer id.
func (tc *txnCoordinator) removeExpired(now time.Time) {
	removed := false
	for _, tp := range tc.loaded() {
		tp.mu.Lock()
		if !tp.mu.gone && tp.mu.loaded {
			for id, m := range tp.mu.txns {
				switch m.state {
				case kmsg.TransactionStateEmpty, kmsg.TransactionStateCompleteCommit, kmsg.TransactionStateCompleteAbort:
				default:
					continue
				}
				if m.sending || now.UnixMilli()-m.updateTs < tc.cfg.expiration.Milliseconds() {
					continue
				}
				k := kmsg.TxnMetadataKey{Version: 0, TransactionalID: id}
				batch := encodeBatch([]kmsg.Record{{Key: k.AppendTo(nil)}}, now.UnixMilli())
				_, end, err := tp.rep.appendAsLeader(batch, -1)
				if err == nil {
					ctx, cancel := context.WithTimeout(tc.b.ctx, tc.b.cfg.group.commitTimeout)
					err = tp.rep.waitHW(ctx, end)
					cancel()
				}
				if err != nil {
					tc.b.log.Debug("expiring transactional id", "transactional_id", id, "err", err)
					continue
				}
				delete(tp.mu.txns, id)
				removed = true
			}
		}
		tp.mu.Unlock()
	}
	if removed {
		tc.b.c.notifyEvent()
	}
}

func (tc *txnCoordinator) reconcile() {
	type lead struct {
		rep   *partition
		epoch int32
	}
	want := map[int32]lead{}
	tc.b.mu.RLock()
	if t := tc.b.mu.state.Topics[txnTopic]; t != nil {
		for _, p := range t.Partitions {
			if p.Leader != tc.b.id {
				continue
			}
			if r := tc.b.mu.replicas[tpKey{t.ID, p.Partition}]; r != nil {
				r.mu.Lock()
				ok := r.mu.leader == tc.b.id && r.mu.epoch == p.LeaderEpoch && !r.mu.closed
				r.mu.Unlock()
				if ok {
					want[p.Partition] = lead{r, p.LeaderEpoch}
				}
			}
		}
	}
	tc.b.mu.RUnlock()

	var load []*txnPartition
	tc.mu.Lock()
	for p, tp := range tc.mu.parts {
		if w, ok := want[p]; !ok || w.rep != tp.rep || w.epoch != tp.epoch {
			delete(tc.mu.parts, p)
			tp.unload()
		}
	}
	for p, w := range want {
		if tc.mu.parts[p] == nil {
			tp := &txnPartition{tc: tc, p: p, rep: w.rep, epoch: w.epoch}
			tp.mu.txns = make(map[string]*txnMeta)
			tc.mu.parts[p] = tp
			load = append(load, tp)
		}
	}
	tc.mu.Unlock()
	for _, tp := range load {
		if err := tp.load(); err != nil {
			tc.b.log.Error("loading transaction coordinator partition", "partition", tp.p, "err", err)
		}
	}
	tc.notifyLoad()
	if len(load) > 0 {
		tc.b.c.notifyEvent()
	}
}

func (tc *txnCoordinator) unloadAll() {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for p, tp := range tc.mu.parts {
		delete(tc.mu.parts, p)
		tp.unload()
	}
}

func (tp *txnPartition) unload() {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.mu.gone = true
	tp.mu.txns = nil
}

func (tp *txnPartition) isGone() bool {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.mu.gone
}

// load replays the partition into memory, then resumes the transactions
// left in a Prepare state.
func (tp *txnPartition) load() error {
	log := tp.rep.log
	end := log.LogEndOffset()
	txns := map[string]*txnMeta{}
	for off := log.LogStartOffset(); off < end; {
		data, err := log.Read(off, 1<<20, end)
		if err != nil {
			return err
		}
		if len(data) == 0 {
			break
		}
		next, err := tp.tc.b.c.dec.forEachKV(data, func(key, value []byte) {
			if len(key) < 2 || int16(binary.BigEndian.Uint16(key)) > 1 {
				return
			}
			var k kmsg.TxnMetadataKey
			if k.ReadFrom(key) != nil {
				return
			}
			if value == nil {
				delete(txns, k.TransactionalID)
				return
			}
			var v kmsg.TxnMetadataValue
			if v.ReadFrom(value) != nil {
				return
			}
			// As Kafka's TransactionLog: the last producer id is
			// known (here from the previous record), the last epoch
			// is not.
			m := txnMetaFrom(k.TransactionalID, &v)
			if old := txns[k.TransactionalID]; old != nil && old.pid != m.pid {
				m.lastPid = old.pid
			} else if old != nil {
				m.lastPid = old.lastPid
			}
			txns[k.TransactionalID] = m
		})
		if err != nil {
			return err
		}
		if next <= off {
			break
		}
		off = next
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.mu.gone {
		return nil
	}
	tp.mu.txns = txns
	tp.mu.loaded = true
	for _, m := range txns {
		switch m.state {
		case kmsg.TransactionStatePrepareEpochFence:
			m.state = kmsg.TransactionStatePrepareAbort
			fallthrough
		case kmsg.TransactionStatePrepareCommit, kmsg.TransactionStatePrepareAbort:
			tp.startMarkersLocked(m)
		}
	}
	return nil
}

// writeLocked appends m's record and waits until it is replicated; only
// then may the caller install m. Errors are what a client gets.
func (tp *txnPartition) writeLocked(m *txnMeta) error {
	m.updateTs = time.Now().UnixMilli()
	rec := m.record()
	batch := encodeBatch([]kmsg.Record{rec}, m.updateTs)
	_, end, err := tp.rep.appendAsLeader(batch, -1)
	if err == nil {
		ctx, cancel := context.WithTimeout(tp.tc.b.ctx, tp.tc.b.cfg.group.commitTimeout)
		err = tp.rep.waitHW(ctx, end)
		cancel()
	}
	return coordinatorAppendError(err)
}

// partitionFor returns the loaded partition coordinating id, waiting a
// little for a load in progress (as the group coordinator does).
func (tc *txnCoordinator) partitionFor(id string) (*txnPartition, error) {
	const loadWait = 2 * time.Second
	var deadline <-chan time.Time
	for {
		changed := tc.loadChanged()
		tp, err := tc.partitionForOnce(id)
		if err == nil {
			return tp, nil
		}
		if !errors.Is(err, kerr.CoordinatorLoadInProgress) && !(errors.Is(err, kerr.NotCoordinator) && tc.mayLead(id)) {
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
		case <-tc.b.ctx.Done():
			return nil, kerr.NotCoordinator
		}
	}
}

func (tc *txnCoordinator) loadChanged() <-chan struct{} {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.mu.loadCh == nil {
		tc.mu.loadCh = make(chan struct{})
	}
	return tc.mu.loadCh
}

func (tc *txnCoordinator) notifyLoad() {
	tc.mu.Lock()
	if tc.mu.loadCh != nil {
		close(tc.mu.loadCh)
		tc.mu.loadCh = nil
	}
	tc.mu.Unlock()
}

// mayLead reports whether this broker's metadata makes it the leader of
// id's partition (the coordinator has not caught up yet), or does not have
// __transaction_state yet (just created through another broker).
func (tc *txnCoordinator) mayLead(id string) bool {
	tc.b.mu.RLock()
	defer tc.b.mu.RUnlock()
	t := tc.b.mu.state.Topics[txnTopic]
	if t == nil || len(t.Partitions) == 0 {
		return true
	}
	return t.Partitions[groupPartition(id, int32(len(t.Partitions)))].Leader == tc.b.id
}

func (tc *txnCoordinator) partitionForOnce(id string) (*txnPartition, error) {
	tc.b.mu.RLock()
	var n int32
	if t := tc.b.mu.state.Topics[txnTopic]; t != nil {
		n = int32(len(t.Partitions))
	}
	tc.b.mu.RUnlock()
	if n == 0 {
		return nil, kerr.NotCoordinator
	}
	tc.mu.Lock()
	tp := tc.mu.parts[groupPartition(id, n)]
	tc.mu.Unlock()
	if tp == nil {
		return nil, kerr.NotCoordinator
	}
	tp.mu.Lock()
	loaded, gone := tp.mu.loaded, tp.mu.gone
	tp.mu.Unlock()
	if gone {
		return nil, kerr.NotCoordinator
	}
	if !loaded {
		return nil, kerr.CoordinatorLoadInProgress
	}
	return tp, nil
}

// withTxn runs fn with id's partition locked; m is nil when the id is
// unknown.
func (tc *txnCoordinator) withTxn(id string, fn func(tp *txnPartition, m *txnMeta) error) error {
	tp, err := tc.partitionFor(id)
	if err != nil {
		return err
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.mu.gone {
		return kerr.NotCoordinator
	}
	return fn(tp, tp.mu.txns[id])
}

func (tc *txnCoordinator) loaded() []*txnPartition {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	out := make([]*txnPartition, 0, len(tc.mu.parts))
	for _, tp := range tc.mu.parts {
		out = append(out, tp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].p < out[j].p })
	return out
}

// epochExhausted is Kafka's isProducerEpochExhausted: the epoch cannot be
// bumped once more and still leave room for the fencing bump.
func epochExhausted(e int16) bool { return e >= 32767-1 }

// beginEndLocked moves m (installed in tp) to PrepareCommit/PrepareAbort
// (with nm's epoch, possibly bumped to fence), writes it, and starts the
// markers.
func (tp *txnPartition) prepareEndLocked(m *txnMeta, commit bool, bumpEpoch bool) error {
	nm := m.clone()
	nm.state = kmsg.TransactionStatePrepareAbort
	if commit {
		nm.state = kmsg.TransactionStatePrepareCommit
	}
	if bumpEpoch && !epochExhausted(nm.epoch) {
		// Fencing: the old epoch is not remembered as a retry of
		// this one (Kafka's prepareFenceProducerEpoch).
		nm.lastPid, nm.lastEpoch = nm.pid, -1
		nm.epoch++
	}
	if err := tp.writeLocked(nm); err != nil {
		return err
	}
	tp.mu.txns[nm.id] = nm
	tp.startMarkersLocked(nm)
	return nil
}

// startMarkersLocked launches the marker sender of a Prepare state.
func (tp *txnPartition) startMarkersLocked(m *txnMeta) {
	if m.sending {
		return
	}
	m.sending = true
	snap := m.clone()
	tc := tp.tc
	tc.wg.Add(1)
	go func() {
		defer tc.wg.Done()
		tc.sendMarkers(tp, snap)
	}()
}

// abortTimedOut aborts every Ongoing transaction older than its timeout,
// bumping the producer epoch so the producer is fenced (Kafka's
// abortTimedOutTransactions).
func (tc *txnCoordinator) abortTimedOut(now time.Time) {
	for _, tp := range tc.loaded() {
		tp.mu.Lock()
		if !tp.mu.gone && tp.mu.loaded {
			for _, m := range tp.mu.txns {
				if m.state != kmsg.TransactionStateOngoing || m.sending {
					continue
				}
				if now.UnixMilli() < m.startTs+int64(m.timeout) {
					continue
				}
				tc.b.log.Info("aborting timed-out transaction", "transactional_id", m.id, "producer_id", m.pid, "epoch", m.epoch)
				if err := tp.prepareEndLocked(m, false, true); err != nil {
					tc.b.log.Debug("aborting timed-out transaction", "transactional_id", m.id, "err", err)
				}
			}
		}
		tp.mu.Unlock()
	}
}

// sendMarkers writes the markers of snap's Prepare state to the leader of
// every partition of the transaction (WriteTxnMarkers over the network),
// retrying until each is written or the partition is gone, then writes the
// Complete state. It gives up when this broker stops coordinating the
// partition; the next coordinator resumes from the log.
func (tc *txnCoordinator) sendMarkers(tp *txnPartition, snap *txnMeta) {
	commit := snap.state == kmsg.TransactionStatePrepareCommit
	pending := snap.sortedParts()
	backoff := tc.b.cfg.replicaFetchBackoff
	for len(pending) > 0 {
		if tp.isGone() || tc.b.ctx.Err() != nil {
			return
		}
		tc.b.mu.RLock()
		changed := tc.b.mu.changed
		byLeader := map[int32][]topicPartition{}
		var keep []topicPartition
		for _, p := range pending {
			t := tc.b.mu.state.Topics[p.topic]
			if t == nil || int(p.partition) >= len(t.Partitions) {
				continue // deleted: nothing to mark
			}
			l := t.Partitions[p.partition].Leader
			if br := tc.b.mu.state.Brokers[l]; l < 0 || br == nil || br.Fenced {
				keep = append(keep, p)
				continue
			}
			byLeader[l] = append(byLeader[l], p)
		}
		tc.b.mu.RUnlock()
		// One WriteTxnMarkers per leader, all in flight at once.
		var wg sync.WaitGroup
		var failedMu sync.Mutex
		for leader, ps := range byLeader {
			wg.Add(1)
			go func() {
				defer wg.Done()
				failed := tc.writeMarkers(leader, snap, commit, tp.epoch, ps)
				failedMu.Lock()
				keep = append(keep, failed...)
				failedMu.Unlock()
			}()
		}
		wg.Wait()
		pending = keep
		if len(pending) == 0 {
			break
		}
		t := time.NewTimer(backoff)
		select {
		case <-tc.b.ctx.Done():
			t.Stop()
			return
		case <-changed:
			t.Stop()
		case <-t.C:
		}
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.mu.gone {
		return
	}
	m := tp.mu.txns[snap.id]
	if m == nil || m.pid != snap.pid || m.epoch != snap.epoch || m.state != snap.state {
		return
	}
	nm := m.clone()
	nm.sending = false
	nm.state = kmsg.TransactionStateCompleteAbort
	if commit {
		nm.state = kmsg.TransactionStateCompleteCommit
	}
	nm.parts = map[topicPartition]struct{}{}
	if err := tp.writeLocked(nm); err != nil {
		// The partition moved or its ISR is short: the Prepare state
		// stays in the log and its next coordinator finishes it; if
		// this broker stays coordinator, retry the whole send.
		tc.b.log.Debug("completing transaction", "transactional_id", m.id, "err", err)
		m.sending = false
		if !errors.Is(err, kerr.NotCoordinator) {
			tp.startMarkersLocked(m)
		}
		return
	}
	tp.mu.txns[nm.id] = nm
	tc.b.c.notifyEvent()
}

// writeMarkers sends one WriteTxnMarkers to leader for ps and returns the
// partitions still to do.
func (tc *txnCoordinator) writeMarkers(leader int32, m *txnMeta, commit bool, coordEpoch int32, ps []topicPartition) []topicPartition {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.SetVersion(1)
	mk := kmsg.NewWriteTxnMarkersRequestMarker()
	mk.ProducerID, mk.ProducerEpoch, mk.Committed, mk.CoordinatorEpoch = m.pid, m.epoch, commit, coordEpoch
	idx := map[string]int{}
	for _, p := range ps {
		i, ok := idx[p.topic]
		if !ok {
			i = len(mk.Topics)
			idx[p.topic] = i
			t := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
			t.Topic = p.topic
			mk.Topics = append(mk.Topics, t)
		}
		mk.Topics[i].Partitions = append(mk.Topics[i].Partitions, p.partition)
	}
	req.Markers = append(req.Markers, mk)
	ctx, cancel := context.WithTimeout(tc.b.ctx, tc.b.cfg.group.commitTimeout+time.Second)
	defer cancel()
	kresp, err := tc.markers.request(ctx, leader, req)
	if err != nil {
		tc.b.log.Debug("WriteTxnMarkers", "leader", leader, "err", err)
		return ps
	}
	done := map[topicPartition]bool{}
	for _, rm := range kresp.(*kmsg.WriteTxnMarkersResponse).Markers {
		for _, t := range rm.Topics {
			for _, p := range t.Partitions {
				switch p.ErrorCode {
				case 0, kerr.UnknownTopicOrPartition.Code, kerr.InvalidProducerEpoch.Code, kerr.TransactionCoordinatorFenced.Code:
					// Written; or the partition is gone; or a newer
					// producer epoch or coordinator has already ended
					// this transaction there.
					done[topicPartition{t.Topic, p.Partition}] = true
				default:
					tc.b.log.Debug("WriteTxnMarkers partition", "topic", t.Topic, "partition", p.Partition, "err", kerr.ErrorForCode(p.ErrorCode))
				}
			}
		}
	}
	var left []topicPartition
	for _, p := range ps {
		if !done[p] {
			left = append(left, p)
		}
	}
	return left
}

// peerClients are a broker's connections to other brokers for one kind of
// request (the coordinator's WriteTxnMarkers, or a partition leader's
// AddPartitionsToTxn verification), dialed through the cluster network so
// cuts apply. A wire.Client serializes its requests; one per peer.
type peerClients struct {
	b  *broker
	mu struct {
		sync.Mutex
		closed bool
		cls    map[int32]*wire.Client
	}
}

func (pc *peerClients) get(ctx context.Context, id int32) (*wire.Client, error) {
	pc.mu.Lock()
	if pc.mu.closed {
		pc.mu.Unlock()
		return nil, errors.New("kcluster: broker stopping")
	}
	if cl := pc.mu.cls[id]; cl != nil {
		pc.mu.Unlock()
		return cl, nil
	}
	pc.mu.Unlock()
	pc.b.mu.RLock()
	br := pc.b.mu.state.Brokers[id]
	pc.b.mu.RUnlock()
	if br == nil {
		return nil, kerr.BrokerNotAvailable
	}
	addr := net.JoinHostPort(pc.b.c.cfg.host, strconv.Itoa(int(br.Port)))
	conn, err := pc.b.c.net.Dial(ctx, pc.b.id, id, addr)
	if err != nil {
		return nil, err
	}
	cl := wire.NewClient(conn, "kcluster-broker-"+strconv.Itoa(int(pc.b.id)))
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.mu.closed {
		cl.Close()
		return nil, errors.New("kcluster: broker stopping")
	}
	if old := pc.mu.cls[id]; old != nil {
		cl.Close()
		return old, nil
	}
	if pc.mu.cls == nil {
		pc.mu.cls = map[int32]*wire.Client{}
	}
	pc.mu.cls[id] = cl
	return cl, nil
}

// request sends req to broker id; a failed connection is dropped so the
// next request dials again.
func (pc *peerClients) request(ctx context.Context, id int32, req kmsg.Request) (kmsg.Response, error) {
	cl, err := pc.get(ctx, id)
	if err != nil {
		return nil, err
	}
	resp, err := cl.Request(ctx, req)
	if err != nil {
		cl.Close()
		pc.mu.Lock()
		if pc.mu.cls[id] == cl {
			delete(pc.mu.cls, id)
		}
		pc.mu.Unlock()
	}
	return resp, err
}

func (pc *peerClients) closeAll() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.mu.closed = true
	for id, cl := range pc.mu.cls {
		cl.Close()
		delete(pc.mu.cls, id)
	}
}

// ensureTxnTopic creates __transaction_state through the controller if the
// metadata does not have it yet (as Kafka does on the first
// FindCoordinator for a transactional id), and reports whether it exists.
func (b *broker) ensureTxnTopic() bool {
	b.mu.RLock()
	exists := b.mu.state.Topics[txnTopic] != nil
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
	cfg := &b.cfg.txn
	rf := cfg.rf
	if n := len(b.c.ports); int(rf) > n {
		rf = int16(n)
	}
	if int(rf) > brokers {
		return false
	}
	minISR := min(cfg.minISR, int32(rf))
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(7)
	req.TimeoutMillis = 10000
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = txnTopic, cfg.partitions, rf
	for k, v := range map[string]string{"cleanup.policy": "compact", "compression.type": "uncompressed", "segment.bytes": "104857600",
		"min.insync.replicas": strconv.Itoa(int(minISR)), "unclean.leader.election.enable": "false"} {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		t.Configs = append(t.Configs, c)
	}
	req.Topics = append(req.Topics, t)
	resp, err := b.forwardCreateTopics(req, nil)
	if err != nil {
		b.log.Warn("creating "+txnTopic, "err", err)
		return false
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		b.log.Warn("creating "+txnTopic, "err", err)
		return false
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.mu.state.Topics[txnTopic] != nil
}

// txnCoordinatorFor returns the broker leading id's partition.
func (b *broker) txnCoordinatorFor(id string) (int32, error) {
	if !b.ensureTxnTopic() {
		return -1, kerr.CoordinatorNotAvailable
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	t := b.mu.state.Topics[txnTopic]
	p := t.Partitions[groupPartition(id, int32(len(t.Partitions)))]
	if p.Leader < 0 {
		return -1, kerr.CoordinatorNotAvailable
	}
	if br := b.mu.state.Brokers[p.Leader]; br == nil || br.Fenced {
		return -1, kerr.CoordinatorNotAvailable
	}
	return p.Leader, nil
}
