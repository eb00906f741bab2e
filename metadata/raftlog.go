package metadata

// RaftLog is the quorum mode's metadata log: a Raft group of controller
// nodes on go.etcd.io/raft/v3 (KRaft's idea, KIP-500/KIP-595, with etcd's
// Raft in place of Kafka's own). One goroutine (Run) owns the RawNode; it
// persists entries and the HardState in a pebble DB on the cluster's vfs.FS
// before it sends any message, applies committed entries to the record list
// readers see, and answers proposals once they are committed. Messages go
// out through RaftConfig.Send and come in through Step, so the caller's
// transport (the network package) decides what a cut looks like.
//
// A metadata offset is the position of a record among all committed
// records; a Raft entry carries a whole proposal (one or more records), and
// the leader's empty entries carry none.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kcluster/kcluster/internal/pebblelog"
	"github.com/kcluster/kcluster/internal/pebblesched"
)

// ErrNotLeader is returned by RaftLog.Append on a node that is not the
// quorum's leader, or that lost leadership before its proposal committed
// (the proposal may still commit later, under the new leader).
var ErrNotLeader = errors.New("metadata: not the quorum leader")

// ErrClusterIDMismatch is returned by OpenRaftLog when the storage belongs
// to another cluster.
var ErrClusterIDMismatch = errors.New("metadata: storage belongs to another cluster")

// RaftConfig configures a RaftLog.
type RaftConfig struct {
	ID     uint64   // this node's id, non-zero, never reused
	Voters []uint64 // every voter's id, this node's included
	FS     vfs.FS
	Dir    string // the raft DB's directory in FS
	// ClusterID, if set, must be the stored one (ErrClusterIDMismatch
	// otherwise) and is written at bootstrap. If empty, the stored one is
	// kept, and DefaultClusterID is written at bootstrap. ClusterID()
	// reports the result.
	ClusterID        string
	DefaultClusterID string
	// Tick is the Raft tick; heartbeats go every tick, elections start
	// after ElectionTicks to twice that without a leader.
	Tick          time.Duration
	ElectionTicks int
	// Send delivers an encoded message to node to; it must not block (drop
	// rather than wait: Raft retransmits).
	Send func(to uint64, msg []byte)
	// OnStatus, if set, is called (from Run, without locks) whenever the
	// leader, the term or leadership readiness changes.
	OnStatus func()
	Logger   *slog.Logger
}

type proposalResult struct {
	last int64
	err  error
}

type proposal struct {
	data []byte
	seq  uint64
	res  chan proposalResult
}

// payload is a Raft entry's data: a proposal's records, tagged with the
// proposer so it can answer its caller.
type payload struct {
	Node    uint64            `json:"node"`
	Seq     uint64            `json:"seq"`
	Records []json.RawMessage `json:"records"`
}

// RaftStatus is one node's view of the quorum.
type RaftStatus struct {
	ID     uint64
	Leader uint64 // 0 while none is known
	Term   uint64
	// Leading is true on the leader once it has applied an entry of its
	// own term, that is, once it has every committed record.
	Leading bool
	// LeadingFrom is, while Leading, the log end offset when the
	// leadership began.
	LeadingFrom int64
	Commit      uint64 // Raft index
	Applied     uint64 // Raft index
	// Match is, on the leader, each voter's highest replicated Raft index.
	Match map[uint64]uint64
	// LastAck is, on the leader, when each voter last answered.
	LastAck map[uint64]time.Time
}

// RaftLog implements Log over a Raft group. Committed records sit in the
// embedded list; the Raft status, pending proposals and index marks in mu.
type RaftLog struct {
	committed
	cfg   RaftConfig
	db    *pebble.DB
	ms    *raft.MemoryStorage
	rn    *raft.RawNode // owned by Run
	fresh bool          // bootstrapped by this open

	recv        chan *pb.Message
	props       chan *proposal
	snaps       chan *Snapshot // Compact's requests, for Run
	unreachable chan uint64
	done        chan struct{}
	closeOnce   sync.Once

	mu struct {
		sync.Mutex
		closed  bool
		status  RaftStatus
		pending map[uint64]*proposal
		seq     uint64
		// heard is when each peer's last message arrived.
		heard map[uint64]time.Time
		// marks maps Raft indexes to record offsets: after the entry at
		// marks[i].index, the log holds marks[i].end records.
		marks []indexMark
	}
}

