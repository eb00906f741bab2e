package kcluster

// The coordinator runtime (Kafka's CoordinatorRuntime). A coordinator keeps
// its state in the partitions of an internal topic: the group coordinator
// in __consumer_offsets (group_coordinator.go), the transaction
// coordinator in __transaction_state (txn_coordinator.go), and any later
// one (share groups in __share_group_state) the same way. Each partition is
// one shard, Kafka's CoordinatorShard: the state machine its records
// build. The runtime does for every coordinator what does not depend on
// its records:
//
//   - It follows the partitions' leaderships in the metadata. A broker that
//     becomes a partition's leader loads its shard by replaying the
//     partition from its start (a new leader epoch is a new load), and
//     unloads it when it stops leading it. While a shard loads, its keys
//     are answered COORDINATOR_LOAD_IN_PROGRESS; once it is unloaded, and
//     on every other broker, NOT_COORDINATOR.
//   - It maps a key to its partition as Kafka does: abs(javaHash(key)) %
//     the topic's partition count, or the configured count while the topic
//     does not exist. FindCoordinator creates the topic (coordinatorFor).
//   - It writes. A write appends its records to the partition as the
//     partition's leader, with the shard locked, and applies them to the
//     shard's memory under the same lock. The lock is then released and the
//     response waits, without it, until the high watermark has passed
//     everything the shard had written.
//
// Ordering without the lock held during the wait: the shard's memory
// changes when its records are appended, under the lock, so it follows log
// order, and a later request builds on an earlier write whose replication
// is still under way, as Kafka's writes build on its uncommitted timeline.
// No response leaves the shard before the high watermark covers what the
// shard had written when the response was made: reads wait as writes do,
// so no client sees state that a leader change could still take back
// (Kafka reads at the last committed offset instead of waiting). When a
// write's wait fails:
//
//   - The partition is no longer led here in the shard's leader epoch
//     (NOT_LEADER_OR_FOLLOWER, or a new epoch): the shard is unloaded at
//     once, its memory dropped; the next leader replays its own log.
//   - Time out: the records stay in the leader's log, and so in memory,
//     which is what a replay of that log would give. The leader's log can
//     lose them only with its leadership, which unloads the shard. The
//     client gets COORDINATOR_NOT_AVAILABLE, as from Kafka, and retries.
//
// An append that fails changes nothing in the log: its caller applies
// nothing, or undoes what it applied, before it lets the lock go.
// Effects that must follow the commit of a record (the transaction
// coordinator's markers after a Prepare state) wait for it themselves.
//
// Concurrency: each shard's state is guarded by its context's mutex
// (coordinatorContext.mu), as Kafka runs one shard's events one at a time.
// The runtime's mutex guards its map of shards; it is taken before a
// shard's and never while one is held. One goroutine per coordinator
// (run) follows the leaderships, loads and unloads shards, and runs the
// coordinator's timers.

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// coordinatorShard is Kafka's CoordinatorShard: the state machine of one
// partition of a coordinator's internal topic. The runtime calls it with
// its context locked, except while loading, when nothing else can reach
// it yet.
type coordinatorShard interface {
	// replay applies one record of the partition, at offset; pid is the
	// producer id of a transactional record, -1 for the coordinator's own
	// records. A nil value is a tombstone.
	replay(offset, pid int64, key, value []byte)
	// replayEndTransactionMarker applies the marker ending producer pid's
	// transaction on the partition.
	replayEndTransactionMarker(pid int64, commit bool)
	// onLoaded is called once the partition is replayed, before the shard
	// serves any request.
	onLoaded()
	// onUnloaded is called when the shard stops serving: its leadership
	// moved, or the broker is stopping.
	onUnloaded()
}

// coordinatorConfig is what the runtime needs to know of a coordinator.
type coordinatorConfig struct {
	name       string // for logs: "group", "transaction"
	topic      string // the internal topic
	partitions int32  // its partition count, when created and until it exists
	rf         int16  // its replication factor, lowered to the number of brokers
	// topicConfigs are the topic's configs, for replication factor rf.
	topicConfigs func(rf int16) map[string]string
	// timeout bounds how long a response waits for the shard's writes to
	// be committed, unless the write gave its own.
	timeout time.Duration
}

