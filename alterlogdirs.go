package kcluster

// Moving a replica between the log dirs of its broker (AlterReplicaLogDirs,
// KIP-113): Kafka's future replica and ReplicaAlterLogDirsThread. The
// future log is opened in the destination dir under the replica's own
// name (each dir has its own store), copies the current log's batches
// from its log start while the replica goes on serving, and once it has
// caught up, with the replica's lock held so that no append slips in
// between, takes the last batches, the leader epochs, the aborted
// transactions, the producer snapshot and the high watermark; the replica
// then closes, its old log is deleted, and it reopens from the
// destination dir (the requests that reach it meanwhile get
// NOT_LEADER_OR_FOLLOWER or UNKNOWN_TOPIC_OR_PARTITION and retry). The
// broker then reports the new dir (AssignReplicasToDirs). While it moves,
// DescribeLogDirs shows the future replica (IsFuture) and PartitionState
// its dir (FutureLogDirs).

import (
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kcluster/kcluster/segment"
)

// futureReplica is a replica's log being copied into another dir.
type futureReplica struct {
	dir *logDir
	log *segment.Log
}

// futureLog returns the replica's future replica, or nil.
func (r *partition) futureLog() *futureReplica {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.future
}

// copyChunk is how much of the current log one step of a move copies.
const copyChunk = 1 << 20

// alterLogDir starts moving r into dir d and returns the error code of
// AlterReplicaLogDirs for it: NONE once the move is under way (or r is in
// d already, or moving there), KAFKA_STORAGE_ERROR if the future log
// cannot be opened. A replica moving elsewhere keeps that move (Kafka
// would redirect it).
func (b *broker) alterLogDir(r *partition, d *logDir) int16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.mu.closed:
		return kerr.NotLeaderForPartition.Code
	case r.dir == d, r.mu.future != nil:
		return 0
	}
	l, err := d.store().OpenLog(r.logName(), segment.LogOptions{SegmentBytes: r.mu.lc.segmentBytes, IndexIntervalBytes: r.mu.lc.indexIntervalBytes, FlushMessages: r.mu.lc.flushMessages})
	if err != nil {
		b.log.Warn("opening the future log", "topic", r.topic, "partition", r.part, "dir", d.path, "err", err)
		return kerr.KafkaStorageError.Code
	}
	// What an interrupted move left is dropped: the copy starts at the
	// current log's start.
	if err := l.TruncateFully(r.log.LogStartOffset()); err != nil {
		l.Close()
		return kerr.KafkaStorageError.Code
	}
	f := &futureReplica{dir: d, log: l}
	r.mu.future = f
	b.dirWG.Add(1)
	go func() {
		defer b.dirWG.Done()
		b.moveReplica(r, f)
	}()
	return 0
}

// moveReplica copies r's log into its future log, then swaps them.
func (b *broker) moveReplica(r *partition, f *futureReplica) {
	fail := func(err error) {
		if b.ctx.Err() == nil && !errors.Is(err, segment.ErrClosed) {
			b.log.Warn("moving replica", "topic", r.topic, "partition", r.part, "dir", f.dir.path, "err", err)
		}
		r.mu.Lock()
		if r.mu.future == f {
			r.mu.future = nil
			f.log.Close()
		}
		r.mu.Unlock()
		f.dir.store().RemoveLog(r.logName())
	}
	// Catch up without the replica's lock, a chunk at a time.
	for {
		if b.ctx.Err() != nil {
			fail(b.ctx.Err())
			return
		}
		n, err := copyLog(r.log, f.log, copyChunk)
		if err != nil {
			fail(err)
			return
		}
		if n < copyChunk {
			break
		}
	}
	if g := b.moveGate.Load(); g != nil {
		select {
		case <-*g:
		case <-b.ctx.Done():
			fail(b.ctx.Err())
			return
		}
	}
	// The tail and the rest, with the lock: nothing is appended meanwhile.
	r.mu.Lock()
	if r.mu.closed || r.mu.future != f {
		r.mu.Unlock()
		fail(segment.ErrClosed)
		return
	}
	if err := finishFuture(r, f); err != nil {
		r.mu.Unlock()
		fail(err)
		return
	}
	r.mu.future = nil
	old := r.dir
	r.closeLocked()
	r.mu.Unlock()
	r.notify()
	f.log.Close()
	// The old log goes while the closed replica is still in the map, so
	// that applyLoop does not find the log in two dirs meanwhile (it
	// would keep the one the metadata names: the old one).
	if err := old.store().RemoveLog(r.logName()); err != nil {
		b.log.Warn("removing the moved replica's old log", "topic", r.topic, "partition", r.part, "err", err)
	}
	k := tpKey{r.id, r.part}
	b.mu.Lock()
	if b.mu.replicas[k] == r {
		delete(b.mu.replicas, k)
		b.fetchers.remove(r)
	}
	b.mu.Unlock()
	b.log.Info("replica moved", "topic", r.topic, "partition", r.part, "from", old.path, "to", f.dir.path)
	b.reopenMoved(k, f.dir)
	b.wakeAssign()
	b.c.notifyEvent()
}

