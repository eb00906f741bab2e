package kcluster

// KIP-932 share consumption on the partition leaders: ShareFetch v1-v2 and
// ShareAcknowledge v1-v2, Kafka 4.2's versions (v0 was 4.0's early access,
// removed in 4.1; v2 adds the record-limit acquire mode (KIP-1206) and
// RENEW acknowledgements (KIP-1222)). Share sessions and share-partitions
// are the share manager's (share_session.go, share_partition.go). Both
// answer UNSUPPORTED_VERSION while share.version is below 1.

import (
	"bytes"
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	reg(1, 2, (*broker).handleShareFetch)
	reg(1, 2, (*broker).handleShareAcknowledge)
}

// Share acquire modes (ShareFetch v2, KIP-1206).
const (
	acquireBatchOptimized int8 = 0
	acquireRecordLimit    int8 = 1
)

type ackBatch struct {
	first, last int64
	types       []int8
}

// shareAck applies a partition's acknowledgement batches: its error.
func (b *broker) shareAck(group, member string, p tidp, batches []ackBatch, renew bool, now time.Time) int16 {
	if len(batches) == 0 {
		return 0
	}
	prev := int64(-1)
	for _, ab := range batches {
		if ab.first < 0 || ab.first > ab.last || ab.first <= prev {
			return kerr.InvalidRequest.Code
		}
		for _, t := range ab.types {
			if t == ackRenew && !renew {
				return kerr.InvalidRequest.Code
			}
		}
		prev = ab.last
	}
	sp, err := b.shares.partition(sharePartitionKey{group, p.id, p.p})
	if err != nil {
		return errCode(err)
	}
	for _, ab := range batches {
		if err := sp.acknowledge(member, ab.first, ab.last, ab.types, now); err != nil {
			return errCode(err)
		}
	}
	return 0
}

func (b *broker) currentLeader(p tidp) (int32, int32) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if t := b.mu.state.TopicsByID[p.id]; t != nil && int(p.p) < len(t.Partitions) && p.p >= 0 {
		return t.Partitions[p.p].Leader, t.Partitions[p.p].LeaderEpoch
	}
	return -1, -1
}

func (b *broker) handleShareFetch(req *kmsg.ShareFetchRequest, r *request) (*kmsg.ShareFetchResponse, error) {
	resp := req.ResponseKind().(*kmsg.ShareFetchResponse)
	if !b.shareEnabled() {
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		return resp, nil
	}
	var group, member string
	if req.GroupID != nil {
		group = *req.GroupID
	}
	if req.MemberID != nil {
		member = *req.MemberID
	}
	if group == "" || member == "" || len(member) > 36 {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	renewOnly := req.Version >= 2 && req.IsRenewAck
	if renewOnly && (req.MaxBytes != 0 || req.MinBytes != 0 || req.MaxRecords != 0 || req.MaxWaitMillis != 0) {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	resp.AcquisitionLockTimeoutMillis = int32(b.shareGroupDuration(group, "share.record.lock.duration.ms", b.cfg.group.shareLock).Milliseconds())
	key := shareSessionKey{group, member}
	var add, forget []tidp
	acks := map[tidp][]ackBatch{}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			tp := tidp{t.TopicID, p.Partition}
			add = append(add, tp)
			for _, ab := range p.AcknowledgementBatches {
				acks[tp] = append(acks[tp], ackBatch{ab.FirstOffset, ab.LastOffset, ab.AcknowledgeTypes})
			}
		}
	}
	for _, t := range req.ForgottenTopicsData {
		for _, p := range t.Partitions {
			forget = append(forget, tidp{t.TopicID, p})
		}
	}
	sm := b.shares
	var sess *shareSession
	switch req.ShareSessionEpoch {
	case 0:
		if len(acks) > 0 {
			resp.ErrorCode = kerr.InvalidRequest.Code
			return resp, nil
		}
		sess = sm.openSession(key, add, r.conn)
	case -1:
	default:
		var err error
		if sess, err = sm.session(key, req.ShareSessionEpoch, add, forget); err != nil {
			resp.ErrorCode = errCode(err)
			return resp, nil
		}
	}

	parts := map[tidp]*kmsg.ShareFetchResponseTopicPartition{}
	order := []tidp{}
	entry := func(p tidp) *kmsg.ShareFetchResponseTopicPartition {
		if rp := parts[p]; rp != nil {
			return rp
		}
		rp := kmsg.NewShareFetchResponseTopicPartition()
		rp.Partition = p.p
		rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = -1, -1
		parts[p] = &rp
		order = append(order, p)
		return &rp
	}
	now := time.Now()
	for _, p := range sortedTidps(acks) {
		entry(p).AcknowledgeErrorCode = b.shareAck(group, member, p, acks[p], req.Version >= 2, now)
	}
	if req.ShareSessionEpoch == -1 {
		if err := sm.closeSession(key); err != nil {
			resp.ErrorCode = errCode(err)
			return resp, nil
		}
		resp.Topics = shareFetchTopics(parts, order)
		return resp, nil
	}
	if renewOnly {
		sm.bump(sess)
		resp.Topics = shareFetchTopics(parts, order)
		return resp, nil
	}
	// A new session's partitions are all in its first answer; later,
	// those just added, and those with records or an error.
	if req.ShareSessionEpoch == 0 {
		for _, p := range add {
			entry(p)
		}
	}
	maxRecords := req.MaxRecords
	if maxRecords <= 0 {
		maxRecords = 500
	}
	strict := req.Version >= 2 && req.ShareAcquireMode == acquireRecordLimit
	readCommitted := b.shareGroupConfig(group, "share.isolation.level") == "read_committed"
	maxWait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	deadline := time.Now().Add(maxWait - min(maxWait/20, 5*time.Millisecond))
	wake := make(chan struct{}, 1)
	var watched []*partition
	defer func() {
		for _, p := range watched {
			p.unwatchFetch(wake)
		}
	}()
	for {
		var total int32
		var sps []*sharePartition
		for _, p := range sortedTidpList(sm.sessionParts(sess)) {
			sp, err := sm.partition(sharePartitionKey{group, p.id, p.p})
			if err != nil {
				rp := entry(p)
				rp.ErrorCode = errCode(err)
				if err == kerr.NotLeaderForPartition {
					rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = b.currentLeader(p)
				}
				continue
			}
			sps = append(sps, sp)
			if total >= maxRecords {
				continue
			}
			got, err := sp.acquire(member, maxRecords-total, strict, readCommitted, time.Now())
			if err != nil {
				entry(p).ErrorCode = errCode(err)
				continue
			}
			if got.n > 0 {
				rp := entry(p)
				rp.Records, rp.AcquiredRecords = got.records, got.ranges
				total += got.n
			}
		}
		if total > 0 || len(parts) > 0 && anyShareError(parts) || !time.Now().Before(deadline) {
			break
		}
		if watched == nil && len(sps) > 0 {
			for _, sp := range sps {
				sp.rep.watchFetch(wake)
				watched = append(watched, sp.rep)
			}
			continue
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-wake:
			t.Stop()
		case <-t.C:
		case <-b.ctx.Done():
			t.Stop()
			return nil, context.Canceled
		}
	}
	sm.bump(sess)
	resp.Topics = shareFetchTopics(parts, order)
	return resp, nil
}