// coordinatorRuntime runs one coordinator's shards on one broker.
type coordinatorRuntime[S coordinatorShard] struct {
	b        *broker
	cfg      coordinatorConfig
	newShard func(*coordinatorContext[S]) S
	wake     chan struct{} // run: a deadline moved, or a shard failed
	// dirty is set when a shard's state changed (a write, a load, a
	// replayed marker): run's jobs look at the shards again.
	dirty atomic.Bool
	mu    struct {
		sync.Mutex
		shards map[int32]*coordinatorContext[S]
		loadCh chan struct{} // closed when the shards are next reconciled
	}
}

func newCoordinatorRuntime[S coordinatorShard](b *broker, cfg coordinatorConfig, newShard func(*coordinatorContext[S]) S) *coordinatorRuntime[S] {
	rt := &coordinatorRuntime[S]{b: b, cfg: cfg, newShard: newShard, wake: make(chan struct{}, 1)}
	rt.mu.shards = make(map[int32]*coordinatorContext[S])
	return rt
}

// shardState is a shard's place in its life (Kafka's CoordinatorState,
// without FAILED: a shard whose load failed stays loading, its requests
// answered COORDINATOR_LOAD_IN_PROGRESS, until its leadership moves).
type shardState int8

const (
	shardLoading shardState = iota
	shardActive
	shardClosed
)

// coordinatorContext is one shard and what the runtime keeps with it
// (Kafka's CoordinatorContext): the partition it is loaded from, the
// leader epoch it was loaded in, and its state.
type coordinatorContext[S coordinatorShard] struct {
	rt    *coordinatorRuntime[S]
	p     int32
	rep   *partition
	epoch int32 // the partition's leader epoch: Kafka's coordinator epoch
	// ctx is canceled when the shard is unloaded; work done on its behalf
	// (the transaction coordinator's marker senders) ends with it.
	ctx    context.Context
	cancel context.CancelFunc
	mu     struct {
		sync.Mutex
		state shardState
		shard S // the state machine, once loaded
		// written is the log end after the shard's last append, or after
		// what its load read: a response waits for the high watermark
		// to reach it.
		written int64
		loadEnd int64         // the log end the load read up to
		late    []txnMarker   // markers written while the shard loaded
		timeout time.Duration // the longest wait the current run's writes asked for
	}
}

// coordinatorJob is a coordinator's periodic work, done by run: fn runs
// at ticks every every apart (from run's start), as Kafka's scheduler
// runs it, but only at those that can find work. fn returns when it next
// has work if nothing changes meanwhile (zero: none), and run skips the
// ticks before it; a change to any shard arms the job again from the next
// tick, so what the change brought is found when a ticker would have
// found it.
type coordinatorJob struct {
	every time.Duration
	fn    func(now time.Time) (next time.Time)
}

