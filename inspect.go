package kcluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kcluster/kcluster/metadata"
)

// PartitionState is a snapshot of one partition: the controller's committed
// view (leader, epoch, replicas, ISR) and what the replicas on running
// brokers hold.
type PartitionState struct {
	Topic       string
	Partition   int32
	Leader      int32 // -1 while the partition has no leader (offline)
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
	// HighWatermark, LogStartOffset and LastStableOffset are the leader's;
	// -1 while the leader is not running.
	HighWatermark    int64
	LogStartOffset   int64
	LastStableOffset int64
	// LogEndOffsets has the log-end offset of every replica on a running
	// broker, by broker id.
	LogEndOffsets map[int32]int64
	// HighWatermarks has each running replica's own high watermark (a
	// follower's trails the leader's).
	HighWatermarks map[int32]int64
	// LogStartOffsets and LogSizes (bytes in all segments) of every
	// replica on a running broker, by broker id.
	LogStartOffsets map[int32]int64
	LogSizes        map[int32]int64
	// AddingReplicas and RemovingReplicas are set while a reassignment
	// (KIP-455) is in progress: Replicas is then the union of the old
	// and the target replicas.
	AddingReplicas   []int32
	RemovingReplicas []int32
	// ELR is the partition's eligible leader replicas (KIP-966, with
	// eligible.leader.replicas.version 1): replicas that left the ISR
	// while it was below min.insync.replicas, so hold every committed
	// record; with the ISR empty one of them is elected leader once its
	// broker is up. LastKnownELR is the leader the partition had when its
	// ISR became empty (Kafka keeps the last known leader there). Both are
	// empty (nil) while the ISR is at least min.insync.replicas, and always
	// with the feature at 0.
	ELR          []int32
	LastKnownELR []int32
	// Directories are the replicas' log dir ids as the metadata records
	// them (KIP-858), by broker id; "" for a replica its broker has not
	// placed yet (UNASSIGNED). LogDirs are the paths of the dirs the
	// replicas on running brokers are open in, by broker id (LogDirs).
	Directories map[int32]string
	LogDirs     map[int32]string
	// FutureLogDirs are the dirs replicas are moving to
	// (AlterReplicaLogDirs), by broker id, while they move.
	FutureLogDirs map[int32]string
}

// ErrUnknownPartition is returned by PartitionState for a topic or
// partition the metadata does not have.
var ErrUnknownPartition = errors.New("kcluster: unknown topic or partition")

// PartitionState returns the state of topic/partition.
func (c *Cluster) PartitionState(topic string, partition int32) (PartitionState, error) {
	if c.ext != nil {
		return c.ext.partitionState(c, topic, partition)
	}
	st := PartitionState{Topic: topic, Partition: partition, Leader: -1, HighWatermark: -1, LogStartOffset: -1, LastStableOffset: -1,
		LogEndOffsets: map[int32]int64{}, HighWatermarks: map[int32]int64{}, LogStartOffsets: map[int32]int64{}, LogSizes: map[int32]int64{},
		Directories: map[int32]string{}, LogDirs: map[int32]string{}, FutureLogDirs: map[int32]string{}}
	var found bool
	var tid [16]byte
	c.viewState(func(s *metadata.State) {
		t := s.Topics[topic]
		if t == nil || partition < 0 || int(partition) >= len(t.Partitions) {
			return
		}
		p := t.Partitions[partition]
		found = true
		tid = t.ID
		st.Leader, st.LeaderEpoch = p.Leader, p.LeaderEpoch
		st.Replicas, st.ISR = slices.Clone(p.Replicas), slices.Clone(p.ISR)
		st.AddingReplicas, st.RemovingReplicas = slices.Clone(p.AddingReplicas), slices.Clone(p.RemovingReplicas)
		if len(p.ELR) > 0 {
			st.ELR = slices.Clone(p.ELR)
		}
		if len(p.LastKnownELR) > 0 {
			st.LastKnownELR = slices.Clone(p.LastKnownELR)
		}
		for _, r := range p.Replicas {
			if d := p.Directory(r); d != (metadata.DirectoryID{}) {
				st.Directories[r] = d.String()
			} else {
				st.Directories[r] = ""
			}
		}
	})
	if !found {
		return st, fmt.Errorf("%w: %s/%d", ErrUnknownPartition, topic, partition)
	}
	for _, b := range c.running() {
		r := b.partition(tid, partition)
		if r == nil {
			continue
		}
		r.mu.Lock()
		closed, hw, lso, leader := r.mu.closed, r.mu.hw, r.lsoLocked(), r.mu.leader == b.id
		if f := r.mu.future; f != nil && !closed {
			st.FutureLogDirs[b.id] = f.dir.path
		}
		r.mu.Unlock()
		if closed {
			continue
		}
		st.LogEndOffsets[b.id] = r.log.LogEndOffset()
		st.HighWatermarks[b.id] = hw
		st.LogStartOffsets[b.id] = r.log.LogStartOffset()
		st.LogSizes[b.id] = r.log.Size()
		st.LogDirs[b.id] = r.dir.path
		if leader && b.id == st.Leader {
			st.HighWatermark, st.LastStableOffset = hw, lso
			st.LogStartOffset = r.log.LogStartOffset()
		}
	}
	return st, nil
}

