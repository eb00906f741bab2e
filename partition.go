package kcluster

// Kafka's Partition: one broker's copy of one partition, its log and the
// broker's view of the partition's leadership.
//
// As leader it validates and appends produced batches (offsets and the
// leader epoch assigned here), refuses acks=all below min.insync.replicas,
// serves fetches (a follower's fetch offset is its log end:
// replica.updateFetchState), keeps the high watermark at the smallest log
// end over the ISR (maybeAdvanceHWLocked; it moves only through
// advanceHWLocked and, on truncation, lowerHWLocked), proposes ISR shrinks
// and expansions (proposeISR; isr.go sends them to the controller), and
// answers acks=all once the high watermark passes the append (waitHW). As
// follower it is fed by a fetcher (fetcher.go), which truncates it by leader
// epoch first (KIP-101, KIP-279). Requests a leader serves check the leader
// epoch they name in one place (checkLeaderEpochLocked, KIP-320). Waiters
// are woken per partition (notify).
//
// Concurrency: all mutable state sits in mu; the log has its own lock, and
// appends happen with mu held so offsets are assigned in order. watch has
// a lock of its own, a leaf.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kcluster/kcluster/internal/invariants"
	"github.com/kcluster/kcluster/metadata"
	"github.com/kcluster/kcluster/segment"
)

// partition is one broker's copy of one partition (see the top of this
// file): its own log in its own broker's storage, and the broker's view of
// the partition's leadership.
type partition struct {
	b     *broker
	topic string
	id    metadata.TopicID
	part  int32
	dir   *logDir // the log dir its log is in
	log   *segment.Log

	mu struct {
		sync.Mutex
		closed         bool
		leader         int32
		epoch          int32 // leader epoch
		partitionEpoch int32
		replicas       []int32
		isr            []int32
		lc             *logConfig // the topic's effective configs
		hw             int64
		checkpointed   int64              // hw last checkpointed
		followers      map[int32]*replica // leader side
		// needTruncate is set when this replica starts following a new
		// leader epoch: before fetching, it asks the leader for the end
		// of its last epoch and truncates a diverged suffix (KIP-101).
		needTruncate bool
		producers    producerState
		txns         txnTracker          // open transactions (txn_replica.go)
		guards       map[int64]*txnGuard // verifications in flight (KIP-890)
		snapshotAt   int64               // log end at the last producer snapshot
		// future is the copy of its log being made in another dir
		// (AlterReplicaLogDirs, alterlogdirs.go), or nil.
		future *futureReplica
	}

	// watch is how waiters learn that this partition changed (Kafka's
	// delayed operations, watched per partition): an append, a move of
	// the high watermark or log start, a new leader or epoch. ch is
	// closed at the next change (acks=all produces and DeleteRecords
	// wait on it); every parked fetch that reads this partition is
	// poked. So a change wakes only the waiters of its partition.
	watch struct {
		sync.Mutex
		ch      chan struct{}
		fetches map[chan struct{}]struct{}
	}
}

func (r *partition) logName() string {
	return r.topic + "-" + strconv.Itoa(int(r.part)) + "." + r.id.String()[:8]
}

// openPartition opens a replica's log in the dir placeLog picks (want is
// the dir its metadata names), or returns errLogDirOffline.
func openPartition(b *broker, t *metadata.Topic, part int32, lc *logConfig, want metadata.DirectoryID) (*partition, error) {
	r := &partition{b: b, topic: t.Name, id: t.ID, part: part}
	r.mu.lc = lc
	if r.dir = b.placeLog(r.logName(), want); r.dir == nil {
		return nil, errLogDirOffline
	}
	l, err := r.dir.store().OpenLog(r.logName(), segment.LogOptions{SegmentBytes: lc.segmentBytes, IndexIntervalBytes: lc.indexIntervalBytes, FlushMessages: lc.flushMessages})
	if err != nil {
		return nil, err
	}
	r.log = l
	if l.Fresh() {
		// A new log: no producers, transactions or high watermark
		// checkpoint to read back, as the index can hold nothing of
		// it (segment.Log.Fresh).
		r.mu.producers = producerState{}
		r.mu.txns.reset()
	} else {
		if err := r.rebuildProducersLocked(); err != nil {
			l.Close()
			return nil, err
		}
		r.mu.hw = l.HighWatermarkCheckpoint()
	}
	r.dir.parts.Add(1)
	r.mu.checkpointed = r.mu.hw
	r.mu.leader = -1
	r.mu.followers = make(map[int32]*replica)
	if invariants.Enabled {
		b.c.logs.add(b.id, r)
	}
	return r, nil
}

