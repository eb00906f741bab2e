package pebblesched

import (
	"context"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestCompactsWithoutTicker: a DB whose writes need flushes and
// compactions gets them from this scheduler, and closing the DB leaves no
// goroutine behind.
func TestCompactsWithoutTicker(t *testing.T) {
	s := New()
	opts := &pebble.Options{FS: vfs.NewMem(), MemTableSize: 256 << 10, L0CompactionThreshold: 2}
	opts.Experimental.CompactionScheduler = s
	db, err := pebble.Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	val := make([]byte, 1024)
	for i := range 4000 {
		if err := db.Set(fmt.Appendf(nil, "key-%06d", i%1500), val, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		if i%500 == 499 {
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.Compact(context.Background(), []byte("key-"), []byte("key-999999"), true); err != nil {
		t.Fatal(err)
	}
	m := db.Metrics()
	if m.Compact.Count == 0 {
		t.Fatalf("no compaction ran: %s", m)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.running != 0 || !s.mu.unregistered {
		t.Fatalf("after Close: %d compactions running, unregistered %v", s.mu.running, s.mu.unregistered)
	}
}
