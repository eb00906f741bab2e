// Package memfs is kcluster's in-memory storage: a pebble vfs.FS that keeps
// a broker's segment files in chunks and everything else (directories,
// names, the pebble index) in a crashable vfs.MemFS.
//
// Why: pebble's MemFS keeps each file in one byte slice that grows by
// append, so a segment file of hundreds of megabytes is copied whole every
// time the slice doubles, and holds up to twice its size. Segment files
// here grow by chunks (small ones first, so an empty or tiny log costs
// almost nothing): a write copies its bytes once, a read copies them out,
// and nothing is ever moved.
//
// Names stay in the MemFS: a segment file has a placeholder there holding
// the id of its contents, so listing, renaming and removing it, and which
// name refers to which contents after a crash, are the MemFS's own.
// CrashClone keeps what a power cut would: the MemFS's crash clone (synced
// names, synced index data) and, for every segment name that survived in
// it, the contents its id refers to as they were at their last sync.
// Contents no name refers to go when the directory that named them is
// synced.
//
// Segment files are recognized by name: twenty digits and ".log", or that
// and ".cut" or ".cleaned" (segment.segName and the temporary files of a
// cut and of the log cleaner). Any other file goes to the MemFS unchanged.
package memfs

import (
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
	"os"
	"path"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// FS is the chunked in-memory file system. All state sits in mu.
// Every change to a segment file (write, sync, create, rename, remove)
// holds cloneMu for reading, and CrashClone holds it for writing, so a
// clone sees every file as of one instant, as the MemFS does its own.
type FS struct {
	mem     *vfs.MemFS
	cloneMu sync.RWMutex
	mu      struct {
		sync.Mutex
		next  uint64
		files map[uint64]*data // segment files' contents, by id
		// pending holds, by directory, the ids a name in it referred to
		// before a remove or a replacing rename or create, until the
		// directory is synced.
		pending map[string][]uint64
	}
}

// New returns an empty FS over a new crashable MemFS.
func New() *FS { return wrap(vfs.NewCrashableMem()) }

func wrap(mem *vfs.MemFS) *FS {
	fs := &FS{mem: mem}
	fs.mu.files = make(map[uint64]*data)
	fs.mu.pending = make(map[string][]uint64)
	return fs
}

// isSegment reports whether name is a segment file's (or its cut's, or
// its cleaned copy's).
func isSegment(name string) bool {
	base := path.Base(name)
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".cut"), ".cleaned")
	if len(base) != 24 || !strings.HasSuffix(base, ".log") {
		return false
	}
	for _, r := range base[:20] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func clean(name string) string { return path.Clean(name) }

// data is one segment file's contents, shared by its open handles; mu
// guards it. synced is the size at the last sync: what a crash keeps.
type data struct {
	mu       sync.RWMutex
	store    *chunks
	capacity int64 // the chunks' total length
	size     int64
	synced   int64
	mtime    time.Time
}

// chunks holds a file's chunks and which of them are mapped outside the
// heap. It is its own object so that a cleanup attached to the data can
// unmap them once nothing references the file any more (an open handle of
// a removed file keeps it alive, as on Unix); bytes are only ever copied in
// and out of chunks under the data's lock, so no slice of one escapes.
type chunks struct {
	b      [][]byte
	mapped []bool
}

func (c *chunks) free() {
	for i, b := range c.b {
		if c.mapped[i] {
			freeChunk(b)
		}
	}
	c.b, c.mapped = nil, nil
}

// release empties the file and returns its chunks to the system now.
func (d *data) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.store.free()
	d.capacity, d.size, d.synced = 0, 0, 0
}

// Release empties every segment file now, returning its memory to the
// system at once instead of when the garbage collector finds the file
// unreferenced (a process that starts cluster after cluster then reuses
// the same memory, which is also faster to write than memory it touches
// for the first time). Afterwards every segment file of the FS reads as
// empty; call it when nothing will use the FS again.
func (fs *FS) Release() {
	fs.mu.Lock()
	files := make([]*data, 0, len(fs.mu.files))
	for _, d := range fs.mu.files {
		files = append(files, d)
	}
	fs.mu.Unlock()
	for _, d := range files {
		d.release()
	}
}

func newData() *data {
	d := &data{store: new(chunks), mtime: time.Now()}
	runtime.AddCleanup(d, (*chunks).free, d.store)
	return d
}

// Chunk i holds firstChunk<<i bytes for i < doublings, then maxChunk each:
// a file's wasted tail is at most its size and never above maxChunk, and a
// chunk is found by arithmetic.
const (
	firstChunk = 4 << 10
	maxChunk   = 2 << 20
	doublings  = 9 // chunks 0..8 double from firstChunk; firstChunk<<9 == maxChunk
	geometric  = firstChunk * (1<<doublings - 1)
)

