package kcluster

// The share-partition (Kafka's SharePartition): a share group's view of one
// topic partition, kept by the partition's leader. It has a start offset
// (SPSO: everything below is done) and an end offset (SPEO: nothing from it
// on has been acquired yet); the records between are in flight, each
// AVAILABLE, ACQUIRED (by one member, until its acquisition lock expires
// after group.share.record.lock.duration.ms), ACKNOWLEDGED or ARCHIVED,
// with a delivery count. A record released with its count at
// group.share.delivery.count.limit is archived instead, and no more than
// group.share.partition.max.record.locks records are in flight at once.
//
// Every change of a record's state but its acquisition is written through
// the persister (share_persister.go) to the share coordinator before the
// request that made it is answered, so a new leader reads it back:
// acknowledged and archived records are never delivered again, and a
// released record, or one whose lock expired, comes back AVAILABLE with
// its delivery count. As Kafka's SharePartition, an acquisition is not
// written: a record acquired when its leader dies is AVAILABLE on the new
// leader at once, its delivery count the last one written (that delivery
// is not counted). A leader deposed meanwhile is fenced by leader epoch.
//
// Concurrency: the fields are guarded by mu. The lock timer fires only at
// the earliest lock's deadline, so an idle share-partition costs nothing.

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/segment"
)

// Record states (Kafka's RecordState), as persisted.
const (
	recAvailable    int8 = 0
	recAcquired     int8 = 1
	recAcknowledged int8 = 2
	recArchived     int8 = 4
)

// Acknowledge types (ShareFetch and ShareAcknowledge).
const (
	ackGap     int8 = 0
	ackAccept  int8 = 1
	ackRelease int8 = 2
	ackReject  int8 = 3
	ackRenew   int8 = 4 // KIP-1222, ShareFetch and ShareAcknowledge v2
)

type inflightRecord struct {
	state    int8
	count    int16
	member   string
	deadline time.Time // ACQUIRED: when the lock expires
}

type sharePartition struct {
	sm          *shareManager
	key         sharePartitionKey
	topic       string
	rep         *partition
	leaderEpoch int32
	mu          struct {
		sync.Mutex
		closed     bool
		stateEpoch int32
		start, end int64
		inflight   map[int64]*inflightRecord // offsets in [start, end)
		timer      *time.Timer
		timerAt    time.Time
	}
}

// load reads the share-partition's state, which its group coordinator
// initialized (group_share_init.go); a state not initialized fails the
// load with UNKNOWN_TOPIC_OR_PARTITION, as Kafka's SharePartition. A state
// initialized with start offset -1 starts where share.auto.offset.reset
// says (latest: the high watermark; earliest: the log start), and that
// start is written at once, so the next leader starts there too.
func (sp *sharePartition) load(earliest bool) error {
	st, err := sp.sm.persister.readState(sp.key, sp.leaderEpoch)
	if err != nil {
		return err
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.mu.inflight = map[int64]*inflightRecord{}
	sp.mu.stateEpoch = st.stateEpoch
	if st.startOffset < 0 {
		sp.rep.mu.Lock()
		start := sp.rep.mu.hw
		if earliest {
			start = sp.rep.log.LogStartOffset()
		}
		sp.rep.mu.Unlock()
		if err := sp.sm.persister.writeState(sp.key, shareState{stateEpoch: st.stateEpoch, leaderEpoch: sp.leaderEpoch, startOffset: start}); err != nil {
			return err
		}
		sp.mu.start, sp.mu.end = start, start
		return nil
	}
	sp.mu.start, sp.mu.end = st.startOffset, st.startOffset
	for _, b := range st.batches {
		for o := max(b.first, st.startOffset); o <= b.last; o++ {
			state := b.state
			if state == recAcquired {
				state = recAvailable
			}
			sp.mu.inflight[o] = &inflightRecord{state: state, count: b.count}
			sp.mu.end = max(sp.mu.end, o+1)
		}
	}
	// Offsets between that the state does not name were never
	// acquired: available, delivered zero times.
	for o := sp.mu.start; o < sp.mu.end; o++ {
		if sp.mu.inflight[o] == nil {
			sp.mu.inflight[o] = &inflightRecord{state: recAvailable}
		}
	}
	sp.advanceStartLocked()
	return nil
}

func (sp *sharePartition) close() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.mu.closed = true
	if sp.mu.timer != nil {
		sp.mu.timer.Stop()
	}
}

// acquired is what one acquisition took: the acquired ranges (each of one
// delivery count) and the log's batches that hold them.
type acquired struct {
	ranges  []kmsg.ShareFetchResponseTopicPartitionAcquiredRecord
	records []byte
	n       int32
}

