package kcluster

// DeleteRecords v0-v2 (KIP-107): the leader advances the partition's log
// start offset to the given offset (-1: the high watermark) and deletes
// the segments wholly below it; followers follow the leader's log start
// from their next fetch (fetcher.go) and report their own in the fetch
// after. As Kafka's, the answer waits until the low watermark (the
// smallest log start over the leader and the followers on live brokers)
// reaches the offset, or the request's timeout (REQUEST_TIMED_OUT).

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { reg(0, 2, (*broker).handleDeleteRecords) }

func (b *broker) handleDeleteRecords(req *kmsg.DeleteRecordsRequest, r *request) (*kmsg.DeleteRecordsResponse, error) {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewDeleteRecordsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewDeleteRecordsResponseTopicPartition()
			rp.Partition = p.Partition
			rp.LowWatermark = -1
			rep, err := b.lookupPartition(t.Topic, [16]byte{}, p.Partition)
			if err == nil && isInternalTopic(rep.topic) {
				err = kerr.PolicyViolation
			}
			if err == nil {
				rp.LowWatermark, err = rep.deleteRecords(p.Offset)
			}
			if err == nil {
				rp.LowWatermark, err = rep.waitLowWatermark(b.ctx, requestTimeout(req.TimeoutMillis), rp.LowWatermark)
			}
			rp.ErrorCode = errCode(err)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// deleteRecords advances the leader's log start offset to offset (-1: the
// high watermark) and returns the new log start.
func (r *partition) deleteRecords(offset int64) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed || r.mu.leader != r.b.id {
		return -1, kerr.NotLeaderForPartition
	}
	if offset == -1 {
		offset = r.mu.hw
	}
	if offset < 0 || offset > r.mu.hw {
		return -1, kerr.OffsetOutOfRange
	}
	if err := r.log.DeleteBefore(offset); err != nil {
		r.b.log.Error("deleting records", "topic", r.topic, "partition", r.part, "err", err)
		return -1, kerr.KafkaStorageError
	}
	r.notify()
	return r.log.LogStartOffset(), nil
}

// noteFollowerStart records a follower's log start offset from its fetch.
func (r *partition) noteFollowerStart(id int32, start int64) {
	r.mu.Lock()
	f := r.mu.followers[id]
	changed := f != nil && f.logStart != start
	if changed {
		f.logStart = start
	}
	r.mu.Unlock()
	if changed {
		r.notify()
	}
}

// lowWatermark is the smallest log start offset over the leader and the
// followers on unfenced brokers (-1 for one not heard from yet).
func (r *partition) lowWatermark() (int64, error) {
	r.b.mu.RLock()
	fenced := map[int32]bool{}
	for id, br := range r.b.mu.state.Brokers {
		fenced[id] = br.Fenced
	}
	r.b.mu.RUnlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed || r.mu.leader != r.b.id {
		return -1, kerr.NotLeaderForPartition
	}
	low := r.log.LogStartOffset()
	for id, f := range r.mu.followers {
		if fb, known := fenced[id]; !known || fb || !slices.Contains(r.mu.replicas, id) {
			continue
		}
		low = min(low, f.logStart)
	}
	return low, nil
}

// waitLowWatermark waits until the low watermark reaches target.
func (r *partition) waitLowWatermark(ctx context.Context, timeout time.Duration, target int64) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ch := r.changed()
		low, err := r.lowWatermark()
		if err != nil || low >= target {
			return low, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return low, kerr.RequestTimedOut
		}
	}
}
