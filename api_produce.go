package kcluster

// Produce v3-v13, advertised from v0 as Kafka 4 advertises it
// (KAFKA-18659: librdkafka before 2.11.1 enables gzip, snappy and lz4 only
// when Produce v0 is advertised); v0-v2, whose message formats Kafka 4
// removed (KIP-896), close the connection when they arrive, as Kafka 4's
// SocketServer refuses a version it does not serve. Magic v2 record batches
// only; KIP-467 record errors from v8: a batch with refused records fails
// whole, INVALID_RECORD or INVALID_TIMESTAMP with the records named
// (logvalidator.go); KIP-516 topic ids from v13, which name topics by id
// only and are answered by id (UNKNOWN_TOPIC_ID for an id this broker does
// not know); KIP-951 leader hints not sent. A transactional produce is
// checked with the transaction coordinator before the first write of its
// transaction on a partition (txn_verify.go): up to v11 the partition must
// be in the transaction (KIP-890 part 1; not in it: INVALID_TXN_STATE, or
// TRANSACTION_ABORTABLE from v11), from v12 the leader adds it (KIP-890
// part 2: the client sends no AddPartitionsToTxn), for all the request's
// partitions in one request to the coordinator. Batches are validated (size, magic, CRC-32C, records), given their
// offsets and the leader epoch in place, and stored as received,
// compressed or not. acks=0 gets no response, acks=1 answers after the
// leader's append, acks=-1 (all) after every ISR member has the batch (the
// high watermark passed it), or REQUEST_TIMED_OUT at the request's
// timeout.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	reg(3, 13, (*broker).handleProduce)
	advertiseFrom(0, 0)
}

// lookupPartition resolves a topic name and partition to this broker's replica.
// It returns UNKNOWN_TOPIC_OR_PARTITION when the metadata has no such
// partition, NOT_LEADER_OR_FOLLOWER when this broker holds no replica.
func (b *broker) lookupPartition(topic string, id [16]byte, part int32) (*partition, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t := b.mu.state.Topics[topic]
	if topic == "" {
		t = b.mu.state.TopicsByID[id]
		if t == nil {
			return nil, kerr.UnknownTopicID
		}
	}
	if t == nil || part < 0 || int(part) >= len(t.Partitions) {
		return nil, kerr.UnknownTopicOrPartition
	}
	r := b.mu.replicas[tpKey{t.ID, part}]
	if r == nil {
		// A replica in a log dir that failed is offline here, as in
		// Kafka's ReplicaManager (HostedPartition.Offline).
		if d := b.dirByID(t.Partitions[part].Directory(b.id)); d != nil && d.offline.Load() {
			return nil, kerr.KafkaStorageError
		}
		return nil, kerr.NotLeaderForPartition
	}
	return r, nil
}

func (b *broker) handleProduce(req *kmsg.ProduceRequest, r *request) (*kmsg.ProduceResponse, error) {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	byID := req.Version >= 13 // KIP-516: topics named by id only
	respTopic := func(t *kmsg.ProduceRequestTopic) kmsg.ProduceResponseTopic {
		rt := kmsg.NewProduceResponseTopic()
		if byID {
			rt.TopicID = t.TopicID
		} else {
			rt.Topic = t.Topic
		}
		return rt
	}
	if req.Acks != 0 && req.Acks != 1 && req.Acks != -1 {
		for i := range req.Topics {
			t := &req.Topics[i]
			rt := respTopic(t)
			for _, p := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = kerr.InvalidRequiredAcks.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	}
	type pending struct {
		rp  *kmsg.ProduceResponseTopicPartition
		rep *partition
		end int64
	}
	// Look every partition up first, and verify (or add) the
	// transactional ones with the coordinator in one request.
	type part struct {
		rep *partition
		err error
		txn *txnWrite
	}
	parts := make([][]part, len(req.Topics))
	var txnWrites []*txnWrite
	txnPid, txnEpoch := int64(-1), int16(-1)
	for i := range req.Topics {
		t := &req.Topics[i]
		name := t.Topic
		if byID {
			name = ""
		}
		parts[i] = make([]part, len(t.Partitions))
		for j, p := range t.Partitions {
			rep, err := b.lookupPartition(name, t.TopicID, p.Partition)
			if err == nil && isInternalTopic(rep.topic) {
				// Only the coordinators append to internal topics.
				err = kerr.InvalidTopicException
			}
			parts[i][j] = part{rep: rep, err: err}
			if err != nil {
				continue
			}
			pid, epoch, ok := transactionalBatch(p.Records)
			switch {
			case !ok:
			case txnPid >= 0 && (pid != txnPid || epoch != txnEpoch):
				// One producer per request, as Kafka's ReplicaManager.
				parts[i][j].err = kerr.InvalidProducerIDMapping
			default:
				txnPid, txnEpoch = pid, epoch
				w := &txnWrite{rep: rep}
				parts[i][j].txn = w
				txnWrites = append(txnWrites, w)
			}
		}
	}
	if len(txnWrites) > 0 {
		b.verifyTxnWrites(req.TransactionID, txnPid, txnEpoch, txnWrites, produceTxnOp(req.Version))
	}
	var waits []pending
	for i := range req.Topics {
		t := &req.Topics[i]
		rt := respTopic(t)
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		for j, p := range t.Partitions {
			rp := &rt.Partitions[j]
			rp.Default()
			rp.Partition = p.Partition
			rep, err := parts[i][j].rep, parts[i][j].err
			var guard *txnGuard
			if w := parts[i][j].txn; err == nil && w != nil {
				guard, err = w.guard, w.err
			}
			if err == nil {
				var base, end int64
				base, end, err = rep.appendAsLeaderGuarded(p.Records, req.Acks, guard)
				b.c.markProduce(b.id, rep.topic, len(p.Records), end-base, err)
				if err == nil {
					rp.BaseOffset = base
					rp.LogStartOffset = rep.log.LogStartOffset()
					if req.Acks == -1 {
						waits = append(waits, pending{rp, rep, end})
					}
				}
			}
			rp.ErrorCode = errCode(err)
			if err != nil {
				rp.BaseOffset = -1 // Kafka's INVALID_OFFSET
			}
			var re *recordErrors
			if errors.As(err, &re) && req.Version >= 8 {
				// KIP-467: the refused records, and the log start
				// offset, as Kafka answers a failed append.
				for _, e := range re.records {
					er := kmsg.NewProduceResponseTopicPartitionErrorRecord()
					er.RelativeOffset, er.ErrorMessage = e.index, kmsg.StringPtr(e.msg)
					rp.ErrorRecords = append(rp.ErrorRecords, er)
				}
				rp.ErrorMessage = kmsg.StringPtr(re.msg)
				rp.LogStartOffset = rep.log.LogStartOffset()
			}
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if req.Acks == 0 {
		// No response; but a failed acks=0 produce closes the
		// connection, as Kafka does, so the client notices and
		// refreshes its metadata.
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 {
					return nil, errCloseConn
				}
			}
		}
		return nil, errNoResponse
	}
	if len(waits) > 0 {
		ctx, cancel := context.WithTimeout(b.ctx, requestTimeout(req.TimeoutMillis))
		defer cancel()
		for _, w := range waits {
			if err := w.rep.waitHW(ctx, w.end); err != nil {
				w.rp.ErrorCode = errCode(err)
			}
		}
	}
	return resp, nil
}