// acquire takes up to maxRecords AVAILABLE records for member: in-flight
// ones first, then new ones from the end offset up to the high watermark
// (read_committed: the last stable offset, aborted transactions' records
// and control records archived on the way). With strict false whole
// batches are taken, so maxRecords may be passed (Kafka's batch-optimized
// acquire mode).
func (sp *sharePartition) acquire(member string, maxRecords int32, strict, readCommitted bool, now time.Time) (acquired, error) {
	var out acquired
	lockFor, _ := sp.limits()
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.mu.closed || !sp.sm.b.leads(sp.rep, sp.leaderEpoch) {
		return out, kerr.NotLeaderForPartition
	}
	cfg := &sp.sm.b.cfg.group
	changed := map[int64]bool{}
	var offsets []int64
	take := func(o int64) {
		r := sp.mu.inflight[o]
		r.state, r.member, r.deadline = recAcquired, member, now.Add(lockFor)
		r.count++
		offsets = append(offsets, o)
	}
	// Only what a consumer may read: below the high watermark (the
	// LSO for read_committed). A new leader's high watermark can be
	// behind its predecessor's for a moment, and with it records the
	// state already knows.
	sp.rep.mu.Lock()
	limit := sp.rep.mu.hw
	if readCommitted {
		limit = sp.rep.lsoLocked()
	}
	sp.rep.mu.Unlock()
	for o := sp.mu.start; o < min(sp.mu.end, limit) && int32(len(offsets)) < maxRecords; o++ {
		if r := sp.mu.inflight[o]; r != nil && r.state == recAvailable {
			take(o)
		}
	}
	if int32(len(offsets)) < maxRecords && sp.mu.end-sp.mu.start < int64(cfg.shareMaxLocks) {
		res, err := sp.rep.read(-1, -1, sp.mu.end, 1<<20, sp.leaderEpoch, readCommitted, false, func(n int) []byte { return make([]byte, n) })
		if err != nil && err != kerr.OffsetOutOfRange {
			return out, err
		}
		if err == kerr.OffsetOutOfRange && sp.mu.end < res.logStart {
			// The log's start passed the share-partition's: what
			// was deleted is gone for the group too.
			for o := sp.mu.start; o < sp.mu.end; o++ {
				delete(sp.mu.inflight, o)
			}
			sp.mu.start, sp.mu.end = res.logStart, res.logStart
		}
		for rest := res.records; len(rest) >= 61; {
			h, err := segment.ParseBatchHeader(rest)
			if err != nil || h.TotalSize() > len(rest) {
				break
			}
			rest = rest[h.TotalSize():]
			if h.LastOffset() < sp.mu.end {
				continue
			}
			if int32(len(offsets)) >= maxRecords || sp.mu.end-sp.mu.start >= int64(cfg.shareMaxLocks) {
				break
			}
			skip := h.IsControl() || readCommitted && h.IsTransactional() && abortedBatch(h, res.aborted)
			for o := sp.mu.end; o <= h.LastOffset(); o++ {
				r := &inflightRecord{state: recAvailable}
				sp.mu.inflight[o] = r
				switch {
				case o < h.BaseOffset || skip:
					r.state = recArchived // a gap, a control record, an aborted record
					changed[o] = true
				case strict && int32(len(offsets)) >= maxRecords:
				default:
					take(o)
				}
			}
			sp.mu.end = h.LastOffset() + 1
		}
	}
	// The records go with their batches; an offset whose batch could
	// not be read (a storage error) is not delivered: it is given back
	// as it was, rather than sent without its record.
	slices.Sort(offsets)
	var covered [][2]int64
	if len(offsets) > 0 {
		out.records, covered = sp.readBatchesLocked(offsets, readCommitted)
	}
	kept := offsets[:0]
	for _, o := range offsets {
		if slices.ContainsFunc(covered, func(c [2]int64) bool { return o >= c[0] && o <= c[1] }) {
			kept = append(kept, o)
			continue
		}
		r := sp.mu.inflight[o]
		r.state, r.member, r.deadline = recAvailable, "", time.Time{}
		r.count--
	}
	offsets = kept
	if len(changed) > 0 {
		if err := sp.persistLocked(changed); err != nil {
			// The archived records (gaps, control and aborted
			// records) could not be written. Unless fenced, they
			// stay archived here and the acquisition goes on.
			if sp.persistFailedLocked(err) {
				return acquired{}, err
			}
		}
	}
	sp.advanceStartLocked()
	if len(offsets) == 0 {
		return acquired{}, nil
	}
	out.n = int32(len(offsets))
	for _, o := range offsets {
		c := sp.mu.inflight[o].count
		if n := len(out.ranges); n > 0 && out.ranges[n-1].LastOffset == o-1 && out.ranges[n-1].DeliveryCount == c {
			out.ranges[n-1].LastOffset = o
			continue
		}
		ar := kmsg.NewShareFetchResponseTopicPartitionAcquiredRecord()
		ar.FirstOffset, ar.LastOffset, ar.DeliveryCount = o, o, c
		out.ranges = append(out.ranges, ar)
	}
	sp.armTimerLocked()
	return out, nil
}

