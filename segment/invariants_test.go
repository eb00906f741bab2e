//go:build invariants

package segment

import (
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// With the invariants tag a log reports a broken invariant to
// StoreOptions.Invariant: here an epoch said to start past the log end.
func TestInvariantViolationReported(t *testing.T) {
	var got []string
	s, err := OpenStore(StoreOptions{FS: vfs.NewMem(), Dir: "b1", Invariant: func(msg string) { got = append(got, msg) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := s.OpenLog("t-0", LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 2)
	if err := l.AssignEpoch(1, 6); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("epoch at the log end reported: %q", got)
	}
	if err := l.AssignEpoch(2, 100); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !strings.Contains(got[0], "past the log end") {
		t.Fatalf("reported %q, want the epoch past the log end", got)
	}
}
