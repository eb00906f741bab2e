package kcluster

// Storage faults: power cuts (PowerCut) and failing disks (FailDisk).
//
// Durability model. As in Kafka, an acknowledgement is not an fsync: a
// produce is answered once the leader (acks=1) or every ISR member
// (acks=all) has written the batch to its log, which sits in the OS page
// cache until something syncs it. kcluster syncs what Kafka syncs: a
// segment when it rolls, every log on a controlled shutdown (StopBroker,
// Close), and a log after log.flush.interval.messages records (topic
// config flush.messages; Kafka's default, and kcluster's, is never).
// Durability across the loss of a broker comes from replication, not from
// the disk.
//
// So there are two crashes. KillBroker is a process crash: the page cache
// survives, every written byte is there on restart. PowerCut is a power
// loss: the broker restarts with only what was synced, its unsynced suffix
// gone, as a machine that lost power would; it then truncates and catches
// up from the leader like any follower. Power-cutting every replica of a
// partition at once loses acknowledged records, as it would in Kafka.
//
// In memory (the default storage) every broker has its own crashable
// file system (internal/memfs: segment files in chunks, everything else in
// a pebble crashable MemFS), so a power cut of one broker is a crash clone
// of its file system: synced names and index data, and each segment file's
// bytes as of its last sync. On disk (Dir) or with a file system of the
// caller's (FS) the page cache cannot be dropped, and PowerCut returns
// ErrPowerCutUnsupported. FailDisk works on every storage: it wraps the
// broker's file system in pebble's errorfs.

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/kcluster/kcluster/internal/memfs"
)

// LogDirFailed is the event of a broker finding its log dir failed (a
// write failed, see FailDisk); the broker halts right after.
const LogDirFailed EventKind = "log dir failed"

// ErrPowerCutUnsupported is returned by PowerCut when the brokers' data is
// on disk (Dir) or on a file system given with FS: only the default
// in-memory storage can forget what was not synced.
var ErrPowerCutUnsupported = errors.New("kcluster: power cuts need the default in-memory storage")

// disks holds every broker's storage devices, one a log dir, created at
// its first start.
type disks struct {
	mu sync.Mutex
	m  map[int32][]*disk // by broker, then log dir index
	// halts tracks brokers halting after a log dir failure; Close waits
	// for them, and RestartBroker for the one it restarts (halting).
	halts   sync.WaitGroup
	halting map[int32]chan struct{} // closed when that broker is down
}

// disk is the storage device of one of a broker's log dirs: the file
// system its store is opened on, with the fault switches the levers act
// on. Its fields other
// than the atomics are guarded by disks.mu.
type disk struct {
	dir   string    // the log dir
	index string    // the pebble index directory inside it
	mem   *memfs.FS // this broker's own crashable memory FS, or nil
	fs    vfs.FS    // errorfs over mem or the shared FS
	// failing makes writes outside the index fail (FailDisk).
	failing atomic.Bool
	// onFail is the running broker's log dir failure handler.
	onFail atomic.Pointer[func(error)]
}

// diskFor returns the storage device of broker id's log dir i (dir),
// creating it at the first start: an own crashable MemFS in memory, else
// the shared file system.
func (c *Cluster) diskFor(id int32, i int, dir string) (*disk, vfs.FS) {
	c.disks.mu.Lock()
	defer c.disks.mu.Unlock()
	if c.disks.m == nil {
		c.disks.m = make(map[int32][]*disk)
	}
	for len(c.disks.m[id]) <= i {
		c.disks.m[id] = append(c.disks.m[id], nil)
	}
	d := c.disks.m[id][i]
	if d == nil {
		d = &disk{dir: dir, index: c.cfg.fs.PathJoin(dir, "index")}
		var base vfs.FS = c.cfg.fs
		if c.cfg.memPerBroker {
			d.mem = memfs.New()
			base = d.mem
		}
		d.fs = errorfs.Wrap(base, d)
		c.disks.m[id][i] = d
	}
	return d, d.fs
}

