package kcluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
	"github.com/kcluster/kcluster/wire"
)

// Tests of transactions v2 (KIP-890 part 2, transaction.version 2) and of
// the coordinator's fencing: the epoch bumped by every EndTxn v5, partitions
// added by Produce v12 and TxnOffsetCommit v5, epoch exhaustion,
// TxnMetadataValue v1 records, and InitProducerId fencing an ongoing
// transaction as Admin's fenceProducers does.

// endTxnV5 sends EndTxn v5 and returns its response.
func endTxnV5(t *testing.T, cl *wire.Client, id string, pid int64, epoch int16, commit bool) *kmsg.EndTxnResponse {
	t.Helper()
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = id, pid, epoch, commit
	return do[*kmsg.EndTxnResponse](t, cl, req, 5)
}

// txnState is Transaction(id), failing the test if no coordinator has it.
func txnState(t *testing.T, c *Cluster, id string) TransactionState {
	t.Helper()
	st, err := c.Transaction(id)
	if err != nil {
		t.Fatalf("Transaction(%s): %v", id, err)
	}
	return st
}

// settle waits until id's transaction is Empty, CompleteCommit or
// CompleteAbort, and returns its state.
func settle(t *testing.T, c *Cluster, id string) TransactionState {
	t.Helper()
	waitFor(t, c, id+" settled", TransactionSettled(id))
	return txnState(t, c, id)
}

// describeProducer returns producer pid as the partition's leader describes
// it (DescribeProducers v0).
func describeProducer(t *testing.T, c *Cluster, topic string, p int32, pid int64) kmsg.DescribeProducersResponseTopicPartitionActiveProducer {
	t.Helper()
	req := kmsg.NewPtrDescribeProducersRequest()
	rt := kmsg.NewDescribeProducersRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{p}
	req.Topics = append(req.Topics, rt)
	rp := do[*kmsg.DescribeProducersResponse](t, dial(t, addrOf(c, partState(t, c, topic, p).Leader)), req, 0).Topics[0].Partitions[0]
	if rp.ErrorCode != 0 {
		t.Fatalf("DescribeProducers %s/%d: %v", topic, p, kerr.ErrorForCode(rp.ErrorCode))
	}
	for _, ap := range rp.ActiveProducers {
		if ap.ProducerID == pid {
			return ap
		}
	}
	t.Fatalf("DescribeProducers %s/%d: no producer %d in %+v", topic, p, pid, rp.ActiveProducers)
	return kmsg.DescribeProducersResponseTopicPartitionActiveProducer{}
}

