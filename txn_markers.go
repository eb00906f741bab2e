package kcluster

// Ending a transaction (Kafka's TransactionCoordinator.endTransaction and
// TransactionMarkerChannelManager): the coordinator writes the Prepare
// state, then, once it is committed, a marker to every partition of the
// transaction through that partition's leader (WriteTxnMarkers over the
// cluster network, like every other inter-broker request), then the
// Complete state. Marker senders run in goroutines of their own
// (txnCoordinator.wg), without the shard's lock.

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// epochExhausted is Kafka's isProducerEpochExhausted: the epoch cannot be
// bumped once more and still leave room for the fencing bump.
func epochExhausted(e int16) bool { return e >= 32767-1 }

// Transaction versions, as the transaction.version feature's levels and
// the ClientTransactionVersion of a state change (Kafka's
// TransactionVersion): at tv2 every end of a transaction bumps the epoch
// (KIP-890 part 2).
const (
	tv0 int16 = 0
	tv2 int16 = 2
)

// prepareEndLocked moves m (installed in ts, Ongoing, or for an abort at
// transaction version 2 also Empty or Complete: noPartitionAdded) to
// PrepareCommit/PrepareAbort as Kafka's prepareAbortOrCommit: at
// transaction version tv 2 the epoch is bumped, and nextPid (>= 0 when
// the epoch is exhausted) is the producer id the transaction completes
// with. It writes the state and starts the markers.
func (ts *txnShard) prepareEndLocked(m *txnMeta, commit bool, tv int16, nextPid int64, noPartitionAdded bool) (*txnMeta, error) {
	nm := m.clone()
	nm.state = kmsg.TransactionStatePrepareAbort
	if commit {
		nm.state = kmsg.TransactionStatePrepareCommit
	}
	if tv >= tv2 {
		nm.lastEpoch, nm.epoch = m.epoch, m.epoch+1
	}
	nm.nextPid, nm.tv = nextPid, tv
	if noPartitionAdded {
		nm.startTs = time.Now().UnixMilli()
	}
	if err := ts.writeLocked(nm); err != nil {
		return nil, err
	}
	ts.txns[nm.id] = nm
	ts.startMarkersLocked(nm, ts.c.writtenLocked())
	return nm, nil
}

// fenceLocked aborts m's ongoing transaction with the producer epoch
// bumped, so its producer is fenced (Kafka's prepareFenceProducerEpoch,
// the PrepareEpochFence transition, and the abort that follows it): a new
// InitProducerId for the id, or the transaction's timeout. Kafka never
// writes PrepareEpochFence; the record is the PrepareAbort it turns into.
// The abort is the coordinator's, at the finalized transaction.version
// tv: below 2 the epoch is bumped once and the retry of the previous epoch
// is forgotten; at 2 it is bumped once too (never twice: an epoch of
// 32766 becomes 32767, not an overflow), and an exhausted epoch completes
// with nextPid, a new producer id, as an EndTxn would.
func (ts *txnShard) fenceLocked(m *txnMeta, tv int16, nextPid int64) error {
	if m.epoch == 32767 {
		return kerr.InvalidTxnState // cannot happen: a client's epoch is never above 32766
	}
	if tv >= tv2 {
		_, err := ts.prepareEndLocked(m, false, tv, nextPid, false)
		return err
	}
	fenced := m.clone()
	fenced.epoch, fenced.lastEpoch = m.epoch+1, -1
	_, err := ts.prepareEndLocked(fenced, false, tv0, -1, false)
	return err
}

// completed is Kafka's prepareComplete: the Complete state after
// m's Prepare state, with no partitions; at transaction version 2 a
// transaction whose epoch was exhausted completes with its next producer
// id, at epoch 0.
func completed(m *txnMeta) *txnMeta {
	nm := m.clone()
	nm.sending = false
	nm.state = kmsg.TransactionStateCompleteAbort
	if m.state == kmsg.TransactionStatePrepareCommit {
		nm.state = kmsg.TransactionStateCompleteCommit
	}
	if m.tv >= tv2 && m.nextPid >= 0 {
		nm.pid, nm.epoch = m.nextPid, 0
	}
	nm.nextPid = -1
	nm.parts = map[topicPartition]struct{}{}
	return nm
}