// offline reports whether its log dir failed (or the broker's last one).
func (r *partition) offline() bool { return r.b.offline.Load() || r.dir.offline.Load() }

func (r *partition) close() {
	defer r.notify() // parked fetches answer at once
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeLocked()
}

// closeLocked closes the replica (its future log too, if it was moving:
// the move stops, alterlogdirs.go).
func (r *partition) closeLocked() {
	if r.mu.closed {
		return
	}
	r.mu.closed = true
	if f := r.mu.future; f != nil {
		r.mu.future = nil
		f.log.Close()
	}
	r.dir.parts.Add(-1)
	if invariants.Enabled {
		r.b.c.logs.remove(r.b.id, r)
	}
	if err := r.log.Close(); err != nil {
		r.b.log.Warn("closing log", "topic", r.topic, "partition", r.part, "err", err)
	}
}

// update applies the partition's metadata to the replica: a new leader or
// epoch makes it leader (recording the epoch's start offset, KIP-101) or a
// follower of the new leader. Called with the broker's mu held.
func (r *partition) update(p *metadata.Partition, lc *logConfig) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed {
		return
	}
	newEpoch := p.LeaderEpoch != r.mu.epoch || p.Leader != r.mu.leader
	r.mu.replicas = slices.Clone(p.Replicas)
	r.mu.isr = slices.Clone(p.ISR)
	r.mu.partitionEpoch = p.PartitionEpoch
	if r.mu.lc == nil || !maps.Equal(r.mu.lc.values, lc.values) {
		r.mu.lc = lc
		r.log.SetOptions(segment.LogOptions{SegmentBytes: lc.segmentBytes, IndexIntervalBytes: lc.indexIntervalBytes, FlushMessages: lc.flushMessages})
	}
	if !newEpoch {
		if r.mu.leader == r.b.id {
			r.syncFollowersLocked()
			r.maybeAdvanceHWLocked()
			r.wakeISRForCaughtUpLocked()
		}
		return
	}
	r.mu.leader, r.mu.epoch = p.Leader, p.LeaderEpoch
	if p.Leader == r.b.id {
		if err := r.log.AssignEpoch(p.LeaderEpoch, r.log.LogEndOffset()); err != nil {
			r.b.log.Error("recording leader epoch", "topic", r.topic, "partition", r.part, "err", err)
		}
		now := time.Now()
		r.mu.followers = make(map[int32]*replica)
		for _, id := range p.Replicas {
			if id != r.b.id {
				// Unknown until the follower fetches (Kafka's -1).
				r.mu.followers[id] = newReplica(now)
			}
		}
		r.b.fetchers.remove(r)
		r.maybeAdvanceHWLocked()
	} else {
		r.mu.needTruncate = true
		r.b.fetchers.add(r, p.Leader)
	}
	r.notify()
}

// checkpoint persists the high watermark if it moved (and syncs the log when
// sync is set, on a controlled shutdown).
func (r *partition) checkpoint(sync bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed {
		return
	}
	if r.mu.hw != r.mu.checkpointed {
		if err := r.log.CheckpointHighWatermark(r.mu.hw); err != nil {
			r.b.log.Warn("checkpointing high watermark", "topic", r.topic, "partition", r.part, "err", err)
			return
		}
		r.mu.checkpointed = r.mu.hw
	}
	r.snapshotProducersLocked()
	if sync {
		if err := r.log.Sync(); err != nil {
			r.b.log.Warn("syncing log", "topic", r.topic, "partition", r.part, "err", err)
		}
	}
}

func (r *partition) isLeader() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.leader == r.b.id
}

// maybeAdvanceHWLocked sets the high watermark to the smallest log-end
// offset over the ISR, if that is higher than it was. As Kafka's (since
// 3.7, KIP-966's strict min ISR), it does not move while the ISR is
// smaller than min.insync.replicas (at most the replication factor): a
// record is committed only once that many replicas have it, so any
// replica that leaves the ISR below that size holds every committed
// record, which is what lets the controller elect it from the ELR.
func (r *partition) maybeAdvanceHWLocked() {
	if len(r.mu.isr) < min(r.minISRLocked(), len(r.mu.replicas)) {
		return
	}
	hw := r.log.LogEndOffset()
	for _, id := range r.mu.isr {
		if id == r.b.id {
			continue
		}
		f := r.mu.followers[id]
		if f == nil || f.leo < 0 {
			return
		}
		hw = min(hw, f.leo)
	}
	if hw > r.mu.hw {
		r.advanceHWLocked(hw)
		r.notify()
	}
}

