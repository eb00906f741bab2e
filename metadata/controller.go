package metadata

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Controller is the only writer of the metadata log. It validates each
// change against its own State (built from the same log) and appends the
// records that make it. Proposals are serialized by mu, so validation and
// append are atomic with respect to each other.
//
// The state is a function of the committed log alone: records reach it by
// the proposer catching up to what it appended, or by Run's applier for
// records other nodes committed (a standby in the quorum mode replays the
// active controller's records as they commit, so it takes over without
// reloading). On a log that implements Leader only the leader's controller
// is active; the others answer NOT_CONTROLLER.
type Controller struct {
	log       Log
	clusterID string
	cfg       ControllerConfig
	// applied is the offset of the last record applied to the state
	// (mu.state.Offset), readable without mu for Active.
	applied atomic.Int64

	mu struct {
		sync.Mutex
		state     *State
		placement int // rotates the first replica of each new topic
		// lastBeat is when each broker last heartbeated; it is the
		// controller's memory, not metadata (as Kafka's).
		lastBeat map[int32]time.Time
		// active is whether the expiry loop last found this controller
		// active; on becoming active every session restarts.
		active bool
		// lastCheck is when the expiry loop last checked sessions.
		lastCheck time.Time
		// snaps is the snapshot triggers' count (snapshot_controller.go).
		snaps snapshotTrigger
	}
	// beats are the heartbeats as they arrive, stamped before the
	// controller's lock is taken, so a heartbeat waiting behind a slow
	// proposal still counts from its arrival (as Kafka's controller
	// stamps heartbeats when it receives them, not when its event queue
	// gets to them).
	beats struct {
		sync.Mutex
		last map[int32]beat
		// standing are the brokers whose heartbeat stands (Stand).
		standing map[int32]standing
	}
	// kick wakes Run: a standing heartbeat ended, or the state changed
	// (and with it, maybe, the leader balance).
	kick chan struct{}
}

// standing is a broker's standing heartbeat: it arrived at since, naming
// its registration epoch, and the broker heartbeats every interval.
type standing struct {
	since    time.Time
	epoch    int64
	interval time.Duration
	gone     chan struct{} // closed when the broker is fenced or registers again
}

// beat is one broker's latest heartbeat and the registration epoch it
// named.
type beat struct {
	at    time.Time
	epoch int64
}

// ControllerConfig holds the controller's timing and election policy, with
// Kafka's config names.
type ControllerConfig struct {
	SessionTimeout       time.Duration // broker.session.timeout.ms
	UncleanElection      bool          // unclean.leader.election.enable (cluster default)
	MinInsyncReplicas    int           // min.insync.replicas (cluster default; 0 is 1), for the ELR
	AutoLeaderRebalance  bool          // auto.leader.rebalance.enable
	LeaderImbalanceCheck time.Duration // leader.imbalance.check.interval.seconds
	Now                  func() time.Time
	// OnChange, if set, is called after records are applied to the
	// controller's state, with the entries and the state after them (with
	// the controller's lock held: it must not call back into the
	// controller nor keep the state).
	OnChange func(es []Entry, st *State)
	// SnapshotMaxBytes and SnapshotInterval are the snapshot triggers
	// (snapshot_controller.go): Kafka's
	// metadata.log.max.record.bytes.between.snapshots and
	// metadata.log.max.snapshot.interval.ms. Zero turns one off.
	SnapshotMaxBytes int64
	SnapshotInterval time.Duration
}

// NewController returns a controller writing to log. It replays whatever
// the log already holds.
func NewController(ctx context.Context, log Log, clusterID string, cfg ControllerConfig) (*Controller, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 9 * time.Second
	}
	c := &Controller{log: log, clusterID: clusterID, cfg: cfg}
	c.mu.state = NewState()
	if sn := log.LatestSnapshot(); sn != nil {
		st, err := sn.State()
		if err != nil {
			return nil, err
		}
		c.mu.state = st
	}
	c.mu.snaps.last = cfg.Now()
	c.applied.Store(c.mu.state.Offset)
	c.mu.lastBeat = make(map[int32]time.Time)
	c.beats.last = make(map[int32]beat)
	c.beats.standing = make(map[int32]standing)
	c.kick = make(chan struct{}, 1)
	// A sole controller is active from the start; one of a quorum
	// becomes active when it leads.
	_, shared := log.(Leader)
	c.mu.active = !shared
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.applyThroughLocked(ctx, log.End()-1); err != nil {
		return nil, err
	}
	// Every session starts now, as a new KRaft controller's do: the
	// brokers have not heartbeated to this one yet.
	now := c.cfg.Now()
	for id := range c.mu.state.Brokers {
		c.mu.lastBeat[id] = now
	}
	return c, nil
}