// MaybeError is the errorfs injector: while the disk is failing, every
// write to the log dir fails with EIO, as a dying disk's would, and the
// broker using it learns of it.
//
// The pebble index beside the segments is spared: pebble treats a failed
// write as fatal to the process (its Logger.Fatalf), and the process is
// the test binary. The broker halts at its first failed segment write, as
// Kafka does, so the index is never written past that point by a running
// broker anyway.
func (d *disk) MaybeError(op errorfs.Op) error {
	if !d.failing.Load() || op.Kind.ReadOrWrite() != errorfs.OpIsWrite {
		return nil
	}
	if op.Path == d.index || strings.HasPrefix(op.Path, d.index+"/") {
		return nil
	}
	err := &fs.PathError{Op: "write", Path: op.Path, Err: syscall.EIO}
	if h := d.onFail.Load(); h != nil {
		(*h)(err)
	}
	return err
}

func (d *disk) String() string { return "kcluster disk " + d.dir }

// halt handles the failure of the broker's last log dir, or of its first,
// which holds its metadata (logDirFailed), as Kafka does (LogManager.handleLogDirFailure:
// with no live log dir left the broker halts): it stops serving its
// partitions (KAFKA_STORAGE_ERROR to the requests that reach them) and
// halts, with no controlled shutdown; the controller fences it when its
// session expires and moves leadership to the other ISR members.
func (b *broker) halt(err error) {
	if !b.offline.CompareAndSwap(false, true) {
		return
	}
	b.log.Error("log dir failed; halting the broker, as Kafka does when no log dir is left or the metadata's fails", "err", err)
	b.c.record(Event{Kind: LogDirFailed, Broker: b.id})
	b.c.notifyEvent()
	c := b.c
	c.mu.Lock()
	if c.mu.closed || c.mu.brokers[b.id-1] != b {
		c.mu.Unlock()
		return
	}
	c.disks.halts.Add(1) // before Close can wait: Close sets closed under c.mu first
	c.mu.Unlock()
	done := make(chan struct{})
	c.disks.mu.Lock()
	if c.disks.halting == nil {
		c.disks.halting = make(map[int32]chan struct{})
	}
	c.disks.halting[b.id] = done
	c.disks.mu.Unlock()
	go func() {
		defer c.disks.halts.Done()
		defer func() {
			c.disks.mu.Lock()
			if c.disks.halting[b.id] == done {
				delete(c.disks.halting, b.id)
			}
			c.disks.mu.Unlock()
			close(done)
		}()
		c.mu.Lock()
		if c.mu.closed || c.mu.brokers[b.id-1] != b {
			c.mu.Unlock()
			return
		}
		c.mu.brokers[b.id-1] = nil
		c.mu.Unlock()
		c.crash(b)
	}()
}

// waitHalted waits until broker id, if it is halting after a log dir
// failure, is down: its storage closed, its port free.
func (c *Cluster) waitHalted(id int32) {
	c.disks.mu.Lock()
	done := c.disks.halting[id]
	c.disks.mu.Unlock()
	if done != nil {
		<-done
	}
}

// FailDisk makes broker id's disk fail: from now on every write to its log
// dir (segment files and directories) fails with EIO. The broker finds out
// at its next write (a produce to a partition it leads, a replication
// fetch it appends, a segment roll): that request gets KAFKA_STORAGE_ERROR
// (or, when the halt wins the race with the response, a closed
// connection, as with Kafka's Exit.halt), every request for its partitions
// gets KAFKA_STORAGE_ERROR meanwhile, and the broker halts, as Kafka does
// when its only log dir fails (no
// controlled shutdown; the controller fences it after
// broker.session.timeout.ms and elects new leaders from the ISR). A broker
// that never writes again stays up.
//
// The disk stays failed across restarts: RestartBroker fails (its log dir
// cannot be opened for writing, as Kafka refuses to start) until repair is
// called; the data written before the failure is still there. repair is
// safe to call more than once. FailDisk works on a broker that is down,
// and returns ErrUnknownBroker for an id that is not 1..n and ErrClosed
// after Close.
//
// With several log dirs (LogDirs) FailDisk fails every one of them, and
// the broker halts as above; FailLogDir fails one.
func (c *Cluster) FailDisk(id int32) (repair func(), err error) {
	if err := c.embedded("FailDisk"); err != nil {
		return nil, err
	}
	ds, err := c.disksOf(id)
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		d.failing.Store(true)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			for _, d := range ds {
				d.failing.Store(false)
			}
		})
	}, nil
}

