package kcluster

// A broker's log dirs: Kafka's LogManager over log.dirs, with KRaft's
// JBOD (KIP-858). Each dir has its own directory id, kept in its
// meta.properties (directory.id), its own segment.Store (segments and
// pebble index) and its own disk (faults_storage.go): in memory a
// crashable file system of its own, so one dir can fail or lose power
// as a disk of its own.
//
// A new replica goes to the online dir holding the fewest partitions
// (LogManager.nextLogDirs), or to the dir its metadata names, or to the
// dir that already has its log; the broker reports a placement the
// metadata does not show (AssignReplicasToDirs, assignLoop; Kafka's
// AssignmentsManager). A dir whose write fails goes offline
// (ReplicaManager.handleLogDirFailure): its replicas stop and close, the
// broker reports it in its heartbeats (OfflineLogDirs) and the controller
// moves their leaderships away and drops them from their ISRs; the broker
// serves its other dirs. With no dir left, or when the first dir fails
// (it holds the broker's metadata snapshots: Kafka's metadata.log.dir,
// whose failure halts a Kafka broker), it halts.
// FailLogDir's repair brings a dir back without a restart (Kafka needs
// one): its store reopens, the broker reports it online, and its replicas
// reopen, catch up and rejoin their ISRs.

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
	"github.com/kcluster/kcluster/segment"
)

// The log dir events.
const (
	// LogDirOffline: a log dir of a broker (Broker, LogDir, DirectoryID)
	// failed and went offline; the broker serves its other dirs.
	LogDirOffline EventKind = "log dir offline"
	// LogDirOnline: a failed log dir came back (FailLogDir's repair).
	LogDirOnline EventKind = "log dir online"
)

// ErrUnknownLogDir is returned by FailLogDir for a dir index that is not
// 0..LogDirs-1.
var ErrUnknownLogDir = errors.New("kcluster: unknown log dir")

// errLogDirOffline is openPartition's error for a replica whose log dir
// is offline: it is not opened, nor placed elsewhere.
var errLogDirOffline = errors.New("log dir offline")

// logDir is one of a broker's log dirs.
type logDir struct {
	index int
	id    metadata.DirectoryID
	path  string
	fs    vfs.FS
	disk  *disk
	st    atomic.Pointer[segment.Store] // replaced when it comes back online
	// offline is set when a write to it failed, cleared by a repair.
	offline atomic.Bool
	// parts counts the partitions open in it (placement).
	parts atomic.Int32
	// mu serializes taking the dir offline and bringing it back.
	mu sync.Mutex
	// taking is closed once the dir's last failure has been handled
	// (takeDirOffline), for a repair to wait on; guarded by takingMu, a
	// leaf lock.
	takingMu sync.Mutex
	taking   chan struct{}
}

func (d *logDir) store() *segment.Store { return d.st.Load() }

// metaPropertiesFile is Kafka's per-dir identity file.
const metaPropertiesFile = "meta.properties"

// logDirPath is the path of broker id's log dir i of n.
func (c *Cluster) logDirPath(id int32, i int) string {
	p := "broker-" + strconv.Itoa(int(id))
	if c.cfg.dir != "" {
		p = c.cfg.fs.PathJoin(c.cfg.dir, p)
	}
	if c.cfg.logDirs > 1 {
		p = c.cfg.fs.PathJoin(p, "dir-"+strconv.Itoa(i))
	}
	return p
}

