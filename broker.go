package kcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

// broker is one node. Its metadata view and partitions sit in mu; the view
// is built only by replaying the metadata log, and applyLoop is the only
// writer of both (it opens and removes logs without mu). Each accepted
// connection has one goroutine that reads a request, handles it and writes
// the response before reading the next, so responses are in request order
// (as Kafka, which mutes a connection while a request is in flight).
type broker struct {
	id   int32
	c    *Cluster
	cfg  *brokerConfig
	log  *slog.Logger
	ln   net.Listener // the default (inter-broker) listener, lns[0]'s
	lns  []*brokerListener
	host string
	port int32
	// dirs are its log dirs (logdirs.go), fixed after newBroker.
	dirs  []*logDir
	dirWG sync.WaitGroup // dirs being taken offline, replicas moving
	// moveGate, when a test sets it, holds every replica move
	// (alterlogdirs.go) before it swaps its logs, until it is closed.
	moveGate atomic.Pointer[chan struct{}]
	// hbWake sends the next heartbeat now; assignWake wakes assignLoop.
	hbWake, assignWake chan struct{}
	epoch              int64 // registration epoch
	// prevEpoch is the epoch its clean shutdown file named, -1 after a
	// crash or a power cut (segment.Store.TakeCleanShutdown): it
	// registers with it as PreviousBrokerEpoch (KIP-966).
	prevEpoch int64
	// stopping is set by a controlled shutdown: heartbeats stop, so the
	// broker is not unfenced again on its way out.
	stopping atomic.Bool
	// killed is set as a kill begins (close without graceful): a killed
	// broker does nothing more, not even what its own connections
	// closing would set off (shareManager.connClosed).
	killed atomic.Bool
	// standing cancels the heartbeat the controller may be holding
	// (heartbeatLoop), so that a controlled shutdown can say it wants to
	// stop.
	standing struct {
		sync.Mutex
		cancel context.CancelFunc
	}
	// offline is set when its last log dir failed and it halts
	// (faults_storage.go).
	offline atomic.Bool
	// applied is the metadata offset the broker has applied and acted on
	// (mu.state.Offset once reconciled), for heartbeats, which never wait
	// for mu.
	applied atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.RWMutex
		state    *metadata.State
		replicas map[tpKey]*partition
		changed  chan struct{} // closed and replaced on every metadata apply
	}
	srv server // accepted connections (server.go)

	fetchers fetcherSet    // follower side of replication
	isrWake  chan struct{} // a follower outside an ISR caught up
	// isrArm and cleanerArm wake isrLoop and cleanerLoop when they sleep
	// and a partition changes (partition.notify).
	isrArm, cleanerArm armer
	// Each kind of controller traffic has its own connection, as Kafka's
	// broker has a channel per purpose, so a heartbeat never waits
	// behind a burst of ISR changes or a slow admin request.
	cc   controllerClient // registration, heartbeats
	pc   controllerClient // AlterPartition
	mc   controllerClient // the metadata log's long-polled fetches
	ac   controllerClient // forwarded admin requests (CreateTopics, ...)
	pids struct {         // this broker's block of producer ids
		sync.Mutex
		next, end int64
	}
	waiting atomic.Value // string: what close is waiting on
	// apiKeys is ApiVersions' table of keys and versions, built once
	// from the handler registry (fixed after init).
	apiKeys []kmsg.ApiVersionsResponseApiKey
	// supportedFeatures is ApiVersions' (v3+) list of the features this
	// software supports, built once too.
	supportedFeatures []kmsg.ApiVersionsResponseSupportedFeature

	// groups is the group coordinator (group_coordinator.go).
	groups *groupCoordinator
	// txns is the transaction coordinator (txn_coordinator.go).
	txns *txnCoordinator
	// shareCoord is the share coordinator (share_coordinator.go).
	shareCoord *shareCoordinator
	// shares are the share-partitions this broker leads and their
	// share sessions (share_session.go).
	shares *shareManager

	quotas quotaManager // client quotas (quotas.go)

	snaps brokerSnapshots // metadata snapshots (metadata_snapshotter.go)
}

type tpKey struct {
	id metadata.TopicID
	p  int32
}

