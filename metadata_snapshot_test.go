package kcluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kcluster/kcluster/metadata"
)

// churnMetadata writes n topic create and delete records (n/2 topics,
// each created and deleted) through the active controller's proposals,
// batch records to a proposal: the fast path to a long metadata log.
func churnMetadata(t *testing.T, c *Cluster, seq *uint64, n, batch int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for n > 0 {
		var recs []metadata.Record
		for len(recs) < batch && n > 0 {
			*seq++
			var id metadata.TopicID
			binary.BigEndian.PutUint64(id[8:], *seq)
			id[0] = 0xc4
			recs = append(recs, &metadata.CreateTopic{Name: "churn-" + strconv.FormatUint(*seq, 10), ID: id}, &metadata.RemoveTopic{ID: id})
			n -= 2
		}
		for {
			n := c.activeController()
			if n == nil {
				if err := c.WaitFor(ctx, func(c *Cluster) bool { return c.activeController() != nil }); err != nil {
					t.Fatal(err)
				}
				continue
			}
			err := n.ctrl.Propose(ctx, recs...)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatal(err)
			}
		}
	}
}

// stateBytes is a state's canonical form: equal states, equal bytes.
func stateBytes(t *testing.T, st *metadata.State) []byte {
	t.Helper()
	b, err := metadata.EncodeSnapshot(st.Snapshot(0))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ctrlState(t *testing.T, n *controllerNode) (int64, []byte) {
	var off int64
	var b []byte
	n.ctrl.State(func(s *metadata.State) { off, b = s.Offset, stateBytes(t, s) })
	return off, b
}

func brokerState(t *testing.T, b *broker) (int64, []byte) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.mu.state.Offset, stateBytes(t, b.mu.state)
}

// sameState holds when get's state is the active controller's, at the
// same offset.
func sameState(t *testing.T, get func() (int64, []byte, bool)) Condition {
	return func(c *Cluster) bool {
		a := c.activeController()
		off, b, ok := get()
		if a == nil || !ok {
			return false
		}
		aoff, ab := ctrlState(t, a)
		return off == aoff && bytes.Equal(b, ab)
	}
}