// openLogDirs opens the broker's log dirs: their stores and identities,
// and the clean shutdown files (an unclean shutdown of any dir makes the
// start unclean). With several dirs, one whose disk is failing (FailLogDir
// not repaired) starts offline, as Kafka starts with a failed dir
// offline, if its meta.properties can be read; its repair brings it
// online. The first dir (the metadata's), or the only one, that cannot
// be opened fails the start.
func (b *broker) openLogDirs() error {
	c := b.c
	for i := range c.cfg.logDirs {
		path := c.logDirPath(b.id, i)
		dk, fs := c.diskFor(b.id, i, path)
		dk.onFail.Store(nil) // a previous run's handler
		d := &logDir{index: i, path: path, fs: fs, disk: dk}
		if i > 0 && dk.failing.Load() {
			id, ok, err := readDirIdentity(d)
			if err != nil || !ok {
				b.closeLogDirs()
				return errors.Join(&iofs.PathError{Op: "open", Path: path, Err: syscall.EIO}, err)
			}
			d.id = id
			d.offline.Store(true)
			b.dirs = append(b.dirs, d)
			continue
		}
		if c.cfg.logDirs > 1 {
			// The broker's directory holding the dirs is durable
			// before them (OpenStore syncs a dir's parent only).
			if err := syncNewDir(fs, fs.PathDir(path)); err != nil {
				b.closeLogDirs()
				return err
			}
		}
		st, err := segment.OpenStore(segment.StoreOptions{FS: fs, Dir: path, Logger: b.log, Invariant: c.invariantViolated})
		if err != nil {
			b.closeLogDirs()
			return err
		}
		d.st.Store(st)
		b.dirs = append(b.dirs, d)
		if d.id, err = b.dirIdentity(d); err != nil {
			b.closeLogDirs()
			return err
		}
		onFail := func(err error) { b.logDirFailed(d, err) }
		dk.onFail.Store(&onFail)
	}
	online := 0
	b.prevEpoch = -1
	for _, d := range b.dirs {
		if d.offline.Load() {
			continue
		}
		e, err := d.store().TakeCleanShutdown()
		if err != nil {
			b.closeLogDirs()
			return err
		}
		if online == 0 || e == b.prevEpoch {
			b.prevEpoch = e
		} else {
			b.prevEpoch = -1
		}
		online++
	}
	if online == 0 {
		b.closeLogDirs()
		return &iofs.PathError{Op: "open", Path: c.logDirPath(b.id, 0), Err: syscall.EIO}
	}
	for _, d := range b.dirs {
		if d.offline.Load() {
			b.prevEpoch = -1 // what the offline dir holds is not known
			b.log.Error("log dir failed; starting with it offline", "dir", d.path)
			c.record(Event{Kind: LogDirOffline, Broker: b.id, LogDir: d.path, DirectoryID: d.id.String()})
		}
	}
	return nil
}

func (b *broker) closeLogDirs() {
	for _, d := range b.dirs {
		if st := d.store(); st != nil {
			st.Close()
		}
	}
}

// syncNewDir makes dir (created if missing) durable in its parent.
func syncNewDir(fs vfs.FS, dir string) error {
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	parent := fs.PathDir(dir)
	if parent == "" {
		parent = "."
	}
	d, err := fs.OpenDir(parent)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// readDirIdentity reads the dir's directory.id from its meta.properties;
// ok is false if it has none yet.
func readDirIdentity(d *logDir) (id metadata.DirectoryID, ok bool, err error) {
	name := d.fs.PathJoin(d.path, metaPropertiesFile)
	f, err := d.fs.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return id, false, nil
	}
	if err != nil {
		return id, false, err
	}
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return id, false, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, found := strings.CutPrefix(strings.TrimSpace(line), "directory.id="); found {
			id, err = metadata.ParseDirectoryID(v)
			return id, err == nil, err
		}
	}
	return id, false, fmt.Errorf("%s: no directory.id", name)
}

// dirIdentity reads the dir's directory.id from its meta.properties, or
// writes a new one (with Kafka's other keys: version, cluster.id,
// node.id) for a new dir.
func (b *broker) dirIdentity(d *logDir) (metadata.DirectoryID, error) {
	if id, ok, err := readDirIdentity(d); ok || err != nil {
		return id, err
	}
	name := d.fs.PathJoin(d.path, metaPropertiesFile)
	var id metadata.DirectoryID
	for id.Reserved() {
		rand.Read(id[:])
	}
	props := fmt.Sprintf("#\n#kcluster\nversion=1\ncluster.id=%s\nnode.id=%d\ndirectory.id=%s\n", b.c.cfg.clusterID, b.id, id)
	f, err := d.fs.Create(name, "")
	if err != nil {
		return id, err
	}
	_, err = f.Write([]byte(props))
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return id, err
	}
	dir, err := d.fs.OpenDir(d.path)
	if err != nil {
		return id, err
	}
	err = dir.Sync()
	return id, errors.Join(err, dir.Close())
}

