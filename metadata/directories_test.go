package metadata

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// dirsController registers brokers 1..n with the given dirs each (dir j
// of broker i is DirectoryID{0: i, 1: j, 15: 200}) and unfences them.
func dirsController(t *testing.T, brokers, dirs int) (*Controller, map[int32]int64) {
	t.Helper()
	log := NewMemLog()
	t.Cleanup(log.Close)
	c, err := NewController(context.Background(), log, "test", ControllerConfig{SessionTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	epochs := map[int32]int64{}
	for i := int32(1); i <= int32(brokers); i++ {
		r := RegisterBroker{ID: i, Host: "h", Port: 9000 + i}
		for j := range dirs {
			r.LogDirs = append(r.LogDirs, testDir(i, j))
		}
		e, err := c.RegisterBroker(context.Background(), r, -1)
		if err != nil {
			t.Fatal(err)
		}
		epochs[i] = e
		if _, err := c.Heartbeat(context.Background(), i, e, nil); err != nil {
			t.Fatal(err)
		}
	}
	return c, epochs
}

func testDir(broker int32, j int) DirectoryID {
	return DirectoryID{0: byte(broker), 1: byte(j), 15: 200}
}

func TestDirectoryIDReservedAndText(t *testing.T) {
	for _, d := range []DirectoryID{{}, DirLost(), DirMigrating(), {15: 99}} {
		if !d.Reserved() {
			t.Fatalf("%v not reserved", d)
		}
	}
	d := testDir(1, 0)
	if d.Reserved() {
		t.Fatalf("%v reserved", d)
	}
	if DirLost().String() != "AAAAAAAAAAAAAAAAAAAAAQ" || (DirectoryID{}).String() != "AAAAAAAAAAAAAAAAAAAAAA" {
		t.Fatalf("LOST %s, UNASSIGNED %s: not Kafka's Uuid strings", DirLost(), DirectoryID{})
	}
	b, _ := d.MarshalText()
	var back DirectoryID
	if err := back.UnmarshalText(b); err != nil || back != d {
		t.Fatalf("round trip of %s: %v %v", d, back, err)
	}
	// Through the record codec and a snapshot.
	rec := &PartitionRecord{Replicas: []int32{1}, Directories: []DirectoryID{d}}
	enc, err := EncodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(enc)
	if err != nil || !slices.Equal(got.(*PartitionRecord).Directories, rec.Directories) {
		t.Fatalf("decoded %+v, %v", got, err)
	}
}

// With one dir a broker's replicas are placed by the controller; with
// two they are UNASSIGNED until the broker reports them
// (AssignReplicasToDirs), which checks the broker's epoch and replicas.
func TestDirectoriesAssigned(t *testing.T) {
	ctx := context.Background()
	c, epochs := dirsController(t, 3, 1)
	id, err := c.CreateTopic(ctx, TopicSpec{Name: "one", Partitions: 1, ReplicationFactor: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	c.State(func(s *State) {
		p := s.TopicsByID[id].Partitions[0]
		for _, r := range p.Replicas {
			if p.Directory(r) != testDir(r, 0) {
				t.Fatalf("broker %d's replica in %v, want its only dir", r, p.Directory(r))
			}
		}
	})

	c, epochs = dirsController(t, 3, 2)
	id, err = c.CreateTopic(ctx, TopicSpec{Name: "two", Partitions: 1, ReplicationFactor: 2}, false)
	if err != nil {
		t.Fatal(err)
	}
	var replicas []int32
	c.State(func(s *State) {
		p := s.TopicsByID[id].Partitions[0]
		replicas = slices.Clone(p.Replicas)
		for _, r := range p.Replicas {
			if p.Directory(r) != (DirectoryID{}) {
				t.Fatalf("broker %d's replica in %v, want UNASSIGNED", r, p.Directory(r))
			}
		}
	})
	r := replicas[0]
	var other int32 = 1
	for slices.Contains(replicas, other) {
		other++
	}
	errs, err := c.AssignReplicasToDirs(ctx, r, epochs[r], []DirAssignment{
		{TopicID: id, Partition: 0, Dir: testDir(r, 1)},
		{TopicID: TopicID{9}, Partition: 0, Dir: testDir(r, 1)},
	})
	if err != nil || errs[0] != nil || !errors.Is(errs[1], kerr.UnknownTopicID) {
		t.Fatalf("assign: %v %v", errs, err)
	}
	if errs, _ := c.AssignReplicasToDirs(ctx, other, epochs[other], []DirAssignment{{TopicID: id, Partition: 0, Dir: testDir(other, 0)}}); !errors.Is(errs[0], kerr.NotLeaderForPartition) {
		t.Fatalf("assign by a broker without a replica: %v", errs)
	}
	if _, err := c.AssignReplicasToDirs(ctx, r, epochs[r]+1, nil); !errors.Is(err, ErrStaleBrokerEpoch) {
		t.Fatalf("assign at a stale epoch: %v", err)
	}
	c.State(func(s *State) {
		if d := s.TopicsByID[id].Partitions[0].Directory(r); d != testDir(r, 1) {
			t.Fatalf("broker %d's replica in %v after its assignment", r, d)
		}
	})
}

// A broker reports a dir offline in its heartbeat: its replicas there
// leave their ISRs and leaderships, those in its other dir keep them, and
// a replica in the offline dir may not rejoin an ISR. Reported online
// again, the dir's leaderless partitions get their leader back.
func TestHeartbeatOfflineDirMovesLeadership(t *testing.T) {
	ctx := context.Background()
	c, epochs := dirsController(t, 3, 2)
	id, err := c.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 6, ReplicationFactor: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	// Broker 1 places partitions 0-2 in dir 0, 3-5 in dir 1; the
	// others all in their dir 0.
	for b := int32(1); b <= 3; b++ {
		var as []DirAssignment
		for p := range int32(6) {
			j := 0
			if b == 1 && p >= 3 {
				j = 1
			}
			as = append(as, DirAssignment{TopicID: id, Partition: p, Dir: testDir(b, j)})
		}
		if _, err := c.AssignReplicasToDirs(ctx, b, epochs[b], as); err != nil {
			t.Fatal(err)
		}
	}
	var led []int32
	c.State(func(s *State) {
		for _, p := range s.TopicsByID[id].Partitions {
			if p.Leader == 1 {
				led = append(led, p.Partition)
			}
		}
	})
	if _, err := c.Heartbeat(ctx, 1, epochs[1], []DirectoryID{testDir(1, 0)}); err != nil {
		t.Fatal(err)
	}
	c.State(func(s *State) {
		if b := s.Brokers[1]; !slices.Equal(b.OfflineLogDirs, []DirectoryID{testDir(1, 0)}) || b.Fenced {
			t.Fatalf("broker 1: offline dirs %v fenced %v", b.OfflineLogDirs, b.Fenced)
		}
		for _, p := range s.TopicsByID[id].Partitions {
			inDir0 := p.Partition < 3
			if inDir0 && (p.Leader == 1 || slices.Contains(p.ISR, 1)) {
				t.Fatalf("partition %d in the offline dir: leader %d ISR %v", p.Partition, p.Leader, p.ISR)
			}
			if !inDir0 && (!slices.Contains(p.ISR, 1) || (slices.Contains(led, p.Partition) && p.Leader != 1)) {
				t.Fatalf("partition %d in the online dir: leader %d ISR %v", p.Partition, p.Leader, p.ISR)
			}
		}
	})
	snapshotKeepsDirs(t, c, id)
	// The replica in the offline dir may not rejoin.
	var p0 *Partition
	c.State(func(s *State) { p0 = s.TopicsByID[id].Partitions[0] })
	isr := append(slices.Clone(p0.ISR), 1)
	if err := c.AlterPartition(ctx, id, 0, p0.Leader, p0.LeaderEpoch, p0.PartitionEpoch, isr, nil); !errors.Is(err, kerr.IneligibleReplica) {
		t.Fatalf("ISR expansion with a replica in an offline dir: %v", err)
	}
	// The same report again changes nothing.
	before := c.log.End()
	if _, err := c.Heartbeat(ctx, 1, epochs[1], []DirectoryID{testDir(1, 0)}); err != nil || c.log.End() != before {
		t.Fatalf("a repeated report wrote records (%v)", err)
	}
	// Back online: the dir's replicas may rejoin.
	if _, err := c.Heartbeat(ctx, 1, epochs[1], nil); err != nil {
		t.Fatal(err)
	}
	c.State(func(s *State) {
		if b := s.Brokers[1]; len(b.OfflineLogDirs) != 0 || len(b.OnlineLogDirs()) != 2 {
			t.Fatalf("broker 1 back: offline %v online %v", b.OfflineLogDirs, b.OnlineLogDirs())
		}
		p0 = s.TopicsByID[id].Partitions[0]
	})
	isr = append(slices.Clone(p0.ISR), 1)
	if err := c.AlterPartition(ctx, id, 0, p0.Leader, p0.LeaderEpoch, p0.PartitionEpoch, isr, nil); err != nil {
		t.Fatalf("ISR expansion once the dir is back: %v", err)
	}
	snapshotKeepsDirs(t, c, id)
}

// snapshotKeepsDirs checks that the controller's brokers' dirs and the
// topic's replicas' dirs round-trip through a snapshot's records.
func snapshotKeepsDirs(t *testing.T, c *Controller, id TopicID) {
	t.Helper()
	var want, got *State
	c.State(func(s *State) { want = s })
	got = NewState()
	for i, r := range want.Records() {
		if err := got.Apply(int64(i), r); err != nil {
			t.Fatal(err)
		}
	}
	for bid, b := range want.Brokers {
		if !slices.Equal(got.Brokers[bid].LogDirs, b.LogDirs) || !slices.Equal(got.Brokers[bid].OfflineLogDirs, b.OfflineLogDirs) {
			t.Fatalf("broker %d from the snapshot: %v/%v, want %v/%v", bid, got.Brokers[bid].LogDirs, got.Brokers[bid].OfflineLogDirs, b.LogDirs, b.OfflineLogDirs)
		}
	}
	for _, p := range want.TopicsByID[id].Partitions {
		if !slices.Equal(got.TopicsByID[id].Partitions[p.Partition].Directories, p.Directories) {
			t.Fatalf("partition %d's dirs from the snapshot differ", p.Partition)
		}
	}
}
