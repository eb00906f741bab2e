// Package segment stores a partition replica's log as segment files of Kafka
// record batches, stored byte for byte as received, with a pebble index
// (offset → position, time → offset) and the leader-epoch cache (KIP-101).
//
// Everything goes through one pebble vfs.FS: vfs.NewMem() in memory,
// vfs.Default on disk, a crashable MemFS in tests. There is one code path.
//
// A Store is one broker's storage: a directory and one pebble DB holding the
// index of every log in it, keyed by log name. A Log is one partition
// replica. Segment files are named by their base offset
// (<dir>/<log>/<base %020d>.log).
//
// Durability: like Kafka (flush.messages unset) appends are not synced; Sync
// syncs. On open the last segment is checked batch by batch from its last
// index entry, cut at the first torn or corrupt batch, and the index is
// made to agree with it.
package segment

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kcluster/kcluster/internal/pebblelog"
	"github.com/kcluster/kcluster/internal/pebblesched"
)

// Sentinel errors.
var (
	// ErrOffsetOutOfRange is returned by Log.Read for an offset below the
	// log start offset or above the log end offset.
	ErrOffsetOutOfRange = errors.New("segment: offset out of range")
	// ErrOffsetMismatch is returned by Log.Append when the first batch's
	// base offset is not the log end offset or batches are not contiguous,
	// and by Log.Truncate for an offset that is not a batch boundary.
	ErrOffsetMismatch = errors.New("segment: offset mismatch")
	// ErrCorrupt is returned (wrapped) by ValidateBatch and Append for a
	// batch that is torn, of the wrong magic, or fails its CRC.
	ErrCorrupt = errors.New("segment: corrupt record batch")
	// ErrClosed is returned by Log and Store methods after Close.
	ErrClosed = errors.New("segment: closed")
	// ErrFailed wraps the I/O error of a failed write, returned by that
	// write and every later write to the same Log: the log is offline,
	// as Kafka takes a log dir offline after an IOException.
	ErrFailed = errors.New("segment: log failed")
)

// StoreOptions configures OpenStore.
type StoreOptions struct {
	FS     vfs.FS       // required
	Dir    string       // root directory of this broker's data
	Logger *slog.Logger // nil discards
	// Invariant is called with a description of each broken invariant
	// that the checks compiled in by the invariants build tag find (see
	// CheckAppended, CheckEpochs). Nil panics instead. Without the tag it
	// is never called.
	Invariant func(msg string)
}

// Store is one broker's storage. Its methods are safe for concurrent use.
type Store struct {
	fs  vfs.FS
	dir string
	// db is the index, opened at the first waitIndex (indexOnce); it is
	// set before indexReady is closed, and read only after (a Log exists
	// only once it is).
	db         *pebble.DB
	indexPath  string
	indexOnce  sync.Once
	indexErr   error
	indexReady chan struct{}
	bg         sync.WaitGroup // PrepareIndex's open
	log        *slog.Logger
	// invariant is StoreOptions.Invariant.
	invariant func(string)
	// wbufs pools the copies Append writes from.
	wbufs sync.Pool
	// dirDirty is set when a log directory was created since the store
	// directory was last synced; dirMu serializes those syncs.
	dirDirty atomic.Bool
	dirMu    sync.Mutex

	// fresh: the index did not exist when the store was opened; this
	// Store creates it (Log.Fresh).
	fresh bool

	mu struct {
		sync.Mutex
		closed bool
		logs   map[string]*Log
		// seen names every log opened in this Store, if it is fresh
		// (Log.Fresh).
		seen map[string]struct{}
	}
}