func newBroker(c *Cluster, id int32, addr string) (*broker, error) {
	ctx, cancel := context.WithCancel(c.ctx)
	b := &broker{
		id:                id,
		c:                 c,
		cfg:               &c.cfg.broker,
		log:               c.cfg.logger.With("broker", id),
		ctx:               ctx,
		cancel:            cancel,
		apiKeys:           apiKeys(),
		supportedFeatures: supportedFeatures(),
	}
	b.mu.state = metadata.NewState()
	b.mu.replicas = make(map[tpKey]*partition)
	b.srv.init(ctx, b.log, &c.bufs, &b.wg)
	b.mu.changed = make(chan struct{})
	b.fetchers.init(b)
	b.isrWake = make(chan struct{}, 1)
	b.isrArm.init()
	b.cleanerArm.init()
	b.cc.b = b
	b.pc.b = b
	b.mc.b = b
	b.ac.b = b
	b.groups = newGroupCoordinator(b)
	b.txns = newTxnCoordinator(b)
	b.shareCoord = newShareCoordinator(b)
	b.shares = newShareManager(b, newStatePersister(b))

	b.hbWake = make(chan struct{}, 1)
	b.assignWake = make(chan struct{}, 1)
	if err := b.openLogDirs(); err != nil {
		cancel()
		return nil, err
	}
	// The metadata snapshots live in the first log dir (Kafka's
	// metadata.log.dir default).
	d0 := b.dirs[0]
	b.snaps = brokerSnapshots{fs: d0.fs, dir: d0.fs.PathJoin(d0.path, metadata.SnapshotDir), loaded: -1, fetched: -1}
	ln, err := c.net.Listen(id, addr)
	if err != nil {
		b.closeLogDirs()
		cancel()
		return nil, err
	}
	b.ln = ln
	tcp := ln.Addr().(*net.TCPAddr)
	b.host = c.cfg.advertised
	b.port = int32(tcp.Port)
	b.lns = []*brokerListener{{name: DefaultListener, protocol: Plaintext, ln: ln, port: b.port}}
	for i, spec := range c.cfg.listeners {
		port := c.listenerPort(i, id)
		xln, err := c.net.Listen(id, net.JoinHostPort(c.cfg.host, strconv.Itoa(port)))
		if err != nil {
			for _, l := range b.lns {
				l.ln.Close()
			}
			b.closeLogDirs()
			cancel()
			return nil, fmt.Errorf("listener %s: %w", spec.name, err)
		}
		b.lns = append(b.lns, &brokerListener{name: spec.name, protocol: spec.protocol, ln: xln, port: int32(xln.Addr().(*net.TCPAddr).Port)})
	}
	return b, nil
}

func (b *broker) advertisedAddr() string {
	return net.JoinHostPort(b.host, strconv.Itoa(int(b.port)))
}

func (b *broker) start() {
	b.wg.Add(8 + len(b.lns))
	go func() { defer b.wg.Done(); b.assignLoop() }()
	go func() { defer b.wg.Done(); b.cleanerLoop() }()
	go func() { defer b.wg.Done(); b.groups.run() }()
	go func() { defer b.wg.Done(); b.txns.run() }()
	go func() { defer b.wg.Done(); b.shareCoord.run() }()
	for _, l := range b.lns {
		go func() { defer b.wg.Done(); b.acceptLoop(l) }()
	}
	go func() { defer b.wg.Done(); b.applyLoop() }()
	go func() { defer b.wg.Done(); b.heartbeatLoop() }()
	go func() { defer b.wg.Done(); b.isrLoop() }()
}