func chunkSize(i int) int {
	if i < doublings {
		return firstChunk << i
	}
	return maxChunk
}

// locate returns the chunk holding offset off and the position in it.
func locate(off int64) (int, int) {
	if off < geometric {
		i := bits.Len64(uint64(off/firstChunk+1)) - 1
		return i, int(off - firstChunk*(1<<i-1))
	}
	off -= geometric
	return doublings + int(off/maxChunk), int(off % maxChunk)
}

// writeAt writes p at off, growing the file as needed. Holes read as zero.
func (d *data) writeAt(p []byte, off int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	end := off + int64(len(p))
	for d.capacity < end {
		c, mapped := allocChunk(chunkSize(len(d.store.b)))
		d.store.b = append(d.store.b, c)
		d.store.mapped = append(d.store.mapped, mapped)
		d.capacity += int64(len(c))
	}
	// What lies past the size may be a reused chunk's old bytes: a
	// write past the end zeroes the hole it leaves.
	for hole := d.size; hole < off; {
		ci, co := locate(hole)
		n := int(min(int64(len(d.store.b[ci])-co), off-hole))
		clear(d.store.b[ci][co : co+n])
		hole += int64(n)
	}
	for len(p) > 0 {
		ci, co := locate(off)
		c := copy(d.store.b[ci][co:], p)
		p, off = p[c:], off+int64(c)
	}
	if end > d.size {
		d.size = end
	}
	d.mtime = time.Now()
}

func (d *data) readAt(p []byte, off int64) (int, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.readAtLocked(p, off)
}

func (d *data) readAtLocked(p []byte, off int64) (int, error) {
	if off >= d.size {
		return 0, io.EOF
	}
	n := 0
	want := min(int64(len(p)), d.size-off)
	for int64(n) < want {
		ci, co := locate(off)
		c := copy(p[n:want], d.store.b[ci][co:])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (d *data) sync() {
	d.mu.Lock()
	d.synced = d.size
	d.mu.Unlock()
}

// clone copies the synced prefix.
func (d *data) crashClone() *data {
	d.mu.RLock()
	defer d.mu.RUnlock()
	n := newData()
	n.mtime = d.mtime
	if d.synced > 0 {
		buf := make([]byte, d.synced)
		d.readAtLocked(buf, 0)
		n.writeAt(buf, 0)
		n.synced = n.size
	}
	return n
}

// Create implements vfs.FS. The placeholder holds the new contents' id,
// synced at once: whether the name (and so the id) survives a crash is the
// MemFS's business, decided by directory syncs, as for any file.
func (fs *FS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	if !isSegment(name) {
		return fs.mem.Create(name, cat)
	}
	fs.cloneMu.RLock()
	defer fs.cloneMu.RUnlock()
	old, hadOld := fs.idOf(name)
	ph, err := fs.mem.Create(name, cat)
	if err != nil {
		return nil, err
	}
	fs.mu.Lock()
	fs.mu.next++
	id := fs.mu.next
	d := newData()
	fs.mu.files[id] = d
	fs.mu.Unlock()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id)
	_, err = ph.Write(b[:])
	if err == nil {
		err = ph.Sync()
	}
	ph.Close()
	if err != nil {
		return nil, err
	}
	if hadOld {
		fs.unlinked(name, old)
	}
	return &file{fs: fs, name: name, d: d}, nil
}

// idOf reads the id in a segment file's placeholder.
func (fs *FS) idOf(name string) (uint64, bool) {
	f, err := fs.mem.Open(name)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var b [8]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[:]), true
}

// dataOf returns the contents a segment file's name refers to.
func (fs *FS) dataOf(name string) (*data, error) {
	id, ok := fs.idOf(name)
	if !ok {
		return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
	}
	fs.mu.Lock()
	d := fs.mu.files[id]
	fs.mu.Unlock()
	if d == nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
	}
	return d, nil
}

// unlinked notes that name no longer refers to id in the live tree. The
// contents stay until the name's directory is synced (a crash before that
// brings the old name back), and then go unless another name refers to id.
func (fs *FS) unlinked(name string, id uint64) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	dir := path.Dir(clean(name))
	fs.mu.pending[dir] = append(fs.mu.pending[dir], id)
}

// Open implements vfs.FS.
func (fs *FS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	if !isSegment(name) {
		return fs.mem.Open(name, opts...)
	}
	return fs.openSegment(name)
}