type indexMark struct {
	index uint64
	end   int64
}

var (
	keyHardState = []byte("h")
	keySnapshot  = []byte("s")
	keyClusterID = []byte("c")
	entryPrefix  = byte('e')
)

func entryKey(i uint64) []byte {
	k := make([]byte, 9)
	k[0] = entryPrefix
	binary.BigEndian.PutUint64(k[1:], i)
	return k
}

// OpenRaftLog opens (or bootstraps) a node's Raft storage and returns its
// log; Run starts it.
func OpenRaftLog(cfg RaftConfig) (*RaftLog, error) {
	if cfg.ID == 0 || len(cfg.Voters) == 0 || cfg.FS == nil || cfg.Send == nil {
		return nil, errors.New("metadata: RaftConfig needs ID, Voters, FS and Send")
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 10 * time.Millisecond
	}
	if cfg.ElectionTicks <= 1 {
		cfg.ElectionTicks = 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.FS.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	po := &pebble.Options{
		FS:            cfg.FS,
		MemTableSize:  1 << 20,
		Logger:        pebblelog.Logger{L: cfg.Logger},
		EventListener: &pebble.EventListener{},
	}
	po.Experimental.CompactionScheduler = pebblesched.New() // no ticker of its own
	db, err := pebble.Open(cfg.Dir, po)
	if err != nil {
		return nil, fmt.Errorf("metadata: opening raft storage: %w", err)
	}
	l := &RaftLog{
		cfg:         cfg,
		db:          db,
		ms:          raft.NewMemoryStorage(),
		recv:        make(chan *pb.Message, 1024),
		props:       make(chan *proposal, 64),
		snaps:       make(chan *Snapshot, 1),
		unreachable: make(chan uint64, 16),
		done:        make(chan struct{}),
	}
	l.init()
	l.mu.pending = make(map[uint64]*proposal)
	l.mu.heard = make(map[uint64]time.Time)
	l.mu.status.ID = cfg.ID
	if err := l.load(); err != nil {
		db.Close()
		return nil, err
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             1,
		Storage:                   l.ms,
		MaxSizePerMsg:             1 << 20,
		MaxInflightMsgs:           256,
		MaxUncommittedEntriesSize: 64 << 20,
		CheckQuorum:               true,
		PreVote:                   true,
		DisableProposalForwarding: true,
		Logger:                    raftLogger{cfg.Logger},
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	l.rn = rn
	return l, nil
}

// load restores MemoryStorage from the DB, or bootstraps it: a snapshot
// at index 1 holding the voters, so no configuration entries are needed
// (raft's recommended bootstrap).
func (l *RaftLog) load() error {
	get := func(k []byte, m proto.Message) (bool, error) {
		v, closer, err := l.db.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		defer closer.Close()
		return true, proto.Unmarshal(v, m)
	}
	snap := new(pb.Snapshot)
	ok, err := get(keySnapshot, snap)
	if err != nil {
		return err
	}
	if !ok {
		l.fresh = true
		if l.cfg.ClusterID == "" {
			l.cfg.ClusterID = l.cfg.DefaultClusterID
		}
		snap = &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
			Index: new(uint64(1)), Term: new(uint64(1)),
			ConfState: &pb.ConfState{Voters: append([]uint64(nil), l.cfg.Voters...)},
		}}
		b := l.db.NewBatch()
		sb, err := proto.Marshal(snap)
		if err != nil {
			return err
		}
		b.Set(keySnapshot, sb, nil)
		b.Set(keyClusterID, []byte(l.cfg.ClusterID), nil)
		if err := b.Commit(pebble.Sync); err != nil {
			return err
		}
	} else {
		v, closer, err := l.db.Get(keyClusterID)
		if err != nil {
			return fmt.Errorf("metadata: raft storage without a cluster id: %w", err)
		}
		stored := string(v)
		closer.Close()
		if l.cfg.ClusterID != "" && l.cfg.ClusterID != stored {
			return fmt.Errorf("%w: stored %q, given %q", ErrClusterIDMismatch, stored, l.cfg.ClusterID)
		}
		l.cfg.ClusterID = stored
	}
	if err := l.ms.ApplySnapshot(snap); err != nil {
		return err
	}
	if err := l.restoreSnapshot(snap); err != nil {
		return err
	}
	hs := new(pb.HardState)
	if ok, err := get(keyHardState, hs); err != nil {
		return err
	} else if ok {
		if err := l.ms.SetHardState(hs); err != nil {
			return err
		}
	}
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: entryKey(0), UpperBound: []byte{entryPrefix + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	var ents []*pb.Entry
	for it.First(); it.Valid(); it.Next() {
		e := new(pb.Entry)
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			return fmt.Errorf("metadata: raft entry %x: %w", it.Key(), err)
		}
		ents = append(ents, e)
	}
	if err := it.Error(); err != nil {
		return err
	}
	return l.ms.Append(ents)
}