// txnRecords decodes the __transaction_state values of id from its
// coordinator's log, with their versions.
func txnRecords(t *testing.T, c *Cluster, id string) []kmsg.TxnMetadataValue {
	t.Helper()
	coord := txnState(t, c, id).Coordinator
	var out []kmsg.TxnMetadataValue
	for _, b := range c.running() {
		if b.id != coord {
			continue
		}
		b.mu.RLock()
		tid := b.mu.state.Topics[txnTopic].ID
		b.mu.RUnlock()
		rep := b.partition(tid, keyPartition(id, c.cfg.broker.txn.partitions))
		data, err := rep.log.Read(0, 1<<20, rep.log.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.dec.forEachKV(data, func(key, value []byte) {
			var k kmsg.TxnMetadataKey
			if k.ReadFrom(key) != nil || k.TransactionalID != id || value == nil {
				return
			}
			var v kmsg.TxnMetadataValue
			if err := v.ReadFrom(value); err != nil {
				t.Fatalf("value %x: %v", value, err)
			}
			out = append(out, v)
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// setEpoch sets id's producer epoch in its coordinator's memory, as if
// that many transactions had ended: a test of epoch exhaustion.
func setEpoch(t *testing.T, c *Cluster, id string, epoch int16) {
	t.Helper()
	for _, b := range c.running() {
		ctx, err := b.txns.rt.contextForNow(id)
		if err != nil {
			continue
		}
		if err := ctx.run(func(ts *txnShard) error {
			ts.txns[id].epoch = epoch
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no coordinator has %s", id)
}

// TxnMetadataValue v1, the version Kafka 4 writes from transaction.version
// 1, byte for byte as Kafka's TransactionLogValue.json lays it out: the
// flexible version of the v0 fields, compact strings and arrays, a null
// partition list in the Empty state, and the tagged fields
// PreviousProducerId (0), NextProducerId (1) and ClientTransactionVersion
// (2), each written only when it is not its default (-1, -1, 0). v0 keeps
// the classic layout, and decoding either fills in the missing tags.
func TestTxnMetadataValueLayout(t *testing.T) {
	be16 := func(v int16) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
	be32 := func(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
	be64 := func(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	m := &txnMeta{id: "x", pid: 7, prevPid: 6, nextPid: 9, epoch: 3, lastEpoch: 2, timeout: 60000, state: kmsg.TransactionStatePrepareCommit,
		parts: map[topicPartition]struct{}{{"tp", 1}: {}, {"tp", 0}: {}}, startTs: 100, updateTs: 200, tv: 2}
	want := cat(be16(1), be64(7), be16(3), be32(60000), []byte{2},
		[]byte{2}, []byte{3}, []byte("tp"), []byte{3}, be32(0), be32(1), []byte{0}, // one topic, two partitions, no tags
		be64(200), be64(100),
		[]byte{3}, []byte{0, 8}, be64(6), []byte{1, 8}, be64(9), []byte{2, 2}, be16(2))
	rec := m.record(1)
	if !bytes.Equal(rec.Value, want) {
		t.Fatalf("v1 value\n got %x\nwant %x", rec.Value, want)
	}
	if wantKey := cat(be16(0), be16(1), []byte("x")); !bytes.Equal(rec.Key, wantKey) {
		t.Fatalf("key %x, want %x", rec.Key, wantKey)
	}

	// Empty: null partitions; default tags are left out.
	e := &txnMeta{id: "x", pid: 7, prevPid: -1, nextPid: -1, epoch: 0, timeout: 1000, state: kmsg.TransactionStateEmpty,
		parts: map[topicPartition]struct{}{}, startTs: -1, updateTs: 5}
	if got, want := e.record(1).Value, cat(be16(1), be64(7), be16(0), be32(1000), []byte{0}, []byte{0}, be64(5), be64(-1), []byte{0}); !bytes.Equal(got, want) {
		t.Fatalf("v1 Empty value\n got %x\nwant %x", got, want)
	}
	// v0: int16/int32 lengths, null as -1, no tags.
	v0 := cat(be16(0), be64(7), be16(3), be32(60000), []byte{2},
		be32(1), be16(2), []byte("tp"), be32(2), be32(0), be32(1),
		be64(200), be64(100))
	if got := m.record(0).Value; !bytes.Equal(got, v0) {
		t.Fatalf("v0 value\n got %x\nwant %x", got, v0)
	}

	for _, tc := range []struct {
		value      []byte
		prev, next int64
		tv         int16
		parts      int
		state      kmsg.TransactionState
		pid        int64
		epoch      int16
	}{
		{want, 6, 9, 2, 2, kmsg.TransactionStatePrepareCommit, 7, 3},
		{v0, -1, -1, 0, 2, kmsg.TransactionStatePrepareCommit, 7, 3},
	} {
		var v kmsg.TxnMetadataValue
		if err := v.ReadFrom(tc.value); err != nil {
			t.Fatal(err)
		}
		got := txnMetaFrom("x", &v)
		if got.prevPid != tc.prev || got.nextPid != tc.next || got.tv != tc.tv || len(got.parts) != tc.parts ||
			got.state != tc.state || got.pid != tc.pid || got.epoch != tc.epoch || got.lastEpoch != -1 {
			t.Fatalf("decoded v%d: %+v", v.Version, got)
		}
	}
}

// Transactions v2 on the wire, as a Kafka 4 client drives them: the
// partition leader adds a Produce v12's partition to the transaction (v11
// still needs AddPartitionsToTxn: TRANSACTION_ABORTABLE), EndTxn v5 bumps
// the epoch and answers the one to use next, the markers carry the bumped
// epoch, retries are told apart by their epoch (Kafka's TV2 table), an
// abort with no transaction is allowed and bumps the epoch, and the
// records are TxnMetadataValue v1 with ClientTransactionVersion 2.
func TestTxnV2Protocol(t *testing.T) {
	c := Start(t, Brokers(3), Feature("transaction.version", 2))
	createTopic(t, c, "v2", 2, 3)
	co, pid, epoch := initProducer(t, c, "v2-id")

	wantCode(t, "produce v11, partition not added", txnProduceV(t, c, "v2-id", "v2", 1, txnBatch(pid, epoch, 0, "x"), 11), kerr.TransactionAbortable)
	start := time.Now().UnixMilli()
	wantCode(t, "produce v12, added by the leader", txnProduceV(t, c, "v2-id", "v2", 0, txnBatch(pid, epoch, 0, "a", "b"), 12), nil)
	if st := txnState(t, c, "v2-id"); st.State != "Ongoing" || len(st.Partitions["v2"]) != 1 || st.Partitions["v2"][0] != 0 {
		t.Fatalf("after the produce: %+v", st)
	}
	wantCode(t, "produce v12 again", txnProduceV(t, c, "v2-id", "v2", 0, txnBatch(pid, epoch, 2, "c"), 12), nil)

	r := endTxnV5(t, co, "v2-id", pid, epoch, true)
	wantCode(t, "EndTxn v5 commit", r.ErrorCode, nil)
	if r.ProducerID != pid || r.ProducerEpoch != epoch+1 {
		t.Fatalf("EndTxn v5: %d/%d, want %d/%d", r.ProducerID, r.ProducerEpoch, pid, epoch+1)
	}
	if st := settle(t, c, "v2-id"); st.State != "CompleteCommit" || st.ProducerEpoch != epoch+1 {
		t.Fatalf("after the commit: %+v", st)
	}
	// The marker carries the bumped epoch: the partition's producer
	// moved to it (its sequences with it), stamped with the marker's
	// time.
	ap := describeProducer(t, c, "v2", 0, pid)
	if ap.ProducerEpoch != int32(epoch+1) || ap.LastSequence != -1 || ap.CurrentTxnStartOffset != -1 || ap.CoordinatorEpoch < 0 || ap.LastTimestamp < start {
		t.Fatalf("DescribeProducers after the commit: %+v", ap)
	}

	// Kafka's TV2 table on CompleteCommit: a retry (the epoch before
	// the bump) of the commit is answered with the current id and
	// epoch; an abort retried there, or a commit at the current epoch,
	// is INVALID_TXN_STATE.
	r = endTxnV5(t, co, "v2-id", pid, epoch, true)
	if r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != epoch+1 {
		t.Fatalf("EndTxn commit retried: %v %d/%d", kerr.ErrorForCode(r.ErrorCode), r.ProducerID, r.ProducerEpoch)
	}
	wantCode(t, "EndTxn abort retried after a commit", endTxnV5(t, co, "v2-id", pid, epoch, false).ErrorCode, kerr.InvalidTxnState)
	wantCode(t, "EndTxn commit with no transaction", endTxnV5(t, co, "v2-id", pid, epoch+1, true).ErrorCode, kerr.InvalidTxnState)
	wantCode(t, "EndTxn two epochs back", endTxnV5(t, co, "v2-id", pid, epoch-1, true).ErrorCode, kerr.ProducerFenced)
	// An abort with nothing open bumps the epoch, without markers.
	r = endTxnV5(t, co, "v2-id", pid, epoch+1, false)
	if r.ErrorCode != 0 || r.ProducerEpoch != epoch+2 {
		t.Fatalf("empty abort: %v %d/%d", kerr.ErrorForCode(r.ErrorCode), r.ProducerID, r.ProducerEpoch)
	}
	if st := settle(t, c, "v2-id"); st.State != "CompleteAbort" || st.ProducerEpoch != epoch+2 || len(st.Partitions) != 0 {
		t.Fatalf("after the empty abort: %+v", st)
	}
	// The previous epoch's writes are fenced at the leader; the new one
	// starts a new transaction from sequence 0.
	wantCode(t, "produce at the old epoch", txnProduceV(t, c, "v2-id", "v2", 0, txnBatch(pid, epoch+1, 0, "z"), 12), kerr.InvalidProducerEpoch)
	wantCode(t, "produce at the new epoch", txnProduceV(t, c, "v2-id", "v2", 0, txnBatch(pid, epoch+2, 0, "d"), 12), nil)
	wantCode(t, "EndTxn v5 abort", endTxnV5(t, co, "v2-id", pid, epoch+2, false).ErrorCode, nil)
	settle(t, c, "v2-id")

	// A version 2 marker must be above the producer's epoch (KIP-1228):
	// a late one at its epoch is refused; a version 0 one is not.
	marker := func(pepoch int16, tv int8) int16 {
		req := kmsg.NewPtrWriteTxnMarkersRequest()
		m := kmsg.NewWriteTxnMarkersRequestMarker()
		m.ProducerID, m.ProducerEpoch, m.CoordinatorEpoch, m.TransactionVersion = pid, pepoch, 1000, tv
		mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		mt.Topic, mt.Partitions = "v2", []int32{0}
		m.Topics = append(m.Topics, mt)
		req.Markers = append(req.Markers, m)
		return do[*kmsg.WriteTxnMarkersResponse](t, dial(t, addrOf(c, partState(t, c, "v2", 0).Leader)), req, 2).Markers[0].Topics[0].Partitions[0].ErrorCode
	}
	wantCode(t, "version 2 marker at the producer's epoch", marker(epoch+3, 2), kerr.InvalidProducerEpoch)
	wantCode(t, "version 0 marker at the producer's epoch", marker(epoch+3, 0), nil)

	// The records: v1, with the client's transaction version and the
	// previous producer id.
	recs := txnRecords(t, c, "v2-id")
	last := recs[len(recs)-1]
	if last.Version != 1 || last.ClientTransactionVersion != 2 || last.PreviousProducerID != pid || last.NextProducerID != -1 {
		t.Fatalf("last record: %+v", last)
	}
	var states []kmsg.TransactionState
	for _, v := range recs {
		states = append(states, v.State)
	}
	want := []kmsg.TransactionState{kmsg.TransactionStateEmpty, kmsg.TransactionStateOngoing, kmsg.TransactionStatePrepareCommit,
		kmsg.TransactionStateCompleteCommit, kmsg.TransactionStatePrepareAbort, kmsg.TransactionStateCompleteAbort,
		kmsg.TransactionStateOngoing, kmsg.TransactionStatePrepareAbort, kmsg.TransactionStateCompleteAbort}
	if !slices.Equal(states, want) {
		t.Fatalf("states %v, want %v", states, want)
	}
}

// An exhausted epoch (32766) ends its transaction at 32767 and hands the
// producer a new producer id at epoch 0 (Kafka's nextProducerId); a retry
// of that EndTxn, or of InitProducerId, with the old id and epoch gets the
// new id, as Kafka's overflow retries do.
func TestTxnV2EpochExhaustion(t *testing.T) {
	c := Start(t, Brokers(3), Feature("transaction.version", 2))
	createTopic(t, c, "ex", 1, 3)
	co, pid, _ := initProducer(t, c, "ex-id")
	const exhausted = 32767 - 1
	setEpoch(t, c, "ex-id", exhausted)
	wantCode(t, "produce", txnProduceV(t, c, "ex-id", "ex", 0, txnBatch(pid, exhausted, 0, "a"), 12), nil)
	r := endTxnV5(t, co, "ex-id", pid, exhausted, true)
	wantCode(t, "EndTxn", r.ErrorCode, nil)
	if r.ProducerID == pid || r.ProducerID < 0 || r.ProducerEpoch != 0 {
		t.Fatalf("EndTxn at an exhausted epoch: %d/%d, want a new producer id at 0", r.ProducerID, r.ProducerEpoch)
	}
	next := r.ProducerID
	if st := settle(t, c, "ex-id"); st.State != "CompleteCommit" || st.ProducerID != next || st.ProducerEpoch != 0 {
		t.Fatalf("after the commit: %+v", st)
	}
	if ap := describeProducer(t, c, "ex", 0, pid); ap.ProducerEpoch != 32767 {
		t.Fatalf("marker epoch %d, want 32767", ap.ProducerEpoch)
	}
	recs := txnRecords(t, c, "ex-id")
	if p := recs[len(recs)-2]; p.State != kmsg.TransactionStatePrepareCommit || p.ProducerEpoch != 32767 || p.NextProducerID != next {
		t.Fatalf("PrepareCommit record: %+v", p)
	}
	if l := recs[len(recs)-1]; l.ProducerID != next || l.PreviousProducerID != pid || l.NextProducerID != -1 {
		t.Fatalf("CompleteCommit record: %+v", l)
	}
	r = endTxnV5(t, co, "ex-id", pid, exhausted, true)
	if r.ErrorCode != 0 || r.ProducerID != next || r.ProducerEpoch != 0 {
		t.Fatalf("EndTxn retried across the rotation: %v %d/%d", kerr.ErrorForCode(r.ErrorCode), r.ProducerID, r.ProducerEpoch)
	}
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID, req.TransactionTimeoutMillis, req.ProducerID, req.ProducerEpoch = kmsg.StringPtr("ex-id"), 60000, pid, exhausted
	ir := do[*kmsg.InitProducerIDResponse](t, co, req, 5)
	if ir.ErrorCode != 0 || ir.ProducerID != next || ir.ProducerEpoch != 0 {
		t.Fatalf("InitProducerId retried across the rotation: %v %d/%d", kerr.ErrorForCode(ir.ErrorCode), ir.ProducerID, ir.ProducerEpoch)
	}
	wantCode(t, "new producer id", txnProduceV(t, c, "ex-id", "ex", 0, txnBatch(next, 0, 0, "b"), 12), nil)
	// A producer id without an epoch is INVALID_REQUEST, as Kafka's
	// KafkaApis answers it.
	req.ProducerID, req.ProducerEpoch = next, -1
	wantCode(t, "InitProducerId with no epoch", do[*kmsg.InitProducerIDResponse](t, co, req, 5).ErrorCode, kerr.InvalidRequest)
}

// TxnOffsetCommit v5 adds the group's __consumer_offsets partition to the
// transaction (KIP-890 part 2, no AddOffsetsToTxn); v4 and v3 need it
// added first, and say so with TRANSACTION_ABORTABLE and INVALID_TXN_STATE.
func TestTxnOffsetCommitV5AddsPartition(t *testing.T) {
	c := Start(t, Brokers(3))
	createTopic(t, c, "in", 1, 3)
	co, pid, epoch := initProducer(t, c, "tx-v5")
	gco, _ := coordinator(t, c, "g-v5")
	waitFor(t, c, "every broker to know "+offsetsTopic, func(c *Cluster) bool {
		for _, b := range c.running() {
			if !b.topicPartitionExists(offsetsTopic, 0) {
				return false
			}
		}
		return true
	})
	commit := func(v int16) int16 {
		tc := kmsg.NewPtrTxnOffsetCommitRequest()
		tc.TransactionalID, tc.Group, tc.ProducerID, tc.ProducerEpoch, tc.Generation = "tx-v5", "g-v5", pid, epoch, -1
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = "in"
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = 0, 7, -1
		rt.Partitions = append(rt.Partitions, rp)
		tc.Topics = append(tc.Topics, rt)
		return do[*kmsg.TxnOffsetCommitResponse](t, gco, tc, v).Topics[0].Partitions[0].ErrorCode
	}
	wantCode(t, "TxnOffsetCommit v3, offsets not added", commit(3), kerr.InvalidTxnState)
	wantCode(t, "TxnOffsetCommit v4, offsets not added", commit(4), kerr.TransactionAbortable)
	wantCode(t, "TxnOffsetCommit v5", commit(5), nil)
	op := keyPartition("g-v5", c.cfg.broker.group.offsetsPartitions)
	if st := txnState(t, c, "tx-v5"); st.State != "Ongoing" || len(st.Partitions[offsetsTopic]) != 1 || st.Partitions[offsetsTopic][0] != op {
		t.Fatalf("after TxnOffsetCommit v5: %+v", st)
	}
	wantCode(t, "EndTxn", endTxnV5(t, co, "tx-v5", pid, epoch, true).ErrorCode, nil)
	waitFor(t, c, "the offset committed", func(c *Cluster) bool {
		g, err := c.Group("g-v5")
		return err == nil && g.Offsets["in"][0] == 7
	})
}

// A cluster of transaction.version 0 wrote TxnMetadataValue v0 records;
// after an upgrade to 2, a new coordinator loads them and the transaction
// goes on with EndTxn v5, now in v1 records.
func TestTxnV0RecordsLoadAfterUpgrade(t *testing.T) {
	c := Start(t, Brokers(3), Feature("transaction.version", 0))
	createTopic(t, c, "up", 1, 3)
	co, pid, epoch := initProducer(t, c, "up-id")
	wantCode(t, "AddPartitionsToTxn", addPartition(t, co, "up-id", pid, epoch, "up", 0), nil)
	wantCode(t, "produce", txnProduce(t, c, "up-id", "up", 0, txnBatch(pid, epoch, 0, "a")), nil)
	for _, v := range txnRecords(t, c, "up-id") {
		if v.Version != 0 {
			t.Fatalf("record at transaction.version 0: %+v", v)
		}
	}
	if resp := updateFeatures(t, c.Addrs()[0], 2, false, featureUpdate("transaction.version", 2, metadata.Upgrade)); resp.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(resp.ErrorCode))
	}
	waitFor(t, c, "every broker at transaction.version 2", func(c *Cluster) bool {
		for _, b := range c.running() {
			if b.featureLevel("transaction.version") != 2 {
				return false
			}
		}
		return true
	})
	old := txnState(t, c, "up-id").Coordinator
	if err := c.KillBroker(old); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "a new coordinator with the transaction", func(c *Cluster) bool {
		st, err := c.Transaction("up-id")
		return err == nil && st.Coordinator != old && st.State == "Ongoing" && st.ProducerID == pid && st.ProducerEpoch == epoch
	})
	for {
		co, _ = findTxnCoordinator(t, c, "up-id")
		r := endTxnV5(t, co, "up-id", pid, epoch, true)
		if e := kerr.ErrorForCode(r.ErrorCode); e == kerr.NotCoordinator || e == kerr.CoordinatorLoadInProgress {
			continue
		}
		wantCode(t, "EndTxn v5 on a v0 transaction", r.ErrorCode, nil)
		if r.ProducerEpoch != epoch+1 {
			t.Fatalf("EndTxn v5: epoch %d, want %d", r.ProducerEpoch, epoch+1)
		}
		break
	}
	settle(t, c, "up-id")
	recs := txnRecords(t, c, "up-id")
	if l := recs[len(recs)-1]; l.Version != 1 || l.State != kmsg.TransactionStateCompleteCommit || l.ClientTransactionVersion != 2 {
		t.Fatalf("last record after the upgrade: %+v", l)
	}
}

// fenceInit sends an InitProducerId with no producer id and epoch, as
// Admin's fenceProducers does, until it is answered with something other
// than CONCURRENT_TRANSACTIONS, and returns the answers.
func fenceInit(t *testing.T, co *wire.Client, id string) []*kmsg.InitProducerIDResponse {
	t.Helper()
	var out []*kmsg.InitProducerIDResponse
	deadline := time.Now().Add(10 * time.Second)
	for {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr(id), 60000
		resp := do[*kmsg.InitProducerIDResponse](t, co, req, 5)
		out = append(out, resp)
		if resp.ErrorCode != kerr.ConcurrentTransactions.Code || time.Now().After(deadline) {
			return out
		}
	}
}

// Admin's fenceProducers: an InitProducerId without a producer id and
// epoch for an id with an ongoing transaction fences it, as Kafka's
// handleInitProducerId does: the epoch is bumped once and the transaction
// aborted with it (the in-memory PrepareEpochFence becomes the PrepareAbort
// written), answered CONCURRENT_TRANSACTIONS; the retry once the abort
// completes bumps the epoch again. The fencing bump is made even from the
// exhausted epoch 32766 (to 32767, which no producer may use), and the
// retry then rotates the producer id. At transaction.version 2 the abort is
// the coordinator's EndTxn at that level: one bump as well, and from an
// exhausted epoch the new producer id comes with the completion.
func TestTxnFenceOngoing(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tv        int16
		exhausted bool
	}{{"tv0", 0, false}, {"tv0-exhausted", 0, true}, {"tv2", 2, false}, {"tv2-exhausted", 2, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := Start(t, Brokers(3), Feature("transaction.version", tc.tv))
			createTopic(t, c, "f", 1, 3)
			co, pid, epoch := initProducer(t, c, "f-id")
			if tc.exhausted {
				epoch = 32767 - 1
				setEpoch(t, c, "f-id", epoch)
			}
			wantCode(t, "AddPartitionsToTxn", addPartition(t, co, "f-id", pid, epoch, "f", 0), nil)
			wantCode(t, "produce", txnProduce(t, c, "f-id", "f", 0, txnBatch(pid, epoch, 0, "zombie")), nil)

			answers := fenceInit(t, co, "f-id")
			wantCode(t, "first fencing InitProducerId", answers[0].ErrorCode, kerr.ConcurrentTransactions)
			last := answers[len(answers)-1]
			wantCode(t, "fencing InitProducerId", last.ErrorCode, nil)

			var abort kmsg.TxnMetadataValue
			for _, v := range txnRecords(t, c, "f-id") {
				if v.State == kmsg.TransactionStatePrepareAbort {
					abort = v
				}
			}
			if abort.ProducerID != pid || abort.ProducerEpoch != epoch+1 {
				t.Fatalf("PrepareAbort record %+v, want producer %d at epoch %d", abort, pid, epoch+1)
			}
			// The abort marker carries the fencing epoch: the zombie's
			// writes are refused.
			if ap := describeProducer(t, c, "f", 0, pid); ap.ProducerEpoch != int32(epoch+1) || ap.CurrentTxnStartOffset != -1 {
				t.Fatalf("zombie's producer after the fence: %+v", ap)
			}
			// The zombie is fenced; once the id has a new producer id
			// (an exhausted epoch), the old one is not the id's at all.
			fencedWrite, fencedEnd := kerr.InvalidProducerEpoch, kerr.ProducerFenced
			if tc.exhausted {
				fencedWrite, fencedEnd = kerr.InvalidProducerIDMapping, kerr.InvalidProducerIDMapping
			}
			wantCode(t, "zombie write", txnProduce(t, c, "f-id", "f", 0, txnBatch(pid, epoch, 1, "late")), fencedWrite)
			wantCode(t, "zombie commit", endTxn(t, co, "f-id", pid, epoch, true), fencedEnd)

			switch {
			case !tc.exhausted && (last.ProducerID != pid || last.ProducerEpoch != epoch+2):
				t.Fatalf("after the fence: %d/%d, want %d/%d", last.ProducerID, last.ProducerEpoch, pid, epoch+2)
			case tc.exhausted && tc.tv < 2 && (last.ProducerID == pid || last.ProducerEpoch != 0):
				t.Fatalf("after the fence at an exhausted epoch: %d/%d, want a new producer id at 0", last.ProducerID, last.ProducerEpoch)
			case tc.exhausted && tc.tv >= 2 && (last.ProducerID == pid || last.ProducerEpoch != 1 || abort.NextProducerID != last.ProducerID):
				t.Fatalf("after the fence at an exhausted epoch: %d/%d (abort's next producer id %d), want the next producer id at 1",
					last.ProducerID, last.ProducerEpoch, abort.NextProducerID)
			}
			if st := txnState(t, c, "f-id"); st.State != "Empty" || st.ProducerID != last.ProducerID || st.ProducerEpoch != last.ProducerEpoch {
				t.Fatalf("after the fence: %+v", st)
			}
			if got := readCommitted(t, c, "f", 0); len(got) != 0 {
				t.Fatalf("read_committed after the fence: %q", got)
			}
		})
	}
}

// readCommitted returns the values of topic/p a read_committed consumer
// reads from its start, the aborted transactions' records dropped: it
// writes a last, non-transactional record and reads up to it, which
// read_committed reaches once every transaction before it has ended.
func readCommitted(t *testing.T, c *Cluster, topic string, p int32) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const end = "\x00end"
	pr, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if err := pr.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(end)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []string
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read_committed %s/%d: %v (read %q)", topic, p, err, out)
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) == end {
				done = true
			} else if !done {
				out = append(out, string(r.Value))
			}
		})
		if done {
			return out
		}
	}
}