// ErrNotController is returned by a controller's proposals on a node that
// is not the active controller (Kafka's NOT_CONTROLLER).
var ErrNotController = kerr.NotController

// Leader is implemented by logs that several nodes share but only one
// appends to (RaftLog). A controller on a log without it is always active.
type Leader interface {
	// Leading reports whether this node may append and has every
	// committed record.
	Leading() bool
	// LeadingFrom is the log end when this node's leadership began:
	// every record below it was written under an earlier leader.
	LeadingFrom() (end int64, leading bool)
}

// Active reports whether this controller is the one that may change
// metadata and serves it: it leads, and its state has every record
// written before its leadership began (KRaft's QuorumController claims
// leadership once it has replayed the log up to then). A leader whose
// state is still behind would answer gauges and fetches with metadata
// older than what its predecessor acknowledged.
func (c *Controller) Active() bool {
	if l, ok := c.log.(Leader); ok {
		from, leading := l.LeadingFrom()
		return leading && c.applied.Load() >= from-1
	}
	return true
}

// leading reports whether the log lets this controller propose: a
// proposal brings the state up to the log itself (lockActive).
func (c *Controller) leading() bool {
	if l, ok := c.log.(Leader); ok {
		return l.Leading()
	}
	return true
}

// lockActive takes mu for a proposal: the controller must be active, and
// its state is brought up to every committed record first, so validation
// sees what a previous active controller wrote.
func (c *Controller) lockActive(ctx context.Context) error {
	c.mu.Lock()
	if !c.leading() {
		c.mu.Unlock()
		return ErrNotController
	}
	if err := c.applyThroughLocked(ctx, c.log.End()-1); err != nil {
		c.mu.Unlock()
		return err
	}
	return nil
}

// applyThroughLocked applies committed records to the state up to offset
// last (which must be committed).
func (c *Controller) applyThroughLocked(ctx context.Context, last int64) error {
	for c.mu.state.Offset < last {
		es, err := c.log.Read(ctx, c.mu.state.Offset+1, 4096)
		if errors.Is(err, ErrBelowLogStart) {
			err = c.restoreLocked()
		}
		if err != nil {
			return err
		}
		if err := c.applyLocked(es); err != nil {
			return err
		}
	}
	return nil
}

// applyLocked applies the entries not yet applied.
func (c *Controller) applyLocked(es []Entry) error {
	for len(es) > 0 && es[0].Offset <= c.mu.state.Offset {
		es = es[1:]
	}
	if len(es) == 0 {
		return nil
	}
	for _, e := range es {
		if err := c.mu.state.Apply(e.Offset, e.Record); err != nil {
			return fmt.Errorf("metadata: controller state diverged from its log: %w", err)
		}
	}
	c.applied.Store(c.mu.state.Offset)
	if c.cfg.OnChange != nil {
		c.cfg.OnChange(es, c.mu.state)
	}
	c.beats.Lock()
	for id, s := range c.beats.standing {
		if b := c.mu.state.Brokers[id]; b == nil || b.Fenced || b.Epoch != s.epoch {
			close(s.gone)
			delete(c.beats.standing, id)
		}
	}
	c.beats.Unlock()
	c.kickRun()
	c.maybeSnapshotLocked(es)
	return nil
}