// run follows the leaderships of the coordinator's topic and runs its
// jobs, and deadlines (zero for none) after every wake-up, until the broker
// stops; then it unloads every shard. With no job due and no deadline, it
// sleeps until the metadata or a shard changes.
func (rt *coordinatorRuntime[S]) run(jobs []coordinatorJob, deadlines func(now time.Time) time.Time) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	phase := time.Now()
	// tick is the first tick of job j at or after t.
	tick := func(j coordinatorJob, t time.Time) time.Time {
		n := (t.Sub(phase) + j.every - 1) / j.every
		return phase.Add(n * j.every)
	}
	due := make([]time.Time, len(jobs)) // zero: not armed
	for i, j := range jobs {
		due[i] = phase.Add(j.every)
	}
	for {
		rt.b.mu.RLock()
		changed := rt.b.mu.changed
		rt.b.mu.RUnlock()
		rt.reconcile()
		now := time.Now()
		if rt.dirty.Swap(false) {
			for i, j := range jobs {
				due[i] = earliest(due[i], tick(j, now.Add(time.Nanosecond)))
			}
		}
		var next time.Time
		for i, j := range jobs {
			if !due[i].IsZero() && !now.Before(due[i]) {
				due[i] = time.Time{}
				if more := j.fn(now); !more.IsZero() {
					due[i] = tick(j, maxTime(more, now.Add(time.Nanosecond)))
				}
			}
			next = earliest(next, due[i])
		}
		if deadlines != nil {
			next = earliest(next, deadlines(now))
		}
		if next.IsZero() {
			next = now.Add(time.Hour)
		}
		timer.Reset(time.Until(next))
		select {
		case <-rt.b.ctx.Done():
			rt.unloadAll()
			return
		case <-changed:
		case <-rt.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// changed says a shard's state changed, so run's jobs look again.
func (rt *coordinatorRuntime[S]) changed() {
	rt.dirty.Store(true)
	rt.kick()
}

// kick wakes run: a deadline may have moved, or a shard must be reloaded.
func (rt *coordinatorRuntime[S]) kick() {
	select {
	case rt.wake <- struct{}{}:
	default:
	}
}

// leads reports whether this broker leads r in leader epoch epoch.
func (b *broker) leads(r *partition, epoch int32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.leader == b.id && r.mu.epoch == epoch && !r.mu.closed
}

// reconcile loads the shards of the partitions this broker now leads and
// unloads the others, and those it leads in a new epoch (reloaded from the
// log) or that failed.
func (rt *coordinatorRuntime[S]) reconcile() {
	type lead struct {
		rep   *partition
		epoch int32
	}
	want := map[int32]lead{}
	b := rt.b
	b.mu.RLock()
	if t := b.mu.state.Topics[rt.cfg.topic]; t != nil {
		for _, p := range t.Partitions {
			if p.Leader != b.id {
				continue
			}
			if r := b.mu.replicas[tpKey{t.ID, p.Partition}]; r != nil && b.leads(r, p.LeaderEpoch) {
				want[p.Partition] = lead{r, p.LeaderEpoch}
			}
		}
	}
	b.mu.RUnlock()

	var load []*coordinatorContext[S]
	rt.mu.Lock()
	for p, c := range rt.mu.shards {
		if w, ok := want[p]; !ok || w.rep != c.rep || w.epoch != c.epoch || c.closed() {
			delete(rt.mu.shards, p)
			c.unload()
		}
	}
	for p, w := range want {
		if rt.mu.shards[p] == nil {
			c := &coordinatorContext[S]{rt: rt, p: p, rep: w.rep, epoch: w.epoch}
			c.ctx, c.cancel = context.WithCancel(b.ctx)
			rt.mu.shards[p] = c
			load = append(load, c)
		}
	}
	rt.mu.Unlock()
	for _, c := range load {
		start := time.Now()
		if err := c.load(); err != nil {
			b.log.Error("loading "+rt.cfg.name+" coordinator partition", "partition", c.p, "err", err)
			continue
		}
		b.log.Debug("loaded "+rt.cfg.name+" coordinator partition", "partition", c.p, "epoch", c.epoch, "took", time.Since(start))
	}
	rt.notifyLoad()
	if len(load) > 0 {
		b.c.notifyEvent()
	}
}

func (rt *coordinatorRuntime[S]) unloadAll() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for p, c := range rt.mu.shards {
		delete(rt.mu.shards, p)
		c.unload()
	}
}

func (c *coordinatorContext[S]) closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.state == shardClosed
}

// unload closes the shard: every request on it answers NOT_COORDINATOR
// from now on.
func (c *coordinatorContext[S]) unload() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.state == shardClosed {
		return
	}
	active := c.mu.state == shardActive
	c.mu.state = shardClosed
	c.cancel()
	if active {
		c.mu.shard.onUnloaded()
	}
}

// fail unloads the shard after a wait found its partition led elsewhere
// or in another epoch; run reloads it if this broker leads it again.
func (c *coordinatorContext[S]) fail() {
	c.unload()
	c.rt.kick()
}

// contextFor returns the loaded shard of key's partition, or
// NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS. A request that reaches
// the partition's new leader before its shard is loaded waits for the load
// (up to loadWait) rather than sending the client into a retry backoff.
func (rt *coordinatorRuntime[S]) contextFor(key string) (*coordinatorContext[S], error) {
	const loadWait = 2 * time.Second
	var deadline <-chan time.Time
	for {
		changed := rt.loadChanged()
		c, err := rt.contextForNow(key)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, kerr.CoordinatorLoadInProgress) && !(errors.Is(err, kerr.NotCoordinator) && rt.mayLead(key)) {
			return nil, err
		}
		if deadline == nil {
			t := time.NewTimer(loadWait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-changed:
		case <-deadline:
			return nil, err
		case <-rt.b.ctx.Done():
			return nil, kerr.NotCoordinator
		}
	}
}