func (fs *FS) openSegment(name string) (vfs.File, error) {
	d, err := fs.dataOf(name)
	if err != nil {
		return nil, err
	}
	return &file{fs: fs, name: name, d: d}, nil
}

// OpenReadWrite implements vfs.FS.
func (fs *FS) OpenReadWrite(name string, cat vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	if !isSegment(name) {
		return fs.mem.OpenReadWrite(name, cat, opts...)
	}
	if _, err := fs.mem.Stat(name); err != nil {
		return fs.Create(name, cat)
	}
	return fs.openSegment(name)
}

// OpenDir implements vfs.FS. Syncing a directory makes its entries durable,
// so contents no name in it refers to any more can go.
func (fs *FS) OpenDir(name string) (vfs.File, error) {
	f, err := fs.mem.OpenDir(name)
	if err != nil {
		return nil, err
	}
	return &dir{File: f, fs: fs, name: clean(name)}, nil
}

type dir struct {
	vfs.File
	fs   *FS
	name string
}

func (d *dir) Sync() error {
	d.fs.cloneMu.RLock()
	defer d.fs.cloneMu.RUnlock()
	if err := d.File.Sync(); err != nil {
		return err
	}
	d.fs.collect(d.name)
	return nil
}

// collect drops the contents unlinked from dir that no live name refers to.
func (fs *FS) collect(dir string) {
	fs.mu.Lock()
	ids := fs.mu.pending[dir]
	delete(fs.mu.pending, dir)
	fs.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	live := fs.liveIDs()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, id := range ids {
		if !live[id] {
			delete(fs.mu.files, id)
		}
	}
}

// liveIDs returns the ids the live tree's segment names refer to.
func (fs *FS) liveIDs() map[uint64]bool {
	live := map[uint64]bool{}
	fs.walk(fs.mem, "", func(p string) {
		if id, ok := idIn(fs.mem, p); ok {
			live[id] = true
		}
	})
	return live
}

// walk calls fn for every segment file's path under dir in mem.
func (fs *FS) walk(mem *vfs.MemFS, dir string, fn func(string)) {
	names, err := mem.List(dir)
	if err != nil {
		return
	}
	for _, n := range names {
		p := mem.PathJoin(dir, n)
		fi, err := mem.Stat(p)
		switch {
		case err != nil:
		case fi.IsDir():
			fs.walk(mem, p, fn)
		case isSegment(p):
			fn(p)
		}
	}
}

func idIn(mem *vfs.MemFS, name string) (uint64, bool) {
	f, err := mem.Open(name)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var b [8]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[:]), true
}

// Link implements vfs.FS; segment files are never linked.
func (fs *FS) Link(oldname, newname string) error {
	if isSegment(oldname) || isSegment(newname) {
		return errors.New("memfs: segment files cannot be linked")
	}
	return fs.mem.Link(oldname, newname)
}

// Remove implements vfs.FS. Open handles keep the contents, as on Unix.
func (fs *FS) Remove(name string) error {
	if !isSegment(name) {
		return fs.mem.Remove(name)
	}
	fs.cloneMu.RLock()
	defer fs.cloneMu.RUnlock()
	id, ok := fs.idOf(name)
	if err := fs.mem.Remove(name); err != nil {
		return err
	}
	if ok {
		fs.unlinked(name, id)
	}
	return nil
}

// RemoveAll implements vfs.FS.
func (fs *FS) RemoveAll(name string) error {
	fs.cloneMu.RLock()
	defer fs.cloneMu.RUnlock()
	var gone []string
	fs.walk(fs.mem, name, func(p string) { gone = append(gone, p) })
	ids := map[string]uint64{}
	for _, p := range gone {
		if id, ok := fs.idOf(p); ok {
			ids[p] = id
		}
	}
	if err := fs.mem.RemoveAll(name); err != nil {
		return err
	}
	for p, id := range ids {
		fs.unlinked(p, id)
	}
	return nil
}

// Rename implements vfs.FS.
func (fs *FS) Rename(oldname, newname string) error {
	if isSegment(oldname) != isSegment(newname) {
		return errors.New("memfs: a segment file can only be renamed to a segment file's name")
	}
	if !isSegment(oldname) {
		return fs.mem.Rename(oldname, newname)
	}
	fs.cloneMu.RLock()
	defer fs.cloneMu.RUnlock()
	replaced, had := fs.idOf(newname)
	if err := fs.mem.Rename(oldname, newname); err != nil {
		return err
	}
	if had {
		fs.unlinked(newname, replaced)
	}
	return nil
}