// kickRun wakes Run to look at sessions and the leader balance again.
func (c *Controller) kickRun() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// applier applies records committed by others (or by this controller
// without its lock held) until ctx ends or the log closes.
func (c *Controller) applier(ctx context.Context) {
	for {
		c.mu.Lock()
		next := c.mu.state.Offset + 1
		c.mu.Unlock()
		es, err := c.log.Read(ctx, next, 4096)
		if err != nil && !errors.Is(err, ErrBelowLogStart) {
			return
		}
		c.mu.Lock()
		if err != nil {
			err = c.restoreLocked()
		} else {
			err = c.applyLocked(es)
		}
		c.mu.Unlock()
		if err != nil {
			panic(err)
		}
	}
}

// ClusterID returns the cluster's id.
func (c *Controller) ClusterID() string { return c.clusterID }

// Log returns the log the controller writes.
func (c *Controller) Log() Log { return c.log }

// proposeLocked appends records and returns once they are committed and
// applied to the controller's state. On a Raft log a lost leadership is
// ErrNotController.
func (c *Controller) proposeLocked(ctx context.Context, recs ...Record) error {
	last, err := c.log.Append(ctx, recs...)
	if errors.Is(err, ErrNotLeader) {
		return ErrNotController
	}
	if err != nil {
		return err
	}
	return c.applyThroughLocked(ctx, last)
}

// RegisterBroker registers (or re-registers) a broker and returns its new
// epoch. previousEpoch is the broker epoch the broker's clean shutdown file
// named (BrokerRegistration's PreviousBrokerEpoch, KIP-966), -1 if it
// found none. A new registration starts fenced.
func (c *Controller) RegisterBroker(ctx context.Context, r RegisterBroker, previousEpoch int64) (int64, error) {
	if err := c.lockActive(ctx); err != nil {
		return 0, err
	}
	defer c.mu.Unlock()
	recs := []Record{&r}
	if old := c.mu.state.Brokers[r.ID]; old != nil {
		r.Epoch = old.Epoch + 1
		// A broker registering again restarted, so it leaves every ISR
		// and must catch up to rejoin, as Kafka's controller does on a
		// re-registration. Without a clean shutdown of its previous
		// registration (its previous epoch is not the one it names),
		// its log may have lost what it had not synced (a power cut):
		// it leaves every ELR too (Kafka's handleBrokerUncleanShutdown),
		// so it is never elected with what it lost.
		unclean := previousEpoch != old.Epoch
		recs = append(recs, c.removeBrokerLocked(r.ID, unclean)...)
	}
	// A (re)registered broker starts fenced; its first heartbeat, sent
	// once it has caught up with the metadata log, unfences it.
	r.Fenced = true
	if err := c.proposeLocked(ctx, recs...); err != nil {
		return 0, err
	}
	c.mu.lastBeat[r.ID] = c.cfg.Now()
	return r.Epoch, nil
}

// TopicSpec is what CreateTopic needs; defaults (-1) must be resolved by the
// caller, which knows the broker configs.
type TopicSpec struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	// Assignment, when set, gives each partition's replicas explicitly
	// (CreateTopics' ReplicaAssignment); Partitions and
	// ReplicationFactor are then taken from it.
	Assignment [][]int32
	Configs    map[string]string
}

// ValidTopicName reports Kafka's rule: 1 to 249 of [a-zA-Z0-9._-], not "."
// or "..".
func ValidTopicName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > 249 {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}