// placeLog returns the dir the log name of a replica goes to: the dir
// that has it (the one its metadata names, want, if several have it: a
// move was cut short, and the other copies are dropped), else the dir
// want names, else the online dir with the fewest partitions. It returns
// nil if that dir is offline.
func (b *broker) placeLog(name string, want metadata.DirectoryID) *logDir {
	if len(b.dirs) == 1 {
		if d := b.dirs[0]; !d.offline.Load() {
			return d
		}
		return nil
	}
	pick := func(d *logDir) *logDir {
		if d.offline.Load() {
			return nil
		}
		return d
	}
	var have []*logDir
	for _, d := range b.dirs {
		if _, err := d.fs.Stat(d.fs.PathJoin(d.path, name)); err == nil {
			have = append(have, d)
		}
	}
	if len(have) > 0 {
		keep := have[0]
		for _, d := range have {
			if d.id == want {
				keep = d
			}
		}
		for _, d := range have {
			if d != keep && !d.offline.Load() && !keep.offline.Load() {
				b.log.Warn("dropping the copy of a log that another dir holds (a move cut short)", "log", name, "dir", d.path, "kept", keep.path)
				if err := d.store().RemoveLog(name); err != nil {
					b.log.Warn("dropping the copy", "log", name, "dir", d.path, "err", err)
				}
			}
		}
		return pick(keep)
	}
	for _, d := range b.dirs {
		if d.id == want {
			return pick(d)
		}
	}
	var best *logDir
	for _, d := range b.dirs {
		if !d.offline.Load() && (best == nil || d.parts.Load() < best.parts.Load()) {
			best = d
		}
	}
	return best
}

// dirByID returns the broker's dir of id, or nil.
func (b *broker) dirByID(id metadata.DirectoryID) *logDir {
	for _, d := range b.dirs {
		if d.id == id {
			return d
		}
	}
	return nil
}

// offlineDirIDs returns the ids of the broker's offline dirs, for its
// heartbeats.
func (b *broker) offlineDirIDs() [][16]byte {
	var out [][16]byte
	for _, d := range b.dirs {
		if d.offline.Load() {
			out = append(out, d.id)
		}
	}
	return out
}

// logDirFailed handles the first failed write to one of the broker's log
// dirs (seen by the disk's injector, or reported by a log as
// segment.ErrFailed): the dir goes offline (takeDirOffline), or, with no
// dir left that is not failed or with the first dir failed, the broker
// halts (halt).
func (b *broker) logDirFailed(d *logDir, err error) {
	d.takingMu.Lock()
	if !d.offline.CompareAndSwap(false, true) {
		d.takingMu.Unlock()
		return
	}
	taking := make(chan struct{})
	d.taking = taking
	d.takingMu.Unlock()
	alive := 0
	for _, x := range b.dirs {
		if !x.offline.Load() && !x.disk.failing.Load() {
			alive++
		}
	}
	if alive == 0 || d.index == 0 {
		// No dir left; or the first, which holds the broker's metadata
		// (its snapshots), as Kafka's metadata.log.dir defaults to the
		// first of log.dirs, and Kafka halts when that dir fails.
		close(taking)
		b.halt(err)
		return
	}
	b.log.Error("log dir failed; taking it offline", "dir", d.path, "err", err)
	b.c.record(Event{Kind: LogDirOffline, Broker: b.id, LogDir: d.path, DirectoryID: d.id.String()})
	b.c.notifyEvent()
	if b.ctx.Err() != nil {
		close(taking) // closing: close takes every replica down anyway
		return
	}
	// Not here: the failed write may hold the partition's or the
	// broker's lock.
	b.dirWG.Add(1)
	go func() {
		defer b.dirWG.Done()
		defer close(taking)
		b.takeDirOffline(d)
	}()
}

