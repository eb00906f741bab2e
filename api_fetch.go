package kcluster

// Fetch v4-v18 (KIP-74 response size limits, KIP-227 fetch sessions
// declined: the session id is always 0 and every response is full, KIP-320
// leader epochs, KIP-392 preferred read replica -1, KIP-516 topic ids from
// v13, KIP-903 replica state from v15, KIP-1166 from v18: a follower names
// the high watermark it knows, and one behind the leader's is answered at
// once rather than parked, so it learns the new one). Followers fetch with
// a replica id; they read up to the log end and report their log-end
// offset through the fetch offset. Consumers read below the high watermark
// (read_uncommitted) or the last stable offset (read_committed, KIP-98:
// with the aborted transactions of the returned range, from the
// aborted-transaction index).

import (
	"context"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/network"
)

func init() { reg(4, 18, (*broker).handleFetch) }

func (b *broker) handleFetch(req *kmsg.FetchRequest, r *request) (*kmsg.FetchResponse, error) {
	follower := req.ReplicaID
	if req.Version >= 15 {
		follower = req.ReplicaState.ID
	}
	if follower < 0 {
		follower = -1
	}
	maxWait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	if maxWait < 0 {
		maxWait = 0
	}
	// A parked fetch is answered a little before its MaxWait: a client
	// whose read deadline is its MaxWait (kafka-go's reader) would
	// otherwise race the empty answer against its own timeout.
	deadline := time.Now().Add(maxWait - min(maxWait/20, 5*time.Millisecond))
	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = 1 << 30
	}
	// A follower's fetch (a kcluster broker, dialed through the
	// cluster's network) is held past its MaxWait for as long as its
	// connection stands (hold.go) and it has nothing to tell: an idle
	// follower then sends nothing, rather than a fetch every
	// replica.fetch.wait.max.ms. Up to its MaxWait it is a parked fetch
	// like any other (answered when data comes, when the high watermark
	// it names is behind, KIP-1166, or on an error); at MaxWait it is
	// answered if the log start offset it names is behind the leader's,
	// as it would have learned the new one then, and otherwise held until
	// one of these happens, the connection stops standing (then MaxWait
	// applies again) or the broker stops. The follower
	// stays as caught up as fetching every MaxWait would have kept it:
	// at the log end it is never dropped from the ISR, and when an append
	// wakes its fetch it counts as caught up until then (read's reread).
	//
	// A follower that gains a partition while this fetch is parked or
	// held, which does not name it, nudges the connection (fetcher.addPart,
	// network.Nudge): the fetch is answered at once, as if the follower's
	// next fetch had come, and the follower fetches again with the new
	// partition on the same connection.
	var held, nudge <-chan struct{}
	nudged := false
	if follower >= 0 && r.conn != nil && network.Peer(r.conn) == follower {
		if w, ok := b.c.net.Watch(r.conn); ok {
			held = w
			defer b.c.net.Unwatch(w)
		}
		var done func()
		nudge, done = b.c.net.Nudged(r.conn)
		defer done()
	}
	synced := false
	// A parked fetch is woken by a change of any partition it reads
	// (partition.notify), registered before the read that decides to
	// park, so no change between the two is missed.
	wake := make(chan struct{}, 1)
	var watched []*partition
	defer func() {
		for _, p := range watched {
			p.unwatchFetch(wake)
		}
	}()
	for {
		resp, total, hasErr, hwBehind, startBehind, bufs, parts := b.fetchOnce(req, follower, maxBytes, watched == nil)
		if hasErr && follower >= 0 && !synced {
			// A follower may know of a partition or leader epoch
			// this broker has not applied yet (a topic just created,
			// a leader just elected): catch up with the controller
			// and look again, rather than send the follower into its
			// replica.fetch.backoff.ms.
			synced = true
			b.giveBack(bufs)
			b.readYourWrites()
			continue
		}
		past := !time.Now().Before(deadline)
		if total >= int(req.MinBytes) || hasErr || hwBehind || nudged || (past && (held == nil || startBehind)) {
			b.c.markFetch(b.id, follower, resp)
			if r.sess != nil {
				// The batches go back to the pool once the
				// response is written.
				r.sess.lent = append(r.sess.lent, bufs...)
			}
			return resp, nil
		}
		b.giveBack(bufs)
		if watched == nil && len(parts) > 0 {
			for _, p := range parts {
				p.watchFetch(wake)
			}
			watched = parts
			continue // read again: a change may have come before the watch
		}
		var t *time.Timer
		var expired <-chan time.Time
		if !past {
			t = time.NewTimer(time.Until(deadline))
			expired = t.C
		}
		select {
		case <-wake:
		case <-expired:
		case <-held:
			held = nil // the connection no longer stands
		case <-nudge:
			nudged = true
		case <-b.ctx.Done():
			return nil, context.Canceled
		}
		if t != nil {
			t.Stop()
		}
	}
}