// CreateTopic creates a topic, placing replicas on distinct unfenced
// brokers round-robin (the first replica is the preferred leader), and
// returns the new topic's id. Errors are *kerr.Error values with Kafka's
// codes. validateOnly checks without writing.
func (c *Controller) CreateTopic(ctx context.Context, spec TopicSpec, validateOnly bool) (TopicID, error) {
	if err := c.lockActive(ctx); err != nil {
		return TopicID{}, err
	}
	defer c.mu.Unlock()
	st := c.mu.state
	if !ValidTopicName(spec.Name) {
		return TopicID{}, kerr.InvalidTopicException
	}
	if _, ok := st.Topics[spec.Name]; ok {
		return TopicID{}, kerr.TopicAlreadyExists
	}
	var live []int32
	for _, id := range st.BrokerIDs() {
		if !st.Brokers[id].Fenced {
			live = append(live, id)
		}
	}
	assign := spec.Assignment
	if len(assign) > 0 {
		for _, rs := range assign {
			if len(rs) == 0 || len(rs) != len(assign[0]) {
				return TopicID{}, kerr.InvalidReplicaAssignment
			}
			seen := map[int32]bool{}
			for _, b := range rs {
				if st.Brokers[b] == nil || seen[b] {
					return TopicID{}, kerr.InvalidReplicaAssignment
				}
				seen[b] = true
			}
		}
	} else {
		if spec.Partitions <= 0 {
			return TopicID{}, kerr.InvalidPartitions
		}
		if spec.ReplicationFactor <= 0 {
			return TopicID{}, kerr.InvalidReplicationFactor
		}
		if int(spec.ReplicationFactor) > len(live) {
			return TopicID{}, kerr.InvalidReplicationFactor
		}
		start := c.mu.placement
		for p := 0; p < int(spec.Partitions); p++ {
			rs := make([]int32, spec.ReplicationFactor)
			for i := range rs {
				rs[i] = live[(start+p+i)%len(live)]
			}
			assign = append(assign, rs)
		}
	}
	if validateOnly {
		return TopicID{}, nil
	}
	c.mu.placement++
	var id TopicID
	for id == (TopicID{}) {
		rand.Read(id[:])
	}
	recs := []Record{&CreateTopic{Name: spec.Name, ID: id, Configs: spec.Configs}}
	for p, rs := range assign {
		leader := int32(-1)
		var isr []int32
		for _, b := range rs {
			if br := st.Brokers[b]; br != nil && !br.Fenced {
				isr = append(isr, b)
				if leader < 0 {
					leader = b
				}
			}
		}
		recs = append(recs, &PartitionRecord{TopicID: id, Partition: int32(p), Replicas: slices.Clone(rs), ISR: isr, Leader: leader, Directories: c.defaultDirsLocked(rs)})
	}
	if err := c.proposeLocked(ctx, recs...); err != nil {
		return TopicID{}, err
	}
	return id, nil
}

// DeleteTopic deletes a topic by name (or by id when name is empty).
func (c *Controller) DeleteTopic(ctx context.Context, name string, id TopicID) (TopicID, error) {
	if err := c.lockActive(ctx); err != nil {
		return TopicID{}, err
	}
	defer c.mu.Unlock()
	var t *Topic
	if name != "" {
		t = c.mu.state.Topics[name]
	} else {
		t = c.mu.state.TopicsByID[id]
	}
	if t == nil {
		if name == "" {
			return TopicID{}, kerr.UnknownTopicID
		}
		return TopicID{}, kerr.UnknownTopicOrPartition
	}
	if err := c.proposeLocked(ctx, &RemoveTopic{ID: t.ID}); err != nil {
		return TopicID{}, err
	}
	return t.ID, nil
}

// ChangePartition proposes a leader/ISR change for one partition, checking
// the partition epoch the caller saw (Kafka's AlterPartition rule): a stale
// epoch gets INVALID_UPDATE_VERSION... returned as *kerr.Error.
func (c *Controller) ChangePartition(ctx context.Context, ch PartitionChange, partitionEpoch int32) error {
	if err := c.lockActive(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	p := c.mu.state.Partition(ch.TopicID, ch.Partition)
	if p == nil {
		return kerr.UnknownTopicOrPartition
	}
	if partitionEpoch >= 0 && partitionEpoch != p.PartitionEpoch {
		return kerr.InvalidUpdateVersion
	}
	return c.proposeLocked(ctx, &ch)
}

// State runs fn with the controller's state held; fn must not keep it.
func (c *Controller) State(fn func(*State)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn(c.mu.state)
}

// AllocateProducerIDs reserves n producer ids for broker and returns the
// first (Kafka's AllocateProducerIds).
func (c *Controller) AllocateProducerIDs(ctx context.Context, broker int32, n int64) (int64, error) {
	if err := c.lockActive(ctx); err != nil {
		return 0, err
	}
	defer c.mu.Unlock()
	first := c.mu.state.NextProducerID
	if err := c.proposeLocked(ctx, &ProducerIDs{Broker: broker, First: first, Size: n}); err != nil {
		return 0, err
	}
	return first, nil
}