// takeDirOffline stops the dir's replicas (their fetchers too) and closes
// its store, then tells the controller (the next heartbeat, sent now).
func (b *broker) takeDirOffline(d *logDir) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b.mu.Lock()
	var gone []*partition
	for k, r := range b.mu.replicas {
		if r.dir == d {
			delete(b.mu.replicas, k)
			b.fetchers.remove(r)
			gone = append(gone, r)
		}
	}
	b.mu.Unlock()
	for _, r := range gone {
		r.close()
	}
	if err := d.store().Close(); err != nil {
		b.log.Debug("closing the failed log dir", "dir", d.path, "err", err)
	}
	b.wakeHeartbeat()
}

// bringDirOnline reopens a repaired dir and tells the controller; the
// metadata change that follows reopens its replicas (openAssigned).
func (b *broker) bringDirOnline(d *logDir) error {
	d.takingMu.Lock()
	taking := d.taking
	d.takingMu.Unlock()
	if taking != nil {
		<-taking // takeDirOffline has run
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.offline.Load() || b.ctx.Err() != nil {
		return nil
	}
	st, err := segment.OpenStore(segment.StoreOptions{FS: d.fs, Dir: d.path, Logger: b.log, Invariant: b.c.invariantViolated})
	if err != nil {
		return err
	}
	d.st.Store(st)
	onFail := func(err error) { b.logDirFailed(d, err) }
	d.disk.onFail.Store(&onFail) // for a dir offline since the start
	d.takingMu.Lock()
	d.offline.Store(false)
	d.takingMu.Unlock()
	b.log.Info("log dir back online", "dir", d.path)
	b.c.record(Event{Kind: LogDirOnline, Broker: b.id, LogDir: d.path, DirectoryID: d.id.String()})
	b.c.notifyEvent()
	b.wakeHeartbeat()
	return nil
}

// wakeHeartbeat sends the next heartbeat now: the one the controller
// holds ends, so the broker's news (a dir offline or online) is not held.
func (b *broker) wakeHeartbeat() {
	select {
	case b.hbWake <- struct{}{}:
	default:
	}
	b.standing.Lock()
	if b.standing.cancel != nil {
		b.standing.cancel()
	}
	b.standing.Unlock()
}

// FailLogDir makes log dir dir (0..LogDirs-1) of broker id fail, as
// FailDisk does a broker's only dir: every write to it fails with EIO.
// At its next write the broker takes the dir offline (event
// LogDirOffline): its replicas stop, it reports the dir in its heartbeat
// (OfflineLogDirs), and the controller moves the leadership of those
// replicas to other brokers and drops them from the ISRs (Kafka's
// handleDirectoriesOffline); the broker goes on serving its other dirs.
// Failing its last healthy dir, or dir 0, which holds its metadata
// (Kafka's metadata.log.dir is the first of log.dirs by default), halts
// it, as FailDisk does, and it cannot restart until the repair; a broker
// restarted with another dir failed starts with that dir offline. repair
// makes the
// disk healthy and, on a running broker, brings the dir back online
// (event LogDirOnline): its replicas reopen, catch up from their leaders
// and rejoin the ISRs. Kafka brings a failed dir back only by a restart;
// a restart works too. repair is safe to call more than once.
// FailLogDir returns ErrUnknownBroker, ErrUnknownLogDir, or ErrClosed
// after Close.
func (c *Cluster) FailLogDir(id int32, dir int) (repair func(), err error) {
	if err := c.embedded("FailLogDir"); err != nil {
		return nil, err
	}
	ds, err := c.disksOf(id)
	if err != nil {
		return nil, err
	}
	if dir < 0 || dir >= len(ds) {
		return nil, fmt.Errorf("%w: %d of broker %d", ErrUnknownLogDir, dir, id)
	}
	d := ds[dir]
	d.failing.Store(true)
	var once sync.Once
	return func() {
		once.Do(func() {
			d.failing.Store(false)
			c.mu.Lock()
			var b *broker
			if !c.mu.closed {
				b = c.mu.brokers[id-1]
			}
			c.mu.Unlock()
			if b == nil || dir >= len(b.dirs) {
				return
			}
			if err := b.bringDirOnline(b.dirs[dir]); err != nil {
				b.log.Error("reopening the repaired log dir", "dir", b.dirs[dir].path, "err", err)
			}
		})
	}, nil
}

// assignLoop reports to the controller where the broker placed replicas
// the metadata shows elsewhere or unassigned (AssignReplicasToDirs), each
// time applyLoop finds some (Kafka's AssignmentsManager).
func (b *broker) assignLoop() {
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.assignWake:
		}
		req := b.pendingAssignments()
		if req == nil {
			continue
		}
		kresp, err := b.pc.request(b.ctx, req)
		if err == nil {
			err = kerr.ErrorForCode(kresp.(*kmsg.AssignReplicasToDirsResponse).ErrorCode)
		}
		if err != nil && b.ctx.Err() == nil {
			b.log.Debug("assigning replicas to dirs", "err", err)
			// Again after a backoff: applyLoop may have nothing new.
			select {
			case <-b.ctx.Done():
				return
			case <-time.After(b.cfg.replicaFetchBackoff):
			}
			b.wakeAssign()
		}
	}
}

