package invariants

import (
	"fmt"
	"strings"
)

// BuildFlags returns the go test flags of this build that change how a
// seeded run replays: -race and -tags invariants.
func BuildFlags() string {
	var f []string
	if Race {
		f = append(f, "-race")
	}
	if Enabled {
		f = append(f, "-tags invariants")
	}
	return strings.Join(f, " ")
}

// ReplayCommand is the whole command that replays a seeded test: the
// seed, the build flags of this build, the test and its package (as a
// path from the module root, e.g. "." or "./chaos").
func ReplayCommand(pkg, test string, seed uint64) string {
	flags := BuildFlags()
	if flags != "" {
		flags += " "
	}
	return fmt.Sprintf("KCLUSTER_SEED=%d go test %s-count=1 -run '^%s$' %s", seed, flags, test, pkg)
}