// copyLog appends to dst the batches of src from dst's end, up to max
// bytes, following src's truncations and log start, and returns the
// bytes copied.
func copyLog(src, dst *segment.Log, max int) (int, error) {
	start, end := src.LogStartOffset(), src.LogEndOffset()
	leo := dst.LogEndOffset()
	switch {
	case leo > end:
		// The source was truncated (a follower's divergence).
		if err := dst.Truncate(end); err != nil {
			return 0, dst.TruncateFully(start)
		}
		return 0, nil
	case leo < start:
		return 0, dst.TruncateFully(start)
	case leo == end:
		return 0, nil
	}
	data, err := src.Read(leo, max, end)
	if errors.Is(err, segment.ErrOffsetOutOfRange) {
		return 0, nil // moved meanwhile: the next step sees where
	}
	if err != nil || len(data) == 0 {
		return 0, err
	}
	h, err := segment.ParseBatchHeader(data)
	if err != nil {
		return 0, err
	}
	if h.BaseOffset < leo && dst.LogStartOffset() == leo {
		// The log starts inside its first batch (DeleteRecords): the
		// copy starts at the batch, and its start is set after.
		if err := dst.TruncateFully(h.BaseOffset); err != nil {
			return 0, err
		}
	}
	if err := dst.AppendFollower(data); err != nil {
		return 0, err
	}
	return len(data), nil
}

// finishFuture makes f a whole copy of r's log, with r's lock held.
func finishFuture(r *partition, f *futureReplica) error {
	for {
		n, err := copyLog(r.log, f.log, copyChunk)
		if err != nil {
			return err
		}
		if n == 0 && f.log.LogEndOffset() == r.log.LogEndOffset() {
			break
		}
	}
	if start := r.log.LogStartOffset(); f.log.LogStartOffset() < start {
		if err := f.log.DeleteBefore(start); err != nil {
			return err
		}
	}
	for _, e := range r.log.EpochEntries() {
		if err := f.log.AssignEpoch(e.Epoch, e.StartOffset); err != nil {
			return err
		}
	}
	start := r.log.LogStartOffset()
	aborted, err := r.log.AbortedTxns(start, r.log.LogEndOffset())
	if err != nil {
		return err
	}
	if err := f.log.ResetAbortedTxns(start, aborted); err != nil {
		return err
	}
	if off, snap, err := r.log.ProducerSnapshot(); err == nil && off >= 0 {
		if err := f.log.SaveProducerSnapshot(off, snap); err != nil {
			return err
		}
	}
	if err := f.log.CheckpointHighWatermark(r.mu.hw); err != nil {
		return err
	}
	return f.log.Sync()
}

// reopenMoved opens a moved replica from its new dir and installs it, if
// applyLoop has not done so already and the metadata still assigns it.
func (b *broker) reopenMoved(k tpKey, d *logDir) {
	b.mu.RLock()
	st := b.mu.state
	t := st.TopicsByID[k.id]
	p := st.Partition(k.id, k.p)
	var lc *logConfig
	if t != nil {
		lc = b.logConfigLocked(t)
	}
	b.mu.RUnlock()
	if p == nil {
		return
	}
	nr, err := openPartition(b, t, k.p, lc, d.id)
	if err != nil {
		b.log.Debug("reopening the moved replica", "topic", t.Name, "partition", k.p, "err", err)
		return // applyLoop opened it, or will at its next batch
	}
	b.mu.Lock()
	p = b.mu.state.Partition(k.id, k.p)
	if b.mu.replicas[k] != nil || p == nil || !slices.Contains(p.Replicas, b.id) || b.ctx.Err() != nil {
		b.mu.Unlock()
		nr.close()
		return
	}
	b.mu.replicas[k] = nr
	nr.update(p, b.logConfigLocked(b.mu.state.TopicsByID[k.id]))
	b.mu.Unlock()
}
