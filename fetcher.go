package kcluster

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/segment"
	"github.com/kcluster/kcluster/wire"
)

// fetcherSet is a broker's follower side: one fetcher goroutine per leader
// broker, fetching every partition this broker follows from that leader
// with Kafka's Fetch (replica id set), over the cluster network.
type fetcherSet struct {
	b  *broker
	mu struct {
		sync.Mutex
		closed   bool
		byLeader map[int32]*fetcher
		of       map[*partition]*fetcher
	}
}

func (s *fetcherSet) init(b *broker) {
	s.b = b
	s.mu.byLeader = make(map[int32]*fetcher)
	s.mu.of = make(map[*partition]*fetcher)
}

// add makes r fetch from leader, moving it from any other fetcher.
func (s *fetcherSet) add(r *partition, leader int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return
	}
	if f := s.mu.of[r]; f != nil {
		if f.leader == leader {
			f.wake()
			return
		}
		f.remove(r)
	}
	if leader < 0 {
		delete(s.mu.of, r)
		return
	}
	f := s.mu.byLeader[leader]
	if f == nil {
		f = newFetcher(s.b, leader)
		s.mu.byLeader[leader] = f
	}
	f.addPart(r)
	s.mu.of[r] = f
}

// remove stops fetching r.
func (s *fetcherSet) remove(r *partition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.mu.of[r]; f != nil {
		f.remove(r)
		delete(s.mu.of, r)
	}
}

func (s *fetcherSet) closeAll() {
	s.mu.Lock()
	s.mu.closed = true
	fs := s.mu.byLeader
	s.mu.byLeader = nil
	s.mu.Unlock()
	for _, f := range fs {
		f.stop()
	}
}

// fetcher fetches from one leader. parts is guarded by mu; the goroutine
// owns the connection.
type fetcher struct {
	b      *broker
	leader int32
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wakeCh chan struct{}

	mu struct {
		sync.Mutex
		parts map[*partition]struct{}
		// inflight are the partitions of the fetch the leader may be
		// holding (parked for up to replica.fetch.wait.max.ms); kick
		// cancels that fetch, and kicked says it was cancelled so.
		inflight map[*partition]struct{}
		kick     context.CancelFunc
		kicked   bool // the fetch in flight was ended: nudged or cancelled
		// cancelled says it was ended by kick (closing the connection),
		// not by a nudge, so its error is the kick's.
		cancelled bool
		// conn is the connection of the fetch in flight, to nudge.
		conn net.Conn
		// added counts addPart calls, so that a partition added
		// between a round's snapshot and its fetch being in flight
		// (when there is nothing to kick yet) is not missed.
		added uint64
	}
}

// errKicked is a fetch cancelled because the fetcher gained a partition
// the fetch did not name.
var errKicked = errors.New("fetch cancelled for a new partition")

// errPartsChanged is a fetch not sent because the fetcher gained a
// partition since its round began.
var errPartsChanged = errors.New("fetch not sent: new partitions")

func newFetcher(b *broker, leader int32) *fetcher {
	ctx, cancel := context.WithCancel(b.ctx)
	f := &fetcher{b: b, leader: leader, ctx: ctx, cancel: cancel, done: make(chan struct{}), wakeCh: make(chan struct{}, 1)}
	f.mu.parts = make(map[*partition]struct{})
	go f.run()
	return f
}

func (f *fetcher) wake() {
	select {
	case f.wakeCh <- struct{}{}:
	default:
	}
}

// addPart makes the fetcher fetch r too. A fetch in flight without r (the
// leader may hold it for up to replica.fetch.wait.max.ms) is ended, so r
// starts replicating at once rather than when that fetch returns: a new
// topic's or a new leader's partition would otherwise wait out the parked
// fetch (Kafka's fetcher does), and so would everything waiting for its
// high watermark, such as a cluster's first group. The fetch is ended by
// a nudge on its connection (network.Nudge), which the leader answers at
// once; on a link with a fault, where a nudge cannot be counted on, by
// closing the connection, and the next fetch goes on a new one.
func (f *fetcher) addPart(r *partition) {
	f.mu.Lock()
	f.mu.parts[r] = struct{}{}
	f.mu.added++
	if _, ok := f.mu.inflight[r]; !ok && f.mu.kick != nil && !f.mu.kicked {
		f.mu.kicked = true
		if f.mu.conn == nil || !f.b.c.net.Nudge(f.mu.conn) {
			f.mu.cancelled = true
			f.mu.kick()
		}
	}
	f.mu.Unlock()
	f.wake()
}

