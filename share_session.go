package kcluster

// The share-partition manager and its share sessions (Kafka's
// SharePartitionManager and ShareSessionCache), one per broker. The
// manager keeps the share-partitions this broker leads, loading one from
// the persister on its first use in a leader epoch and dropping it when
// the partition is led elsewhere or in another epoch. A share session is
// a member's set of partitions on this broker, keyed by group and member,
// with the epoch its next request must carry: 0 opens a session (and
// replaces an old one), -1 closes it, and every other request carries the
// epoch the last one was answered at plus one (INVALID_SHARE_SESSION_EPOCH
// otherwise, SHARE_SESSION_NOT_FOUND without a session). A closed session,
// or the connection it was opened on closing, releases the records its
// member holds in its partitions.
//
// Concurrency: mu guards the maps; it is taken before a share-partition's
// lock, never while one is held.

import (
	"errors"
	"net"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
)

type shareSessionKey struct{ group, member string }

type tidp struct {
	id [16]byte
	p  int32
}

type shareSession struct {
	epoch int32 // the epoch the next request must carry
	parts map[tidp]bool
	conn  net.Conn
}

type shareManager struct {
	b         *broker
	persister *statePersister
	mu        struct {
		sync.Mutex
		closed   bool
		parts    map[sharePartitionKey]*sharePartition
		sessions map[shareSessionKey]*shareSession
	}
}

func newShareManager(b *broker, p *statePersister) *shareManager {
	sm := &shareManager{b: b, persister: p}
	sm.mu.parts = map[sharePartitionKey]*sharePartition{}
	sm.mu.sessions = map[shareSessionKey]*shareSession{}
	return sm
}

// close drops every share-partition and session: the broker stops. Their
// state is the persister's.
func (sm *shareManager) close() {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	sm.mu.closed = true
	for k, sp := range sm.mu.parts {
		sp.close()
		delete(sm.mu.parts, k)
	}
	sm.mu.sessions = map[shareSessionKey]*shareSession{}
}

// partition returns the share-partition of key, led by this broker in the
// partition's current epoch, loading it if needed.
func (sm *shareManager) partition(key sharePartitionKey) (*sharePartition, error) {
	rep, err := sm.b.lookupPartition("", key.topicID, key.partition)
	if err != nil {
		return nil, err
	}
	rep.mu.Lock()
	leader, epoch, closed := rep.mu.leader, rep.mu.epoch, rep.mu.closed
	rep.mu.Unlock()
	if leader != sm.b.id || closed {
		return nil, kerr.NotLeaderForPartition
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if sm.mu.closed {
		return nil, kerr.NotLeaderForPartition
	}
	if sp := sm.mu.parts[key]; sp != nil {
		sp.mu.Lock()
		ok := !sp.mu.closed && sp.rep == rep && sp.leaderEpoch == epoch
		sp.mu.Unlock()
		if ok {
			return sp, nil
		}
		sp.close()
		delete(sm.mu.parts, key)
	}
	sp := &sharePartition{sm: sm, key: key, topic: rep.topic, rep: rep, leaderEpoch: epoch}
	earliest := sm.b.shareGroupConfig(key.group, "share.auto.offset.reset") == "earliest"
	if err := sp.load(earliest); err != nil {
		sm.b.log.Debug("loading share-partition", "group", key.group, "topic", rep.topic, "partition", key.partition, "err", err)
		switch {
		case errors.Is(err, kerr.FencedLeaderEpoch):
			return nil, kerr.NotLeaderForPartition
		case errors.Is(err, kerr.UnknownTopicOrPartition):
			return nil, kerr.UnknownTopicOrPartition // not initialized by its group
		}
		return nil, kerr.CoordinatorNotAvailable
	}
	sm.mu.parts[key] = sp
	sm.b.c.record(Event{Kind: SharePartitionLoaded, Broker: sm.b.id, Topic: rep.topic, Partition: key.partition, Group: key.group})
	return sp, nil
}

// partitions returns the loaded share-partitions of a group (all when
// group is "").
func (sm *shareManager) partitions(group string) []*sharePartition {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	var out []*sharePartition
	for k, sp := range sm.mu.parts {
		if group == "" || k.group == group {
			out = append(out, sp)
		}
	}
	return out
}

// openSession opens (or reopens) member's session with parts.
func (sm *shareManager) openSession(key shareSessionKey, parts []tidp, conn net.Conn) *shareSession {
	sm.mu.Lock()
	old := sm.mu.sessions[key]
	s := &shareSession{epoch: 0, parts: map[tidp]bool{}, conn: conn}
	for _, p := range parts {
		s.parts[p] = true
	}
	sm.mu.sessions[key] = s
	sm.mu.Unlock()
	if old != nil {
		sm.release(key, old)
	}
	return s
}

// session checks a request's epoch against member's session and returns
// it, with adds and forgets applied.
func (sm *shareManager) session(key shareSessionKey, epoch int32, add, forget []tidp) (*shareSession, error) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	s := sm.mu.sessions[key]
	if s == nil {
		return nil, kerr.ShareSessionNotFound
	}
	if epoch != s.epoch {
		return nil, kerr.InvalidShareSessionEpoch
	}
	for _, p := range add {
		s.parts[p] = true
	}
	for _, p := range forget {
		delete(s.parts, p)
	}
	return s, nil
}

// bump advances a session's epoch after an answered request.
func (sm *shareManager) bump(s *shareSession) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if s.epoch == 1<<31-1 {
		s.epoch = 1
	} else {
		s.epoch++
	}
}

// sessionParts returns a session's partitions.
func (sm *shareManager) sessionParts(s *shareSession) []tidp {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	out := make([]tidp, 0, len(s.parts))
	for p := range s.parts {
		out = append(out, p)
	}
	return out
}

// closeSession removes member's session and releases its records.
func (sm *shareManager) closeSession(key shareSessionKey) error {
	sm.mu.Lock()
	s := sm.mu.sessions[key]
	if s == nil {
		sm.mu.Unlock()
		return kerr.ShareSessionNotFound
	}
	delete(sm.mu.sessions, key)
	sm.mu.Unlock()
	sm.release(key, s)
	return nil
}

// connClosed closes the sessions opened on conn (Kafka's
// ConnectionDisconnectListener). A killed broker's connections close
// because it died: it releases nothing, as a dead process writes nothing
// (a release is written to the share coordinator, which could be this
// broker, its write reaching the followers before it stops).
func (sm *shareManager) connClosed(conn net.Conn) {
	if sm.b.killed.Load() {
		return
	}
	sm.mu.Lock()
	var gone []shareSessionKey
	var sessions []*shareSession
	for k, s := range sm.mu.sessions {
		if s.conn == conn {
			gone = append(gone, k)
			sessions = append(sessions, s)
			delete(sm.mu.sessions, k)
		}
	}
	sm.mu.Unlock()
	for i, k := range gone {
		sm.release(k, sessions[i])
	}
}

// release makes the records member holds in a session's partitions
// available again.
func (sm *shareManager) release(key shareSessionKey, s *shareSession) {
	for _, p := range sm.sessionParts(s) {
		sm.mu.Lock()
		sp := sm.mu.parts[sharePartitionKey{key.group, p.id, p.p}]
		sm.mu.Unlock()
		if sp != nil {
			sp.releaseMember(key.member)
		}
	}
}