// ClusterID returns the cluster id the storage belongs to.
func (l *RaftLog) ClusterID() string { return l.cfg.ClusterID }

// Fresh reports whether this open bootstrapped new storage.
func (l *RaftLog) Fresh() bool { return l.fresh }

// Step hands the log a message from a peer (its encoded form). It never
// blocks: when the node is overwhelmed the message is dropped, as a lossy
// network would, and Raft retransmits.
func (l *RaftLog) Step(msg []byte) error {
	m := new(pb.Message)
	if err := proto.Unmarshal(msg, m); err != nil {
		return err
	}
	if raft.IsLocalMsg(m.GetType()) {
		return fmt.Errorf("metadata: local raft message %v from the network", m.GetType())
	}
	select {
	case l.recv <- m:
	default:
	}
	return nil
}

// ReportUnreachable tells Raft a message to id could not be sent.
func (l *RaftLog) ReportUnreachable(id uint64) {
	select {
	case l.unreachable <- id:
	default:
	}
}

// Run drives the node until ctx ends or Close. It must run exactly once.
func (l *RaftLog) Run(ctx context.Context) {
	defer l.failPending(ErrLogClosed)
	t := time.NewTicker(l.cfg.Tick)
	defer t.Stop()
	// A new quorum elects its first leader at once, as does a quorum of
	// one, instead of after an election timeout.
	if (l.fresh && l.cfg.ID == minID(l.cfg.Voters)) || len(l.cfg.Voters) == 1 {
		l.rn.Campaign()
	}
	for {
		if l.rn.HasReady() {
			if err := l.drainReady(); err != nil {
				l.cfg.Logger.Error("raft storage failed; the controller stops", "err", err)
				return
			}
			l.noteProgress()
		}
		select {
		case <-ctx.Done():
			return
		case <-l.done:
			return
		case <-t.C:
			l.rn.Tick()
			l.noteProgress()
		case m := <-l.recv:
			l.mu.Lock()
			l.mu.heard[m.GetFrom()] = time.Now()
			l.mu.Unlock()
			if err := l.rn.Step(m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
				l.cfg.Logger.Debug("raft step", "err", err)
			}
		case id := <-l.unreachable:
			l.rn.ReportUnreachable(id)
		case p := <-l.props:
			l.propose(p)
		case sn := <-l.snaps:
			if err := l.compactTo(sn); err != nil {
				l.cfg.Logger.Error("raft storage failed writing a snapshot; the controller stops", "err", err)
				return
			}
		}
	}
}

// noteProgress copies the leader's view of each voter's log into the
// status (nil on other nodes). Run calls it after every Ready and tick.
func (l *RaftLog) noteProgress() {
	if l.rn.BasicStatus().RaftState != raft.StateLeader {
		l.mu.Lock()
		l.mu.status.Match = nil
		l.mu.Unlock()
		return
	}
	st := l.rn.Status()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.status.Match = make(map[uint64]uint64, len(st.Progress))
	for id, pr := range st.Progress {
		l.mu.status.Match[id] = pr.Match
	}
}

func minID(ids []uint64) uint64 {
	m := ids[0]
	for _, id := range ids[1:] {
		m = min(m, id)
	}
	return m
}