// abortedBatch reports whether a transactional batch belongs to an
// aborted transaction.
func abortedBatch(h segment.BatchHeader, aborted []segment.AbortedTxn) bool {
	for _, a := range aborted {
		if a.ProducerID == h.ProducerID && a.FirstOffset <= h.BaseOffset && h.BaseOffset <= a.LastOffset {
			return true
		}
	}
	return false
}

// readBatchesLocked returns the log's batches holding offsets (sorted),
// each once, and the offset range of each.
func (sp *sharePartition) readBatchesLocked(offsets []int64, committed bool) (out []byte, covered [][2]int64) {
	last := int64(-1) // the last offset of the last batch taken
	for _, o := range offsets {
		if o <= last {
			continue
		}
		res, err := sp.rep.read(-1, -1, o, 1<<20, sp.leaderEpoch, committed, false, func(n int) []byte { return make([]byte, n) })
		if err != nil {
			continue
		}
		for rest := res.records; len(rest) >= 61; {
			h, err := segment.ParseBatchHeader(rest)
			if err != nil || h.TotalSize() > len(rest) {
				break
			}
			batch := rest[:h.TotalSize()]
			rest = rest[h.TotalSize():]
			if h.LastOffset() <= last {
				continue
			}
			if !slices.ContainsFunc(offsets, func(x int64) bool { return x >= h.BaseOffset && x <= h.LastOffset() }) {
				if h.BaseOffset > offsets[len(offsets)-1] {
					break
				}
				continue
			}
			out = append(out, batch...)
			covered = append(covered, [2]int64{h.BaseOffset, h.LastOffset()})
			last = h.LastOffset()
		}
	}
	return out, covered
}

// acknowledge applies one acknowledgement batch of member's: one type
// for the whole range, or one per offset. Every offset must be ACQUIRED
// by member (else INVALID_RECORD_STATE, and nothing of the batch is
// applied).
func (sp *sharePartition) acknowledge(member string, first, last int64, types []int8, now time.Time) error {
	lockFor, limit := sp.limits()
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.mu.closed || !sp.sm.b.leads(sp.rep, sp.leaderEpoch) {
		return kerr.NotLeaderForPartition
	}
	if first > last || len(types) == 0 || len(types) != 1 && int64(len(types)) != last-first+1 {
		return kerr.InvalidRequest
	}
	typeOf := func(o int64) int8 {
		if len(types) == 1 {
			return types[0]
		}
		return types[o-first]
	}
	for o := first; o <= last; o++ {
		t := typeOf(o)
		if t < ackGap || t > ackRenew {
			return kerr.InvalidRequest
		}
		r := sp.mu.inflight[o]
		if o < sp.mu.start || o >= sp.mu.end || r == nil || r.state != recAcquired || r.member != member {
			return kerr.InvalidRecordState
		}
	}
	changed := map[int64]bool{}
	before := map[int64]inflightRecord{}
	for o := first; o <= last; o++ {
		r := sp.mu.inflight[o]
		before[o] = *r
		switch typeOf(o) {
		case ackAccept:
			r.state = recAcknowledged
		case ackGap, ackReject:
			r.state = recArchived
		case ackRelease:
			r.state = recAvailable
			if int32(r.count) >= limit {
				r.state = recArchived
			}
		case ackRenew:
			r.deadline = now.Add(lockFor)
			continue
		}
		r.member = ""
		changed[o] = true
	}
	if err := sp.persistLocked(changed); err != nil {
		// Not written: the records stay as they were (acquired by
		// member, which may acknowledge them again).
		for o, r := range before {
			*sp.mu.inflight[o] = r
		}
		sp.persistFailedLocked(err)
		return err
	}
	sp.advanceStartLocked()
	sp.armTimerLocked()
	if len(changed) > 0 {
		sp.rep.notify() // released records wake parked share fetches
	}
	return nil
}

// releaseMember makes every record member holds AVAILABLE again (archived
// at the delivery limit): its share session closed, or its connection.
func (sp *sharePartition) releaseMember(member string) {
	_, limit := sp.limits()
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.releaseLocked(limit, func(r *inflightRecord) bool { return r.member == member })
}

// limits are the group's acquisition lock duration and delivery count
// limit (group configs, else the broker's group.share.* configs). Taken
// before the share-partition's lock: they read the broker's metadata.
func (sp *sharePartition) limits() (time.Duration, int32) {
	b := sp.sm.b
	lockFor := b.shareGroupDuration(sp.key.group, "share.record.lock.duration.ms", b.cfg.group.shareLock)
	limit := b.cfg.group.shareDeliveryLimit
	if n, err := strconv.ParseInt(b.shareGroupConfig(sp.key.group, "share.delivery.count.limit"), 10, 32); err == nil && n >= 2 {
		limit = int32(n)
	}
	return lockFor, limit
}

