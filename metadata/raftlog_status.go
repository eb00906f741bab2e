package metadata

// RaftLog's gauges (its status, leadership and index marks) and its
// adapter of etcd raft's logger.

import (
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"time"
)

// RecordsThrough returns how many committed records the Raft log holds
// through index: the record offset a voter whose log matches the leader's
// up to index has reached.
func (l *RaftLog) RecordsThrough(index uint64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.mu.marks), func(i int) bool { return l.mu.marks[i].index > index })
	if i == 0 {
		return 0
	}
	return l.mu.marks[i-1].end
}

// Leading implements Leader.
func (l *RaftLog) Leading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.status.Leading
}

// LeadingFrom implements Leader.
func (l *RaftLog) LeadingFrom() (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.status.LeadingFrom, l.mu.status.Leading
}

// Status returns this node's view of the quorum. Match and LastAck are
// filled on the leader only.
func (l *RaftLog) Status() RaftStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.mu.status
	st.Match = maps.Clone(st.Match)
	if st.Match != nil {
		st.LastAck = maps.Clone(l.mu.heard)
		st.LastAck[l.cfg.ID] = time.Now()
	}
	return st
}

type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)                 {}
func (r raftLogger) Debugf(format string, v ...any) {}
func (r raftLogger) Info(v ...any)                  {}
func (r raftLogger) Infof(format string, v ...any)  {}
func (r raftLogger) Warning(v ...any)               { r.l.Debug("raft: " + fmt.Sprint(v...)) }
func (r raftLogger) Warningf(format string, v ...any) {
	r.l.Debug("raft: " + fmt.Sprintf(format, v...))
}
func (r raftLogger) Error(v ...any)                 { r.l.Error("raft: " + fmt.Sprint(v...)) }
func (r raftLogger) Errorf(format string, v ...any) { r.l.Error("raft: " + fmt.Sprintf(format, v...)) }
func (r raftLogger) Fatal(v ...any)                 { panic("raft: " + fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(format string, v ...any) { panic("raft: " + fmt.Sprintf(format, v...)) }
func (r raftLogger) Panic(v ...any)                 { panic("raft: " + fmt.Sprint(v...)) }
func (r raftLogger) Panicf(format string, v ...any) { panic("raft: " + fmt.Sprintf(format, v...)) }
