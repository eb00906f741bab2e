package metadata

// Log directories (KIP-858, KRaft JBOD): a broker registers the ids of its
// log dirs (BrokerRegistration LogDirs), each partition records the dir
// each replica lives in (PartitionRecord Directories, aligned with
// Replicas), a broker reports where it placed a new replica
// (AssignReplicasToDirs) and which of its dirs failed (BrokerHeartbeat
// OfflineLogDirs), and the controller moves leadership away from the
// replicas of a failed dir and drops them from the ISR
// (ReplicationControlManager.handleDirectoriesOffline).

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
)

// DirectoryID is a log directory's id: Kafka's Uuid, kept in the dir's
// meta.properties as directory.id. The zero value is Kafka's UNASSIGNED
// (DirectoryId.UNASSIGNED): a replica not placed in a dir yet.
type DirectoryID [16]byte

// DirLost is Kafka's DirectoryId.LOST: a replica in a dir that is offline
// but not known. DirMigrating is DirectoryId.MIGRATING: a replica placed
// before its broker knew dirs. The first 100 ids are reserved, as Kafka's.
func DirLost() DirectoryID      { return DirectoryID{15: 1} }
func DirMigrating() DirectoryID { return DirectoryID{15: 2} }

// Reserved reports whether d is one of the reserved ids (UNASSIGNED,
// LOST, MIGRATING, and the rest of the first 100): not a real dir.
func (d DirectoryID) Reserved() bool {
	for _, b := range d[:15] {
		if b != 0 {
			return false
		}
	}
	return d[15] < 100
}

// String renders the id as Kafka renders a Uuid: URL-safe base64 without
// padding.
func (d DirectoryID) String() string { return base64.RawURLEncoding.EncodeToString(d[:]) }

