package metadata

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// raftNet wires RaftLogs to each other in memory; a cut node neither sends
// nor receives.
type raftNet struct {
	mu   sync.Mutex
	logs map[uint64]*RaftLog
	cut  map[uint64]bool
}

func (n *raftNet) sender(from uint64) func(uint64, []byte) {
	return func(to uint64, msg []byte) {
		n.mu.Lock()
		l, ok := n.logs[to]
		down := n.cut[from] || n.cut[to]
		n.mu.Unlock()
		if ok && !down {
			l.Step(msg)
		}
	}
}

type raftGroup struct {
	t      *testing.T
	fs     vfs.FS
	net    *raftNet
	cancel map[uint64]context.CancelFunc
	done   map[uint64]chan struct{}
	status chan struct{} // a node's leader or term changed
}

func (g *raftGroup) start(id uint64) *RaftLog {
	g.t.Helper()
	l, err := OpenRaftLog(RaftConfig{
		ID: id, Voters: []uint64{1, 2, 3}, FS: g.fs, Dir: "raft-" + string(rune('0'+id)),
		DefaultClusterID: "c", Tick: 5 * time.Millisecond, ElectionTicks: 10, Send: g.net.sender(id),
		OnStatus: func() {
			select {
			case g.status <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		g.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	g.net.mu.Lock()
	g.net.logs[id] = l
	g.net.mu.Unlock()
	g.cancel[id], g.done[id] = cancel, done
	return l
}

func (g *raftGroup) stop(id uint64) {
	g.net.mu.Lock()
	l := g.net.logs[id]
	delete(g.net.logs, id)
	g.net.mu.Unlock()
	g.cancel[id]()
	l.Close()
	<-g.done[id]
	if err := l.CloseStorage(); err != nil {
		g.t.Fatal(err)
	}
}

// leader waits for a leading node other than not.
func (g *raftGroup) leader(not uint64) *RaftLog {
	g.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		g.net.mu.Lock()
		for id, l := range g.net.logs {
			if id != not && l.Leading() {
				g.net.mu.Unlock()
				return l
			}
		}
		g.net.mu.Unlock()
		select {
		case <-g.status:
		case <-timeout:
			g.t.Fatal("no leader elected")
		}
	}
}

func TestRaftLogReplicatesAndRecovers(t *testing.T) {
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
	last, err := lead.Append(ctx, &RegisterBroker{ID: 1}, &RegisterBroker{ID: 2})
	if err != nil || last != 1 {
		t.Fatalf("append: last %d, %v", last, err)
	}
	// Every node sees both records, at the same offsets.
	for id, l := range g.net.logs {
		es, err := l.Read(ctx, 0, 10)
		for err == nil && len(es) < 2 {
			var more []Entry
			more, err = l.Read(ctx, int64(len(es)), 10)
			es = append(es, more...)
		}
		if err != nil || es[1].Record.(*RegisterBroker).ID != 2 {
			t.Fatalf("node %d read %v, %v", id, es, err)
		}
	}
	// A follower refuses to append.
	for _, l := range g.net.logs {
		if l != lead {
			if _, err := l.Append(ctx, &RegisterBroker{ID: 9}); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("follower append: %v, want ErrNotLeader", err)
			}
			break
		}
	}
	// Stop the leader: another is elected, and appends continue at the
	// next offset.
	old := lead.cfg.ID
	g.stop(old)
	lead = g.leader(old)
	if last, err := lead.Append(ctx, &RegisterBroker{ID: 3}); err != nil || last != 2 {
		t.Fatalf("append after failover: last %d, %v", last, err)
	}
	// The old leader restarts from its storage and catches up.
	back := g.start(old)
	if back.Fresh() || back.ClusterID() != "c" {
		t.Fatalf("restarted node fresh=%v cluster id %q", back.Fresh(), back.ClusterID())
	}
	es, err := back.Read(ctx, 2, 1)
	if err != nil || es[0].Record.(*RegisterBroker).ID != 3 {
		t.Fatalf("restarted node read %v, %v", es, err)
	}
	if n := back.RecordsThrough(back.Status().Applied); n != 3 {
		t.Fatalf("records through the applied index: %d, want 3", n)
	}
}