// Condition is a predicate on the cluster, re-checked by WaitFor on every
// cluster event.
type Condition func(*Cluster) bool

// WaitFor blocks until cond holds or ctx ends (returning ctx's error). It
// wakes on the cluster's own events — a broker applying metadata, data
// appended, a high watermark moving, a broker stopping — not on a timer.
func (c *Cluster) WaitFor(ctx context.Context, cond Condition) error {
	if c.ext != nil {
		return c.ext.waitFor(ctx, c, cond)
	}
	for {
		ch := c.eventCh()
		if cond(c) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			return ErrClosed
		}
	}
}

// LeaderElected holds when topic/partition has a leader on a running
// broker, other than any of the brokers in not (e.g. the one just killed),
// and every running broker knows it.
func LeaderElected(topic string, partition int32, not ...int32) Condition {
	return func(c *Cluster) bool {
		st, err := c.PartitionState(topic, partition)
		if err != nil || st.Leader < 0 || slices.Contains(not, st.Leader) || st.HighWatermark < 0 {
			return false
		}
		return c.metadataSettled()
	}
}

// ISRSize holds when topic/partition's committed ISR has n members and every
// running broker knows it.
func ISRSize(topic string, partition int32, n int) Condition {
	return func(c *Cluster) bool {
		st, err := c.PartitionState(topic, partition)
		return err == nil && len(st.ISR) == n && c.metadataSettled()
	}
}

// FullyReplicated holds when every replica of topic/partition is running,
// in the ISR, and at the leader's high watermark, which equals its log end.
// On an external cluster, it holds when every replica is in the ISR.
func FullyReplicated(topic string, partition int32) Condition {
	return func(c *Cluster) bool {
		st, err := c.PartitionState(topic, partition)
		if err != nil || st.Leader < 0 || len(st.ISR) != len(st.Replicas) {
			return false
		}
		if c.ext != nil {
			// The protocol shows no replica's log end: Kafka's own test,
			// every replica in the ISR, is what there is.
			return true
		}
		if len(st.LogEndOffsets) != len(st.Replicas) {
			return false
		}
		for _, leo := range st.LogEndOffsets {
			if leo != st.HighWatermark {
				return false
			}
		}
		return c.metadataSettled()
	}
}

// HighWatermarkAtLeast holds when the leader's high watermark of
// topic/partition is at least offset.
func HighWatermarkAtLeast(topic string, partition int32, offset int64) Condition {
	return func(c *Cluster) bool {
		st, err := c.PartitionState(topic, partition)
		return err == nil && st.HighWatermark >= offset
	}
}

// metadataSettled reports whether every running, unfenced broker has
// replayed the whole metadata log (a fenced one may be cut off from it).
func (c *Cluster) metadataSettled() bool {
	active := c.activeController()
	if active == nil {
		// Brokers fetch the log from the active controller only: with
		// none, there is nothing more for them to learn.
		return true
	}
	end := active.mlog.End() - 1
	fenced := map[int32]bool{}
	c.viewState(func(s *metadata.State) {
		for id, b := range s.Brokers {
			fenced[id] = b.Fenced
		}
	})
	for _, b := range c.running() {
		if fenced[b.id] {
			continue
		}
		b.mu.RLock()
		off := b.mu.state.Offset
		b.mu.RUnlock()
		if off != end {
			return false
		}
	}
	return true
}

