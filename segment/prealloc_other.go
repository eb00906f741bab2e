//go:build !unix

package segment

import "github.com/cockroachdb/pebble/v2/vfs"

// truncateFile does nothing where preallocation is not given back.
func truncateFile(vfs.File, int64) {}