// waitState waits until cond holds on the broker's metadata state.
func (b *broker) waitState(ctx context.Context, cond func(*metadata.State) bool) error {
	for {
		b.mu.RLock()
		ok := cond(b.mu.state)
		ch := b.mu.changed
		b.mu.RUnlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *broker) waitingOn() string {
	s, _ := b.waiting.Load().(string)
	return s
}

// close stops the broker. graceful checkpoints high watermarks and syncs
// every log first (a controlled shutdown), then leaves the clean shutdown
// file; otherwise (a kill) the logs are closed as they are.
func (b *broker) close(graceful bool) {
	if !graceful {
		b.killed.Store(true)
	}
	b.dropConns()
	b.cancel()
	b.waiting.Store("fetchers")
	b.fetchers.closeAll()
	b.cc.close()
	b.pc.close()
	b.mc.close()
	b.ac.close()
	b.waiting.Store("connection and metadata goroutines")
	b.wg.Wait()
	b.dirWG.Wait()
	b.shares.close()
	b.shares.persister.close()
	b.waiting.Store("storage")
	b.mu.Lock()
	for _, r := range b.mu.replicas {
		if graceful {
			r.checkpoint(true)
		}
		r.close()
	}
	b.mu.replicas = nil
	b.mu.Unlock()
	for _, d := range b.dirs {
		if d.store() == nil {
			continue // offline since the start
		}
		if err := d.store().Close(); err != nil {
			b.log.Warn("closing storage", "dir", d.path, "err", err)
		} else if graceful && !b.offline.Load() && !d.offline.Load() {
			// Every log synced and closed: the next start is a clean
			// one (if every dir says so).
			if err := d.store().WriteCleanShutdown(b.epoch); err != nil {
				b.log.Warn("writing the clean shutdown file", "dir", d.path, "err", err)
			}
		}
	}
	b.waiting.Store("")
}

// dropConns closes the listener and every accepted connection at once, so
// that no in-flight request gets an answer (a crash, or the last step of a
// shutdown).
func (b *broker) dropConns() {
	b.waiting.Store("listener")
	for _, l := range b.lns {
		l.ln.Close()
	}
	b.srv.closeConns()
}

// applyLoop replays the metadata log into the broker's state, then
// reconciles the broker's partitions with it. The log comes from the
// controller node over the network (Fetch of __cluster_metadata, long
// polled), so a broker cut from the controller stops learning metadata.
//
// Opening a partition's log (its segments, its index in pebble) and
// removing one take time, and a change of 10,000 partitions once held
// b.mu for all of it, stalling every handler, fetcher and coordinator
// that reads the broker's state. So each batch of records goes through
// three steps:
//
//  1. Without b.mu, it is applied to ahead, applyLoop's own copy of the
//     state, and the partitions ahead assigns to this broker that are not
//     open yet are opened (openAssigned).
//  2. With b.mu, the same records are applied to b.mu.state and the
//     opened partitions installed, removed ones taken out of the map, and
//     every partition told the new metadata (reconcileLocked): readers see
//     the state and the partitions change together, never a partition
//     that is opened but not installed, nor a state naming a partition of
//     this broker that is not there.
//  3. Without b.mu, the removed partitions are closed and their logs
//     deleted (removeLogs).
//
// applyLoop is the only writer of b.mu.state and b.mu.replicas (close
// writes them after applyLoop has returned), so the state cannot move
// between the steps, and a batch is done, its removed logs deleted, before
// the next is fetched: a partition is never opened while its removal is
// under way.
func (b *broker) applyLoop() {
	ahead := metadata.NewState()
	var next int64
	// replace, when set, is a snapshot's state that replaces the
	// broker's at the next step: its own snapshot at start, or the
	// controller's when its fetch offset is below the log start.
	var replace *metadata.State
	if sn := b.loadSnapshot(); sn != nil {
		if a, own, err := snapshotStates(sn); err != nil {
			b.log.Warn("replaying the metadata snapshot; replaying the whole log", "err", err)
		} else {
			ahead, replace, next = a, own, sn.EndOffset()
			b.snaps.loaded = sn.Offset
		}
	}
	backoff := func() bool {
		select {
		case <-b.ctx.Done():
			return false
		case <-time.After(b.cfg.replicaFetchBackoff):
			return true
		}
	}
	for {
		var es []metadata.Entry
		if replace == nil {
			var err error
			var below *kmsg.FetchResponseTopicPartitionSnapshotID
			es, below, err = b.fetchMetadata(next)
			if errors.Is(err, kerr.OffsetOutOfRange) {
				// Past the controller's end: this broker's snapshot is
				// not of this log (its storage outlived the metadata).
				// Start over from the controller's log.
				b.log.Warn("metadata fetch offset past the controller's log; replaying it from its start", "offset", next)
				ahead, replace, next = metadata.NewState(), metadata.NewState(), 0
				continue
			}
			if err == nil && below != nil {
				var sn *metadata.Snapshot
				if sn, err = b.fetchSnapshot(*below); err == nil {
					var a, own *metadata.State
					if a, own, err = snapshotStates(sn); err == nil {
						ahead, replace, next = a, own, sn.EndOffset()
						b.snaps.fetched = sn.Offset
						b.saveSnapshot(sn)
					}
				}
			}
			if err != nil {
				if b.ctx.Err() != nil {
					return
				}
				b.log.Debug("fetching metadata", "err", err)
				if !backoff() {
					return
				}
				continue
			}
			if len(es) == 0 && replace == nil {
				continue
			}
		}
		for i, e := range es {
			if e.Offset != next {
				b.log.Error("metadata log gap", "want", next, "got", e.Offset)
				es = es[:i]
				break
			}
			if err := ahead.Apply(e.Offset, e.Record); err != nil {
				b.log.Error("applying metadata record", "offset", e.Offset, "err", err)
			}
			next = e.Offset + 1
		}
		opened, ok := b.openAssigned(ahead)
		if !ok {
			return // closing
		}
		b.mu.Lock()
		unfenced := func() (n int) {
			for _, br := range b.mu.state.Brokers {
				if !br.Fenced {
					n++
				}
			}
			return n
		}
		before := unfenced()
		if replace != nil {
			b.mu.state, replace = replace, nil
		}
		for _, e := range es {
			// The same records, in the same order, as ahead: the errors
			// are ahead's, logged above.
			_ = b.mu.state.Apply(e.Offset, e.Record)
		}
		removed, unwanted := b.reconcileLocked(opened)
		if unfenced() > before {
			// A broker was unfenced: a follower of it that caught up
			// while it was fenced (the controller refuses a fenced
			// broker into an ISR, KIP-841) joins now, not at the
			// follower's next fetch after its parked one.
			select {
			case b.isrWake <- struct{}{}:
			default:
			}
		}
		b.applied.Store(b.mu.state.Offset)
		close(b.mu.changed)
		b.mu.changed = make(chan struct{})
		b.mu.Unlock()
		for _, r := range unwanted {
			r.close()
		}
		b.removeLogs(removed)
		b.c.notifyEvent()
		b.maybeSnapshot(ahead, es)
	}
}

// openAssigned opens, without b.mu, the partitions st assigns to this
// broker that it has not opened. The partitions are not installed: only
// reconcileLocked makes them reachable. A partition that fails to open is
// logged and left out, to be tried again at the next batch. It returns
// false if the broker began closing meanwhile, having closed what it
// opened (a closed partition leaves the invariants build's registry of
// logs too).
func (b *broker) openAssigned(st *metadata.State) (map[tpKey]*partition, bool) {
	type want struct {
		k   tpKey
		t   *metadata.Topic
		lc  *logConfig
		dir metadata.DirectoryID
	}
	var wants []want
	b.mu.RLock()
	for _, name := range st.TopicNames() {
		t := st.Topics[name]
		var lc *logConfig
		for _, p := range t.Partitions {
			k := tpKey{t.ID, p.Partition}
			if !slices.Contains(p.Replicas, b.id) || b.mu.replicas[k] != nil {
				continue
			}
			if lc == nil {
				lc = b.c.cfg.logConfigFor(t, st, b.id)
			}
			wants = append(wants, want{k, t, lc, p.Directory(b.id)})
		}
	}
	b.mu.RUnlock()
	var opened map[tpKey]*partition
	for _, w := range wants {
		if b.ctx.Err() != nil {
			break
		}
		r, err := openPartition(b, w.t, w.k.p, w.lc, w.dir)
		if errors.Is(err, errLogDirOffline) {
			continue // until the dir is back
		}
		if err != nil {
			b.log.Error("opening replica", "topic", w.t.Name, "partition", w.k.p, "err", err)
			continue
		}
		if opened == nil {
			opened = make(map[tpKey]*partition)
		}
		opened[w.k] = r
	}
	if b.ctx.Err() != nil {
		for _, r := range opened {
			r.close()
		}
		return nil, false
	}
	return opened, true
}

// reconcileLocked makes the broker's partitions match the metadata: it
// installs the opened partitions of those it is assigned, takes those of
// removed topics and reassigned partitions out of the map (returning them
// as removed, for removeLogs once b.mu is released), and tells each
// partition who leads it now. Opened partitions it does not install are
// returned as unwanted, to be closed.
func (b *broker) reconcileLocked(opened map[tpKey]*partition) (removed, unwanted []*partition) {
	assign := false
	st := b.mu.state
	for k, r := range b.mu.replicas {
		p := st.Partition(k.id, k.p)
		if p == nil || !slices.Contains(p.Replicas, b.id) {
			delete(b.mu.replicas, k)
			b.fetchers.remove(r)
			removed = append(removed, r)
		}
	}
	for _, name := range st.TopicNames() {
		t := st.Topics[name]
		var lc *logConfig
		for _, p := range t.Partitions {
			if !slices.Contains(p.Replicas, b.id) {
				continue
			}
			if lc == nil {
				lc = b.logConfigLocked(t)
			}
			k := tpKey{t.ID, p.Partition}
			r := b.mu.replicas[k]
			if r == nil {
				if r = opened[k]; r == nil {
					continue // it failed to open (logged)
				}
				delete(opened, k)
				b.mu.replicas[k] = r
			}
			r.update(p, lc)
			if p.Directory(b.id) != r.dir.id {
				assign = true
			}
		}
	}
	if assign {
		b.wakeAssign() // report the placement (assignLoop)
	}
	// What was opened for a state this one does not assign. The state
	// cannot move while applyLoop opens (it is the state's only writer),
	// so this is a safeguard: such a partition is closed, not installed.
	for _, r := range opened {
		b.log.Error("opened replica not assigned", "topic", r.topic, "partition", r.part)
		unwanted = append(unwanted, r)
	}
	return removed, unwanted
}

// removeLogs closes partitions that reconcileLocked took out of the map
// and deletes their logs, without b.mu. A request that found one before
// it was taken out finds it closed.
func (b *broker) removeLogs(removed []*partition) {
	for _, r := range removed {
		r.close()
		if err := r.dir.store().RemoveLog(r.logName()); err != nil {
			b.log.Warn("removing log", "topic", r.topic, "partition", r.part, "err", err)
		}
	}
}

// partition returns the broker's partition of a partition, or nil.
func (b *broker) partition(id metadata.TopicID, p int32) *partition {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.mu.replicas[tpKey{id, p}]
}