// startMarkersLocked launches the marker sender of a Prepare state whose
// record the shard's log has below after.
func (ts *txnShard) startMarkersLocked(m *txnMeta, after int64) {
	if m.sending {
		return
	}
	m.sending = true
	snap := m.clone()
	tc := ts.tc
	tc.wg.Add(1)
	go func() {
		defer tc.wg.Done()
		tc.sendMarkers(ts.c, snap, after)
	}()
}

// sendMarkers writes the markers of snap's Prepare state to the leader of
// every partition of the transaction (WriteTxnMarkers over the network),
// retrying until each is written or the partition is gone, then writes the
// Complete state. It begins once the Prepare state is committed (its
// record is below after): a coordinator that took over without it would
// find the transaction Ongoing, and might end it the other way. It gives
// up when the shard is unloaded; the next coordinator resumes from the log.
func (tc *txnCoordinator) sendMarkers(c *coordinatorContext[*txnShard], snap *txnMeta, after int64) {
	if err := c.waitCommitted(c.ctx, after); err != nil {
		return
	}
	commit := snap.state == kmsg.TransactionStatePrepareCommit
	pending := snap.sortedParts()
	backoff := tc.b.cfg.replicaFetchBackoff
	for len(pending) > 0 {
		if c.ctx.Err() != nil {
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
				failed := tc.writeMarkers(leader, snap, commit, c.epoch, ps)
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
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-changed:
			t.Stop()
		case <-t.C:
		}
	}
	// The Complete state: while its write fails because the partition's
	// ISR is short (or another append error a coordinator outlives), it
	// is retried after a backoff or as soon as the metadata changes (the
	// ISR grows back), as Kafka's TransactionMarkerChannelManager retries
	// its log appends; the markers are written already. A lost
	// coordinatorship ends it: the Prepare state stays in the log and the
	// next coordinator finishes the transaction.
	var written bool
	var end int64
	for {
		retry := false
		tc.b.mu.RLock()
		changed := tc.b.mu.changed
		tc.b.mu.RUnlock()
		end, _ = c.locked(func(ts *txnShard) {
			m := ts.txns[snap.id]
			if m == nil || m.pid != snap.pid || m.epoch != snap.epoch || m.state != snap.state {
				return
			}
			nm := completed(m)
			if err := ts.writeLocked(nm); err != nil {
				tc.b.log.Debug("completing transaction", "transactional_id", m.id, "err", err)
				if errors.Is(err, kerr.NotCoordinator) {
					m.sending = false
				} else {
					retry = true
				}
				return
			}
			ts.txns[nm.id] = nm
			ts.completedLocked()
			written = true
		})
		if !retry {
			break
		}
		t := time.NewTimer(backoff)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-changed:
			t.Stop()
		case <-t.C:
		}
	}
	if !written {
		return
	}
	if err := c.await(end, tc.cfg.requestTimeout); err != nil {
		tc.b.log.Debug("completing transaction", "transactional_id", snap.id, "err", err)
	}
	tc.b.c.notifyEvent()
}

// writeMarkers sends one WriteTxnMarkers to leader for ps and returns the
// partitions still to do.
func (tc *txnCoordinator) writeMarkers(leader int32, m *txnMeta, commit bool, coordEpoch int32, ps []topicPartition) []topicPartition {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.SetVersion(2)
	mk := kmsg.NewWriteTxnMarkersRequestMarker()
	mk.ProducerID, mk.ProducerEpoch, mk.Committed, mk.CoordinatorEpoch = m.pid, m.epoch, commit, coordEpoch
	mk.TransactionVersion = int8(m.tv) // KIP-1228: a leader checks a version 2 marker's epoch strictly
	byTopic(ps, func(topic string, partitions []int32) {
		t := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		t.Topic, t.Partitions = topic, partitions
		mk.Topics = append(mk.Topics, t)
	})
	req.Markers = append(req.Markers, mk)
	// The leader waits up to request.timeout.ms for the markers'
	// replication: wait a little longer for its answer.
	ctx, cancel := context.WithTimeout(tc.b.ctx, tc.cfg.requestTimeout+time.Second)
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