// OpenStore opens (or creates) the store in opts.Dir.
func OpenStore(opts StoreOptions) (*Store, error) {
	if opts.FS == nil {
		return nil, errors.New("segment: StoreOptions.FS is required")
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	if err := opts.FS.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := syncDir(opts.FS, opts.FS.PathDir(opts.Dir)); err != nil {
		return nil, err
	}
	s := &Store{fs: opts.FS, dir: opts.Dir, log: lg, invariant: opts.Invariant, indexReady: make(chan struct{})}
	// A new store's index (an empty pebble DB, about 0.3 ms of CPU to
	// create) opens when the first log needs it (waitIndex), or in the
	// background once the owner asks (PrepareIndex), so that it need not
	// share the CPU with a starting broker's registration. An existing
	// one opens now, so a broker coming back finds its logs and
	// a failure to open says so here.
	s.indexPath = opts.FS.PathJoin(opts.Dir, "index")
	if _, err := opts.FS.Stat(s.indexPath); err == nil {
		if err := s.waitIndex(); err != nil {
			return nil, err
		}
	} else if errors.Is(err, os.ErrNotExist) {
		s.fresh = true
	}
	s.wbufs.New = func() any { return new([]byte) }
	s.mu.logs = make(map[string]*Log)
	s.mu.seen = make(map[string]struct{})
	return s, nil
}

// openIndex opens the index (pebble) and closes indexReady.
func (s *Store) openIndex(path string) {
	defer close(s.indexReady)
	po := &pebble.Options{
		FS:                          s.fs,
		MemTableSize:                4 << 20,
		MemTableStopWritesThreshold: 4,
		Logger:                      pebblelog.Logger{L: s.log},
		Cache:                       nil,
	}
	po.EventListener = &pebble.EventListener{}
	// No 100 ms ticker per index: an idle broker does no work.
	po.Experimental.CompactionScheduler = pebblesched.New()
	db, err := pebble.Open(path, po)
	if err != nil {
		s.indexErr = fmt.Errorf("segment: opening index: %w", err)
		return
	}
	s.db = db
}

// waitIndex opens the index if it is not open yet, or waits for the
// caller opening it, and returns the error that kept it from opening.
func (s *Store) waitIndex() error {
	s.indexOnce.Do(func() { s.openIndex(s.indexPath) })
	<-s.indexReady
	return s.indexErr
}

// PrepareIndex starts opening the index in the background if nothing has
// opened it yet, so that the first log does not wait for it. Close waits
// for it.
func (s *Store) PrepareIndex() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return
	}
	s.bg.Go(func() { s.waitIndex() })
}

// errIndexNotOpened is waitIndex's error after Close of a store whose
// index was never opened.
var errIndexNotOpened = errors.New("segment: store closed before its index was opened")

// Close closes every open log and the index.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.closed = true
	logs := s.mu.logs
	s.mu.logs = nil
	s.mu.Unlock()
	var errs []error
	for _, l := range logs {
		errs = append(errs, l.Close())
	}
	s.bg.Wait()
	// An index never opened stays so: nothing of it is on disk.
	s.indexOnce.Do(func() {
		s.indexErr = errIndexNotOpened
		close(s.indexReady)
	})
	if s.waitIndex() == nil {
		errs = append(errs, s.db.Close())
	}
	return errors.Join(errs...)
}

// Logs returns the names of the logs present in the store.
func (s *Store) Logs() ([]string, error) {
	names, err := s.fs.List(s.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if n == "index" || n == "__cluster_metadata-0" { // the metadata snapshots' directory
			continue
		}
		if st, err := s.fs.Stat(s.fs.PathJoin(s.dir, n)); err == nil && st.IsDir() {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// RemoveLog closes the named log if open and deletes its files and index
// entries.
func (s *Store) RemoveLog(name string) error {
	s.mu.Lock()
	l := s.mu.logs[name]
	delete(s.mu.logs, name)
	s.mu.Unlock()
	if l != nil {
		l.Close()
	}
	if err := s.waitIndex(); err != nil {
		return err
	}
	p := []byte(name + "\x00")
	// Synced: a topic recreated under the same name must not inherit
	// this one's log start offset or leader epochs.
	if err := s.db.DeleteRange(p, append([]byte(name), 1), pebble.Sync); err != nil {
		return err
	}
	return s.fs.RemoveAll(s.fs.PathJoin(s.dir, name))
}

func (s *Store) forget(l *Log) {
	s.mu.Lock()
	if s.mu.logs != nil && s.mu.logs[l.name] == l {
		delete(s.mu.logs, l.name)
	}
	s.mu.Unlock()
}

// syncDir makes a directory's entries durable (new files, renames).
// syncStoreDir makes the store directory's entries durable if a log
// directory was made since its last sync. Opening a log does not sync it:
// one sync per new log made opening n logs O(n²) on the crashable memory
// FS, which copies a directory's entries on every sync (10,000 partitions:
// 21 s). A log syncs it before it first makes data durable, which is all
// the new directory's durability matters for: a crash before that loses
// only unsynced data, which a crash may.
func (s *Store) syncStoreDir() error {
	if !s.dirDirty.Load() {
		return nil
	}
	s.dirMu.Lock()
	defer s.dirMu.Unlock()
	// Cleared before the sync: a directory made meanwhile sets it again
	// (after its MkdirAll), so the next sync covers it.
	if !s.dirDirty.Swap(false) {
		return nil
	}
	if err := syncDir(s.fs, s.dir); err != nil {
		s.dirDirty.Store(true)
		return err
	}
	return nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

func validName(name string) bool {
	return name != "" && name != "index" && !strings.ContainsAny(name, "/\\\x00") && name != "." && name != ".."
}
