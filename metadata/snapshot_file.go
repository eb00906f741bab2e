package metadata

// Snapshot files, as a broker keeps its metadata snapshots in its
// __cluster_metadata-0 directory (Kafka's <end offset>-<epoch>.checkpoint
// files, with kcluster's snapshot bytes). A snapshot is written whole to a
// .part file, synced, renamed into place and the directory synced, so a
// crash leaves the previous snapshot or the new one, never half of one; a
// file that does not decode (ErrSnapshotCorrupt) is passed over for the
// one before it.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// SnapshotDir is the directory, inside a node's data directory, that
// holds its metadata snapshots (Kafka's metadata log directory).
const SnapshotDir = "__cluster_metadata-0"

const (
	snapshotSuffix = ".checkpoint"
	partSuffix     = ".part"
)

func snapshotFileName(sn *Snapshot) string {
	return fmt.Sprintf("%020d-%010d%s", sn.EndOffset(), sn.Epoch, snapshotSuffix)
}

// WriteSnapshotFile writes sn into dir of fs atomically and durably, then
// removes older snapshot files and leftover parts.
func WriteSnapshotFile(fs vfs.FS, dir string, sn *Snapshot) error {
	b, err := EncodeSnapshot(sn)
	if err != nil {
		return err
	}
	if _, err := fs.Stat(dir); err != nil {
		// A new directory: its entry in the parent must be durable too.
		if err := fs.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := syncDir(fs, fs.PathDir(dir)); err != nil {
			return err
		}
	}
	name := snapshotFileName(sn)
	part := fs.PathJoin(dir, name+partSuffix)
	f, err := fs.Create(part, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(part, fs.PathJoin(dir, name)); err != nil {
		return err
	}
	if err := syncDir(fs, dir); err != nil {
		return err
	}
	names, err := fs.List(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if n != name && (strings.HasSuffix(n, snapshotSuffix) && n < name || strings.HasSuffix(n, partSuffix)) {
			if err := fs.Remove(fs.PathJoin(dir, n)); err != nil {
				return err
			}
		}
	}
	return nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ReadSnapshotFile returns the newest whole snapshot in dir of fs, nil if
// there is none. Torn or corrupt files are skipped.
func ReadSnapshotFile(fs vfs.FS, dir string) (*Snapshot, error) {
	names, err := fs.List(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	slices.Sort(names)
	for i := len(names) - 1; i >= 0; i-- {
		if !strings.HasSuffix(names[i], snapshotSuffix) {
			continue
		}
		f, err := fs.Open(fs.PathJoin(dir, names[i]))
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		sn, err := DecodeSnapshot(b)
		if errors.Is(err, ErrSnapshotCorrupt) {
			continue
		}
		return sn, err
	}
	return nil, nil
}