func (f *fetcher) remove(r *partition) {
	f.mu.Lock()
	delete(f.mu.parts, r)
	f.mu.Unlock()
}

func (f *fetcher) stop() {
	f.cancel()
	<-f.done
}

// snapshot returns the partitions to fetch, and the count of addPart
// calls they include.
func (f *fetcher) snapshot() ([]*partition, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*partition, 0, len(f.mu.parts))
	for r := range f.mu.parts {
		out = append(out, r)
	}
	sortReplicas(out) // requests in the same order in every replay
	return out, f.mu.added
}

func (f *fetcher) leaderAddr() (string, bool) {
	f.b.mu.RLock()
	defer f.b.mu.RUnlock()
	br := f.b.mu.state.Brokers[f.leader]
	if br == nil {
		return "", false
	}
	// Dial the listen address of the leader: the advertised host may
	// not resolve to the listener (e.g. "localhost" vs 127.0.0.1).
	return net.JoinHostPort(f.b.c.cfg.host, strconv.Itoa(int(br.Port))), true
}

func (f *fetcher) run() {
	defer close(f.done)
	var cl *wire.Client
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	backoff := func() bool {
		select {
		case <-f.ctx.Done():
			return false
		case <-time.After(f.b.cfg.replicaFetchBackoff):
			return true
		}
	}
	for f.ctx.Err() == nil {
		parts, added := f.snapshot()
		if len(parts) == 0 {
			select {
			case <-f.ctx.Done():
				return
			case <-f.wakeCh:
				continue
			}
		}
		if cl == nil {
			addr, ok := f.leaderAddr()
			if !ok {
				if !backoff() {
					return
				}
				continue
			}
			conn, err := f.b.c.net.Dial(f.ctx, f.b.id, f.leader, addr)
			if err != nil {
				f.b.log.Debug("replica fetcher dial", "leader", f.leader, "err", err)
				if !backoff() {
					return
				}
				continue
			}
			cl = wire.NewClient(conn, "kcluster-replica-fetcher-"+strconv.Itoa(int(f.b.id)))
			// fetchOnce is done with a response's batches (appended
			// to the logs, which copy them) before the next request.
			cl.ReuseBuffer = true
		}
		if err := f.fetchOnce(cl, parts, added); err != nil {
			if f.ctx.Err() != nil {
				return
			}
			if err == errPartsChanged {
				continue // nothing was sent: at once, with them
			}
			cl.Close()
			cl = nil
			if err == errKicked {
				continue // at once, with the new partition
			}
			f.b.log.Debug("replica fetch", "leader", f.leader, "err", err)
			if !backoff() {
				return
			}
		}
	}
}

// truncate asks the leader, with OffsetForLeaderEpoch, where each replica
// that just started following a new epoch diverges, and truncates it there
// (KIP-101, KIP-279). Replicas it could not settle keep their flag.
func (f *fetcher) truncate(cl *wire.Client, parts []*partition) error {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.SetVersion(4)
	req.ReplicaID = f.b.id
	type key struct {
		topic string
		p     int32
	}
	lookup := map[key]sent{}
	byTopic := map[string]int{}
	for _, r := range parts {
		r.mu.Lock()
		need, epoch, leader := r.mu.needTruncate, r.mu.epoch, r.mu.leader
		r.mu.Unlock()
		if !need || leader != f.leader {
			continue
		}
		es := r.log.EpochEntries()
		if len(es) == 0 {
			// Nothing written under any epoch: nothing can diverge.
			r.mu.Lock()
			r.mu.needTruncate = false
			r.mu.Unlock()
			continue
		}
		i, ok := byTopic[r.topic]
		if !ok {
			i = len(req.Topics)
			byTopic[r.topic] = i
			t := kmsg.NewOffsetForLeaderEpochRequestTopic()
			t.Topic = r.topic
			req.Topics = append(req.Topics, t)
		}
		p := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		p.Partition = r.part
		p.CurrentLeaderEpoch = epoch
		p.LeaderEpoch = es[len(es)-1].Epoch
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
		lookup[key{r.topic, r.part}] = sent{r: r, leader: leader, epoch: epoch}
	}
	if len(lookup) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
	defer cancel()
	kresp, err := cl.Request(ctx, req)
	if err != nil {
		return err
	}
	for _, t := range kresp.(*kmsg.OffsetForLeaderEpochResponse).Topics {
		for _, p := range t.Partitions {
			s, ok := lookup[key{t.Topic, p.Partition}]
			if !ok || p.ErrorCode != 0 {
				continue
			}
			s.r.truncateDiverged(s, p.LeaderEpoch, p.EndOffset)
		}
	}
	return nil
}