func waitSame(t *testing.T, c *Cluster, what string, get func() (int64, []byte, bool)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.WaitFor(ctx, sameState(t, get)); err != nil {
		off, _, _ := get()
		t.Fatalf("%s's state never equal to the active controller's (at %d; active end %d): %v", what, off, c.metadataEnd(), err)
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// restartResult is what one run of TestMetadataSnapshotRestart measures.
type restartResult struct {
	ctrl, broker       time.Duration
	heap               uint64
	ctrlHeld, ctrlFrom int64 // the restarted controller's log: records held, start
	// the snapshot offsets the broker started from: its own, the
	// controller's; -1 if none
	brokerOwn, brokerFetched int64
}

// runRestart writes records metadata records in a quorum, then restarts a
// follower controller and a broker, and measures how long each takes to
// have the active controller's state again.
func runRestart(t *testing.T, records int, opts ...Option) restartResult {
	c := Start(t, append([]Option{Brokers(2), Controllers(3)}, opts...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := c.CreateTopic(ctx, "kept", 3, 2); err != nil {
		t.Fatal(err)
	}
	var seq uint64
	churnMetadata(t, c, &seq, records, 1000)
	active := c.activeController()
	var follower int32
	for _, n := range c.controllers() {
		if n != active {
			follower = n.id
			break
		}
	}
	// Both go down with the whole log written; restart each and time it
	// until its state is the active controller's.
	if err := c.KillController(follower); err != nil {
		t.Fatal(err)
	}
	if err := c.KillBroker(2); err != nil {
		t.Fatal(err)
	}
	var res restartResult
	start := time.Now()
	if err := c.RestartController(follower); err != nil {
		t.Fatal(err)
	}
	waitSame(t, c, "restarted controller", func() (int64, []byte, bool) {
		n := c.controllerByID(follower)
		if n == nil {
			return -2, nil, false
		}
		off, b := ctrlState(t, n)
		return off, b, true
	})
	res.ctrl = time.Since(start)
	n := c.controllerByID(follower)
	res.ctrlFrom, res.ctrlHeld = n.mlog.Start(), n.mlog.End()-n.mlog.Start()
	start = time.Now()
	if err := c.RestartBroker(2); err != nil {
		t.Fatal(err)
	}
	waitSame(t, c, "restarted broker", func() (int64, []byte, bool) {
		b, _ := c.brokerByID(2)
		if b == nil {
			return -2, nil, false
		}
		off, s := brokerState(t, b)
		return off, s, true
	})
	res.broker = time.Since(start)
	b, _ := c.brokerByID(2)
	res.brokerOwn, res.brokerFetched = b.snaps.loaded, b.snaps.fetched
	res.heap = heapAfterGC()
	// The restarted broker still serves: the kept topic has its leaders.
	for p := range int32(3) {
		if err := c.WaitFor(ctx, LeaderElected("kept", p)); err != nil {
			t.Fatal(err)
		}
	}
	return res
}

// TestMetadataSnapshotRestart: 100,000 topic create/delete records in a
// quorum, then a follower controller and a broker restart. With
// snapshots both come back by a snapshot and the tail (the controller's
// log starts past the churn; the broker starts from its own snapshot) and
// have the active controller's state; without (the trigger off), both
// replay the whole log. The restart times and heap are logged, not
// asserted.
func TestMetadataSnapshotRestart(t *testing.T) {
	records := 100_000
	var opts []Option // the default trigger (1 MiB)
	if testing.Short() {
		records = 10_000
		opts = append(opts, BrokerConfig("metadata.log.max.record.bytes.between.snapshots", "65536"))
	}
	var with, without restartResult
	// Each in a subtest, so the first cluster is closed before the
	// second runs and the heaps compare.
	t.Run("snapshots", func(t *testing.T) { with = runRestart(t, records, opts...) })
	t.Run("full-replay", func(t *testing.T) {
		without = runRestart(t, records, BrokerConfig("metadata.log.max.record.bytes.between.snapshots", "0"))
	})
	if t.Failed() {
		return
	}
	if with.ctrlFrom <= int64(records)/2 || with.ctrlHeld > int64(records)/4 {
		t.Fatalf("restarted controller's log starts at %d and holds %d records of %d: not from a snapshot", with.ctrlFrom, with.ctrlHeld, records)
	}
	if max(with.brokerOwn, with.brokerFetched) <= int64(records)/2 {
		t.Fatalf("restarted broker started from snapshots at %d (its own) and %d (the controller's), want past the churn", with.brokerOwn, with.brokerFetched)
	}
	if without.ctrlFrom != 0 || without.brokerOwn != -1 || without.brokerFetched != -1 {
		t.Fatalf("with the trigger off: controller log starts at %d, broker snapshots %d, %d", without.ctrlFrom, without.brokerOwn, without.brokerFetched)
	}
	t.Logf("%d records: controller restart %v (snapshot + tail of %d records) vs %v (full replay of %d); broker restart %v (own snapshot at %d, controller's at %d) vs %v; heap after restart %d KiB vs %d KiB",
		records, with.ctrl, with.ctrlHeld, without.ctrl, without.ctrlHeld, with.broker, with.brokerOwn, with.brokerFetched, without.broker, with.heap>>10, without.heap>>10)
}

// TestMetadataSnapshotLaggingController: a follower controller that is
// down while the log grows past a snapshot (and is compacted behind it)
// comes back by the leader's Raft snapshot (MsgSnap), then the tail.
func TestMetadataSnapshotLaggingController(t *testing.T) {
	c := Start(t, Brokers(1), Controllers(3), BrokerConfig("metadata.log.max.record.bytes.between.snapshots", "16384"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	active := c.activeController()
	var lag *controllerNode
	for _, n := range c.controllers() {
		if n != active {
			lag = n
			break
		}
	}
	had := lag.mlog.End()
	if err := c.KillController(lag.id); err != nil {
		t.Fatal(err)
	}
	var seq uint64
	churnMetadata(t, c, &seq, 4000, 100)
	active = c.activeController()
	if err := c.WaitFor(ctx, func(*Cluster) bool { return active.mlog.Start() > had+1000 }); err != nil {
		t.Fatalf("the active controller's log starts at %d: never compacted past %d", active.mlog.Start(), had)
	}
	if err := c.RestartController(lag.id); err != nil {
		t.Fatal(err)
	}
	waitSame(t, c, "lagging controller", func() (int64, []byte, bool) {
		n := c.controllerByID(lag.id)
		if n == nil {
			return -2, nil, false
		}
		off, b := ctrlState(t, n)
		return off, b, true
	})
	back := c.controllerByID(lag.id)
	// It had records below `had` only: a log that starts past them came
	// from the leader's snapshot.
	if back.mlog.Start() <= had || back.raft.SnapshotIndex() <= 1 {
		t.Fatalf("lagging controller's log starts at %d (had %d), raft snapshot index %d", back.mlog.Start(), had, back.raft.SnapshotIndex())
	}
	// And it can lead: the others go, it and one more elect, and the
	// metadata moves on.
	if err := c.CreateTopic(ctx, "after", 1, 1); err != nil {
		t.Fatal(err)
	}
}

// TestMetadataSnapshotCrashMidWrite: a broker's power cut while it writes
// a snapshot leaves a torn file beside the previous snapshot; it restarts
// from the previous snapshot and the tail, never from the torn one, and
// has the controller's state. A broker new to the cluster (no snapshot of
// its own) starts from the controller's snapshot.
func TestMetadataSnapshotCrashMidWrite(t *testing.T) {
	c := Start(t, Brokers(2), BrokerConfig("metadata.log.max.record.bytes.between.snapshots", "16384"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.CreateTopic(ctx, "kept", 2, 2); err != nil {
		t.Fatal(err)
	}
	var seq uint64
	churnMetadata(t, c, &seq, 3000, 100)
	if c.memLog.Start() == 0 {
		t.Fatal("the in-memory log was never compacted")
	}
	b, _ := c.brokerByID(2)
	waitSame(t, c, "broker 2", func() (int64, []byte, bool) { off, s := brokerState(t, b); return off, s, true })
	prev, err := metadata.ReadSnapshotFile(b.snaps.fs, b.snaps.dir)
	if err != nil || prev == nil {
		t.Fatalf("broker 2 has no snapshot: %v", err)
	}
	// The cut comes while a newer snapshot is half written: its file is
	// there under its final name with half its bytes (the worst a file
	// system could leave), synced, so the crash clone keeps it. It is
	// newer than any the broker writes itself: its apply loop may still
	// write one of st.Offset (a snapshot is written after the batch it
	// covers is applied, so after waitSame returns), whose name a torn
	// file of st.Offset would have, and which would replace it.
	st := metadata.NewState()
	b.mu.RLock()
	whole, err := metadata.EncodeSnapshot(b.mu.state.Snapshot(0))
	st.Offset = b.mu.state.Offset
	b.mu.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	torn := b.snaps.fs.PathJoin(b.snaps.dir, fmt.Sprintf("%020d-%010d.checkpoint", st.Offset+2, 0))
	f, err := b.snaps.fs.Create(torn, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(whole[:len(whole)/2])
	f.Sync()
	f.Close()
	if err := c.PowerCut(2); err != nil {
		t.Fatal(err)
	}
	churnMetadata(t, c, &seq, 100, 100)
	if err := c.RestartBroker(2); err != nil {
		t.Fatal(err)
	}
	b, _ = c.brokerByID(2)
	waitSame(t, c, "restarted broker 2", func() (int64, []byte, bool) { off, s := brokerState(t, b); return off, s, true })
	// The whole snapshot it loads is prev, or one its apply loop wrote
	// after prev was read: at most st.Offset, below the torn one.
	if b.snaps.loaded < prev.Offset || b.snaps.loaded > st.Offset {
		t.Fatalf("restarted broker started from the snapshot at %d, want a whole one in [%d, %d] (the torn one is at %d)", b.snaps.loaded, prev.Offset, st.Offset, st.Offset+1)
	}
	// A broker that lost its snapshots (a new disk) is below the
	// controller's log start and loads the controller's snapshot.
	if err := c.KillBroker(1); err != nil {
		t.Fatal(err)
	}
	b1dir := c.cfg.fs.PathJoin("broker-1", metadata.SnapshotDir)
	c.disks.mu.Lock()
	fs1 := c.disks.m[1][0].fs
	c.disks.mu.Unlock()
	if err := fs1.RemoveAll(b1dir); err != nil {
		t.Fatal(err)
	}
	if err := c.RestartBroker(1); err != nil {
		t.Fatal(err)
	}
	b1, _ := c.brokerByID(1)
	waitSame(t, c, "broker 1", func() (int64, []byte, bool) { off, s := brokerState(t, b1); return off, s, true })
	if b1.snaps.loaded >= 0 || b1.snaps.fetched < 0 {
		t.Fatal("broker 1 replayed a log the controller had compacted")
	}
	for p := range int32(2) {
		if err := c.WaitFor(ctx, FullyReplicated("kept", p)); err != nil {
			t.Fatal(err)
		}
	}
}