// minISR is the topic's min.insync.replicas, or the broker's.
func (r *partition) minISRLocked() int {
	return r.mu.lc.minISR
}

func (r *partition) maxMessageBytesLocked() int {
	return r.mu.lc.maxMessageBytes
}

// appendAsLeader validates the batches of a produce request, assigns their
// offsets and leader epoch, and appends them. It returns the base offset
// and the log-end offset after the append, or a Kafka error.
func (r *partition) appendAsLeader(records []byte, acks int16) (base, end int64, err error) {
	return r.appendAsLeaderGuarded(records, acks, nil)
}

// appendAsLeaderGuarded is appendAsLeader for a produce whose transaction
// was verified with its coordinator (guard, KIP-890; txn_replica.go).
func (r *partition) appendAsLeaderGuarded(records []byte, acks int16, guard *txnGuard) (base, end int64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed || r.mu.leader != r.b.id {
		return 0, 0, kerr.NotLeaderForPartition
	}
	if r.offline() {
		return 0, 0, kerr.KafkaStorageError
	}
	if acks == -1 && len(r.mu.isr) < r.minISRLocked() {
		return 0, 0, kerr.NotEnoughReplicas
	}
	maxBytes := r.maxMessageBytesLocked()
	if len(records) == 0 {
		return 0, 0, kerr.InvalidRecord
	}
	// Validate everything before changing anything. A batch with
	// refused records is refused with them named (*recordErrors,
	// logvalidator.go).
	now := time.Now().UnixMilli()
	var hdrs []segment.BatchHeader
	for rest := records; len(rest) > 0; {
		h, err := segment.ValidateBatch(rest)
		if err != nil {
			if h.Magic != 0 && h.Magic != 2 && len(rest) >= 17 {
				return 0, 0, kerr.UnsupportedForMessageFormat
			}
			return 0, 0, kerr.CorruptMessage
		}
		if h.TotalSize() > maxBytes {
			return 0, 0, kerr.MessageTooLarge
		}
		if err := r.validateRecordsLocked(rest[:h.TotalSize()], h, now); err != nil {
			return 0, 0, err
		}
		hdrs = append(hdrs, h)
		rest = rest[h.TotalSize():]
	}
	if err := r.checkTxnGuardLocked(hdrs[0], guard); err != nil {
		return 0, 0, err
	}
	// Idempotent producers: a retry of the last appended batch is
	// answered with its original offset; several batches of one
	// producer in one request are checked in order.
	if h := hdrs[0]; h.ProducerID >= 0 && h.BaseSequence >= 0 {
		off, dup, err := r.mu.producers.check(h)
		if err != nil {
			return 0, 0, err
		}
		if dup {
			if len(hdrs) > 1 {
				return 0, 0, kerr.DuplicateSequenceNumber
			}
			return off, r.log.LogEndOffset(), nil
		}
	}
	base = r.log.LogEndOffset()
	next := base
	appendTime := now
	tentative := producerState{}
	for i, rest := 0, records; len(rest) > 0; i++ {
		h := hdrs[i]
		if i > 0 && h.ProducerID >= 0 && h.BaseSequence >= 0 {
			ps := r.mu.producers
			if _, ok := tentative[h.ProducerID]; ok {
				ps = tentative
			}
			if _, dup, err := ps.check(h); err != nil || dup {
				if err == nil {
					err = kerr.DuplicateSequenceNumber
				}
				return 0, 0, err
			}
		}
		segment.SetBaseOffset(rest, next)
		segment.SetPartitionLeaderEpoch(rest, r.mu.epoch)
		if r.mu.lc.logAppendTime && h.Attributes&0x20 == 0 {
			segment.SetLogAppendTime(rest, appendTime)
			hdrs[i].MaxTimestamp = appendTime
		}
		hdrs[i].BaseOffset = next
		if h.ProducerID >= 0 {
			if _, ok := tentative[h.ProducerID]; !ok && r.mu.producers[h.ProducerID] != nil {
				e := *r.mu.producers[h.ProducerID]
				e.batches = append([]producerBatch(nil), e.batches...)
				tentative[h.ProducerID] = &e
			}
			tentative.update(hdrs[i])
		}
		next += int64(h.LastOffsetDelta) + 1
		rest = rest[h.TotalSize():]
	}
	if err := r.log.Append(records); err != nil {
		r.b.log.Error("append failed", "topic", r.topic, "partition", r.part, "err", err)
		if errors.Is(err, segment.ErrFailed) {
			r.b.logDirFailed(r.dir, err)
		}
		return 0, 0, kerr.KafkaStorageError
	}
	for id, e := range tentative {
		r.mu.producers[id] = e
	}
	for i, rest := 0, records; i < len(hdrs); i++ {
		r.applyTxnLocked(hdrs[i], rest[:hdrs[i].TotalSize()])
		rest = rest[hdrs[i].TotalSize():]
	}
	r.maybeAdvanceHWLocked()
	r.notify()
	return base, next, nil
}