// While a transaction completes (PrepareCommit, its markers in flight) an
// InitProducerId is answered CONCURRENT_TRANSACTIONS, as Kafka's; once the
// commit completes it bumps the epoch.
func TestTxnFenceWhileCompleting(t *testing.T) {
	c := Start(t, Brokers(3))
	createTopic(t, c, "fc", 1, 3)
	co, pid, epoch := initProducer(t, c, "fc-id")
	leader := partState(t, c, "fc", 0).Leader
	release := make(chan struct{})
	remove := c.Intercept(leader, int16(kmsg.WriteTxnMarkers), func(Intercepted) Action {
		<-release
		return Action{}
	})
	defer remove()
	wantCode(t, "produce", txnProduceV(t, c, "fc-id", "fc", 0, txnBatch(pid, epoch, 0, "a"), 12), nil)
	wantCode(t, "EndTxn", endTxnV5(t, co, "fc-id", pid, epoch, true).ErrorCode, nil)
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr("fc-id"), 60000
	wantCode(t, "InitProducerId while the commit completes", do[*kmsg.InitProducerIDResponse](t, co, req, 5).ErrorCode, kerr.ConcurrentTransactions)
	if st := txnState(t, c, "fc-id"); st.State != "PrepareCommit" {
		t.Fatalf("state %s, want PrepareCommit", st.State)
	}
	close(release)
	answers := fenceInit(t, co, "fc-id")
	last := answers[len(answers)-1]
	if last.ErrorCode != 0 || last.ProducerID != pid || last.ProducerEpoch != epoch+2 {
		t.Fatalf("InitProducerId after the commit: %v %d/%d", kerr.ErrorForCode(last.ErrorCode), last.ProducerID, last.ProducerEpoch)
	}
	if got := readCommitted(t, c, "fc", 0); len(got) != 1 || got[0] != "a" {
		t.Fatalf("read_committed: %q", got)
	}
}

