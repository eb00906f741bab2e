package kcluster

// The transaction admin APIs (KIP-664): DescribeProducers v0 (a partition
// leader's producer state, as Kafka's ProducerStateEntry: each producer's
// epoch, last sequence, last timestamp, last marker's coordinator epoch and
// open transaction), DescribeTransactions v0 (a coordinator's state of
// transactional ids) and ListTransactions v0-v2 (each broker lists the
// transactional ids it coordinates; v1 KIP-994 duration filter, v2
// KIP-1152 transactional id pattern).

import (
	"regexp"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	reg(0, 0, (*broker).handleDescribeProducers)
	reg(0, 0, (*broker).handleDescribeTransactions)
	reg(0, 2, (*broker).handleListTransactions)
}

func (b *broker) handleDescribeProducers(req *kmsg.DescribeProducersRequest, r *request) (*kmsg.DescribeProducersResponse, error) {
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewDescribeProducersResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewDescribeProducersResponseTopicPartition()
			rp.Partition = p
			rep, err := b.lookupPartition(t.Topic, [16]byte{}, p)
			if err == nil {
				rp.ActiveProducers, err = rep.describeProducers()
			}
			rp.ErrorCode = errCode(err)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// describeProducers lists the producers the leader knows, by id.
func (r *partition) describeProducers() ([]kmsg.DescribeProducersResponseTopicPartitionActiveProducer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed || r.mu.leader != r.b.id {
		return nil, kerr.NotLeaderForPartition
	}
	var out []kmsg.DescribeProducersResponseTopicPartitionActiveProducer
	for pid, e := range r.mu.producers {
		ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
		ap.ProducerID, ap.ProducerEpoch = pid, int32(e.epoch)
		ap.LastSequence, ap.LastTimestamp, ap.CoordinatorEpoch, ap.CurrentTxnStartOffset = -1, e.lastTs, e.coordEpoch, -1
		if n := len(e.batches); n > 0 {
			ap.LastSequence = e.batches[n-1].lastSeq
		}
		if first, ok := r.mu.txns.ongoing[pid]; ok {
			ap.CurrentTxnStartOffset = first
		}
		out = append(out, ap)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ProducerID < out[j].ProducerID })
	return out, nil
}

func (b *broker) handleDescribeTransactions(req *kmsg.DescribeTransactionsRequest, r *request) (*kmsg.DescribeTransactionsResponse, error) {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	for _, id := range req.TransactionalIDs {
		ts := kmsg.NewDescribeTransactionsResponseTransactionState()
		ts.TransactionalID = id
		ts.ProducerID, ts.ProducerEpoch, ts.StartTimestamp = -1, -1, -1
		err := b.txns.withTxn(id, func(_ *txnShard, m *txnMeta) error {
			if m == nil {
				return kerr.TransactionalIDNotFound
			}
			ts.State = m.state.String()
			ts.TimeoutMillis, ts.StartTimestamp = m.timeout, m.startTs
			ts.ProducerID, ts.ProducerEpoch = m.pid, m.epoch
			byTopic(m.sortedParts(), func(topic string, partitions []int32) {
				t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
				t.Topic, t.Partitions = topic, partitions
				ts.Topics = append(ts.Topics, t)
			})
			return nil
		})
		ts.ErrorCode = errCode(err)
		resp.TransactionStates = append(resp.TransactionStates, ts)
	}
	return resp, nil
}

func (b *broker) handleListTransactions(req *kmsg.ListTransactionsRequest, r *request) (*kmsg.ListTransactionsResponse, error) {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	states := map[string]bool{}
	known := map[string]bool{}
	for _, s := range kmsg.TransactionStateStrings() {
		known[s] = true
	}
	for _, s := range req.StateFilters {
		if !known[s] {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, s)
			continue
		}
		states[s] = true
	}
	pids := map[int64]bool{}
	for _, p := range req.ProducerIDFilters {
		pids[p] = true
	}
	var pattern *regexp.Regexp
	if req.Version >= 2 && req.TransactionalIDPattern != nil && *req.TransactionalIDPattern != "" {
		var err error
		if pattern, err = regexp.Compile(*req.TransactionalIDPattern); err != nil {
			resp.ErrorCode = kerr.InvalidRegularExpression.Code
			return resp, nil
		}
	}
	now := time.Now().UnixMilli()
	resp.TransactionStates, _ = gather(b.txns.rt, func(ts *txnShard) []kmsg.ListTransactionsResponseTransactionState {
		var out []kmsg.ListTransactionsResponseTransactionState
		for _, m := range ts.txns {
			switch {
			case len(req.StateFilters) > 0 && !states[m.state.String()]:
			case len(pids) > 0 && !pids[m.pid]:
			case req.Version >= 1 && req.DurationFilterMillis >= 0 && (m.state != kmsg.TransactionStateOngoing || now-m.startTs < req.DurationFilterMillis):
			case pattern != nil && !pattern.MatchString(m.id):
			default:
				st := kmsg.NewListTransactionsResponseTransactionState()
				st.TransactionalID, st.ProducerID, st.TransactionState = m.id, m.pid, m.state.String()
				out = append(out, st)
			}
		}
		return out
	})
	sort.Slice(resp.TransactionStates, func(i, j int) bool {
		return resp.TransactionStates[i].TransactionalID < resp.TransactionStates[j].TransactionalID
	})
	return resp, nil
}
