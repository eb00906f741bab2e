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
// Names stay in the MemFS: a segment file has an empty placeholder there, so
// listing, renaming and removing it, and the durability of its directory
// entry across a crash, are the MemFS's own. CrashClone keeps what a power
// cut would: the MemFS's crash clone (synced names, synced index data) and,
// for every segment file whose name survived, the bytes it had when it was
// last synced.
//
// Segment files are recognized by name: twenty digits and ".log", or that
// and ".cut" or ".cleaned" (segment.segName and the temporary files of a
// cut and of the log cleaner). Any other file goes to the MemFS unchanged.
package memfs

import (
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
type FS struct {
	mem *vfs.MemFS
	mu  struct {
		sync.Mutex
		files map[string]*data // by clean path: segment files' contents
	}
}

// New returns an empty FS over a new crashable MemFS.
func New() *FS { return wrap(vfs.NewCrashableMem()) }

func wrap(mem *vfs.MemFS) *FS {
	fs := &FS{mem: mem}
	fs.mu.files = make(map[string]*data)
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
	maxChunk   = 1 << 20
	doublings  = 8 // chunks 0..7 double from firstChunk; firstChunk<<8 == maxChunk
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

// reset empties the file (Create on an existing name; segment files only
// ever shrink by a rename over them).
func (d *data) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.store.free()
	d.capacity, d.size, d.synced = 0, 0, 0
	d.mtime = time.Now()
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

// Create implements vfs.FS.
func (fs *FS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	if !isSegment(name) {
		return fs.mem.Create(name, cat)
	}
	ph, err := fs.mem.Create(name, cat) // the name, in its directory
	if err != nil {
		return nil, err
	}
	ph.Close()
	fs.mu.Lock()
	d := fs.mu.files[clean(name)]
	if d == nil {
		d = newData()
		fs.mu.files[clean(name)] = d
	} else {
		d.reset()
	}
	fs.mu.Unlock()
	return &file{name: name, d: d}, nil
}

// Open implements vfs.FS.
func (fs *FS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	if !isSegment(name) {
		return fs.mem.Open(name, opts...)
	}
	return fs.openSegment(name)
}

func (fs *FS) openSegment(name string) (vfs.File, error) {
	if _, err := fs.mem.Stat(name); err != nil {
		return nil, err
	}
	fs.mu.Lock()
	d := fs.mu.files[clean(name)]
	fs.mu.Unlock()
	if d == nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
	}
	return &file{name: name, d: d}, nil
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

// OpenDir implements vfs.FS.
func (fs *FS) OpenDir(name string) (vfs.File, error) { return fs.mem.OpenDir(name) }

// Link implements vfs.FS; segment files are never linked.
func (fs *FS) Link(oldname, newname string) error {
	if isSegment(oldname) || isSegment(newname) {
		return errors.New("memfs: segment files cannot be linked")
	}
	return fs.mem.Link(oldname, newname)
}

// Remove implements vfs.FS. Open handles keep the contents, as on Unix.
func (fs *FS) Remove(name string) error {
	if err := fs.mem.Remove(name); err != nil {
		return err
	}
	if isSegment(name) {
		fs.mu.Lock()
		delete(fs.mu.files, clean(name))
		fs.mu.Unlock()
	}
	return nil
}

// RemoveAll implements vfs.FS.
func (fs *FS) RemoveAll(name string) error {
	if err := fs.mem.RemoveAll(name); err != nil {
		return err
	}
	prefix := clean(name) + "/"
	fs.mu.Lock()
	for p := range fs.mu.files {
		if p == clean(name) || strings.HasPrefix(p, prefix) {
			delete(fs.mu.files, p)
		}
	}
	fs.mu.Unlock()
	return nil
}

// Rename implements vfs.FS.
func (fs *FS) Rename(oldname, newname string) error {
	if isSegment(oldname) != isSegment(newname) {
		return errors.New("memfs: a segment file can only be renamed to a segment file's name")
	}
	if err := fs.mem.Rename(oldname, newname); err != nil {
		return err
	}
	if isSegment(oldname) {
		fs.mu.Lock()
		fs.mu.files[clean(newname)] = fs.mu.files[clean(oldname)]
		delete(fs.mu.files, clean(oldname))
		fs.mu.Unlock()
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
	fs.mu.Lock()
	d := fs.mu.files[clean(name)]
	fs.mu.Unlock()
	if d == nil {
		return nil, &os.PathError{Op: "stat", Path: name, Err: os.ErrNotExist}
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
// MemFS's crash clone, and for every segment file whose name survived it,
// the contents it had at its last sync. cfg is the MemFS's (its
// UnsyncedDataPercent applies to names and index data, not to segment
// files, which keep exactly their synced bytes).
func (fs *FS) CrashClone(cfg vfs.CrashCloneCfg) *FS {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n := wrap(fs.mem.CrashClone(cfg))
	for p, d := range fs.mu.files {
		if _, err := n.mem.Stat(p); err == nil {
			n.mu.files[p] = d.crashClone()
		}
	}
	return n
}

// file is an open segment file.
type file struct {
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
	f.d.writeAt(p, f.wpos)
	f.wpos += int64(len(p))
	return len(p), nil
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	f.d.writeAt(p, off)
	return len(p), nil
}

func (f *file) Preallocate(offset, length int64) error { return nil }

func (f *file) Stat() (vfs.FileInfo, error) { return f.d.info(path.Base(f.name)), nil }

func (f *file) Sync() error { f.d.sync(); return nil }

func (f *file) SyncTo(length int64) (bool, error) { f.d.sync(); return true, nil }

func (f *file) SyncData() error { f.d.sync(); return nil }

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