func (l *RaftLog) propose(p *proposal) {
	l.mu.Lock()
	leading := l.mu.status.Leading
	if leading {
		l.mu.pending[p.seq] = p
	}
	l.mu.Unlock()
	if !leading {
		p.res <- proposalResult{err: ErrNotLeader}
		return
	}
	if err := l.rn.Propose(p.data); err != nil {
		l.mu.Lock()
		delete(l.mu.pending, p.seq)
		l.mu.Unlock()
		p.res <- proposalResult{err: fmt.Errorf("%w: %v", ErrNotLeader, err)}
	}
}

// drainReady handles every Ready: persist, send, apply, advance.
func (l *RaftLog) drainReady() error {
	for l.rn.HasReady() {
		rd := l.rn.Ready()
		if err := l.persist(rd); err != nil {
			return err
		}
		var snapsTo []uint64
		for _, m := range rd.Messages {
			b, err := proto.Marshal(m)
			if err != nil {
				return err
			}
			l.cfg.Send(m.GetTo(), b)
			if m.GetType() == pb.MsgSnap {
				snapsTo = append(snapsTo, m.GetTo())
			}
		}
		if err := l.apply(rd); err != nil {
			return err
		}
		l.rn.Advance(rd)
		// Send never reports delivery, so a snapshot is reported sent
		// at once: the leader probes the follower, and if the snapshot
		// was lost the follower's rejection of the next append leads to
		// another one (without a report, etcd raft keeps the follower
		// paused in StateSnapshot, so a lost MsgSnap would stall it).
		for _, to := range snapsTo {
			l.rn.ReportSnapshot(to, raft.SnapshotFinish)
		}
	}
	return nil
}

func (l *RaftLog) persist(rd raft.Ready) error {
	if raft.IsEmptyHardState(rd.HardState) && len(rd.Entries) == 0 && raft.IsEmptySnap(rd.Snapshot) {
		return nil
	}
	b := l.db.NewBatch()
	if !raft.IsEmptySnap(rd.Snapshot) {
		sb, err := proto.Marshal(rd.Snapshot)
		if err != nil {
			return err
		}
		b.Set(keySnapshot, sb, nil)
		// A snapshot from the leader replaces the whole log: the
		// entries stored here are behind it or not the leader's.
		// Entries of this Ready, set below, come after it in the batch.
		b.DeleteRange(entryKey(0), []byte{entryPrefix + 1}, nil)
	}
	if n := len(rd.Entries); n > 0 {
		for _, e := range rd.Entries {
			eb, err := proto.Marshal(e)
			if err != nil {
				return err
			}
			b.Set(entryKey(e.GetIndex()), eb, nil)
		}
		// Entries past the new last one were overwritten by a new
		// leader's log: drop them.
		b.DeleteRange(entryKey(rd.Entries[n-1].GetIndex()+1), []byte{entryPrefix + 1}, nil)
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		hb, err := proto.Marshal(rd.HardState)
		if err != nil {
			return err
		}
		b.Set(keyHardState, hb, nil)
	}
	opt := pebble.NoSync
	if rd.MustSync {
		opt = pebble.Sync
	}
	if err := b.Commit(opt); err != nil {
		return err
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := l.ms.ApplySnapshot(rd.Snapshot); err != nil {
			return err
		}
	}
	if err := l.ms.Append(rd.Entries); err != nil {
		return err
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		return l.ms.SetHardState(rd.HardState)
	}
	return nil
}