func (b *broker) wakeAssign() {
	select {
	case b.assignWake <- struct{}{}:
	default:
	}
}

// pendingAssignments returns the AssignReplicasToDirs request for the
// broker's open replicas whose metadata names another dir, or nil.
func (b *broker) pendingAssignments() *kmsg.AssignReplicasToDirsRequest {
	b.mu.RLock()
	defer b.mu.RUnlock()
	byDir := map[metadata.DirectoryID]map[metadata.TopicID][]int32{}
	for k, r := range b.mu.replicas {
		p := b.mu.state.Partition(k.id, k.p)
		if p == nil || p.Directory(b.id) == r.dir.id {
			continue
		}
		if byDir[r.dir.id] == nil {
			byDir[r.dir.id] = map[metadata.TopicID][]int32{}
		}
		byDir[r.dir.id][k.id] = append(byDir[r.dir.id][k.id], k.p)
	}
	if len(byDir) == 0 {
		return nil
	}
	req := kmsg.NewPtrAssignReplicasToDirsRequest()
	req.BrokerID, req.BrokerEpoch = b.id, b.epoch
	for id, ts := range byDir {
		rd := kmsg.NewAssignReplicasToDirsRequestDirectory()
		rd.ID = id
		for tid, ps := range ts {
			rt := kmsg.NewAssignReplicasToDirsRequestDirectoryTopic()
			rt.TopicID = tid
			for _, p := range ps {
				rp := kmsg.NewAssignReplicasToDirsRequestDirectoryTopicPartition()
				rp.Partition = p
				rt.Partitions = append(rt.Partitions, rp)
			}
			rd.Topics = append(rd.Topics, rt)
		}
		req.Directories = append(req.Directories, rd)
	}
	return req
}

// LogDirState is one log dir of a broker, as LogDirStates reports it.
type LogDirState struct {
	Index       int    // 0..LogDirs-1, as FailLogDir names it
	Path        string // its path (under Dir on disk)
	DirectoryID string // the directory.id of its meta.properties
	Offline     bool   // it failed and is not repaired
	Partitions  int    // replicas open in it
}

// LogDirStates returns broker id's log dirs. It returns ErrUnknownBroker,
// ErrBrokerDown for a broker not running, and ErrClosed after Close.
func (c *Cluster) LogDirStates(id int32) ([]LogDirState, error) {
	if err := c.embedded("LogDirStates"); err != nil {
		return nil, err
	}
	b, err := c.brokerByID(id)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("%w: %d", ErrBrokerDown, id)
	}
	var out []LogDirState
	for _, d := range b.dirs {
		out = append(out, LogDirState{Index: d.index, Path: d.path, DirectoryID: d.id.String(), Offline: d.offline.Load(), Partitions: int(d.parts.Load())})
	}
	return out, nil
}