// fetchOnce reads what the fetch asks for once. bufs are the pooled buffers
// the response's record batches are in; parts, when collect is set, the
// partitions it read. hwBehind reports a follower (v18+) that named a high
// watermark below the leader's (KIP-1166), startBehind one that named a
// log start offset below the leader's. A read after the first (collect
// unset) is a reread of a parked fetch (partition.read).
func (b *broker) fetchOnce(req *kmsg.FetchRequest, follower int32, maxBytes int, collect bool) (resp *kmsg.FetchResponse, total int, hasErr, hwBehind, startBehind bool, bufs [][]byte, parts []*partition) {
	resp = req.ResponseKind().(*kmsg.FetchResponse)
	resp.SessionID = 0
	firstData := true
	// A follower's broker epoch (KIP-903, Fetch v15+): the leader tells
	// a restarted follower from its previous incarnation by it.
	followerEpoch := int64(-1)
	if req.Version >= 15 {
		followerEpoch = req.ReplicaState.Epoch
	}
	resp.Topics = make([]kmsg.FetchResponseTopic, 0, len(req.Topics))
	for _, t := range req.Topics {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		rt.Partitions = make([]kmsg.FetchResponseTopicPartition, 0, len(t.Partitions))
		name := t.Topic
		if req.Version >= 13 {
			name = ""
		}
		for _, p := range t.Partitions {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition = p.Partition
			rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
			// Kafka sends an empty record set, not a null one; librdkafka
			// and kafka-go reject null (size -1) in non-flexible versions.
			rp.RecordBatches = []byte{}
			rep, err := b.lookupPartition(name, t.TopicID, p.Partition)
			if err == nil && collect {
				parts = append(parts, rep)
			}
			if err == nil {
				if req.Version >= 13 {
					rt.Topic = rep.topic
				}
				limit := int(p.PartitionMaxBytes)
				if !firstData {
					limit = min(limit, maxBytes-total)
				}
				var res fetchResult
				res, err = rep.read(follower, followerEpoch, p.FetchOffset, max(limit, 1), p.CurrentLeaderEpoch, req.IsolationLevel == 1, !collect, b.c.bufs.get)
				if follower >= 0 && err == nil {
					rep.noteFollowerStart(follower, p.LogStartOffset) // DeleteRecords' low watermark
				}
				rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = res.hw, res.lso, res.logStart
				if follower >= 0 && req.Version >= 18 && err == nil && p.HighWatermark != math.MaxInt64 && p.HighWatermark < res.hw {
					hwBehind = true // -1: not known yet
				}
				if follower >= 0 && err == nil && p.LogStartOffset >= 0 && p.LogStartOffset < res.logStart {
					startBehind = true
				}
				if err == nil && len(res.records) > 0 {
					if !firstData && len(res.records) > limit {
						b.c.bufs.put(res.records) // KIP-74: only the first may exceed
					} else {
						firstData = false
						rp.RecordBatches = res.records
						bufs = append(bufs, res.records)
						total += len(res.records)
						for _, a := range res.aborted {
							at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
							at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
							rp.AbortedTransactions = append(rp.AbortedTransactions, at)
						}
					}
				}
			}
			if err != nil {
				rp.ErrorCode = errCode(err)
				hasErr = true
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, total, hasErr, hwBehind, startBehind, bufs, parts
}
