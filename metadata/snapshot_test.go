package metadata

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// richState applies one or more records of every type to a new state.
func richState(t *testing.T) *State {
	t.Helper()
	str := func(s string) *string { return &s }
	i32 := func(v int32) *int32 { return &v }
	f64 := func(v float64) *float64 { return &v }
	t1, t2, t3 := TopicID{1}, TopicID{2}, TopicID{3}
	recs := []Record{
		&FeatureLevelRecord{Name: FeatureMetadataVersion, FeatureLevel: 29},
		&FeatureLevelRecord{Name: FeatureTransactionVersion, FeatureLevel: 2},
		&FeatureLevelRecord{Name: FeatureELRVersion, FeatureLevel: 1},
		&FeatureLevelRecord{Name: FeatureGroupVersion, FeatureLevel: 1},
		&FeatureLevelRecord{Name: FeatureGroupVersion, FeatureLevel: 0},
		&RegisterBroker{ID: 1, Host: "h1", Port: 9001, Rack: str("a"), Epoch: 3, Fenced: true,
			Listeners: []Listener{{Name: "PLAINTEXT", Host: "h1", Port: 9001, Protocol: "PLAINTEXT"}, {Name: "SSL", Host: "h1", Port: 9101, Protocol: "SSL"}}},
		&RegisterBroker{ID: 2, Host: "h2", Port: 9002},
		&RegisterBroker{ID: 3, Host: "h3", Port: 9003, Epoch: 1},
		&RegisterBroker{ID: 4, Host: "h4", Port: 9004},
		&FenceBroker{ID: 2, Fenced: false},
		&UnregisterBroker{ID: 4},
		&CreateTopic{Name: "a", ID: t1, Configs: map[string]string{"cleanup.policy": "compact", "retention.ms": "1"}},
		&PartitionRecord{TopicID: t1, Partition: 0, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, Leader: 1},
		&PartitionRecord{TopicID: t1, Partition: 1, Replicas: []int32{2, 3, 1}, ISR: []int32{2}, Leader: 2, LeaderEpoch: 4},
		&CreateTopic{Name: "b", ID: t2},
		&PartitionRecord{TopicID: t2, Partition: 0, Replicas: []int32{3}, ISR: []int32{3}, Leader: 3},
		&CreateTopic{Name: "gone", ID: t3},
		&PartitionRecord{TopicID: t3, Partition: 0, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1},
		&PartitionChange{TopicID: t1, Partition: 0, Leader: i32(2), ISR: []int32{2, 3}, ELR: []int32{1}, LastKnownELR: []int32{1}},
		&PartitionChange{TopicID: t1, Partition: 1, Replicas: []int32{2, 3, 1, 4}, AddingReplicas: []int32{4}, RemovingReplicas: []int32{1}},
		&PartitionChange{TopicID: t2, Partition: 0, Leader: i32(-1), ISR: []int32{}},
		&RemoveTopic{ID: t3},
		&ConfigChange{ResourceType: ResourceTopic, Name: "b", Key: "segment.bytes", Value: str("1024")},
		&ConfigChange{ResourceType: ResourceBroker, Name: "", Key: "log.retention.ms", Value: str("5")},
		&ConfigChange{ResourceType: ResourceBroker, Name: "2", Key: "log.cleaner.threads", Value: str("2")},
		&ConfigChange{ResourceType: ResourceBroker, Name: "2", Key: "gone", Value: str("x")},
		&ConfigChange{ResourceType: ResourceBroker, Name: "2", Key: "gone"},
		&ConfigChange{ResourceType: ResourceGroup, Name: "g", Key: "consumer.session.timeout.ms", Value: str("45000")},
		&ClientQuota{Entity: []QuotaEntity{{Type: "user", Name: str("u")}, {Type: "client-id"}}, Key: "producer_byte_rate", Value: f64(1024)},
		&ClientQuota{Entity: []QuotaEntity{{Type: "user", Name: str("u")}, {Type: "client-id"}}, Key: "consumer_byte_rate", Value: f64(2048.5)},
		&ClientQuota{Entity: []QuotaEntity{{Type: "ip", Name: str("1.2.3.4")}}, Key: "connection_creation_rate", Value: f64(3)},
		&ProducerIDs{Broker: 1, First: 0, Size: 1000},
		&ProducerIDs{Broker: 2, First: 1000, Size: 1000},
		&AccessControlEntry{ID: "x1", ACL: ACL{ResourceType: 2, ResourceName: "a", PatternType: PatternLiteral, Principal: "User:u", Host: "*", Operation: 3, Permission: 3}},
		&AccessControlEntry{ID: "x2", ACL: ACL{ResourceType: 2, ResourceName: "p", PatternType: PatternPrefixed, Principal: "User:*", Host: "*", Operation: 2, Permission: 2}},
		&AccessControlEntry{ID: "x3", ACL: ACL{ResourceType: 3, ResourceName: "g", PatternType: PatternLiteral, Principal: "User:v", Host: "*", Operation: 2, Permission: 3}},
		&RemoveAccessControlEntry{ID: "x3"},
		&ScramCredential{User: "u", Mechanism: ScramSHA256, Salt: []byte("salt"), StoredKey: []byte("sk"), ServerKey: []byte("srv"), Iterations: 4096},
		&ScramCredential{User: "u", Mechanism: ScramSHA512, Salt: []byte("salt2"), StoredKey: []byte("sk2"), ServerKey: []byte("srv2"), Iterations: 8192},
		&ScramCredential{User: "v", Mechanism: ScramSHA256, Salt: []byte("s"), StoredKey: []byte("k"), ServerKey: []byte("k"), Iterations: 4096},
		&RemoveScramCredential{User: "v", Mechanism: ScramSHA256},
	}
	s := NewState()
	for i, r := range recs {
		if err := s.Apply(int64(i)*3, r); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	return s
}

// normalize makes empty and nil slices and maps alike, as a replay does
// not keep the difference (nor does any reader of the state).
func normalize(s *State) {
	ne := func(p *[]int32) {
		if *p == nil {
			*p = []int32{}
		}
	}
	for _, t := range s.Topics {
		for _, p := range t.Partitions {
			ne(&p.Replicas)
			ne(&p.ISR)
			ne(&p.AddingReplicas)
			ne(&p.RemovingReplicas)
			ne(&p.ELR)
			ne(&p.LastKnownELR)
		}
	}
	for _, b := range s.Brokers {
		if b.Listeners == nil {
			b.Listeners = []Listener{}
		}
	}
	if s.ClientQuotas == nil {
		s.ClientQuotas = map[string]*Quota{}
	}
	if s.ACLs == nil {
		s.ACLs = map[string]*ACL{}
	}
	if s.Scram == nil {
		s.Scram = map[ScramKey]*ScramCredential{}
	}
	if s.Features == nil {
		s.Features = map[string]int16{}
	}
}

// TestSnapshotRoundTrip: State → snapshot records → bytes → replay into a
// fresh State gives the same state, with every kind of record in it.
func TestSnapshotRoundTrip(t *testing.T) {
	st := richState(t)
	sn := st.Snapshot(7)
	b, err := EncodeSnapshot(sn)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	if dec.Offset != st.Offset || dec.Epoch != 7 || dec.EndOffset() != st.Offset+1 {
		t.Fatalf("snapshot id: offset %d epoch %d, want %d and 7", dec.Offset, dec.Epoch, st.Offset)
	}
	kinds := map[string]bool{}
	for _, r := range dec.Records {
		kinds[r.recordType()] = true
	}
	for _, k := range []string{"FeatureLevelRecord", "RegisterBroker", "CreateTopic", "PartitionRecord", "ConfigChange", "ClientQuota", "ProducerIDs", "AccessControlEntry", "ScramCredential"} {
		if !kinds[k] {
			t.Errorf("snapshot has no %s", k)
		}
	}
	back, err := dec.State()
	if err != nil {
		t.Fatal(err)
	}
	// The state's details survive, not only its shape.
	p := back.Partition(TopicID{1}, 1)
	if p.PartitionEpoch != 1 || p.LeaderEpoch != 4 || fmt.Sprint(p.AddingReplicas, p.RemovingReplicas) != "[4] [1]" {
		t.Fatalf("partition a/1 after replay: %+v", p)
	}
	if p := back.Partition(TopicID{1}, 0); p.Leader != 2 || p.LeaderEpoch != 1 || fmt.Sprint(p.ELR, p.LastKnownELR) != "[1] [1]" {
		t.Fatalf("partition a/0 after replay: %+v", p)
	}
	if back.NextProducerID != 2000 || back.Brokers[4] != nil || back.Topics["gone"] != nil || back.Brokers[1].Epoch != 3 || !back.Brokers[1].Fenced {
		t.Fatalf("replayed state: next pid %d, brokers %v, topics %v", back.NextProducerID, back.BrokerIDs(), back.TopicNames())
	}
	// Equal states give equal snapshots, byte for byte.
	b2, err := EncodeSnapshot(back.Snapshot(7))
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("snapshot of the replayed state differs (%v)", err)
	}
	normalize(st)
	normalize(back)
	if !reflect.DeepEqual(st, back) {
		t.Fatalf("replayed state differs:\n got %s\nwant %s", dump(back), dump(st))
	}
}