// contextForNow is contextFor without waiting for a load.
func (rt *coordinatorRuntime[S]) contextForNow(key string) (*coordinatorContext[S], error) {
	p := rt.partitionFor(key)
	rt.mu.Lock()
	c := rt.mu.shards[p]
	rt.mu.Unlock()
	if c == nil {
		return nil, kerr.NotCoordinator
	}
	c.mu.Lock()
	state := c.mu.state
	c.mu.Unlock()
	switch state {
	case shardLoading:
		return nil, kerr.CoordinatorLoadInProgress
	case shardClosed:
		return nil, kerr.NotCoordinator
	}
	return c, nil
}

// loadChanged returns a channel closed when the runtime next reconciles
// its shards with the metadata.
func (rt *coordinatorRuntime[S]) loadChanged() <-chan struct{} {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.mu.loadCh == nil {
		rt.mu.loadCh = make(chan struct{})
	}
	return rt.mu.loadCh
}

func (rt *coordinatorRuntime[S]) notifyLoad() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.mu.loadCh != nil {
		close(rt.mu.loadCh)
		rt.mu.loadCh = nil
	}
}

// contexts returns every shard, loaded or not, by partition.
func (rt *coordinatorRuntime[S]) contexts() []*coordinatorContext[S] {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := make([]*coordinatorContext[S], 0, len(rt.mu.shards))
	for _, c := range rt.mu.shards {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *coordinatorContext[S]) int { return cmp.Compare(a.p, b.p) })
	return out
}

// runFor runs fn on the shard of key's partition: contextFor, then run.
func (rt *coordinatorRuntime[S]) runFor(key string, fn func(S) error) error {
	c, err := rt.contextFor(key)
	if err != nil {
		return err
	}
	return c.run(fn)
}

// run runs fn with the shard locked, then waits, without the lock, until
// the high watermark covers everything the shard had written when fn
// returned. A failed wait is the error, else fn's.
func (c *coordinatorContext[S]) run(fn func(S) error) error {
	c.mu.Lock()
	switch c.mu.state {
	case shardLoading:
		c.mu.Unlock()
		return kerr.CoordinatorLoadInProgress
	case shardClosed:
		c.mu.Unlock()
		return kerr.NotCoordinator
	}
	var err error
	var end int64
	var timeout time.Duration
	func() {
		// A panic in fn closes its connection (server.go), and must
		// not leave the shard locked for every other request.
		defer c.mu.Unlock()
		c.mu.timeout = 0
		err = fn(c.mu.shard)
		end, timeout = c.mu.written, cmp.Or(c.mu.timeout, c.rt.cfg.timeout)
	}()
	if werr := c.await(end, timeout); werr != nil {
		return werr
	}
	return err
}

