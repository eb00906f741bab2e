package kcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

// placedIn waits until every replica of topic's parts partitions is open
// in a dir and the metadata records that dir (AssignReplicasToDirs done).
func placedIn(topic string, parts int32) Condition {
	return func(c *Cluster) bool {
		for p := range parts {
			st, err := c.PartitionState(topic, p)
			if err != nil {
				return false
			}
			for _, r := range st.Replicas {
				if st.Directories[r] == "" || st.LogDirs[r] == "" {
					return false
				}
			}
		}
		return true
	}
}

// dirOf returns the index of broker id's dir of topic/p's replica.
func dirOf(t *testing.T, c *Cluster, id int32, topic string, p int32) int {
	t.Helper()
	st := partState(t, c, topic, p)
	ds, err := c.LogDirStates(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Path == st.LogDirs[id] {
			if st.Directories[id] != d.DirectoryID {
				t.Fatalf("%s/%d on broker %d: open in %s (%s), the metadata says %s", topic, p, id, d.Path, d.DirectoryID, st.Directories[id])
			}
			return d.Index
		}
	}
	t.Fatalf("%s/%d: no dir of broker %d holds it (%v)", topic, p, id, st.LogDirs)
	return -1
}

// producer produces values v000000, v000001, ... with acks=all through
// franz-go until stopped, keeping what was acknowledged.
type producer struct {
	mu     sync.Mutex
	acked  []string
	failed []error
	stop   chan struct{}
	done   chan struct{}
}

func startProducer(t *testing.T, ctx context.Context, c *Cluster, topic string) *producer {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.MetadataMinAge(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	pr := &producer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(pr.done)
		defer cl.Close()
		var wg sync.WaitGroup
		defer wg.Wait()
		for i := 0; ; i++ {
			select {
			case <-pr.stop:
				return
			default:
			}
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Value: fmt.Appendf(nil, "v%06d", i)}, func(r *kgo.Record, err error) {
				defer wg.Done()
				pr.mu.Lock()
				defer pr.mu.Unlock()
				if err != nil {
					pr.failed = append(pr.failed, err)
					return
				}
				pr.acked = append(pr.acked, string(r.Value))
			})
			if i%200 == 199 {
				wg.Wait()
			}
		}
	}()
	t.Cleanup(func() { pr.finish() })
	return pr
}

func (pr *producer) produced() int {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return len(pr.acked)
}

// finish stops the producer and returns what was acknowledged.
func (pr *producer) finish() []string {
	select {
	case <-pr.stop:
	default:
		close(pr.stop)
	}
	<-pr.done
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return slices.Clone(pr.acked)
}

// consumeAll reads topic from its start until every value of want is
// seen, and fails the test if one is missing.
func consumeAll(t *testing.T, ctx context.Context, c *Cluster, topic string, want []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	missing := make(map[string]bool, len(want))
	for _, v := range want {
		missing[v] = true
	}
	for len(missing) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d acknowledged records not read back (%v)", len(missing), len(want), ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) { delete(missing, string(r.Value)) })
	}
}