// sent is what a follower's request (OffsetForLeaderEpoch or Fetch) said
// of one replica: the leader and leader epoch it followed, and for a
// fetch the offset it fetched from.
type sent struct {
	r      *partition
	leader int32
	epoch  int32
	offset int64
}

// currentLocked reports whether the answer to s may still be applied: the
// replica follows the same leader in the same epoch as when s was sent,
// and, for a fetch, its log still ends where the fetch started. A leader
// change, a truncation or a second fetcher's answer in between makes the
// answer stale: applying it would append an old leader's records or settle
// a truncation against the wrong leader (Kafka's fetcher drops such
// answers the same way, AbstractFetcherThread.processFetchRequest).
func (s sent) currentLocked(fetch bool) bool {
	r := s.r
	if r.mu.closed || r.mu.leader == r.b.id || r.mu.leader != s.leader || r.mu.epoch != s.epoch {
		return false
	}
	return !fetch || r.log.LogEndOffset() == s.offset
}

// truncateDiverged truncates the follower's log after the leader answered
// OffsetForLeaderEpoch with (epoch, end) to the request s.
func (r *partition) truncateDiverged(s sent, epoch int32, end int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !s.currentLocked(false) || !r.mu.needTruncate {
		return
	}
	leo := r.log.LogEndOffset()
	to := leo
	switch {
	case epoch < 0 || end < 0:
		to = r.mu.hw // the leader knows none of our epochs
	default:
		if _, own := r.log.EndOffsetForEpoch(epoch); own >= 0 {
			to = min(to, own)
		}
		to = min(to, end)
	}
	if to < leo {
		if err := r.truncateToLocked(to); err != nil {
			r.b.log.Error("truncating diverged log", "topic", r.topic, "partition", r.part, "to", to, "err", err)
			if errors.Is(err, segment.ErrFailed) {
				r.b.logDirFailed(r.dir, err)
			}
			return
		}
		r.b.log.Info("truncated diverged log", "topic", r.topic, "partition", r.part, "from", leo, "to", r.log.LogEndOffset(), "leader_epoch", epoch)
	}
	r.mu.needTruncate = false
}

// truncateToLocked truncates the log to off, or to the start of the batch
// containing off when off is inside one.
func (r *partition) truncateToLocked(off int64) error {
	if off < r.log.LogStartOffset() {
		if err := r.log.TruncateFully(off); err != nil {
			return err
		}
		r.lowerHWLocked(off)
		return r.rebuildProducersLocked()
	}
	if err := r.log.Truncate(off); err != nil {
		data, rerr := r.log.Read(off, 1, r.log.LogEndOffset())
		if rerr != nil || len(data) == 0 {
			return err
		}
		h, herr := segment.ParseBatchHeader(data)
		if herr != nil {
			return err
		}
		if err := r.log.Truncate(h.BaseOffset); err != nil {
			return err
		}
	}
	if r.mu.hw > r.log.LogEndOffset() {
		r.lowerHWLocked(r.log.LogEndOffset())
	}
	return r.rebuildProducersLocked()
}