// ReuseForWrite implements vfs.FS.
func (fs *FS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	if isSegment(oldname) || isSegment(newname) {
		return nil, errors.New("memfs: segment files are not reused")
	}
	return fs.mem.ReuseForWrite(oldname, newname, cat)
}

// MkdirAll implements vfs.FS.
func (fs *FS) MkdirAll(dir string, perm os.FileMode) error { return fs.mem.MkdirAll(dir, perm) }

// Lock implements vfs.FS.
func (fs *FS) Lock(name string) (io.Closer, error) { return fs.mem.Lock(name) }

// List implements vfs.FS.
func (fs *FS) List(dir string) ([]string, error) { return fs.mem.List(dir) }

// Stat implements vfs.FS.
func (fs *FS) Stat(name string) (vfs.FileInfo, error) {
	fi, err := fs.mem.Stat(name)
	if err != nil || !isSegment(name) {
		return fi, err
	}
	d, err := fs.dataOf(name)
	if err != nil {
		return nil, err
	}
	return d.info(path.Base(name)), nil
}

// PathBase implements vfs.FS.
func (fs *FS) PathBase(p string) string { return fs.mem.PathBase(p) }

// PathJoin implements vfs.FS.
func (fs *FS) PathJoin(elem ...string) string { return fs.mem.PathJoin(elem...) }

// PathDir implements vfs.FS.
func (fs *FS) PathDir(p string) string { return fs.mem.PathDir(p) }

// GetDiskUsage implements vfs.FS.
func (fs *FS) GetDiskUsage(p string) (vfs.DiskUsage, error) { return fs.mem.GetDiskUsage(p) }

// Unwrap implements vfs.FS.
func (fs *FS) Unwrap() vfs.FS { return nil }

// CrashClone returns the file system a power cut would leave now: the
// MemFS's crash clone, and for every segment file name that survived in
// it, the contents its placeholder's id refers to as of their last sync.
// cfg is the MemFS's (its UnsyncedDataPercent applies to names and index
// data, not to segment contents, which keep exactly their synced bytes).
func (fs *FS) CrashClone(cfg vfs.CrashCloneCfg) *FS {
	fs.cloneMu.Lock()
	defer fs.cloneMu.Unlock()
	n := wrap(fs.mem.CrashClone(cfg))
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n.mu.next = fs.mu.next
	fs.walk(n.mem, "", func(p string) {
		id, ok := idIn(n.mem, p)
		if !ok || n.mu.files[id] != nil {
			return
		}
		if d := fs.mu.files[id]; d != nil {
			n.mu.files[id] = d.crashClone()
		}
	})
	return n
}

// file is an open segment file.
type file struct {
	fs         *FS
	name       string
	d          *data
	rpos, wpos int64
}

func (f *file) Close() error { return nil }

func (f *file) Read(p []byte) (int, error) {
	n, err := f.d.readAt(p, f.rpos)
	f.rpos += int64(n)
	return n, err
}

func (f *file) ReadAt(p []byte, off int64) (int, error) { return f.d.readAt(p, off) }

func (f *file) Write(p []byte) (int, error) {
	f.fs.cloneMu.RLock()
	defer f.fs.cloneMu.RUnlock()
	f.d.writeAt(p, f.wpos)
	f.wpos += int64(len(p))
	return len(p), nil
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	f.fs.cloneMu.RLock()
	defer f.fs.cloneMu.RUnlock()
	f.d.writeAt(p, off)
	return len(p), nil
}

func (f *file) Preallocate(offset, length int64) error { return nil }

func (f *file) Stat() (vfs.FileInfo, error) { return f.d.info(path.Base(f.name)), nil }

func (f *file) Sync() error { f.sync(); return nil }

func (f *file) SyncTo(length int64) (bool, error) { f.sync(); return true, nil }

func (f *file) SyncData() error { f.sync(); return nil }

func (f *file) sync() {
	f.fs.cloneMu.RLock()
	defer f.fs.cloneMu.RUnlock()
	f.d.sync()
}

func (f *file) Prefetch(offset, length int64) error { return nil }

func (f *file) Fd() uintptr { return vfs.InvalidFd }

func (d *data) info(name string) vfs.FileInfo {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return fileInfo{name: name, size: d.size, mtime: d.mtime}
}

type fileInfo struct {
	name  string
	size  int64
	mtime time.Time
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return fi.size }
func (fi fileInfo) Mode() os.FileMode  { return 0o644 }
func (fi fileInfo) ModTime() time.Time { return fi.mtime }
func (fi fileInfo) IsDir() bool        { return false }
func (fi fileInfo) Sys() any           { return nil }
func (fi fileInfo) DeviceID() vfs.DeviceID {
	return vfs.DeviceID{}
}