// One of a broker's two log dirs fails under an acks=all producer on an
// RF=3 topic: the broker takes the dir offline and stays up; the
// controller moves the leadership of its replicas on that dir away and
// drops them from their ISRs; it keeps leading the partitions on its
// healthy dir. The repair brings the dir back: its replicas reopen,
// catch up and rejoin their ISRs. No acknowledged record is lost.
func TestFailLogDirUnderAcksAllProducer(t *testing.T) {
	c := Start(t, Brokers(3), LogDirs(2), BrokerConfig("min.insync.replicas", "2"),
		BrokerConfig("auto.leader.rebalance.enable", "false"))
	const parts = 6
	createTopic(t, c, "jbod", parts, 3)
	waitFor(t, c, "every replica placed in a dir", placedIn("jbod", parts))
	// Broker 1 holds 6 replicas, 3 in each dir (the dir with the fewest
	// partitions gets the next). Dir 1 fails (dir 0 holds the broker's
	// metadata: its failure would halt the broker, as Kafka's
	// metadata.log.dir); broker 1 leads jbod/0, in dir 0 (the first
	// replica it opened, of the first topic's placement).
	var byDir [2][]int32
	for p := range int32(parts) {
		i := dirOf(t, c, 1, "jbod", p)
		byDir[i] = append(byDir[i], p)
	}
	if len(byDir[0]) != 3 || len(byDir[1]) != 3 {
		t.Fatalf("broker 1's replicas by dir %v", byDir)
	}
	const healthy, failed = 0, 1
	var ledHealthy []int32
	for _, p := range byDir[healthy] {
		if partState(t, c, "jbod", p).Leader == 1 {
			ledHealthy = append(ledHealthy, p)
		}
	}
	if len(ledHealthy) == 0 {
		t.Fatalf("broker 1 leads none of %v in dir 0", byDir[healthy])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pr := startProducer(t, ctx, c, "jbod")
	if err := c.WaitFor(ctx, func(*Cluster) bool { return pr.produced() >= 1000 }); err != nil {
		t.Fatal(err)
	}
	repair, err := c.FailLogDir(1, failed)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the dir offline, its replicas out of leadership and ISRs", func(c *Cluster) bool {
		if !hasEvent(c, LogDirOffline, 1) || !c.Brokers()[0].Running {
			return false
		}
		for _, p := range byDir[failed] {
			st, _ := c.PartitionState("jbod", p)
			if st.Leader == 1 || st.Leader < 0 || slices.Contains(st.ISR, 1) {
				return false
			}
		}
		return true
	})
	for _, p := range ledHealthy {
		if st := partState(t, c, "jbod", p); st.Leader != 1 || !slices.Contains(st.ISR, 1) {
			t.Fatalf("jbod/%d on the healthy dir: leader %d ISR %v, want broker 1 leading", p, st.Leader, st.ISR)
		}
	}
	if ds, _ := c.LogDirStates(1); !ds[failed].Offline || ds[healthy].Offline {
		t.Fatalf("log dirs %+v", ds)
	}
	at := pr.produced()
	if err := c.WaitFor(ctx, func(*Cluster) bool { return pr.produced() >= at+1000 }); err != nil {
		t.Fatal(err)
	}
	repair()
	waitFor(t, c, "the dir back and every replica in its ISR", func(c *Cluster) bool {
		if !hasEvent(c, LogDirOnline, 1) {
			return false
		}
		for p := range int32(parts) {
			if st, _ := c.PartitionState("jbod", p); len(st.ISR) != 3 {
				return false
			}
		}
		return true
	})
	at = pr.produced()
	if err := c.WaitFor(ctx, func(*Cluster) bool { return pr.produced() >= at+500 }); err != nil {
		t.Fatal(err)
	}
	acked := pr.finish()
	if len(pr.failed) > 0 {
		t.Logf("%d produce errors, first %v", len(pr.failed), pr.failed[0])
	}
	consumeAll(t, ctx, c, "jbod", acked)
	for _, p := range byDir[failed] {
		if i := dirOf(t, c, 1, "jbod", p); i != failed {
			t.Fatalf("jbod/%d reopened in dir %d, not its own %d", p, i, failed)
		}
	}
}

// describeLogDirs asks broker id for all its log dirs.
func describeLogDirs(t *testing.T, c *Cluster, id int32) *kmsg.DescribeLogDirsResponse {
	t.Helper()
	req := kmsg.NewPtrDescribeLogDirsRequest()
	return do[*kmsg.DescribeLogDirsResponse](t, dial(t, addrOf(c, id)), req, 4)
}

