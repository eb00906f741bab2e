//go:build unix

package segment

import (
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// truncateFile truncates f to size, its own size: that drops the blocks
// preallocated past its end. A file without a descriptor (in memory) has
// none.
func truncateFile(f vfs.File, size int64) {
	if fd := f.Fd(); fd != vfs.InvalidFd {
		for syscall.Ftruncate(int(fd), size) == syscall.EINTR {
		}
	}
}