// TestSnapshotTornIsRejected: any prefix of a snapshot, and a flipped
// byte, is ErrSnapshotCorrupt.
func TestSnapshotTornIsRejected(t *testing.T) {
	b, err := EncodeSnapshot(richState(t).Snapshot(1))
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(b); n += 7 {
		if _, err := DecodeSnapshot(b[:n]); !errors.Is(err, ErrSnapshotCorrupt) {
			t.Fatalf("prefix of %d bytes: %v", n, err)
		}
	}
	bad := bytes.Clone(b)
	bad[len(bad)/2] ^= 1
	if _, err := DecodeSnapshot(bad); !errors.Is(err, ErrSnapshotCorrupt) {
		t.Fatalf("flipped byte: %v", err)
	}
}

// waitLog waits, on the log's own wake-ups, until cond holds.
func waitLog(t *testing.T, c *committed, cond func() bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		ch := c.mu.changed
		c.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatal("condition not reached")
		}
	}
}

// churn creates and deletes a topic n times through the controller.
func churn(t *testing.T, c *Controller, n int) {
	t.Helper()
	for i := range n {
		name := fmt.Sprintf("t%d", i)
		if _, err := c.CreateTopic(context.Background(), TopicSpec{Name: name, Partitions: 1, ReplicationFactor: 1}, false); err != nil {
			t.Fatal(err)
		}
		if _, err := c.DeleteTopic(context.Background(), name, TopicID{}); err != nil {
			t.Fatal(err)
		}
	}
}