// fetchOnce sends one Fetch for parts to the leader and appends what comes
// back to the local logs.
func (f *fetcher) fetchOnce(cl *wire.Client, parts []*partition, added uint64) error {
	if err := f.truncate(cl, parts); err != nil {
		return err
	}
	req := kmsg.NewPtrFetchRequest()
	// v18 as Kafka 4.2's followers: KIP-903's replica state, and
	// KIP-1166's high watermark, so a leader whose high watermark is
	// ahead of this replica's answers at once instead of parking the
	// fetch (the follower learns the new high watermark a round trip
	// after it moves, not a fetch wait later).
	req.SetVersion(18)
	req.ReplicaState.ID, req.ReplicaState.Epoch = f.b.id, f.b.epoch // KIP-903
	req.MaxWaitMillis = int32(f.b.cfg.replicaFetchWaitMax / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = 10 << 20
	req.SessionEpoch = -1 // no fetch sessions
	byTopic := map[[16]byte]int{}
	type key struct {
		id [16]byte
		p  int32
	}
	lookup := map[key]sent{}
	for _, r := range parts {
		r.mu.Lock()
		epoch, closed, leader, need, hw := r.mu.epoch, r.mu.closed, r.mu.leader, r.mu.needTruncate, r.mu.hw
		r.mu.Unlock()
		if closed || leader != f.leader || need {
			continue
		}
		i, ok := byTopic[r.id]
		if !ok {
			i = len(req.Topics)
			byTopic[r.id] = i
			t := kmsg.NewFetchRequestTopic()
			t.TopicID = r.id
			t.Topic = r.topic
			req.Topics = append(req.Topics, t)
		}
		p := kmsg.NewFetchRequestTopicPartition()
		p.Partition = r.part
		p.CurrentLeaderEpoch = epoch
		p.FetchOffset = r.log.LogEndOffset()
		p.LogStartOffset = r.log.LogStartOffset()
		p.PartitionMaxBytes = f.b.cfg.replicaFetchMax
		p.HighWatermark = hw
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
		lookup[key{r.id, r.part}] = sent{r: r, leader: leader, epoch: epoch, offset: p.FetchOffset}
	}
	if len(req.Topics) == 0 {
		select {
		case <-f.ctx.Done():
		case <-f.wakeCh:
		case <-time.After(f.b.cfg.replicaFetchBackoff):
			// Replicas still waiting for truncation try again.
		}
		return nil
	}
	// The leader may hold this fetch past its MaxWait while the
	// connection stands (handleFetch): then it waits without a deadline.
	// But if some partitions were left out (waiting to truncate), the
	// fetcher comes back for them after MaxWait, when the leader would
	// have answered a parked fetch: the fetch is then cancelled as a
	// kick is.
	var ctx context.Context
	var cancel context.CancelFunc
	retry := len(lookup) < len(parts)
	if retry {
		ctx, cancel = context.WithTimeout(f.ctx, f.b.cfg.replicaFetchWaitMax)
	} else {
		ctx, cancel = f.b.c.holdContext(f.ctx, cl.Conn(), f.b.cfg.replicaFetchWaitMax+10*time.Second)
	}
	defer cancel()
	inflight := make(map[*partition]struct{}, len(lookup))
	for _, s := range lookup {
		inflight[s.r] = struct{}{}
	}
	f.mu.Lock()
	if f.mu.added != added {
		// A partition came after the snapshot: start over with it,
		// rather than have the leader hold a fetch without it.
		f.mu.Unlock()
		return errPartsChanged
	}
	f.mu.inflight, f.mu.kick, f.mu.kicked, f.mu.cancelled, f.mu.conn = inflight, cancel, false, false, cl.Conn()
	f.mu.Unlock()
	kresp, err := cl.Request(ctx, req)
	f.mu.Lock()
	cancelled := f.mu.cancelled
	f.mu.inflight, f.mu.kick, f.mu.kicked, f.mu.cancelled, f.mu.conn = nil, nil, false, false, nil
	f.mu.Unlock()
	if err != nil {
		if (cancelled || retry && errors.Is(ctx.Err(), context.DeadlineExceeded)) && f.ctx.Err() == nil {
			return errKicked
		}
		return err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 {
		return kerr.ErrorForCode(resp.ErrorCode)
	}
	var wait bool
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			s, ok := lookup[key{t.TopicID, p.Partition}]
			if !ok {
				continue
			}
			r := s.r
			if p.ErrorCode == kerr.OffsetOutOfRange.Code && p.LogStartOffset > r.log.LogEndOffset() {
				if err := r.resetToLeaderStart(s, p.LogStartOffset); err != nil {
					f.b.log.Warn("follower reset to the leader's log start", "topic", r.topic, "partition", r.part, "err", err)
				}
				continue
			}
			if p.ErrorCode != 0 {
				// Leadership moved or epochs disagree: wait for the
				// metadata to move this replica.
				wait = true
				f.b.log.Debug("replica fetch partition error", "topic", r.topic, "partition", r.part, "err", kerr.ErrorForCode(p.ErrorCode))
				continue
			}
			if err := r.appendAsFollower(s, p.RecordBatches, p.HighWatermark, p.LogStartOffset); err != nil {
				f.b.log.Debug("follower append", "topic", r.topic, "partition", r.part, "err", err)
				wait = true
			}
		}
	}
	if wait {
		select {
		case <-f.ctx.Done():
		case <-f.wakeCh:
		case <-time.After(f.b.cfg.replicaFetchBackoff):
		}
	}
	return nil
}