// coordinatorKeys returns the keys (group names, transactional ids) that
// keys finds on each running broker, sorted, once each: the gauges Groups
// and Transactions.
func (c *Cluster) coordinatorKeys(keys func(b *broker) []string) []string {
	var out []string
	for _, b := range c.running() {
		out = append(out, keys(b)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// gather runs fn on every shard of rt, as run does, and returns what it
// gathered from those that answered, and the error of one that did not
// (loading, or its writes not committed in time); shards unloaded
// meanwhile are left out.
func gather[S coordinatorShard, T any](rt *coordinatorRuntime[S], fn func(S) []T) ([]T, error) {
	var out []T
	var firstErr error
	for _, c := range rt.contexts() {
		var got []T
		err := c.run(func(s S) error { got = fn(s); return nil })
		switch {
		case err == nil:
			out = append(out, got...)
		case !errors.Is(err, kerr.NotCoordinator) && firstErr == nil:
			firstErr = err
		}
	}
	return out, firstErr
}

// locked runs fn with the shard locked, if it is loaded, and returns the
// log end the shard has written up to, for the caller to await; for work
// that answers no request at once (timers, expiration).
func (c *coordinatorContext[S]) locked(fn func(S)) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.state != shardActive {
		return 0, false
	}
	fn(c.mu.shard)
	return c.mu.written, true
}

// writtenLocked is the log end the shard has written up to.
func (c *coordinatorContext[S]) writtenLocked() int64 { return c.mu.written }

// awaitWritten waits until the high watermark covers everything the shard
// has written so far: a response made under the lock and handed over
// later (a JoinGroup or SyncGroup answered when its rebalance moved on)
// waits for it before it leaves.
func (c *coordinatorContext[S]) awaitWritten() error {
	c.mu.Lock()
	end := c.mu.written
	c.mu.Unlock()
	return c.await(end, c.rt.cfg.timeout)
}

// await waits up to timeout until the high watermark reaches end, and
// returns the error a client gets if it does not.
func (c *coordinatorContext[S]) await(end int64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	err := c.waitCommitted(ctx, end)
	if err != nil && c.ctx.Err() != nil {
		err = kerr.NotCoordinator // unloaded meanwhile
	}
	return coordinatorAppendError(err)
}

// waitCommitted waits until the partition's high watermark reaches end,
// with the partition still led here in the shard's epoch; otherwise the
// shard fails. A high watermark past end is a commit even with the ISR
// now below min.insync.replicas.
func (c *coordinatorContext[S]) waitCommitted(ctx context.Context, end int64) error {
	err := c.rep.waitHW(ctx, end)
	if errors.Is(err, kerr.NotEnoughReplicasAfterAppend) {
		err = nil
	}
	if err == nil && !c.rt.b.leads(c.rep, c.epoch) {
		err = kerr.NotLeaderForPartition // led again, in a new epoch
	}
	if errors.Is(err, kerr.NotLeaderForPartition) {
		c.fail()
	}
	return err
}

// appendLocked appends recs to the partition as its leader (acks=all: the
// ISR must have min.insync.replicas) and returns the log end after them.
// The caller applies them to the shard before it unlocks; the response
// waits for them (run) up to timeout, or the coordinator's timeout if 0 (a
// transaction's state change waits up to the transaction's timeout, as
// Kafka's). Errors are a client's (coordinatorAppendError).
func (c *coordinatorContext[S]) appendLocked(recs []kmsg.Record, timeout time.Duration) (int64, error) {
	if len(recs) == 0 {
		return c.mu.written, nil
	}
	end, err := c.appendBatchLocked(encodeBatch(recs, time.Now().UnixMilli()), nil, timeout)
	return end, coordinatorAppendError(err)
}

// appendBatchLocked appends a batch built by the caller (a transactional
// offset commit, with the guard of its transaction's verification), and
// returns the partition's error as it is.
func (c *coordinatorContext[S]) appendBatchLocked(batch []byte, guard *txnGuard, timeout time.Duration) (int64, error) {
	if c.mu.state != shardActive {
		return 0, kerr.NotCoordinator
	}
	_, end, err := c.rep.appendAsLeaderGuarded(batch, -1, guard)
	if err != nil {
		return 0, err
	}
	c.mu.written = max(c.mu.written, end)
	c.mu.timeout = max(c.mu.timeout, timeout)
	c.rt.changed()
	return end, nil
}

// coordinatorAppendError maps an append error, or a failed wait for its
// replication, to the error a coordinator's client gets (Kafka's
// CoordinatorOperationExceptionHelper, and its TransactionStateManager for
// NOT_ENOUGH_REPLICAS_AFTER_APPEND).
func coordinatorAppendError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.NotCoordinator), errors.Is(err, kerr.CoordinatorLoadInProgress),
		errors.Is(err, kerr.CoordinatorNotAvailable):
		return err
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.NotEnoughReplicas),
		errors.Is(err, kerr.NotEnoughReplicasAfterAppend), errors.Is(err, kerr.RequestTimedOut):
		return kerr.CoordinatorNotAvailable
	case errors.Is(err, kerr.NotLeaderForPartition), errors.Is(err, kerr.KafkaStorageError):
		return kerr.NotCoordinator
	}
	// MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE and INVALID_FETCH_SIZE
	// among them, as Kafka 4.
	return kerr.UnknownServerError
}

// encodeBatch builds an uncompressed v2 record batch of recs, a
// coordinator's own (no producer).
func encodeBatch(recs []kmsg.Record, ts int64) []byte {
	return encodeProducerBatch(recs, ts, -1, -1, -1, 0)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// earliest is the earlier of a and b, a zero time standing for none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