// MarshalText is String, so records carry the id as Kafka writes it.
func (d DirectoryID) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses String's form.
func (d *DirectoryID) UnmarshalText(b []byte) error {
	v, err := ParseDirectoryID(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ParseDirectoryID parses a Uuid as Kafka writes it (directory.id).
func ParseDirectoryID(s string) (DirectoryID, error) {
	var d DirectoryID
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return d, fmt.Errorf("metadata: bad directory id %q", s)
	}
	copy(d[:], b)
	return d, nil
}

// BrokerRegistrationChange is Kafka's BrokerRegistrationChangeRecord as
// far as log dirs go: LogDirs are the broker's online dirs from now on.
// A registered dir left out is offline; one put back is online again.
type BrokerRegistrationChange struct {
	ID      int32
	Epoch   int64
	LogDirs []DirectoryID
}

func (*BrokerRegistrationChange) recordType() string { return "BrokerRegistrationChange" }

// Directory returns the dir of broker's replica of p, UNASSIGNED if p
// records none (a partition of a log written before dirs were recorded).
func (p *Partition) Directory(broker int32) DirectoryID {
	i := slices.Index(p.Replicas, broker)
	if i < 0 || i >= len(p.Directories) {
		return DirectoryID{}
	}
	return p.Directories[i]
}

// OnlineLogDirs returns the broker's registered dirs that are not
// offline.
func (b *Broker) OnlineLogDirs() []DirectoryID {
	var out []DirectoryID
	for _, d := range b.LogDirs {
		if !slices.Contains(b.OfflineLogDirs, d) {
			out = append(out, d)
		}
	}
	return out
}

// ReplicaOffline reports whether broker r's replica of p is offline, as
// Kafka's metadata cache reports it (OfflineReplicas in Metadata and
// DescribeTopicPartitions): its broker is not registered or fenced, or
// its dir is offline (LOST, or one the broker reported offline).
func (s *State) ReplicaOffline(p *Partition, r int32) bool {
	b := s.Brokers[r]
	if b == nil || b.Fenced {
		return true
	}
	d := p.Directory(r)
	return d == DirLost() || (!d.Reserved() && slices.Contains(b.OfflineLogDirs, d))
}

// defaultDirLocked is the dir the controller records for a new replica on
// broker (Kafka's ClusterDescriber.defaultDir): the broker's only dir if
// it has one, else UNASSIGNED, for the broker to choose and report.
func (c *Controller) defaultDirLocked(broker int32) DirectoryID {
	if b := c.mu.state.Brokers[broker]; b != nil && len(b.LogDirs) == 1 {
		return b.LogDirs[0]
	}
	return DirectoryID{}
}

// defaultDirsLocked is defaultDirLocked for each of replicas.
func (c *Controller) defaultDirsLocked(replicas []int32) []DirectoryID {
	out := make([]DirectoryID, len(replicas))
	for i, r := range replicas {
		out[i] = c.defaultDirLocked(r)
	}
	return out
}

// dirOnlineLocked reports whether broker r's replica in dir d is in a
// dir that is online (Kafka's ClusterControlManager.hasOnlineDir): an
// unassigned or migrating replica counts as online, a lost one does not.
func (c *Controller) dirOnlineLocked(d DirectoryID, r int32) bool {
	switch {
	case d == DirLost():
		return false
	case d.Reserved():
		return true
	}
	b := c.mu.state.Brokers[r]
	return b != nil && !slices.Contains(b.OfflineLogDirs, d)
}

// logDirsChangeLocked returns the records for broker id reporting the
// dirs in offline as offline (Kafka's handleDirectoriesOffline): its
// registration's online dirs change, and its replicas in a dir that just
// went offline leave their ISRs and their leaderships. A registered dir
// no longer reported offline is online again (kcluster's repair; Kafka
// brings a dir back only with a restart): leaderless partitions with a
// replica there get a leader if one is acceptable now.
func (c *Controller) logDirsChangeLocked(id int32, offline []DirectoryID) []Record {
	b := c.mu.state.Brokers[id]
	if b == nil || len(b.LogDirs) == 0 {
		return nil
	}
	var nowOffline []DirectoryID
	for _, d := range b.LogDirs {
		if slices.Contains(offline, d) {
			nowOffline = append(nowOffline, d)
		}
	}
	if slices.Equal(nowOffline, b.OfflineLogDirs) {
		return nil
	}
	var online []DirectoryID
	for _, d := range b.LogDirs {
		if !slices.Contains(nowOffline, d) {
			online = append(online, d)
		}
	}
	recs := []Record{&BrokerRegistrationChange{ID: id, Epoch: b.Epoch, LogDirs: nonNilDirs(online)}}
	// The changes are computed against the state as the registration
	// change leaves it: apply it to a copy of the broker's view.
	was := b.OfflineLogDirs
	b.OfflineLogDirs = nowOffline
	defer func() { b.OfflineLogDirs = was }()
	st := c.mu.state
	for _, name := range st.TopicNames() {
		t := st.Topics[name]
		for _, p := range t.Partitions {
			if !slices.Contains(p.Replicas, id) {
				continue
			}
			d := p.Directory(id)
			switch {
			case slices.Contains(nowOffline, d) && !slices.Contains(was, d):
				if !slices.Contains(p.ISR, id) && p.Leader != id {
					continue
				}
				cb := c.changeLocked(t, p, nil)
				cb.isr = without(p.ISR, []int32{id})
				if ch := cb.build(); ch != nil {
					recs = append(recs, ch)
				}
			case !slices.Contains(nowOffline, d) && slices.Contains(was, d) && p.Leader < 0:
				if ch := c.changeLocked(t, p, nil).build(); ch != nil {
					recs = append(recs, ch)
				}
			}
		}
	}
	return recs
}

func nonNilDirs(s []DirectoryID) []DirectoryID {
	if s == nil {
		return []DirectoryID{}
	}
	return s
}

// DirAssignment is one replica placement a broker reports
// (AssignReplicasToDirs).
type DirAssignment struct {
	TopicID   TopicID
	Partition int32
	Dir       DirectoryID
}

// AssignReplicasToDirs records where broker id (registration epoch)
// placed its replicas (Kafka's handleAssignReplicasToDirs): each
// partition's Directories change for the broker's replica. It returns an
// error per assignment (nil: recorded, or nothing to record):
// UNKNOWN_TOPIC_ID, NOT_LEADER_OR_FOLLOWER for a partition the broker
// has no replica of. A stale epoch fails the whole request. A replica
// placed in a dir that is offline leaves its ISR and leadership as in
// logDirsChangeLocked.
func (c *Controller) AssignReplicasToDirs(ctx context.Context, id int32, epoch int64, as []DirAssignment) ([]error, error) {
	if err := c.lockActive(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	st := c.mu.state
	b := st.Brokers[id]
	if b == nil || b.Epoch != epoch {
		return nil, ErrStaleBrokerEpoch
	}
	errs := make([]error, len(as))
	var recs []Record
	for i, a := range as {
		t := st.TopicsByID[a.TopicID]
		if t == nil {
			errs[i] = kerr.UnknownTopicID
			continue
		}
		p := st.Partition(a.TopicID, a.Partition)
		if p == nil {
			errs[i] = kerr.UnknownTopicOrPartition
			continue
		}
		at := slices.Index(p.Replicas, id)
		if at < 0 {
			errs[i] = kerr.NotLeaderForPartition
			continue
		}
		if p.Directory(id) == a.Dir {
			continue
		}
		cb := c.changeLocked(t, p, nil)
		cb.dirs[at] = a.Dir
		if !a.Dir.Reserved() && slices.Contains(b.OfflineLogDirs, a.Dir) {
			cb.isr = without(p.ISR, []int32{id})
		}
		if ch := cb.build(); ch != nil {
			recs = append(recs, ch)
		}
	}
	if len(recs) == 0 {
		return errs, nil
	}
	return errs, c.proposeLocked(ctx, recs...)
}