// String renders the cluster's state for a human: every broker (running,
// fenced), the controller, and every partition's leader, epoch, replicas,
// ISR, high watermark and log-end offsets. Start logs it when the test
// fails.
func (c *Cluster) String() string {
	if c.ext != nil {
		return c.ext.string(c)
	}
	var sb strings.Builder
	var topics []string
	fenced := map[int32]bool{}
	c.viewState(func(s *metadata.State) {
		topics = s.TopicNames()
		for id, b := range s.Brokers {
			fenced[id] = b.Fenced
		}
	})
	running := map[int32]bool{}
	for _, b := range c.running() {
		running[b.id] = true
	}
	fmt.Fprintf(&sb, "kcluster %s: controller %d, metadata log end %d\n", c.cfg.clusterID, c.Controller(), c.metadataEnd()+1)
	for i := range c.ports {
		id := int32(i + 1)
		state := "running"
		if !running[id] {
			state = "down"
		}
		if fenced[id] {
			state += ", fenced"
		}
		if ds, err := c.LogDirStates(id); err == nil {
			for _, d := range ds {
				if d.Offline {
					state += ", log dir " + d.Path + " offline"
				}
			}
		}
		fmt.Fprintf(&sb, "  broker %d %s: %s\n", id, c.Addrs()[i], state)
	}
	for _, name := range topics {
		for p := int32(0); ; p++ {
			st, err := c.PartitionState(name, p)
			if err != nil {
				break
			}
			ids := make([]int32, 0, len(st.LogEndOffsets))
			for id := range st.LogEndOffsets {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			var leos []string
			for _, id := range ids {
				leos = append(leos, fmt.Sprintf("%d:%d", id, st.LogEndOffsets[id]))
			}
			fmt.Fprintf(&sb, "  %s/%d leader %d epoch %d replicas %v isr %v hw %d leo [%s]",
				name, p, st.Leader, st.LeaderEpoch, st.Replicas, st.ISR, st.HighWatermark, strings.Join(leos, " "))
			if st.LogStartOffset > 0 {
				fmt.Fprintf(&sb, " start %d", st.LogStartOffset)
			}
			if len(st.AddingReplicas) > 0 || len(st.RemovingReplicas) > 0 {
				fmt.Fprintf(&sb, " adding %v removing %v", st.AddingReplicas, st.RemovingReplicas)
			}
			if len(st.ELR) > 0 || len(st.LastKnownELR) > 0 {
				fmt.Fprintf(&sb, " elr %v last-known-elr %v", st.ELR, st.LastKnownELR)
			}
			sb.WriteString("\n")
		}
	}
	return sb.String()
}

// BrokerState is one broker's liveness as the cluster sees it.
type BrokerState struct {
	ID      int32
	Addr    string
	Running bool // its process is up (not killed or stopped)
	Fenced  bool // the controller has fenced it (or it never registered)
}

// Brokers returns every broker's state, in id order.
func (c *Cluster) Brokers() []BrokerState {
	if c.ext != nil {
		return c.ext.brokers(c)
	}
	fenced := map[int32]bool{}
	c.viewState(func(s *metadata.State) {
		for id, b := range s.Brokers {
			fenced[id] = b.Fenced
		}
	})
	running := map[int32]bool{}
	for _, b := range c.running() {
		running[b.id] = true
	}
	addrs := c.Addrs()
	out := make([]BrokerState, len(addrs))
	for i := range addrs {
		id := int32(i + 1)
		f, known := fenced[id]
		out[i] = BrokerState{ID: id, Addr: addrs[i], Running: running[id], Fenced: f || !known}
	}
	return out
}

// FinalizedFeatures returns the finalized feature levels (KIP-584) in the
// committed metadata, by name: metadata.version and every feature above
// level 0, as ApiVersions reports them (Feature sets them at start,
// UpdateFeatures changes them).
func (c *Cluster) FinalizedFeatures() map[string]int16 {
	c.mustEmbed("FinalizedFeatures")
	var out map[string]int16
	c.viewState(func(s *metadata.State) { out = maps.Clone(s.Features) })
	if out == nil {
		out = map[string]int16{}
	}
	return out
}

// Topics returns the names of the topics in the committed metadata, sorted.
func (c *Cluster) Topics() []string {
	if c.ext != nil {
		return c.ext.topics(c)
	}
	var names []string
	c.viewState(func(s *metadata.State) { names = s.TopicNames() })
	return names
}