// DescribeProducers after a commit reports the producer as Kafka's
// ProducerStateEntry has it: its epoch (at transactions v2 the marker's,
// bumped, its sequences reset with it), no open transaction, the marker's
// coordinator epoch, and the marker's timestamp as its last timestamp.
func TestDescribeProducersAfterCommit(t *testing.T) {
	for _, tv := range []int16{0, 2} {
		t.Run(map[int16]string{0: "tv0", 2: "tv2"}[tv], func(t *testing.T) {
			c := Start(t, Brokers(3), Feature("transaction.version", tv))
			createTopic(t, c, "dp", 1, 3)
			co, pid, epoch := initProducer(t, c, "dp-id")
			if tv < 2 {
				wantCode(t, "AddPartitionsToTxn", addPartition(t, co, "dp-id", pid, epoch, "dp", 0), nil)
			}
			wantCode(t, "produce", txnProduceV(t, c, "dp-id", "dp", 0, txnBatch(pid, epoch, 0, "a", "b"), map[int16]int16{0: 11, 2: 12}[tv]), nil)
			if ap := describeProducer(t, c, "dp", 0, pid); ap.CurrentTxnStartOffset != 0 || ap.LastSequence != 1 || ap.LastTimestamp != 2 {
				t.Fatalf("DescribeProducers in the transaction: %+v", ap)
			}
			before := time.Now().UnixMilli()
			if tv < 2 {
				wantCode(t, "EndTxn", endTxn(t, co, "dp-id", pid, epoch, true), nil)
			} else {
				wantCode(t, "EndTxn", endTxnV5(t, co, "dp-id", pid, epoch, true).ErrorCode, nil)
			}
			settle(t, c, "dp-id")
			ap := describeProducer(t, c, "dp", 0, pid)
			wantEpoch, wantSeq := int32(epoch), int32(1)
			if tv >= 2 {
				wantEpoch, wantSeq = int32(epoch+1), -1
			}
			if ap.ProducerEpoch != wantEpoch || ap.LastSequence != wantSeq || ap.CurrentTxnStartOffset != -1 ||
				ap.CoordinatorEpoch < 0 || ap.LastTimestamp < before || ap.LastTimestamp > time.Now().UnixMilli() {
				t.Fatalf("DescribeProducers after the commit: %+v, want epoch %d, last sequence %d, the marker's timestamp (>= %d)", ap, wantEpoch, wantSeq, before)
			}
		})
	}
}