var errNotFollower = errors.New("not a follower")

// appendAsFollower appends batches fetched from the leader, in answer to
// the fetch s, as they are and takes the leader's high watermark, capped
// at the local log end. A stale answer (see sent.currentLocked) is
// dropped.
func (r *partition) appendAsFollower(s sent, records []byte, leaderHW, leaderStart int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.needTruncate || !s.currentLocked(true) {
		return errNotFollower
	}
	if len(records) > 0 {
		// Drop a trailing partial batch (the leader may cut the last
		// batch at the byte limit in old versions).
		valid := 0
		for rest := records; len(rest) >= 61; {
			sz := int(int32(uint32(rest[8])<<24|uint32(rest[9])<<16|uint32(rest[10])<<8|uint32(rest[11]))) + 12
			if sz > len(rest) || sz < 61 {
				break
			}
			valid += sz
			rest = rest[sz:]
		}
		if valid > 0 {
			// Learn leader epochs from the batches (the follower's
			// leader-epoch cache, KIP-101) before Append may reuse
			// the bytes.
			type start struct {
				epoch int32
				off   int64
			}
			var starts []start
			latest := int32(-1)
			if es := r.log.EpochEntries(); len(es) > 0 {
				latest = es[len(es)-1].Epoch
			}
			var hdrs []segment.BatchHeader
			var batches [][]byte
			for rest := records[:valid]; len(rest) > 0; {
				h, err := segment.ParseBatchHeader(rest)
				if err != nil {
					break
				}
				hdrs = append(hdrs, h)
				batches = append(batches, rest[:h.TotalSize()])
				if h.PartitionLeaderEpoch > latest {
					latest = h.PartitionLeaderEpoch
					starts = append(starts, start{h.PartitionLeaderEpoch, h.BaseOffset})
				}
				rest = rest[h.TotalSize():]
			}
			// An empty log that starts inside the first batch (it
			// reset to a leader's log start that DeleteRecords put
			// mid-batch) restarts at the batch's base, as Kafka's
			// follower does on UnexpectedAppendOffsetException; the
			// leader's log start is taken again below.
			if leo := r.log.LogEndOffset(); len(hdrs) > 0 && hdrs[0].BaseOffset < leo && hdrs[0].LastOffset() >= leo && r.log.LogStartOffset() == leo {
				if err := r.log.TruncateFully(hdrs[0].BaseOffset); err != nil {
					return err
				}
				r.lowerHWLocked(hdrs[0].BaseOffset)
			}
			if err := r.log.AppendFollower(records[:valid]); err != nil {
				if errors.Is(err, segment.ErrFailed) {
					r.b.logDirFailed(r.dir, err)
				}
				return err
			}
			for i, h := range hdrs {
				r.mu.producers.update(h)
				r.applyTxnLocked(h, batches[i])
			}
			for _, s := range starts {
				if err := r.log.AssignEpoch(s.epoch, s.off); err != nil {
					return err
				}
			}
		}
	}
	hw := min(leaderHW, r.log.LogEndOffset())
	if hw > r.mu.hw {
		r.advanceHWLocked(hw)
	}
	// The leader's log start moved (retention, DeleteRecords): follow
	// it, up to what this replica knows is committed (Kafka's
	// maybeIncrementLogStartOffset on the follower).
	if start := min(leaderStart, r.mu.hw); start > r.log.LogStartOffset() {
		if err := r.log.DeleteBefore(start); err != nil {
			return err
		}
	}
	r.notify()
	return nil
}

// resetToLeaderStart handles OFFSET_OUT_OF_RANGE on a follower whose log
// ends below the leader's log start (it was away while the leader deleted
// segments, or it is a new replica of a partition whose start moved): it
// drops its log and starts again at the leader's log start, as Kafka's
// fetcher does.
func (r *partition) resetToLeaderStart(s sent, leaderStart int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.needTruncate || !s.currentLocked(true) || leaderStart <= r.log.LogEndOffset() {
		return nil
	}
	if err := r.log.TruncateFully(leaderStart); err != nil {
		return err
	}
	r.lowerHWLocked(leaderStart)
	return r.rebuildProducersLocked()
}
