package kcluster

import (
	"encoding/binary"
	"hash/crc32"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/segment"
	"github.com/kcluster/kcluster/wire"
)

// txnBatch is makeProducerBatch with the transactional attribute.
func txnBatch(pid int64, epoch int16, seq int32, vals ...string) []byte {
	b := makeProducerBatch(pid, epoch, seq, 1, vals...)
	binary.BigEndian.PutUint16(b[21:], binary.BigEndian.Uint16(b[21:])|attrTransactional)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func txnProduce(t *testing.T, c *Cluster, txnID, topic string, part int32, batch []byte) int16 {
	t.Helper()
	return txnProduceV(t, c, txnID, topic, part, batch, 11)
}

// txnProduceV is txnProduce at a Produce version.
func txnProduceV(t *testing.T, c *Cluster, txnID, topic string, part int32, batch []byte, v int16) int16 {
	t.Helper()
	st := partState(t, c, topic, part)
	req := produceRequest(topic, part, -1, 10000, batch)
	req.TransactionID = kmsg.StringPtr(txnID)
	return do[*kmsg.ProduceResponse](t, dial(t, addrOf(c, st.Leader)), req, v).Topics[0].Partitions[0].ErrorCode
}

func findTxnCoordinator(t *testing.T, c *Cluster, id string) (*wire.Client, int32) {
	t.Helper()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorType = 1
	req.CoordinatorKeys = []string{id}
	resp := do[*kmsg.FindCoordinatorResponse](t, dial(t, anyAddr(c)), req, -1)
	co := resp.Coordinators[0]
	if err := kerr.ErrorForCode(co.ErrorCode); err != nil {
		t.Fatalf("FindCoordinator(transaction %s): %v", id, err)
	}
	return dial(t, addrOf(c, co.NodeID)), co.NodeID
}

// initProducer gets a producer id and epoch for transactional id from its
// coordinator, with a 60 s transaction timeout, and returns the coordinator's
// connection too.
func initProducer(t *testing.T, c *Cluster, id string) (*wire.Client, int64, int16) {
	t.Helper()
	co, _ := findTxnCoordinator(t, c, id)
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr(id), 60000
	resp := do[*kmsg.InitProducerIDResponse](t, co, req, 4)
	wantCode(t, "InitProducerId "+id, resp.ErrorCode, nil)
	return co, resp.ProducerID, resp.ProducerEpoch
}

// anyAddr is the address of a running broker.
func anyAddr(c *Cluster) string { return addrOf(c, c.running()[0].id) }

// groupCoordinator finds group's coordinator through a running broker.
func groupCoordinatorConn(t *testing.T, c *Cluster, group string) *wire.Client {
	t.Helper()
	for {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKeys = []string{group}
		co := do[*kmsg.FindCoordinatorResponse](t, dial(t, anyAddr(c)), req, -1).Coordinators[0]
		if kerr.ErrorForCode(co.ErrorCode) == kerr.CoordinatorNotAvailable {
			continue
		}
		if err := kerr.ErrorForCode(co.ErrorCode); err != nil {
			t.Fatalf("FindCoordinator(%s): %v", group, err)
		}
		return dial(t, addrOf(c, co.NodeID))
	}
}

func addPartition(t *testing.T, cl *wire.Client, id string, pid int64, epoch int16, topic string, p int32) int16 {
	t.Helper()
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = id, pid, epoch
	rt := kmsg.NewAddPartitionsToTxnRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{p}
	req.Topics = append(req.Topics, rt)
	return do[*kmsg.AddPartitionsToTxnResponse](t, cl, req, 3).Topics[0].Partitions[0].ErrorCode
}

func endTxn(t *testing.T, cl *wire.Client, id string, pid int64, epoch int16, commit bool) int16 {
	t.Helper()
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = id, pid, epoch, commit
	return do[*kmsg.EndTxnResponse](t, cl, req, 3).ErrorCode
}

func wantCode(t *testing.T, what string, got int16, want error) {
	t.Helper()
	if g := kerr.ErrorForCode(got); g != want {
		t.Fatalf("%s: %v, want %v", what, g, want)
	}
}

// The coordinator's errors are Kafka's, partition leaders verify a
// transaction before its first write (KIP-890), an abort lists the
// transaction in read_committed fetches, and __transaction_state holds
// Kafka's TxnMetadataKey/TxnMetadataValue records.
func TestTxnCoordinatorProtocol(t *testing.T) {
	c := Start(t, Brokers(3))
	createTopic(t, c, "raw", 2, 3)
	co, coID := findTxnCoordinator(t, c, "raw-id")
	init := func(timeout int32) *kmsg.InitProducerIDResponse {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr("raw-id"), timeout
		return do[*kmsg.InitProducerIDResponse](t, co, req, 4)
	}
	wantCode(t, "InitProducerId with timeout 0", init(0).ErrorCode, kerr.InvalidTransactionTimeout)
	ir := init(60000)
	wantCode(t, "InitProducerId", ir.ErrorCode, nil)
	pid, epoch := ir.ProducerID, ir.ProducerEpoch
	if epoch != 0 {
		t.Fatalf("first epoch %d", epoch)
	}
	// KIP-890: the leader asks the coordinator, which has no ongoing
	// transaction with this partition: TRANSACTION_ABORTABLE, or, to a
	// client too old to know it (Produce v10), INVALID_TXN_STATE.
	wantCode(t, "produce before AddPartitionsToTxn", txnProduce(t, c, "raw-id", "raw", 1, txnBatch(pid, epoch, 0, "x")), kerr.TransactionAbortable)
	wantCode(t, "produce v10 before AddPartitionsToTxn", txnProduceV(t, c, "raw-id", "raw", 1, txnBatch(pid, epoch, 0, "x"), 10), kerr.InvalidTxnState)

	wantCode(t, "AddPartitionsToTxn, wrong epoch", addPartition(t, co, "raw-id", pid, epoch+1, "raw", 0), kerr.ProducerFenced)
	wantCode(t, "AddPartitionsToTxn, wrong producer id", addPartition(t, co, "raw-id", pid+1, epoch, "raw", 0), kerr.InvalidProducerIDMapping)
	wantCode(t, "AddPartitionsToTxn, unknown topic", addPartition(t, co, "raw-id", pid, epoch, "nope", 0), kerr.UnknownTopicOrPartition)
	wantCode(t, "AddPartitionsToTxn", addPartition(t, co, "raw-id", pid, epoch, "raw", 0), nil)
	wantCode(t, "produce in the transaction", txnProduce(t, c, "raw-id", "raw", 0, txnBatch(pid, epoch, 0, "a", "b")), nil)
	if st := partState(t, c, "raw", 0); st.LastStableOffset != 0 || st.HighWatermark != 2 {
		t.Fatalf("open transaction: LSO %d HW %d, want 0 and 2", st.LastStableOffset, st.HighWatermark)
	}
	wantCode(t, "EndTxn, wrong epoch", endTxn(t, co, "raw-id", pid, epoch+1, false), kerr.ProducerFenced)
	wantCode(t, "EndTxn abort", endTxn(t, co, "raw-id", pid, epoch, false), nil)
	waitFor(t, c, "the abort to complete", func(c *Cluster) bool {
		ts, err := c.Transaction("raw-id")
		return err == nil && ts.State == "CompleteAbort"
	})
	wantCode(t, "EndTxn abort, retried", endTxn(t, co, "raw-id", pid, epoch, false), nil)
	wantCode(t, "EndTxn commit after the abort", endTxn(t, co, "raw-id", pid, epoch, true), kerr.InvalidTxnState)

	// read_committed: the records and the marker, with the aborted
	// transaction listed; the LSO is past the marker.
	st := partState(t, c, "raw", 0)
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.SessionEpoch, req.IsolationLevel = 100, 1, 1<<20, -1, 1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "raw"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	fp := do[*kmsg.FetchResponse](t, dial(t, addrOf(c, st.Leader)), req, 11).Topics[0].Partitions[0]
	if fp.LastStableOffset != 3 || fp.HighWatermark != 3 || len(fp.AbortedTransactions) != 1 ||
		fp.AbortedTransactions[0].ProducerID != pid || fp.AbortedTransactions[0].FirstOffset != 0 {
		t.Fatalf("read_committed fetch: LSO %d HW %d aborted %+v", fp.LastStableOffset, fp.HighWatermark, fp.AbortedTransactions)
	}

	// A new InitProducerId bumps the epoch; the old epoch is fenced at
	// the partition leader (KIP-890 verification).
	ir = init(60000)
	wantCode(t, "second InitProducerId", ir.ErrorCode, nil)
	if ir.ProducerID != pid || ir.ProducerEpoch != epoch+1 {
		t.Fatalf("second InitProducerId: %d/%d, want %d/%d", ir.ProducerID, ir.ProducerEpoch, pid, epoch+1)
	}
	wantCode(t, "zombie produce", txnProduce(t, c, "raw-id", "raw", 1, txnBatch(pid, epoch, 1, "z")), kerr.InvalidProducerEpoch)

	// Markers from an older coordinator epoch, or an older producer
	// epoch, than the partition has seen are refused.
	marker := func(pepoch int16, cepoch int32) int16 {
		req := kmsg.NewPtrWriteTxnMarkersRequest()
		m := kmsg.NewWriteTxnMarkersRequestMarker()
		m.ProducerID, m.ProducerEpoch, m.CoordinatorEpoch = pid, pepoch, cepoch
		mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		mt.Topic, mt.Partitions = "raw", []int32{0}
		m.Topics = append(m.Topics, mt)
		req.Markers = append(req.Markers, m)
		return do[*kmsg.WriteTxnMarkersResponse](t, dial(t, addrOf(c, st.Leader)), req, 1).Markers[0].Topics[0].Partitions[0].ErrorCode
	}
	wantCode(t, "marker from an older coordinator", marker(epoch+1, -1), kerr.TransactionCoordinatorFenced)
	wantCode(t, "marker from an older producer epoch", marker(epoch-1, 100), kerr.InvalidProducerEpoch)

	// __transaction_state has Kafka's records.
	tsp := keyPartition("raw-id", c.cfg.broker.txn.partitions)
	var states []kmsg.TransactionState
	for _, b := range c.running() {
		if b.id != coID {
			continue
		}
		var rep *partition
		b.mu.RLock()
		id := b.mu.state.Topics[txnTopic].ID
		b.mu.RUnlock()
		rep = b.partition(id, tsp)
		data, err := rep.log.Read(0, 1<<20, rep.log.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.dec.forEachKV(data, func(key, value []byte) {
			var k kmsg.TxnMetadataKey
			var v kmsg.TxnMetadataValue
			if err := k.ReadFrom(key); err != nil || k.TransactionalID != "raw-id" {
				t.Fatalf("key %x: %v", key, err)
			}
			if err := v.ReadFrom(value); err != nil {
				t.Fatalf("value %x: %v", value, err)
			}
			states = append(states, v.State)
		}); err != nil {
			t.Fatal(err)
		}
	}
	want := []kmsg.TransactionState{kmsg.TransactionStateEmpty, kmsg.TransactionStateOngoing, kmsg.TransactionStatePrepareAbort,
		kmsg.TransactionStateCompleteAbort, kmsg.TransactionStateEmpty}
	if !slices.Equal(states, want) {
		t.Fatalf("__transaction_state states %v, want %v", states, want)
	}
}

// The aborted-transaction index is kept in the pebble index, truncated
// with the log and replaced wholesale from a scan.
func TestTxnAbortedIndex(t *testing.T) {
	st, err := segment.OpenStore(segment.StoreOptions{FS: vfs.NewMem(), Dir: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := st.OpenLog("t-0", segment.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 10; i++ {
		b := makeBatch(1, "v")
		segment.SetBaseOffset(b, i)
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []segment.AbortedTxn{{ProducerID: 1, FirstOffset: 0, LastOffset: 3}, {ProducerID: 2, FirstOffset: 2, LastOffset: 6}, {ProducerID: 3, FirstOffset: 7, LastOffset: 8}} {
		if err := l.AddAbortedTxn(a); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := l.AbortedTxns(4, 7)
	if len(got) != 1 || got[0].ProducerID != 2 {
		t.Fatalf("AbortedTxns(4, 7): %+v", got)
	}
	if got, _ := l.AbortedTxns(0, -1); len(got) != 3 {
		t.Fatalf("AbortedTxns(0, -1): %+v", got)
	}
	if err := l.Truncate(6); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.AbortedTxns(0, -1); len(got) != 1 || got[0].ProducerID != 1 {
		t.Fatalf("after truncating to 6: %+v", got)
	}
	if err := l.ResetAbortedTxns(0, []segment.AbortedTxn{{ProducerID: 9, FirstOffset: 1, LastOffset: 2}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.AbortedTxns(0, -1); len(got) != 1 || got[0].ProducerID != 9 {
		t.Fatalf("after reset: %+v", got)
	}
}

// A controlled shutdown snapshots each replica's producer state into its
// log's index; the restarted broker loads it (scanning only what follows)
// and still answers a retried batch with its original offset.
func TestProducerSnapshotAcrossRestart(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "snap", 1, 1)
	pid, _ := initProducerID(t, c.Addrs()[0])
	if rp := produce(t, nil, c, c.Addrs()[0], "snap", 0, -1, makeProducerBatch(pid, 0, 0, 1, "a", "b")); rp.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rp.ErrorCode))
	}
	if rp := produce(t, nil, c, c.Addrs()[0], "snap", 0, -1, makeProducerBatch(pid, 0, 2, 1, "c")); rp.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rp.ErrorCode))
	}
	if err := c.StopBroker(1); err != nil {
		t.Fatal(err)
	}
	if err := c.RestartBroker(1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "a leader", LeaderElected("snap", 0))
	b := c.running()[0]
	b.mu.RLock()
	id := b.mu.state.Topics["snap"].ID
	b.mu.RUnlock()
	rep := b.partition(id, 0)
	off, data, err := rep.log.ProducerSnapshot()
	if err != nil || off != 3 {
		t.Fatalf("producer snapshot at %d (%v), want 3", off, err)
	}
	ps, _, err := decodeProducerSnapshot(data)
	if err != nil || ps[pid] == nil || len(ps[pid].batches) != 2 {
		t.Fatalf("snapshot %+v: %v", ps, err)
	}
	var rp *kmsg.ProduceResponseTopicPartition
	for {
		rp = produce(t, nil, c, c.Addrs()[0], "snap", 0, -1, makeProducerBatch(pid, 0, 0, 1, "a", "b"))
		if kerr.ErrorForCode(rp.ErrorCode) != kerr.NotLeaderForPartition {
			break
		}
	}
	if rp.ErrorCode != 0 || rp.BaseOffset != 0 {
		t.Fatalf("retry after restart: %v at %d, want the original offset 0", kerr.ErrorForCode(rp.ErrorCode), rp.BaseOffset)
	}
	if rp := produce(t, nil, c, c.Addrs()[0], "snap", 0, -1, makeProducerBatch(pid, 0, 7, 1, "gap")); kerr.ErrorForCode(rp.ErrorCode) != kerr.OutOfOrderSequenceNumber {
		t.Fatalf("gap after restart: %v", kerr.ErrorForCode(rp.ErrorCode))
	}
}

func TestProducerSnapshotEncoding(t *testing.T) {
	r := &partition{}
	r.mu.producers = producerState{7: {epoch: 3, coordEpoch: 4, lastTs: 1234, batches: []producerBatch{{0, 4, 10, 14}, {5, 5, 20, 20}}}, 9: {epoch: 0, coordEpoch: -1}}
	r.mu.txns.reset()
	r.mu.txns.ongoing[9] = 30
	r.mu.txns.completed = []completedTxn{{7, 10, 25}}
	ps, tr, err := decodeProducerSnapshot(r.encodeProducerSnapshotLocked())
	if err != nil {
		t.Fatal(err)
	}
	if e := ps[7]; e == nil || e.epoch != 3 || e.coordEpoch != 4 || e.lastTs != 1234 || len(e.batches) != 2 || e.batches[1] != (producerBatch{5, 5, 20, 20}) || ps[9] == nil {
		t.Fatalf("producers %+v", ps)
	}
	// A version 1 snapshot (no last timestamps) still loads.
	v1 := []byte{1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if ps, _, err := decodeProducerSnapshot(v1); err != nil || ps[7] == nil || ps[7].epoch != 3 || ps[7].coordEpoch != 4 || ps[7].lastTs != -1 {
		t.Fatalf("version 1 snapshot: %+v %v", ps, err)
	}
	if tr.ongoing[9] != 30 || len(tr.completed) != 1 || tr.completed[0] != (completedTxn{7, 10, 25}) {
		t.Fatalf("transactions %+v", tr)
	}
	for _, bad := range [][]byte{nil, {9}, {1, 0, 0, 0, 200}} {
		if _, _, err := decodeProducerSnapshot(bad); err == nil {
			t.Fatalf("decoded %x", bad)
		}
	}
}

// Snapshots are kept only at or below the log end: a truncation drops the
// later ones, and a newer snapshot replaces the older.
func TestProducerSnapshotTruncation(t *testing.T) {
	st, err := segment.OpenStore(segment.StoreOptions{FS: vfs.NewMem(), Dir: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := st.OpenLog("t-0", segment.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 10; i++ {
		b := makeBatch(1, "v")
		segment.SetBaseOffset(b, i)
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
		if i == 4 || i == 8 {
			if err := l.SaveProducerSnapshot(i+1, []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if off, data, _ := l.ProducerSnapshot(); off != 9 || len(data) != 1 || data[0] != 8 {
		t.Fatalf("latest snapshot at %d %x, want 9", off, data)
	}
	if err := l.SaveProducerSnapshot(11, nil); err == nil {
		t.Fatal("snapshot past the log end accepted")
	}
	if err := l.Truncate(7); err != nil {
		t.Fatal(err)
	}
	// The snapshot at 5 was replaced by the one at 9, which the
	// truncation dropped.
	if off, _, _ := l.ProducerSnapshot(); off != -1 {
		t.Fatalf("snapshot at %d after truncating to 7", off)
	}
}

// offsetFetchStable fetches group's offset of topic/0 with RequireStable,
// retrying while the coordinator moves or loads.
func offsetFetchStable(t *testing.T, c *Cluster, group, topic string, stable bool) (int64, int16) {
	t.Helper()
	for {
		cl := groupCoordinatorConn(t, c, group)
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group, req.RequireStable = group, stable
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic, rt.Partitions = topic, []int32{0}
		req.Topics = append(req.Topics, rt)
		resp := do[*kmsg.OffsetFetchResponse](t, cl, req, 7)
		switch kerr.ErrorForCode(resp.ErrorCode) {
		case kerr.NotCoordinator, kerr.CoordinatorLoadInProgress, kerr.CoordinatorNotAvailable:
			continue
		case nil:
		default:
			t.Fatalf("OffsetFetch: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		p := resp.Topics[0].Partitions[0]
		return p.Offset, p.ErrorCode
	}
}

// Transactional offsets stay pending (UNSTABLE_OFFSET_COMMIT for
// RequireStable fetches, KIP-447) until the commit marker; a new group
// coordinator rebuilds them from __consumer_offsets, and the marker the
// transaction coordinator then writes makes them the group's offsets.
func TestTxnOffsetCommitPendingAcrossGroupCoordinatorFailover(t *testing.T) {
	c := Start(t, Brokers(3))
	createTopic(t, c, "in", 1, 3)
	co, pid, epoch := initProducer(t, c, "tx-off")

	gco, gid := coordinator(t, c, "g-off")
	// The transaction coordinator answers for partitions its metadata
	// has (UNKNOWN_TOPIC_OR_PARTITION otherwise, as Kafka's): wait for
	// __consumer_offsets, just created, to reach every broker.
	waitFor(t, c, "every broker to know "+offsetsTopic, func(c *Cluster) bool {
		for _, b := range c.running() {
			if !b.topicPartitionExists(offsetsTopic, 0) {
				return false
			}
		}
		return true
	})
	txnCommit := func(tc *kmsg.TxnOffsetCommitRequest) int16 {
		return do[*kmsg.TxnOffsetCommitResponse](t, gco, tc, 3).Topics[0].Partitions[0].ErrorCode
	}
	tc := kmsg.NewPtrTxnOffsetCommitRequest()
	tc.TransactionalID, tc.Group, tc.ProducerID, tc.ProducerEpoch, tc.Generation = "tx-off", "g-off", pid, epoch, -1
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = "in"
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = 0, 42, -1
	rt.Partitions = append(rt.Partitions, rp)
	tc.Topics = append(tc.Topics, rt)
	// The group coordinator verifies with the transaction coordinator
	// that the offsets partition is in the transaction (KIP-890).
	wantCode(t, "TxnOffsetCommit before AddOffsetsToTxn", txnCommit(tc), kerr.InvalidTxnState)
	ao := kmsg.NewPtrAddOffsetsToTxnRequest()
	ao.TransactionalID, ao.ProducerID, ao.ProducerEpoch, ao.Group = "tx-off", pid, epoch, "g-off"
	wantCode(t, "AddOffsetsToTxn", do[*kmsg.AddOffsetsToTxnResponse](t, co, ao, 3).ErrorCode, nil)
	wantCode(t, "TxnOffsetCommit", txnCommit(tc), nil)

	if _, code := offsetFetchStable(t, c, "g-off", "in", true); kerr.ErrorForCode(code) != kerr.UnstableOffsetCommit {
		t.Fatalf("stable fetch of a pending offset: %v", kerr.ErrorForCode(code))
	}
	if off, code := offsetFetchStable(t, c, "g-off", "in", false); code != 0 || off != -1 {
		t.Fatalf("fetch of a pending offset: %d %v, want -1", off, kerr.ErrorForCode(code))
	}

	if err := c.KillBroker(gid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "a new group coordinator", func(c *Cluster) bool {
		st, err := c.PartitionState(offsetsTopic, keyPartition("g-off", 10))
		return err == nil && st.Leader >= 0 && st.Leader != gid
	})
	if _, code := offsetFetchStable(t, c, "g-off", "in", true); kerr.ErrorForCode(code) != kerr.UnstableOffsetCommit {
		t.Fatalf("stable fetch on the new coordinator: %v", kerr.ErrorForCode(code))
	}
	for {
		co, _ = findTxnCoordinator(t, c, "tx-off")
		code := endTxn(t, co, "tx-off", pid, epoch, true)
		if e := kerr.ErrorForCode(code); e == kerr.NotCoordinator || e == kerr.CoordinatorLoadInProgress || e == kerr.ConcurrentTransactions {
			continue
		}
		wantCode(t, "EndTxn commit", code, nil)
		break
	}
	waitFor(t, c, "the offset committed", func(c *Cluster) bool {
		g, err := c.Group("g-off")
		return err == nil && g.Offsets["in"][0] == 42
	})
	if off, code := offsetFetchStable(t, c, "g-off", "in", true); code != 0 || off != 42 {
		t.Fatalf("stable fetch after the commit: %d %v, want 42", off, kerr.ErrorForCode(code))
	}
}

// KIP-890's verification guard: a marker appended between a produce's
// verification and its append voids the verification, so the late write
// cannot open a transaction its coordinator has already ended.
func TestTxnVerificationGuard(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "guard", 1, 1)
	b := c.running()[0]
	b.mu.RLock()
	id := b.mu.state.Topics["guard"].ID
	b.mu.RUnlock()
	rep := b.partition(id, 0)
	const pid = 77
	g, open := rep.beginVerification(pid, 0)
	if open {
		t.Fatal("no transaction should be open")
	}
	if _, err := rep.appendMarker(pid, 0, false, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := rep.appendAsLeaderGuarded(txnBatch(pid, 0, 0, "late"), 1, g); err != kerr.InvalidTxnState {
		t.Fatalf("append after a marker voided the verification: %v, want INVALID_TXN_STATE", err)
	}
	g, _ = rep.beginVerification(pid, 0)
	if _, _, err := rep.appendAsLeaderGuarded(txnBatch(pid, 0, 0, "ok"), 1, g); err != nil {
		t.Fatalf("append with a live verification: %v", err)
	}
	// The transaction is open now: later batches need no verification,
	// but a guard taken while it was open fails once a marker ends it.
	g, open = rep.beginVerification(pid, 0)
	if !open {
		t.Fatal("transaction not open after its first batch")
	}
	if _, err := rep.appendMarker(pid, 0, true, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := rep.appendAsLeaderGuarded(txnBatch(pid, 0, 1, "after-commit"), 1, g); err != kerr.InvalidTxnState {
		t.Fatalf("append after the commit marker: %v, want INVALID_TXN_STATE", err)
	}
}

// An idle transactional id is forgotten after
// transactional.id.expiration.ms: a tombstone in __transaction_state, and
// its next InitProducerId starts over with a new producer id.
func TestTxnIdExpiration(t *testing.T) {
	c := Start(t, Brokers(1), BrokerConfig("transactional.id.expiration.ms", "100"),
		BrokerConfig("transaction.remove.expired.transaction.cleanup.interval.ms", "50"))
	co, _ := findTxnCoordinator(t, c, "short-lived")
	init := func() *kmsg.InitProducerIDResponse {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr("short-lived"), 60000
		resp := do[*kmsg.InitProducerIDResponse](t, co, req, 4)
		wantCode(t, "InitProducerId", resp.ErrorCode, nil)
		return resp
	}
	first := init()
	waitFor(t, c, "the id to expire", func(c *Cluster) bool {
		_, err := c.Transaction("short-lived")
		return err == ErrUnknownTransaction
	})
	if again := init(); again.ProducerID == first.ProducerID || again.ProducerEpoch != 0 {
		t.Fatalf("after expiry: producer %d epoch %d, was %d", again.ProducerID, again.ProducerEpoch, first.ProducerID)
	}
}

// A partition leader's verification of a transaction (KIP-890) does not
// wait behind the transaction markers its broker sends as a coordinator.
// Kafka sends the two on separate inter-broker channels. On one shared
// connection, two brokers could each hold a group's lock for a
// TxnOffsetCommit whose verification was queued behind a WriteTxnMarkers
// the other broker could not serve without that lock, a deadlock broken
// only by the 5 s request timeout.
func TestTxnVerificationNotBehindMarkers(t *testing.T) {
	c := Start(t, Brokers(2))
	createTopic(t, c, "vm", 2, 1)
	leaders := map[int32]int32{} // broker -> a partition it leads
	for p := int32(0); p < 2; p++ {
		leaders[partState(t, c, "vm", p).Leader] = p
	}
	if len(leaders) != 2 {
		t.Fatalf("both partitions are led by one broker: %v", leaders)
	}
	// A transactional id coordinated by each broker.
	ids := map[int32]string{}
	for i := 0; len(ids) < 2; i++ {
		id := "vm-" + strconv.Itoa(i)
		if _, co := findTxnCoordinator(t, c, id); ids[co] == "" {
			ids[co] = id
		}
	}

	// Broker 2 coordinates a transaction on broker 1's partition. Its
	// commit markers reach broker 1 over broker 2's connection to it, and
	// broker 1 holds them.
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before Close
	c.InterceptOnce(1, int16(kmsg.WriteTxnMarkers), func(Intercepted) Action {
		close(held)
		<-release
		return Action{}
	})
	co2, pid2, epoch2 := initProducer(t, c, ids[2])
	wantCode(t, "AddPartitionsToTxn", addPartition(t, co2, ids[2], pid2, epoch2, "vm", leaders[1]), nil)
	wantCode(t, "produce", txnProduce(t, c, ids[2], "vm", leaders[1], txnBatch(pid2, epoch2, 0, "a")), nil)
	wantCode(t, "EndTxn", endTxn(t, co2, ids[2], pid2, epoch2, true), nil)
	<-held

	// Broker 1 coordinates a transaction on broker 2's partition: broker
	// 2 verifies it with broker 1 while broker 1 still holds the markers.
	co1, pid1, epoch1 := initProducer(t, c, ids[1])
	wantCode(t, "AddPartitionsToTxn", addPartition(t, co1, ids[1], pid1, epoch1, "vm", leaders[2]), nil)
	wantCode(t, "produce verified while markers are held", txnProduce(t, c, ids[1], "vm", leaders[2], txnBatch(pid1, epoch1, 0, "b")), nil)

	unblock()
	waitFor(t, c, "the held commit to complete", func(c *Cluster) bool {
		ts, err := c.Transaction(ids[2])
		return err == nil && ts.State == "CompleteCommit"
	})
	wantCode(t, "EndTxn", endTxn(t, co1, ids[1], pid1, epoch1, true), nil)
}

// A TxnOffsetCommit asks the transaction coordinator to verify the
// transaction before it takes the group's lock: the group's other requests
// are answered while the verification is on its way.
func TestTxnOffsetCommitVerifiesOutsideGroupLock(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "in", 1, 1)
	co, pid, epoch := initProducer(t, c, "tx-lock")
	ao := kmsg.NewPtrAddOffsetsToTxnRequest()
	ao.TransactionalID, ao.ProducerID, ao.ProducerEpoch, ao.Group = "tx-lock", pid, epoch, "g-lock"
	wantCode(t, "AddOffsetsToTxn", do[*kmsg.AddOffsetsToTxnResponse](t, co, ao, 3).ErrorCode, nil)

	held, release := make(chan struct{}), make(chan struct{})
	var heldOnce, once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before Close
	c.Intercept(0, int16(kmsg.AddPartitionsToTxn), func(ic Intercepted) Action {
		if r := ic.Request.(*kmsg.AddPartitionsToTxnRequest); r.Version >= 4 && len(r.Transactions) == 1 && r.Transactions[0].VerifyOnly {
			heldOnce.Do(func() { close(held) })
			<-release
		}
		return Action{}
	})

	gco, _ := coordinator(t, c, "g-lock")
	tc := kmsg.NewPtrTxnOffsetCommitRequest()
	tc.TransactionalID, tc.Group, tc.ProducerID, tc.ProducerEpoch, tc.Generation = "tx-lock", "g-lock", pid, epoch, -1
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = "in"
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = 0, 7, -1
	rt.Partitions = append(rt.Partitions, rp)
	tc.Topics = append(tc.Topics, rt)
	type result struct {
		resp kmsg.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		tc.SetVersion(3)
		resp, err := gco.Request(t.Context(), tc)
		done <- result{resp, err}
	}()
	<-held
	// The group's lock is free: a fetch of its offsets is answered while
	// the commit still waits for its verification.
	if off, code := offsetFetchStable(t, c, "g-lock", "in", false); code != 0 || off != -1 {
		t.Fatalf("OffsetFetch while a TxnOffsetCommit is verified: %d %v, want -1", off, kerr.ErrorForCode(code))
	}
	select {
	case r := <-done:
		t.Fatalf("the TxnOffsetCommit was answered before its verification: %v %v", r.resp, r.err)
	default:
	}
	unblock()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	wantCode(t, "TxnOffsetCommit", r.resp.(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode, nil)
}

// A transaction's committed offset replaces only an offset committed
// before it: a plain commit made while the transaction was open is newer
// in __consumer_offsets and stays, as Kafka's
// OffsetMetadataManager.replayEndTransactionMarker keeps it; an older one
// is replaced. Replaying the log on a restart gives the same offsets.
func TestTxnOffsetCommitKeepsALaterPlainCommit(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "in", 2, 1)
	co, pid, epoch := initProducer(t, c, "tx-late")
	gco, _ := coordinator(t, c, "g-late")
	plain := func(p int32, off int64) {
		t.Helper()
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.Generation = "g-late", -1
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "in"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = p, off, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		wantCode(t, "OffsetCommit", do[*kmsg.OffsetCommitResponse](t, gco, req, 8).Topics[0].Partitions[0].ErrorCode, nil)
	}
	// Partition 1: committed before the transaction's offset.
	plain(1, 30)
	ao := kmsg.NewPtrAddOffsetsToTxnRequest()
	ao.TransactionalID, ao.ProducerID, ao.ProducerEpoch, ao.Group = "tx-late", pid, epoch, "g-late"
	wantCode(t, "AddOffsetsToTxn", do[*kmsg.AddOffsetsToTxnResponse](t, co, ao, 3).ErrorCode, nil)
	tc := kmsg.NewPtrTxnOffsetCommitRequest()
	tc.TransactionalID, tc.Group, tc.ProducerID, tc.ProducerEpoch, tc.Generation = "tx-late", "g-late", pid, epoch, -1
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = "in"
	for p := range int32(2) {
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = p, 42, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	tc.Topics = append(tc.Topics, rt)
	for _, p := range do[*kmsg.TxnOffsetCommitResponse](t, gco, tc, 3).Topics[0].Partitions {
		wantCode(t, "TxnOffsetCommit", p.ErrorCode, nil)
	}
	// Partition 0: committed after it, while the transaction is open.
	plain(0, 50)
	wantCode(t, "EndTxn commit", endTxn(t, co, "tx-late", pid, epoch, true), nil)
	waitFor(t, c, "the transaction settled", TransactionSettled("tx-late"))
	want := map[int32]int64{0: 50, 1: 42}
	check := func(when string) {
		t.Helper()
		waitFor(t, c, "the group loaded "+when, func(c *Cluster) bool {
			g, err := c.Group("g-late")
			return err == nil && len(g.Offsets["in"]) == 2
		})
		g, _ := c.Group("g-late")
		for p, off := range want {
			if got := g.Offsets["in"][p]; got != off {
				t.Errorf("%s: partition %d at %d, want %d", when, p, got, off)
			}
		}
	}
	check("after the commit")
	if err := c.StopBroker(1); err != nil {
		t.Fatal(err)
	}
	if err := c.RestartBroker(1); err != nil {
		t.Fatal(err)
	}
	check("after a restart")
}