// notify tells this partition's waiters that it changed, and the cluster's
// WaitFor conditions.
func (r *partition) notify() {
	r.b.isrArm.arm()
	r.b.cleanerArm.arm()
	r.watch.Lock()
	if r.watch.ch != nil {
		close(r.watch.ch)
		r.watch.ch = nil
	}
	for w := range r.watch.fetches {
		select {
		case w <- struct{}{}:
		default:
		}
	}
	r.watch.Unlock()
	r.b.c.notifyEvent()
}

// changed returns a channel closed at the next notify.
func (r *partition) changed() <-chan struct{} {
	r.watch.Lock()
	defer r.watch.Unlock()
	if r.watch.ch == nil {
		r.watch.ch = make(chan struct{})
	}
	return r.watch.ch
}

// watchFetch makes the next notify send to w (a parked fetch's wake-up,
// of capacity one), until unwatchFetch.
func (r *partition) watchFetch(w chan struct{}) {
	r.watch.Lock()
	defer r.watch.Unlock()
	if r.watch.fetches == nil {
		r.watch.fetches = make(map[chan struct{}]struct{})
	}
	r.watch.fetches[w] = struct{}{}
}

func (r *partition) unwatchFetch(w chan struct{}) {
	r.watch.Lock()
	defer r.watch.Unlock()
	delete(r.watch.fetches, w)
}

// waitHW waits until the high watermark reaches end (acks=all), the
// replica stops leading, or ctx ends.
func (r *partition) waitHW(ctx context.Context, end int64) error {
	for {
		ch := r.changed()
		r.mu.Lock()
		hw, leader, isr := r.mu.hw, r.mu.leader, len(r.mu.isr)
		minISR := r.minISRLocked()
		r.mu.Unlock()
		if leader != r.b.id {
			return kerr.NotLeaderForPartition
		}
		if hw >= end {
			if isr < minISR {
				// The ISR shrank below min.insync.replicas after
				// the append.
				return kerr.NotEnoughReplicasAfterAppend
			}
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return kerr.RequestTimedOut
		}
	}
}

// fetchResult is what a read of a replica returns.
type fetchResult struct {
	hw, lso, logStart, leo int64
	records                []byte
	aborted                []segment.AbortedTxn // read_committed: aborted transactions in range
}

// read serves a fetch from a consumer (replica < 0: data only below the high
// watermark, or with committed (read_committed) below the last stable
// offset, with the aborted transactions of that range) or, on the leader,
// from follower replica (data up to the log-end offset; its fetch offset
// is its log-end offset). The records are read into buf(n).
func (r *partition) read(follower int32, followerEpoch int64, offset int64, maxBytes int, currentEpoch int32, committed, reread bool, buf func(int) []byte) (fetchResult, error) {
	var agreeFrom, agreeTo int64 // the agreement check's range (invariants builds)
	r.mu.Lock()
	if r.mu.closed {
		r.mu.Unlock()
		return fetchResult{}, kerr.NotLeaderForPartition
	}
	if r.offline() {
		r.mu.Unlock()
		return fetchResult{}, kerr.KafkaStorageError
	}
	if err := r.checkLeaderEpochLocked(currentEpoch); err != nil {
		r.mu.Unlock()
		return fetchResult{}, err
	}
	leo := r.log.LogEndOffset()
	start := r.log.LogStartOffset()
	if offset < start || offset > leo {
		hw, lso := r.mu.hw, r.lsoLocked()
		r.mu.Unlock()
		return fetchResult{hw: hw, lso: lso, logStart: start, leo: leo}, kerr.OffsetOutOfRange
	}
	if follower >= 0 {
		if f := r.mu.followers[follower]; f != nil {
			f.updateFetchState(followerEpoch, offset, leo, time.Now(), reread)
			if invariants.Enabled {
				agreeFrom, agreeTo = r.agreementRangeLocked(f, offset)
			}
			r.maybeAdvanceHWLocked()
			if f.leo >= r.mu.hw && !slices.Contains(r.mu.isr, follower) {
				select {
				case r.b.isrWake <- struct{}{}:
				default:
				}
			}
		}
	}
	if invariants.Enabled {
		if msg := checkHW(r.mu.hw, r.log.LogEndOffset()); msg != "" {
			r.violatedLocked(msg)
		}
	}
	hw, lso := r.mu.hw, r.lsoLocked()
	r.mu.Unlock()
	if invariants.Enabled && agreeTo > agreeFrom {
		r.checkFollowerAgrees(follower, agreeFrom, agreeTo)
	}
	limit := hw
	switch {
	case follower >= 0:
		limit = leo
	case committed:
		limit = lso
	}
	res := fetchResult{hw: hw, lso: lso, logStart: start, leo: leo}
	if offset < limit {
		data, err := r.log.ReadInto(offset, maxBytes, limit, buf)
		if err != nil {
			if err == segment.ErrOffsetOutOfRange {
				return res, kerr.OffsetOutOfRange
			}
			return res, fmt.Errorf("%w: %v", kerr.KafkaStorageError, err)
		}
		res.records = data
		if committed && follower < 0 && len(data) > 0 {
			if res.aborted, err = r.log.AbortedTxns(offset, limit); err != nil {
				return res, fmt.Errorf("%w: %v", kerr.KafkaStorageError, err)
			}
		}
	}
	return res, nil
}

