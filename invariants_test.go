//go:build invariants

package kcluster

import (
	"strings"
	"testing"

	"github.com/kcluster/kcluster/segment"
)

func TestInvariantChecksCatchBadValues(t *testing.T) {
	for _, tc := range []struct {
		name, got string
	}{
		{"hw backwards", checkHWAdvance(10, 9, 20, nil)},
		{"hw past own log end", checkHWAdvance(10, 21, 20, nil)},
		{"hw past an ISR member", checkHWAdvance(10, 15, 20, map[int32]int64{2: 20, 3: 14})},
		{"hw past log end after truncation", checkHW(8, 7)},
		{"append gap", segment.CheckAppended(10, 15, []segment.BatchHeader{{BaseOffset: 11, LastOffsetDelta: 3}}, false)},
		{"append overlap", segment.CheckAppended(10, 17, []segment.BatchHeader{{BaseOffset: 10, LastOffsetDelta: 3}, {BaseOffset: 13, LastOffsetDelta: 3}}, false)},
		{"log end not moved", segment.CheckAppended(10, 10, []segment.BatchHeader{{BaseOffset: 10, LastOffsetDelta: 0}}, false)},
		{"epoch not increasing", segment.CheckEpochs([]segment.EpochEntry{{Epoch: 3, StartOffset: 0}, {Epoch: 3, StartOffset: 5}}, 10)},
		{"epoch start going back", segment.CheckEpochs([]segment.EpochEntry{{Epoch: 3, StartOffset: 6}, {Epoch: 4, StartOffset: 5}}, 10)},
		{"epoch past log end", segment.CheckEpochs([]segment.EpochEntry{{Epoch: 3, StartOffset: 11}}, 10)},
	} {
		if tc.got == "" {
			t.Errorf("%s: not detected", tc.name)
		}
	}
	for _, ok := range []string{
		checkHWAdvance(10, 15, 20, map[int32]int64{2: 15}),
		checkHW(7, 7),
		segment.CheckAppended(10, 17, []segment.BatchHeader{{BaseOffset: 10, LastOffsetDelta: 3}, {BaseOffset: 14, LastOffsetDelta: 2}}, false),
		segment.CheckAppended(10, 30, []segment.BatchHeader{{BaseOffset: 10, LastOffsetDelta: 3}, {BaseOffset: 20, LastOffsetDelta: 9}}, true),
		segment.CheckEpochs([]segment.EpochEntry{{Epoch: 1, StartOffset: 0}, {Epoch: 4, StartOffset: 0}, {Epoch: 5, StartOffset: 9}}, 9),
	} {
		if ok != "" {
			t.Errorf("false positive: %s", ok)
		}
	}
}

// recordingTB is a TB whose Fatalf records instead of stopping the test,
// and whose cleanups run when the test says.
type recordingTB struct {
	*testing.T
	fatal    []string
	cleanups []func()
}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.fatal = append(r.fatal, format)
}
func (r *recordingTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

// A violation inside a request handler reaches the test: it is recorded in
// the cluster, not panicked (the connection loop would recover the panic),
// and Start's cleanup fails the test with it. A cluster made by New panics
// at Close instead.
func TestInvariantViolationFailsTheTest(t *testing.T) {
	rtb := &recordingTB{T: t}
	c := Start(rtb, Brokers(1))
	id := createTopic(t, c, "inv", 1, 1)
	r := c.running()[0].partition(id, 0)
	r.mu.Lock()
	r.advanceHWLocked(r.mu.hw + 100) // past the log end
	r.mu.Unlock()
	for i := len(rtb.cleanups) - 1; i >= 0; i-- {
		rtb.cleanups[i]()
	}
	if len(rtb.fatal) != 1 || !strings.Contains(rtb.fatal[0], "invariant violations") {
		t.Fatalf("Start's cleanup reported %q, want the invariant violation", rtb.fatal)
	}

	c2, err := New(Brokers(1))
	if err != nil {
		t.Fatal(err)
	}
	c2.invariantViolated("test violation")
	defer func() {
		p := recover()
		if p == nil || !strings.Contains(p.(string), "test violation") {
			t.Fatalf("Close of a New cluster with a violation: panic %v", p)
		}
	}()
	c2.Close()
}