func anyShareError(parts map[tidp]*kmsg.ShareFetchResponseTopicPartition) bool {
	for _, rp := range parts {
		if rp.ErrorCode != 0 || rp.AcknowledgeErrorCode != 0 {
			return true
		}
	}
	return false
}

func shareFetchTopics(parts map[tidp]*kmsg.ShareFetchResponseTopicPartition, order []tidp) []kmsg.ShareFetchResponseTopic {
	var out []kmsg.ShareFetchResponseTopic
	idx := map[[16]byte]int{}
	for _, p := range order {
		i, ok := idx[p.id]
		if !ok {
			i = len(out)
			idx[p.id] = i
			t := kmsg.NewShareFetchResponseTopic()
			t.TopicID = p.id
			out = append(out, t)
		}
		out[i].Partitions = append(out[i].Partitions, *parts[p])
	}
	return out
}

func sortedTidps[V any](m map[tidp]V) []tidp {
	out := make([]tidp, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	return sortedTidpList(out)
}

func sortedTidpList(ps []tidp) []tidp {
	slices.SortFunc(ps, func(a, b tidp) int {
		if c := bytes.Compare(a.id[:], b.id[:]); c != 0 {
			return c
		}
		return cmp.Compare(a.p, b.p)
	})
	return ps
}

func (b *broker) handleShareAcknowledge(req *kmsg.ShareAcknowledgeRequest, r *request) (*kmsg.ShareAcknowledgeResponse, error) {
	resp := req.ResponseKind().(*kmsg.ShareAcknowledgeResponse)
	if !b.shareEnabled() {
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		return resp, nil
	}
	var group, member string
	if req.GroupID != nil {
		group = *req.GroupID
	}
	if req.MemberID != nil {
		member = *req.MemberID
	}
	if group == "" || member == "" || len(member) > 36 {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	resp.AcquisitionLockTimeoutMillis = int32(b.shareGroupDuration(group, "share.record.lock.duration.ms", b.cfg.group.shareLock).Milliseconds())
	key := shareSessionKey{group, member}
	sm := b.shares
	var sess *shareSession
	switch req.ShareSessionEpoch {
	case 0:
		resp.ErrorCode = kerr.InvalidShareSessionEpoch.Code
		return resp, nil
	case -1:
	default:
		var err error
		if sess, err = sm.session(key, req.ShareSessionEpoch, nil, nil); err != nil {
			resp.ErrorCode = errCode(err)
			return resp, nil
		}
	}
	now := time.Now()
	for _, t := range req.Topics {
		rt := kmsg.NewShareAcknowledgeResponseTopic()
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewShareAcknowledgeResponseTopicPartition()
			rp.Partition = p.Partition
			rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = -1, -1
			var batches []ackBatch
			for _, ab := range p.AcknowledgementBatches {
				batches = append(batches, ackBatch{ab.FirstOffset, ab.LastOffset, ab.AcknowledgeTypes})
			}
			tp := tidp{t.TopicID, p.Partition}
			rp.ErrorCode = b.shareAck(group, member, tp, batches, req.Version >= 2, now)
			if rp.ErrorCode == kerr.NotLeaderForPartition.Code {
				rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = b.currentLeader(tp)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if req.ShareSessionEpoch == -1 {
		if err := sm.closeSession(key); err != nil {
			resp.ErrorCode = errCode(err)
		}
		return resp, nil
	}
	sm.bump(sess)
	return resp, nil
}