// syncFollowersLocked makes the leader's follower table match the
// replicas after a reassignment added or removed some: a new follower is
// unknown until it fetches.
func (r *partition) syncFollowersLocked() {
	for id := range r.mu.followers {
		if !slices.Contains(r.mu.replicas, id) {
			delete(r.mu.followers, id)
		}
	}
	for _, id := range r.mu.replicas {
		if id != r.b.id && r.mu.followers[id] == nil {
			r.mu.followers[id] = newReplica(time.Now())
		}
	}
}

// sortReplicas orders replicas by topic and partition: whatever is decided
// by walking a map of them is decided in the same order in every run.
func sortReplicas(rs []*partition) {
	slices.SortFunc(rs, func(a, b *partition) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return int(a.part - b.part)
	})
}

// advanceHWLocked moves the high watermark up to hw (callers checked that
// hw > r.mu.hw). The only other ways the high watermark moves are
// truncations, which lower it with the log (lowerHWLocked).
func (r *partition) advanceHWLocked(hw int64) {
	if invariants.Enabled {
		var isr map[int32]int64
		if r.mu.leader == r.b.id {
			isr = make(map[int32]int64, len(r.mu.isr))
			for _, id := range r.mu.isr {
				if f := r.mu.followers[id]; id != r.b.id && f != nil {
					isr[id] = f.leo
				}
			}
		}
		if msg := checkHWAdvance(r.mu.hw, hw, r.log.LogEndOffset(), isr); msg != "" {
			r.violatedLocked(msg)
		}
	}
	r.mu.hw = hw
}

// lowerHWLocked sets the high watermark after the log was truncated or
// reset to off: the one way it may move backwards.
func (r *partition) lowerHWLocked(off int64) {
	r.mu.hw = off
	if invariants.Enabled {
		if msg := checkHW(r.mu.hw, r.log.LogEndOffset()); msg != "" {
			r.violatedLocked(msg)
		}
	}
}

// uncheckpointed reports a high watermark not checkpointed yet.
func (r *partition) uncheckpointed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.mu.closed && r.mu.hw != r.mu.checkpointed
}

// checkLeaderEpoch checks that this broker leads the partition at the
// leader epoch a request names (see checkLeaderEpochLocked).
func (r *partition) checkLeaderEpoch(currentEpoch int32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.checkLeaderEpochLocked(currentEpoch)
}

// checkLeaderEpochLocked is Kafka's check for requests a leader serves
// (Partition.localLogWithEpochOrThrow with requireLeader, KIP-320): the
// request's current leader epoch first, -1 meaning not known and not
// checked, FENCED_LEADER_EPOCH below this broker's and UNKNOWN_LEADER_EPOCH
// above it; then leadership, NOT_LEADER_OR_FOLLOWER.
func (r *partition) checkLeaderEpochLocked(currentEpoch int32) error {
	if r.mu.closed {
		return kerr.NotLeaderForPartition
	}
	if currentEpoch >= 0 && currentEpoch < r.mu.epoch {
		return kerr.FencedLeaderEpoch
	}
	if currentEpoch > r.mu.epoch {
		return kerr.UnknownLeaderEpoch
	}
	if r.mu.leader != r.b.id {
		return kerr.NotLeaderForPartition
	}
	return nil
}