// DescribeLogDirs with two dirs: each is reported with its replicas and
// their sizes; each has its own directory.id in its meta.properties,
// which the broker registered; an offline dir is reported with
// KAFKA_STORAGE_ERROR, and so are produces to its replicas.
func TestDescribeLogDirsTwoDirs(t *testing.T) {
	c := Start(t, Brokers(1), LogDirs(2))
	createTopic(t, c, "dd", 4, 1)
	waitFor(t, c, "every replica placed", placedIn("dd", 4))
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("dd"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 40 {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: fmt.Appendf(nil, "r%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := c.LogDirStates(1)
	if err != nil {
		t.Fatal(err)
	}
	resp := describeLogDirs(t, c, 1)
	if len(resp.Dirs) != 2 || len(ds) != 2 {
		t.Fatalf("%d dirs described, %d dirs", len(resp.Dirs), len(ds))
	}
	var regs []metadata.DirectoryID
	c.viewState(func(s *metadata.State) { regs = slices.Clone(s.Brokers[1].LogDirs) })
	for i, d := range resp.Dirs {
		if d.ErrorCode != 0 || d.Dir != "/kcluster/"+ds[i].Path {
			t.Fatalf("dir %d: %q error %d, want /kcluster/%s", i, d.Dir, d.ErrorCode, ds[i].Path)
		}
		if len(d.Topics) != 1 || len(d.Topics[0].Partitions) != 2 || ds[i].Partitions != 2 {
			t.Fatalf("dir %s: %+v (%d partitions open), want 2 partitions of dd", d.Dir, d.Topics, ds[i].Partitions)
		}
		for _, p := range d.Topics[0].Partitions {
			if p.Size <= 0 || p.IsFuture || dirOf(t, c, 1, "dd", p.Partition) != i {
				t.Fatalf("dir %s: partition %+v", d.Dir, p)
			}
		}
		// The id is the one in meta.properties, and registered.
		b, _ := c.brokerByID(1)
		f, err := b.dirs[i].fs.Open(b.dirs[i].fs.PathJoin(ds[i].Path, "meta.properties"))
		if err != nil {
			t.Fatal(err)
		}
		props, _ := io.ReadAll(f)
		f.Close()
		if !strings.Contains(string(props), "directory.id="+ds[i].DirectoryID+"\n") || regs[i].String() != ds[i].DirectoryID {
			t.Fatalf("dir %s: id %s, meta.properties %q, registered %v", d.Dir, ds[i].DirectoryID, props, regs)
		}
	}
	if ds[0].DirectoryID == ds[1].DirectoryID {
		t.Fatalf("two dirs with one id %s", ds[0].DirectoryID)
	}
	// Dir 1 fails at its next write: it is described as offline.
	if _, err := c.FailLogDir(1, 1); err != nil {
		t.Fatal(err)
	}
	var onDir1 int32 = -1
	inDir1 := map[int32]bool{}
	for p := range int32(4) {
		if dirOf(t, c, 1, "dd", p) == 1 {
			onDir1 = p
			inDir1[p] = true
		}
	}
	if rp := produce(t, nil, c, addrOf(c, 1), "dd", onDir1, 1, makeBatch(time.Now().UnixMilli(), "x")); rp.ErrorCode != kerr.KafkaStorageError.Code {
		t.Fatalf("produce to a partition of the failed dir: %v, want KAFKA_STORAGE_ERROR", kerr.ErrorForCode(rp.ErrorCode))
	}
	waitFor(t, c, "dir 1 offline", func(c *Cluster) bool {
		ds, _ := c.LogDirStates(1)
		return ds[1].Offline && ds[1].Partitions == 0
	})
	resp = describeLogDirs(t, c, 1)
	if resp.Dirs[1].ErrorCode != kerr.KafkaStorageError.Code || len(resp.Dirs[1].Topics) != 0 || resp.Dirs[0].ErrorCode != 0 || len(resp.Dirs[0].Topics) != 1 {
		t.Fatalf("after dir 1 failed: %+v", resp.Dirs)
	}
	// Its replica is offline in the metadata too (OfflineReplicas), once
	// the controller has taken its leadership.
	waitFor(t, c, "dd's partitions in dir 1 leaderless", func(c *Cluster) bool {
		for p := range inDir1 {
			if st, err := c.PartitionState("dd", p); err != nil || st.Leader >= 0 {
				return false
			}
		}
		return true
	})
	for _, mp := range metadataOf(t, nil, addrOf(c, 1), "dd").Topics[0].Partitions {
		if want := inDir1[mp.Partition]; slices.Contains(mp.OfflineReplicas, 1) != want {
			t.Fatalf("dd/%d: offline replicas %v (in the failed dir: %v)", mp.Partition, mp.OfflineReplicas, want)
		}
	}
	// A produce to it now answers KAFKA_STORAGE_ERROR from the start.
	if rp := produce(t, nil, c, addrOf(c, 1), "dd", onDir1, 1, makeBatch(time.Now().UnixMilli(), "y")); rp.ErrorCode != kerr.KafkaStorageError.Code {
		t.Fatalf("produce to a partition of the offline dir: %v, want KAFKA_STORAGE_ERROR", kerr.ErrorForCode(rp.ErrorCode))
	}
	if _, err := c.FailLogDir(1, 2); !errors.Is(err, ErrUnknownLogDir) {
		t.Fatalf("FailLogDir(1, 2): %v", err)
	}
}

// AlterReplicaLogDirs moves the leader's replica to its other dir while
// an acks=all producer writes: the future replica copies the log and
// takes over; the replica is then in the new dir, the metadata says so,
// and every acknowledged record is readable.
func TestAlterReplicaLogDirsMovesData(t *testing.T) {
	c := Start(t, Brokers(3), LogDirs(2), BrokerConfig("min.insync.replicas", "2"))
	if rt := createTopicWith(t, c, "mv", 1, 3, map[string]string{"segment.bytes": "16384"}); rt.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rt.ErrorCode))
	}
	waitFor(t, c, "every replica placed", placedIn("mv", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pr := startProducer(t, ctx, c, "mv")
	if err := c.WaitFor(ctx, func(*Cluster) bool { return pr.produced() >= 2000 }); err != nil {
		t.Fatal(err)
	}
	st := partState(t, c, "mv", 0)
	leader := st.Leader
	from := dirOf(t, c, leader, "mv", 0)
	ds, _ := c.LogDirStates(leader)
	to := ds[1-from]
	if code := alterReplicaLogDir(t, c, leader, "mv", 0, "/kcluster/"+to.Path); code != 0 {
		t.Fatalf("AlterReplicaLogDirs: %v", kerr.ErrorForCode(code))
	}
	waitFor(t, c, "the replica in its new dir, in the metadata too", func(c *Cluster) bool {
		st, err := c.PartitionState("mv", 0)
		return err == nil && st.LogDirs[leader] == to.Path && st.Directories[leader] == to.DirectoryID && len(st.FutureLogDirs) == 0
	})
	at := pr.produced()
	if err := c.WaitFor(ctx, func(*Cluster) bool { return pr.produced() >= at+1000 }); err != nil {
		t.Fatal(err)
	}
	acked := pr.finish()
	waitFor(t, c, "mv fully replicated", FullyReplicated("mv", 0))
	consumeAll(t, ctx, c, "mv", acked)
	// The old dir has nothing of it left.
	b, _ := c.brokerByID(leader)
	r := b.partition(partTopicID(t, c, "mv"), 0)
	if _, err := b.dirs[from].fs.Stat(b.dirs[from].fs.PathJoin(b.dirs[from].path, r.logName())); err == nil {
		t.Fatalf("the moved log is still in %s", b.dirs[from].path)
	}
	// Asking again for the dir it is in moves nothing; an unknown dir
	// is LOG_DIR_NOT_FOUND.
	if code := alterReplicaLogDir(t, c, leader, "mv", 0, "/kcluster/"+to.Path); code != 0 {
		t.Fatalf("AlterReplicaLogDirs to its own dir: %v", kerr.ErrorForCode(code))
	}
	if code := alterReplicaLogDir(t, c, leader, "mv", 0, "/nowhere"); code != kerr.LogDirNotFound.Code {
		t.Fatalf("AlterReplicaLogDirs to /nowhere: %v", kerr.ErrorForCode(code))
	}
}

// A power cut of a broker with two dirs: both lose what they had not
// synced; the broker restarts with the same dir ids, its replicas in the
// same dirs, and catches up; no acknowledged record is lost.
func TestPowerCutSeveralLogDirs(t *testing.T) {
	c := Start(t, Brokers(3), LogDirs(2), BrokerConfig("min.insync.replicas", "2"))
	const parts = 4
	createTopic(t, c, "pc", parts, 3)
	waitFor(t, c, "every replica placed", placedIn("pc", parts))
	before, _ := c.LogDirStates(1)
	dirs := make([]int, parts)
	for p := range int32(parts) {
		dirs[p] = dirOf(t, c, 1, "pc", p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pr := startProducer(t, ctx, c, "pc")
	if err := c.WaitFor(ctx, func(*Cluster) bool { return pr.produced() >= 2000 }); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerCut(1); err != nil {
		t.Fatal(err)
	}
	at := pr.produced()
	if err := c.WaitFor(ctx, func(*Cluster) bool { return pr.produced() >= at+500 }); err != nil {
		t.Fatal(err)
	}
	if err := c.RestartBroker(1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "every partition fully replicated", func(c *Cluster) bool {
		for p := range int32(parts) {
			if !FullyReplicated("pc", p)(c) {
				return false
			}
		}
		return true
	})
	acked := pr.finish()
	waitFor(t, c, "every partition fully replicated", func(c *Cluster) bool {
		for p := range int32(parts) {
			if !FullyReplicated("pc", p)(c) {
				return false
			}
		}
		return true
	})
	consumeAll(t, ctx, c, "pc", acked)
	after, _ := c.LogDirStates(1)
	for i := range before {
		if after[i].DirectoryID != before[i].DirectoryID {
			t.Fatalf("dir %d: id %s after the power cut, %s before", i, after[i].DirectoryID, before[i].DirectoryID)
		}
	}
	for p := range int32(parts) {
		if d := dirOf(t, c, 1, "pc", p); d != dirs[p] {
			t.Fatalf("pc/%d reopened in dir %d, was in %d", p, d, dirs[p])
		}
	}
}

// The brokers' dir registrations and the replicas' dirs are metadata
// records: a controller of a quorum that is killed and restarts replays
// them from the Raft log, and a whole cluster on disk restarted with
// LogDirs comes back with the same dir ids and each replica in its dir.
func TestLogDirsSurviveRestarts(t *testing.T) {
	dir := t.TempDir()
	opts := []Option{Brokers(3), Controllers(3), LogDirs(2), Dir(dir), Logger(testLogger(t))}
	c, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	createTopic(t, c, "keep", 4, 3)
	waitFor(t, c, "every replica placed", placedIn("keep", 4))
	want := map[int32]PartitionState{}
	for p := range int32(4) {
		want[p] = partState(t, c, "keep", p)
	}
	var regs map[int32][]metadata.DirectoryID
	registered := func(s *metadata.State) {
		regs = map[int32][]metadata.DirectoryID{}
		for id, b := range s.Brokers {
			regs[id] = slices.Clone(b.LogDirs)
		}
	}
	c.viewState(registered)
	old := c.Controller()
	if err := c.KillController(old); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "a standby to become active", activeOtherThan(old))
	if err := c.RestartController(old); err != nil {
		t.Fatal(err)
	}
	// Caught up: its state has applied the whole log (each apply wakes
	// WaitFor: onMetadata).
	waitFor(t, c, "the restarted controller to catch up", func(c *Cluster) bool {
		for _, n := range c.controllers() {
			if n.id == old {
				var off int64
				n.ctrl.State(func(s *metadata.State) { off = s.Offset })
				return off == c.metadataEnd()
			}
		}
		return false
	})
	for _, n := range c.controllers() {
		if n.id != old {
			continue
		}
		n.ctrl.State(func(s *metadata.State) {
			for id, b := range s.Brokers {
				if len(b.LogDirs) != 2 || !slices.Equal(b.LogDirs, regs[id]) {
					t.Errorf("restarted controller: broker %d dirs %v, want %v", id, b.LogDirs, regs[id])
				}
			}
			for p := range int32(4) {
				got := s.Topics["keep"].Partitions[p]
				for _, r := range got.Replicas {
					if got.Directory(r).String() != want[p].Directories[r] {
						t.Errorf("restarted controller: keep/%d broker %d dir %s, want %s", p, r, got.Directory(r), want[p].Directories[r])
					}
				}
			}
		})
	}
	c.Close()

	c2, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	waitFor(t, c2, "every partition led and placed", func(c *Cluster) bool {
		for p := range int32(4) {
			if !LeaderElected("keep", p)(c) {
				return false
			}
		}
		return placedIn("keep", 4)(c)
	})
	for p := range int32(4) {
		got := partState(t, c2, "keep", p)
		for _, r := range got.Replicas {
			if got.Directories[r] != want[p].Directories[r] || got.LogDirs[r] != want[p].LogDirs[r] {
				t.Fatalf("keep/%d broker %d: dir %s at %s after the restart, was %s at %s", p, r, got.Directories[r], got.LogDirs[r], want[p].Directories[r], want[p].LogDirs[r])
			}
		}
	}
}

// A broker restarts with one of its two dirs still failed: it starts with
// that dir offline (as Kafka does) and serves the other; its replicas in
// the failed dir stay out of their ISRs until the repair brings the dir
// back. With its first dir (the metadata's) failed it cannot start, and
// running, it halts when that dir fails.
func TestRestartWithFailedLogDir(t *testing.T) {
	c := Start(t, Brokers(3), LogDirs(2), BrokerConfig("auto.leader.rebalance.enable", "false"))
	const parts = 4
	createTopic(t, c, "rs", parts, 3)
	waitFor(t, c, "every replica placed", placedIn("rs", parts))
	dirs := make([]int, parts)
	for p := range int32(parts) {
		dirs[p] = dirOf(t, c, 1, "rs", p)
	}
	if err := c.KillBroker(1); err != nil {
		t.Fatal(err)
	}
	repair, err := c.FailLogDir(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RestartBroker(1); err != nil {
		t.Fatalf("restart with one dir failed: %v", err)
	}
	waitFor(t, c, "broker 1 back in the ISRs of its healthy dir only", func(c *Cluster) bool {
		for p := range int32(parts) {
			st, err := c.PartitionState("rs", p)
			if err != nil || st.Leader < 0 || slices.Contains(st.ISR, 1) != (dirs[p] == 0) {
				return false
			}
		}
		return true
	})
	if ds, _ := c.LogDirStates(1); !ds[1].Offline || ds[0].Offline || ds[1].Partitions != 0 {
		t.Fatalf("log dirs after the restart: %+v", ds)
	}
	repair()
	waitFor(t, c, "every replica back in its ISR", func(c *Cluster) bool {
		for p := range int32(parts) {
			if !FullyReplicated("rs", p)(c) {
				return false
			}
		}
		return true
	})
	for p := range int32(parts) {
		if d := dirOf(t, c, 1, "rs", p); d != dirs[p] {
			t.Fatalf("rs/%d in dir %d, was in %d", p, d, dirs[p])
		}
	}
	if err := c.KillBroker(1); err != nil {
		t.Fatal(err)
	}
	repair, _ = c.FailLogDir(1, 0)
	if err := c.RestartBroker(1); !errors.Is(err, syscall.EIO) {
		t.Fatalf("restart with the metadata's dir failed: %v, want EIO", err)
	}
	repair()
	if err := c.RestartBroker(1); err != nil {
		t.Fatal(err)
	}
	// Dir 0 failing under a running broker halts it.
	if _, err := c.FailLogDir(1, 0); err != nil {
		t.Fatal(err)
	}
	var onDir0 int32 = -1
	for p := range int32(parts) {
		if dirs[p] == 0 {
			onDir0 = p
		}
	}
	waitFor(t, c, "broker 1 leading a partition in dir 0 again", func(c *Cluster) bool {
		st, err := c.PartitionState("rs", onDir0)
		return err == nil && slices.Contains(st.ISR, 1)
	})
	// A write reaching dir 0: a produce to broker 1 as leader, or its
	// follower's append.
	st := partState(t, c, "rs", onDir0)
	req := produceRequest("rs", onDir0, 1, 10000, makeBatch(time.Now().UnixMilli(), "x"))
	req.SetVersion(11)
	rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer rcancel()
	dial(t, addrOf(c, st.Leader)).Request(rctx, req) // KAFKA_STORAGE_ERROR or a closed connection from broker 1
	waitFor(t, c, "broker 1 halted", func(c *Cluster) bool { return hasEvent(c, LogDirFailed, 1) && !c.Brokers()[0].Running })
}

// While a replica moves (AlterReplicaLogDirs) its future replica shows:
// DescribeLogDirs has it in the destination with IsFuture, beside the
// current one, and PartitionState names its dir in FutureLogDirs; once
// the move completes only the destination holds it.
func TestAlterReplicaLogDirsShowsFutureReplica(t *testing.T) {
	c := Start(t, Brokers(1), LogDirs(2))
	createTopic(t, c, "fu", 1, 1)
	waitFor(t, c, "the replica placed", placedIn("fu", 1))
	for i := range 20 {
		if _, err := produceTo(t, c, "fu", 1, fmt.Sprintf("r%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	from := dirOf(t, c, 1, "fu", 0)
	ds, _ := c.LogDirStates(1)
	to := ds[1-from]
	b, _ := c.brokerByID(1)
	gate := make(chan struct{})
	b.moveGate.Store(&gate)
	if code := alterReplicaLogDir(t, c, 1, "fu", 0, "/kcluster/"+to.Path); code != 0 {
		t.Fatalf("AlterReplicaLogDirs: %v", kerr.ErrorForCode(code))
	}
	if st := partState(t, c, "fu", 0); st.FutureLogDirs[1] != to.Path || st.LogDirs[1] != ds[from].Path {
		t.Fatalf("moving: dir %q future %q, want %q and %q", st.LogDirs[1], st.FutureLogDirs[1], ds[from].Path, to.Path)
	}
	dl := describeLogDirs(t, c, 1)
	for i, d := range dl.Dirs {
		if len(d.Topics) != 1 || len(d.Topics[0].Partitions) != 1 || d.Topics[0].Partitions[0].IsFuture != (i != from) {
			t.Fatalf("moving: dir %s: %+v", d.Dir, d.Topics)
		}
	}
	close(gate)
	waitFor(t, c, "the move done", func(c *Cluster) bool {
		st, err := c.PartitionState("fu", 0)
		return err == nil && st.LogDirs[1] == to.Path && len(st.FutureLogDirs) == 0 && st.Directories[1] == to.DirectoryID
	})
	dl = describeLogDirs(t, c, 1)
	if len(dl.Dirs[from].Topics) != 0 || len(dl.Dirs[1-from].Topics) != 1 || dl.Dirs[1-from].Topics[0].Partitions[0].IsFuture {
		t.Fatalf("moved: %+v", dl.Dirs)
	}
	if st := partState(t, c, "fu", 0); st.HighWatermark != 20 || st.LogEndOffsets[1] != 20 {
		t.Fatalf("moved: high watermark %d log end %d, want 20", st.HighWatermark, st.LogEndOffsets[1])
	}
	if off, err := produceTo(t, c, "fu", 1, "after"); err != nil || off != 20 {
		t.Fatalf("produce after the move: offset %d, %v", off, err)
	}
	if _, vals := checkReplicaLog(t, c, 1, "fu"); len(vals) != 21 || vals[0] != "r0" || vals[19] != "r19" || vals[20] != "after" {
		t.Fatalf("the moved log holds %v", vals)
	}
}

// alterReplicaLogDir asks broker id, with AlterReplicaLogDirs v2, to move
// its replica of topic's partition p to the log dir dir, and returns the
// partition's error code.
func alterReplicaLogDir(t *testing.T, c *Cluster, id int32, topic string, p int32, dir string) int16 {
	t.Helper()
	req := kmsg.NewPtrAlterReplicaLogDirsRequest()
	rd := kmsg.NewAlterReplicaLogDirsRequestDir()
	rd.Dir = dir
	rt := kmsg.NewAlterReplicaLogDirsRequestDirTopic()
	rt.Topic, rt.Partitions = topic, []int32{p}
	rd.Topics = append(rd.Topics, rt)
	req.Dirs = append(req.Dirs, rd)
	resp := do[*kmsg.AlterReplicaLogDirsResponse](t, dial(t, addrOf(c, id)), req, 2)
	return resp.Topics[0].Partitions[0].ErrorCode
}