// apply appends committed records to the log and answers their proposers.
func (l *RaftLog) apply(rd raft.Ready) error {
	var answered []func()
	l.mu.Lock()
	st := &l.mu.status
	before := *st
	if rd.SoftState != nil {
		st.Leader = rd.SoftState.Lead
		if rd.SoftState.RaftState != raft.StateLeader {
			st.Leading = false
		}
	}
	if rd.HardState != nil {
		st.Term = rd.HardState.GetTerm()
		st.Commit = rd.HardState.GetCommit()
	}
	isLeader := st.Leader == l.cfg.ID
	if !raft.IsEmptySnap(rd.Snapshot) {
		// A snapshot from the leader (this node was behind its log
		// start): the records continue after it, and the controller
		// reloads its state from it (ErrBelowLogStart).
		if err := l.restoreSnapshotLocked(rd.Snapshot); err != nil {
			l.mu.Unlock()
			return err
		}
		st.Applied = rd.Snapshot.GetMetadata().GetIndex()
	}
	for _, e := range rd.CommittedEntries {
		st.Applied = e.GetIndex()
		switch e.GetType() {
		case pb.EntryConfChange, pb.EntryConfChangeV2:
			// Membership is fixed at bootstrap; nothing proposes changes.
			l.mu.Unlock()
			return fmt.Errorf("metadata: unexpected raft configuration change at %d", e.GetIndex())
		}
		if isLeader && e.GetTerm() == st.Term && !st.Leading {
			st.Leading = true
			st.LeadingFrom = l.End()
		}
		if len(e.GetData()) == 0 {
			continue
		}
		var pl payload
		if err := json.Unmarshal(e.GetData(), &pl); err != nil {
			l.mu.Unlock()
			return fmt.Errorf("metadata: raft entry %d: %w", e.GetIndex(), err)
		}
		recs := make([]Record, len(pl.Records))
		raws := make([][]byte, len(pl.Records))
		for i, raw := range pl.Records {
			var err error
			if recs[i], err = DecodeRecord(raw); err != nil {
				l.mu.Unlock()
				return fmt.Errorf("metadata: raft entry %d: %w", e.GetIndex(), err)
			}
			raws[i] = raw
		}
		last, err := l.add(recs, raws)
		if err != nil {
			l.mu.Unlock()
			return err
		}
		l.mu.marks = append(l.mu.marks, indexMark{e.GetIndex(), last + 1})
		if pl.Node == l.cfg.ID {
			if p := l.mu.pending[pl.Seq]; p != nil {
				delete(l.mu.pending, pl.Seq)
				answered = append(answered, func() { p.res <- proposalResult{last: last} })
			}
		}
	}
	if !st.Leading && len(l.mu.pending) > 0 {
		for seq, p := range l.mu.pending {
			delete(l.mu.pending, seq)
			answered = append(answered, func() { p.res <- proposalResult{err: ErrNotLeader} })
		}
	}
	changed := before.Leader != st.Leader || before.Term != st.Term || before.Leading != st.Leading
	l.mu.Unlock()
	for _, a := range answered {
		a()
	}
	if changed && l.cfg.OnStatus != nil {
		l.cfg.OnStatus()
	}
	return nil
}

func (l *RaftLog) failPending(err error) {
	l.mu.Lock()
	ps := l.mu.pending
	l.mu.pending = make(map[uint64]*proposal)
	l.mu.heard = make(map[uint64]time.Time)
	l.mu.status.Leading = false
	l.mu.Unlock()
	for _, p := range ps {
		p.res <- proposalResult{err: err}
	}
}

// Append implements Log: it proposes the records as one Raft entry and
// returns the offset of the last once the entry is committed. Only the
// leader appends; elsewhere it returns ErrNotLeader.
func (l *RaftLog) Append(ctx context.Context, recs ...Record) (int64, error) {
	pl := payload{Node: l.cfg.ID, Records: make([]json.RawMessage, len(recs))}
	for i, r := range recs {
		b, err := EncodeRecord(r)
		if err != nil {
			return 0, err
		}
		pl.Records[i] = b
	}
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return 0, ErrLogClosed
	}
	if !l.mu.status.Leading {
		l.mu.Unlock()
		return 0, ErrNotLeader
	}
	l.mu.seq++
	pl.Seq = l.mu.seq
	l.mu.Unlock()
	data, err := json.Marshal(pl)
	if err != nil {
		return 0, err
	}
	p := &proposal{data: data, seq: pl.Seq, res: make(chan proposalResult, 1)}
	select {
	case l.props <- p:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-l.done:
		return 0, ErrLogClosed
	}
	select {
	case r := <-p.res:
		return r.last, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-l.done:
		return 0, ErrLogClosed
	}
}

// Close makes Run return and fails blocked readers and pending proposals.
// It waits for nothing: the caller waits for Run, then calls CloseStorage.
func (l *RaftLog) Close() {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.mu.closed = true
		l.mu.Unlock()
		l.closeReaders()
		close(l.done)
	})
}

// CloseStorage closes the pebble DB; call it after Run has returned.
func (l *RaftLog) CloseStorage() error { return l.db.Close() }