func snapshotBytes(t *testing.T, c *Controller) []byte {
	t.Helper()
	var b []byte
	var err error
	c.State(func(s *State) { b, err = EncodeSnapshot(s.Snapshot(0)) })
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMemLogCompactsBehindSnapshots: the in-memory log drops its prefix
// once the controller's byte trigger fires, so it does not grow with the
// churn; a controller started on it later comes back from the snapshot
// plus the tail with the same state.
func TestMemLogCompactsBehindSnapshots(t *testing.T) {
	log := NewMemLog()
	defer log.Close()
	c, err := NewController(context.Background(), log, "test", ControllerConfig{SessionTimeout: time.Hour, SnapshotMaxBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterBroker(context.Background(), RegisterBroker{ID: 1, Host: "h", Port: 9001}, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Heartbeat(context.Background(), 1, 0, nil); err != nil {
		t.Fatal(err)
	}
	churn(t, c, 300)
	if _, err := c.CreateTopic(context.Background(), TopicSpec{Name: "kept", Partitions: 2, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	sn := log.LatestSnapshot()
	if sn == nil || log.Start() > sn.Offset || log.Start() == 0 {
		t.Fatalf("log start %d, snapshot at %v", log.Start(), sn)
	}
	// Below the latest snapshot the log keeps the records since the
	// one before it, and no more.
	if _, err := log.Read(context.Background(), log.Start(), 1); err != nil {
		t.Fatal(err)
	}
	if held := log.End() - log.Start(); held > 200 {
		t.Fatalf("log holds %d records after compaction (end %d)", held, log.End())
	}
	if _, err := log.Read(context.Background(), 0, 1); !errors.Is(err, ErrBelowLogStart) {
		t.Fatalf("read below the log start: %v", err)
	}
	again, err := NewController(context.Background(), log, "test", ControllerConfig{SessionTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := snapshotBytes(t, c), snapshotBytes(t, again); !bytes.Equal(a, b) {
		t.Fatal("a controller restarted from the snapshot and tail has another state")
	}
}

// TestRaftLogSnapshotCatchUp: a leader compacts its Raft log behind a
// snapshot; a follower that was down meanwhile gets the snapshot (MsgSnap)
// and the tail; and the leader itself restarts from the snapshot.
func TestRaftLogSnapshotCatchUp(t *testing.T) {
	g := &raftGroup{t: t, fs: vfs.NewMem(), net: &raftNet{logs: map[uint64]*RaftLog{}, cut: map[uint64]bool{}},
		cancel: map[uint64]context.CancelFunc{}, done: map[uint64]chan struct{}{}, status: make(chan struct{}, 1)}
	for id := uint64(1); id <= 3; id++ {
		g.start(id)
	}
	defer func() {
		for id := range g.net.logs {
			g.stop(id)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lead := g.leader(0)
	var lagging uint64
	for id := range g.net.logs {
		if id != lead.cfg.ID {
			lagging = id
			break
		}
	}
	g.stop(lagging)
	st := NewState()
	for i := range 50 {
		id := TopicID{byte(i), 1}
		recs := []Record{&CreateTopic{Name: fmt.Sprint("t", i), ID: id}, &RemoveTopic{ID: id}}
		last, err := lead.Append(ctx, recs...)
		if err != nil {
			t.Fatal(err)
		}
		for j, r := range recs {
			if err := st.Apply(last-1+int64(j), r); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := lead.Append(ctx, &RegisterBroker{ID: 7, Host: "h"}); err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(st.Offset+1, &RegisterBroker{ID: 7, Host: "h"}); err != nil {
		t.Fatal(err)
	}
	// Two snapshots: the second drops the records through the first.
	var mid *Snapshot
	for range 2 {
		id := TopicID{0xff, byte(st.Offset)}
		last, err := lead.Append(ctx, &CreateTopic{Name: fmt.Sprint("s", st.Offset), ID: id})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Apply(last, &CreateTopic{Name: fmt.Sprint("s", st.Offset), ID: id}); err != nil {
			t.Fatal(err)
		}
		if mid == nil {
			mid = st.Snapshot(0)
		}
		lead.Compact(st.Snapshot(0))
		waitLog(t, &lead.committed, func() bool { return lead.LatestSnapshot() != nil && lead.LatestSnapshot().Offset == st.Offset })
	}
	if lead.Start() != mid.Offset+1 {
		t.Fatalf("leader's log starts at %d, want after the first snapshot (%d)", lead.Start(), mid.Offset+1)
	}
	if lead.SnapshotIndex() <= 1 {
		t.Fatalf("raft snapshot index %d after compaction", lead.SnapshotIndex())
	}
	if sn := lead.LatestSnapshot(); sn.Epoch == 0 || sn.Offset != st.Offset {
		t.Fatalf("leader's snapshot: offset %d epoch %d", sn.Offset, sn.Epoch)
	}
	// The lagging follower's next index is compacted on the leader: it
	// catches up through the snapshot, then the tail.
	back := g.start(lagging)
	last, err := lead.Append(ctx, &RegisterBroker{ID: 8, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, &back.committed, func() bool { return back.End() == last+1 })
	if back.Start() != st.Offset+1 || back.LatestSnapshot() == nil || back.LatestSnapshot().Offset != st.Offset {
		t.Fatalf("follower start %d, snapshot %v", back.Start(), back.LatestSnapshot())
	}
	es, err := back.Read(ctx, last, 1)
	if err != nil || es[0].Record.(*RegisterBroker).ID != 8 {
		t.Fatalf("follower's tail: %v, %v", es, err)
	}
	got, err := back.LatestSnapshot().State()
	if err != nil || got.Brokers[7] == nil || len(got.Topics) != 2 {
		t.Fatalf("follower's snapshot state: %v", err)
	}
	// The leader restarts from its stored snapshot and its tail.
	old := lead.cfg.ID
	g.stop(old)
	lead = g.leader(old)
	again := g.start(old)
	waitLog(t, &again.committed, func() bool { return again.End() == last+1 })
	if again.Start() != st.Offset+1 || again.LatestSnapshot().Offset != st.Offset {
		t.Fatalf("restarted node's log start %d, want %d", again.Start(), st.Offset+1)
	}
}

// TestSnapshotFileCrashMidWrite: a power cut while a snapshot file is
// written leaves the previous snapshot readable, whichever step the cut
// hits; a torn file is passed over.
func TestSnapshotFileCrashMidWrite(t *testing.T) {
	for _, fs := range []vfs.FS{vfs.NewMem(), vfs.NewCrashableMem()} {
		if sn, err := ReadSnapshotFile(fs, "none"); sn != nil || err != nil {
			t.Fatalf("no directory: %v, %v", sn, err)
		}
	}
	st := richState(t)
	first := st.Snapshot(1)
	mem := vfs.NewCrashableMem()
	if err := WriteSnapshotFile(mem, SnapshotDir, first); err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(st.Offset+1, &RegisterBroker{ID: 9, Host: "h9"}); err != nil {
		t.Fatal(err)
	}
	second := st.Snapshot(2)
	b, err := EncodeSnapshot(second)
	if err != nil {
		t.Fatal(err)
	}
	// A cut before the rename: the part file (synced or not, whole or
	// torn) is never read.
	part := mem.PathJoin(SnapshotDir, snapshotFileName(second)+partSuffix)
	f, err := mem.Create(part, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(b[:len(b)/2])
	clone := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(1, 2))})
	f.Write(b[len(b)/2:])
	f.Sync()
	f.Close()
	for _, fs := range []*vfs.MemFS{clone, mem.CrashClone(vfs.CrashCloneCfg{})} {
		got, err := ReadSnapshotFile(fs, SnapshotDir)
		if err != nil || got == nil || got.Offset != first.Offset || got.Epoch != 1 {
			t.Fatalf("after a cut before the rename: %v, %v", got, err)
		}
	}
	// A torn snapshot under the final name (as a file system that
	// reorders a rename before the data would leave) is skipped too.
	torn, err := mem.Create(mem.PathJoin(SnapshotDir, snapshotFileName(second)), vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	torn.Write(b[:len(b)-3])
	torn.Sync()
	torn.Close()
	if got, err := ReadSnapshotFile(mem, SnapshotDir); err != nil || got == nil || got.Offset != first.Offset {
		t.Fatalf("with a torn newer snapshot: %v, %v", got, err)
	}
	// A whole write replaces it, and the older files go.
	if err := WriteSnapshotFile(mem, SnapshotDir, second); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSnapshotFile(mem.CrashClone(vfs.CrashCloneCfg{}), SnapshotDir)
	if err != nil || got == nil || got.Offset != second.Offset || got.Epoch != 2 {
		t.Fatalf("after a whole write and a cut: %v, %v", got, err)
	}
	names, _ := mem.List(SnapshotDir)
	if len(names) != 1 {
		t.Fatalf("files left: %v", names)
	}
}

// TestCompactAfterCloseDoesNotPanic: a compaction or a restore that
// races the log's close (a Raft log's run loop compacting while its
// controller shuts down) finds the readers' channel closed for good and
// leaves it so, rather than closing it twice.
func TestCompactAfterCloseDoesNotPanic(t *testing.T) {
	log := NewMemLog()
	if _, err := log.Append(context.Background(), &RegisterBroker{ID: 1, Host: "h", Port: 9001}, &RegisterBroker{ID: 2, Host: "h", Port: 9002}); err != nil {
		t.Fatal(err)
	}
	log.Close()
	log.Compact(&Snapshot{Offset: 0})
	log.restore(&Snapshot{Offset: 1})
	if _, err := log.Read(context.Background(), 2, 1); !errors.Is(err, ErrLogClosed) {
		t.Fatalf("read after close: %v", err)
	}
}
