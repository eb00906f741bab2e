package metadata

// Snapshots of the Raft log (KIP-630 on etcd raft). The controller hands
// the log a snapshot of its state at a committed offset (Compact); Run
// turns it into a Raft snapshot at the entry that ends at that offset, and
// keeps etcd raft's order: the snapshot is persisted (with the entries it
// covers deleted, in one synced pebble batch) before MemoryStorage creates
// it and compacts its entries. A follower behind the leader's first entry
// then gets the snapshot in a MsgSnap, and its Ready.Snapshot replaces its
// record list (apply), from which its controller reloads its state.

import (
	"errors"
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Compact implements Log. It hands the snapshot to Run and returns at
// once; if Run has one pending, this one is dropped (the controller's
// next trigger brings a newer one).
func (l *RaftLog) Compact(sn *Snapshot) {
	select {
	case l.snaps <- sn:
	default:
	}
}

// restoreSnapshot is restoreSnapshotLocked for load, before Run starts.
func (l *RaftLog) restoreSnapshot(snap *pb.Snapshot) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.restoreSnapshotLocked(snap)
}

// restoreSnapshotLocked makes the record list continue after a Raft
// snapshot: the stored one at open, or one from the leader. The bootstrap
// snapshot (index 1, no data) is the empty log.
func (l *RaftLog) restoreSnapshotLocked(snap *pb.Snapshot) error {
	idx := snap.GetMetadata().GetIndex()
	if len(snap.GetData()) == 0 {
		if idx > 1 {
			return fmt.Errorf("metadata: raft snapshot at %d without data", idx)
		}
		return nil
	}
	sn, err := DecodeSnapshot(snap.GetData())
	if err != nil {
		return fmt.Errorf("metadata: raft snapshot at %d: %w", idx, err)
	}
	l.restore(sn)
	l.mu.marks = []indexMark{{idx, sn.Offset + 1}}
	return nil
}

// compactTo writes sn as the Raft snapshot at the entry whose records end
// at sn.Offset, then compacts the log behind it. It declines (nil) a
// snapshot that does not end at an entry boundary or is not past the
// current one. Run calls it; an error is a storage failure.
func (l *RaftLog) compactTo(sn *Snapshot) error {
	l.mu.Lock()
	marks := l.mu.marks
	i := sort.Search(len(marks), func(i int) bool { return marks[i].end >= sn.Offset+1 })
	if i == len(marks) || marks[i].end != sn.Offset+1 {
		l.mu.Unlock()
		return nil
	}
	index := marks[i].index
	l.mu.Unlock()
	first, err := l.ms.FirstIndex()
	if err != nil {
		return err
	}
	if index < first { // not past the current snapshot (at first-1)
		return nil
	}
	term, err := l.ms.Term(index)
	if err != nil {
		return err
	}
	at := *sn
	at.Epoch = term
	data, err := EncodeSnapshot(&at)
	if err != nil {
		return err
	}
	cs := &pb.ConfState{Voters: append([]uint64(nil), l.cfg.Voters...)}
	snap := &pb.Snapshot{Data: data, Metadata: &pb.SnapshotMetadata{Index: new(index), Term: new(term), ConfState: cs}}
	sb, err := proto.Marshal(snap)
	if err != nil {
		return err
	}
	b := l.db.NewBatch()
	b.Set(keySnapshot, sb, nil)
	b.DeleteRange(entryKey(0), entryKey(index+1), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	if _, err := l.ms.CreateSnapshot(index, cs, data); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
		return err
	}
	if err := l.ms.Compact(index); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return err
	}
	l.compact(&at)
	l.mu.Lock()
	if j := sort.Search(len(l.mu.marks), func(j int) bool { return l.mu.marks[j].index >= index }); j > 0 {
		l.mu.marks = append([]indexMark(nil), l.mu.marks[j:]...)
	}
	l.mu.Unlock()
	return nil
}

// SnapshotIndex returns the Raft index of the latest snapshot: entries
// through it are compacted (1 for a log never compacted).
func (l *RaftLog) SnapshotIndex() uint64 {
	first, _ := l.ms.FirstIndex()
	return first - 1
}