// expire releases the records whose lock has expired.
func (sp *sharePartition) expire() {
	_, limit := sp.limits()
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.mu.timerAt = time.Time{}
	now := time.Now()
	sp.releaseLocked(limit, func(r *inflightRecord) bool { return !now.Before(r.deadline) })
	sp.armTimerLocked()
}

func (sp *sharePartition) releaseLocked(limit int32, match func(*inflightRecord) bool) {
	if sp.mu.closed || !sp.sm.b.leads(sp.rep, sp.leaderEpoch) {
		// Led elsewhere now, or in another epoch: its state is the
		// persister's, for the next leader; this copy is done and its
		// timer is not set again.
		sp.mu.closed = true
		return
	}
	changed := map[int64]bool{}
	for o, r := range sp.mu.inflight {
		if r.state == recAcquired && match(r) {
			r.state, r.member = recAvailable, ""
			if int32(r.count) >= limit {
				r.state = recArchived
			}
			changed[o] = true
		}
	}
	if len(changed) == 0 {
		return
	}
	if err := sp.persistLocked(changed); err != nil && sp.persistFailedLocked(err) {
		return
	}
	// Written, or not but kept: the records are available here either
	// way; the counts not written are lost only with this leader.
	sp.advanceStartLocked()
	sp.rep.notify()
	sp.sm.b.c.notifyEvent()
}

// armTimerLocked sets the lock timer to the earliest lock's deadline.
func (sp *sharePartition) armTimerLocked() {
	var next time.Time
	for _, r := range sp.mu.inflight {
		if r.state == recAcquired && (next.IsZero() || r.deadline.Before(next)) {
			next = r.deadline
		}
	}
	if next.IsZero() || sp.mu.closed || (!sp.mu.timerAt.IsZero() && !sp.mu.timerAt.After(next)) {
		return
	}
	sp.mu.timerAt = next
	if sp.mu.timer == nil {
		sp.mu.timer = time.AfterFunc(time.Until(next), sp.expire)
	} else {
		sp.mu.timer.Reset(time.Until(next))
	}
}

// advanceStartLocked moves the start offset past the records that are
// done (acknowledged or archived).
func (sp *sharePartition) advanceStartLocked() {
	for sp.mu.start < sp.mu.end {
		r := sp.mu.inflight[sp.mu.start]
		if r == nil || r.state != recAcknowledged && r.state != recArchived {
			break
		}
		delete(sp.mu.inflight, sp.mu.start)
		sp.mu.start++
	}
}

// persistFailedLocked handles a write the share coordinator refused or
// never answered, and reports whether the share-partition is done for:
// fenced by a newer leader epoch or state epoch, or its state deleted
// (UNKNOWN_TOPIC_OR_PARTITION). Then it is closed, and the next request
// loads it again from the share coordinator. Otherwise (the coordinator
// unreachable) it goes on with what it has in memory: reloading would
// hand out again, at the same delivery count, records other members
// hold, in the same leader epoch.
func (sp *sharePartition) persistFailedLocked(err error) bool {
	sp.sm.b.log.Debug("writing share-partition state", "group", sp.key.group, "topic", sp.topic, "partition", sp.key.partition, "err", err)
	if errors.Is(err, kerr.FencedLeaderEpoch) || errors.Is(err, kerr.FencedStateEpoch) || errors.Is(err, kerr.UnknownTopicOrPartition) {
		sp.mu.closed = true
		return true
	}
	return false
}

// persistLocked writes the changed offsets' states, in batches of equal
// state and count, and the start offset they lead to.
func (sp *sharePartition) persistLocked(changed map[int64]bool) error {
	offs := sortedKeys(changed)
	var batches []shareStateBatch
	for _, o := range offs {
		r := sp.mu.inflight[o]
		state := r.state
		if state == recAcquired {
			state = recAvailable
		}
		if n := len(batches); n > 0 && batches[n-1].last == o-1 && batches[n-1].state == state && batches[n-1].count == r.count {
			batches[n-1].last = o
			continue
		}
		batches = append(batches, shareStateBatch{first: o, last: o, state: state, count: r.count})
	}
	start := sp.mu.start
	for start < sp.mu.end {
		r := sp.mu.inflight[start]
		if r == nil || r.state != recAcknowledged && r.state != recArchived {
			break
		}
		start++
	}
	return sp.sm.persister.writeState(sp.key, shareState{stateEpoch: sp.mu.stateEpoch, leaderEpoch: sp.leaderEpoch, startOffset: start, batches: batches})
}