// A franz-go transactional producer against transaction.version 0 (the
// KIP-890 part 1 flow: AddPartitionsToTxn, one epoch per session) and 2
// (part 2: partitions added by Produce v12+, the epoch bumped by every
// EndTxn v5): commits are read by read_committed, aborts are not.
func TestTxnClientTransactionVersions(t *testing.T) {
	for _, tv := range []int16{0, 2} {
		t.Run(map[int16]string{0: "tv0", 2: "tv2"}[tv], func(t *testing.T) {
			c := Start(t, Brokers(3), Feature("transaction.version", tv))
			createTopic(t, c, "cl", 2, 3)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.TransactionalID("cl-id"), kgo.DefaultProduceTopic("cl"),
				kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			// The client decides on KIP-890 part 2 from the finalized
			// features of the brokers it has talked to.
			if err := cl.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			var epochs []int16
			for i, commit := range []kgo.TransactionEndTry{kgo.TryCommit, kgo.TryAbort, kgo.TryCommit} {
				if err := cl.BeginTransaction(); err != nil {
					t.Fatal(err)
				}
				for p := int32(0); p < 2; p++ {
					v := []byte{byte('a' + i), byte('0' + p)}
					if err := cl.ProduceSync(ctx, &kgo.Record{Value: v, Partition: p}).FirstErr(); err != nil {
						t.Fatalf("transaction %d: %v", i, err)
					}
				}
				if err := cl.EndTransaction(ctx, commit); err != nil {
					t.Fatalf("transaction %d: %v", i, err)
				}
				epochs = append(epochs, settle(t, c, "cl-id").ProducerEpoch)
			}
			for i := 1; i < len(epochs); i++ {
				if bumped := epochs[i] == epochs[i-1]+1; bumped != (tv >= 2) {
					t.Fatalf("epochs after each end %v at transaction.version %d", epochs, tv)
				}
			}
			for p := int32(0); p < 2; p++ {
				got := readCommitted(t, c, "cl", p)
				want := []string{"a" + string(rune('0'+p)), "c" + string(rune('0'+p))}
				if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
					t.Fatalf("read_committed cl/%d: %q, want %q", p, got, want)
				}
			}
		})
	}
}