// disksOf returns broker id's disks, one a log dir, after checking the
// id.
func (c *Cluster) disksOf(id int32) ([]*disk, error) {
	c.mu.Lock()
	err := c.checkIDLocked(id)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	c.disks.mu.Lock()
	defer c.disks.mu.Unlock()
	ds := c.disks.m[id]
	if len(ds) == 0 {
		return nil, fmt.Errorf("%w: %d", ErrUnknownBroker, id)
	}
	return slices.Clone(ds), nil
}

// PowerCut cuts the power of brokers ids at the same instant: like
// KillBroker (connections drop, in-flight requests get no answer, the
// controller fences them after broker.session.timeout.ms), but each broker
// keeps only what it had synced (see log.flush.interval.messages and the
// durability model above); everything written since is gone, index and
// segments alike. RestartBroker then recovers its logs to the last whole
// synced batch, and its replicas truncate and catch up from the leaders.
// Power-cutting every ISR member of a partition loses the records they
// acknowledged but had not synced, as it would in Kafka.
//
// PowerCut with no ids does nothing. It returns ErrUnknownBroker,
// ErrBrokerDown (for a broker not running) or ErrPowerCutUnsupported
// (storage on disk or given with FS) without touching any broker, and
// ErrClosed after Close.
func (c *Cluster) PowerCut(ids ...int32) error {
	if err := c.embedded("PowerCut"); err != nil {
		return err
	}
	c.mu.Lock()
	var bs []*broker
	for _, id := range ids {
		if err := c.checkIDLocked(id); err != nil {
			c.mu.Unlock()
			return err
		}
		b := c.mu.brokers[id-1]
		if b == nil || containsBroker(bs, b) {
			c.mu.Unlock()
			return fmt.Errorf("%w: %d", ErrBrokerDown, id)
		}
		if !c.cfg.memPerBroker {
			c.mu.Unlock()
			return fmt.Errorf("%w: broker %d", ErrPowerCutUnsupported, id)
		}
		bs = append(bs, b)
	}
	for _, b := range bs {
		c.mu.brokers[b.id-1] = nil
	}
	c.mu.Unlock()
	// Nothing new reaches them, then the instant of the cut: what each
	// disk holds is what was synced. Writes by their goroutines from
	// here on go to the old file systems, which are dropped.
	for _, b := range bs {
		b.dropConns()
		c.net.CloseNode(b.id)
	}
	// Every log dir of a broker loses power at once.
	c.disks.mu.Lock()
	clones := make([][]*memfs.FS, len(bs))
	for i, b := range bs {
		for _, d := range c.disks.m[b.id] {
			clones[i] = append(clones[i], d.mem.CrashClone(vfs.CrashCloneCfg{}))
		}
	}
	c.disks.mu.Unlock()
	for i, b := range bs {
		b.close(false)
		c.disks.mu.Lock()
		for j, d := range c.disks.m[b.id] {
			d.mem = clones[i][j]
			d.fs = errorfs.Wrap(clones[i][j], d)
		}
		c.disks.mu.Unlock()
		c.record(Event{Kind: BrokerDown, Broker: b.id})
		c.stopCombinedController(b.id)
	}
	c.notifyEvent()
	return nil
}

func containsBroker(bs []*broker, b *broker) bool {
	for _, x := range bs {
		if x == b {
			return true
		}
	}
	return false
}
