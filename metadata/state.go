package metadata

import (
	"fmt"
	"slices"
	"sort"
)

// Broker is a registered broker as the metadata log describes it.
type Broker struct {
	ID        int32
	Host      string
	Port      int32
	Rack      *string
	Epoch     int64
	Fenced    bool
	Listeners []Listener
	// LogDirs are the broker's registered log dirs, OfflineLogDirs those
	// of them it reported offline (KIP-858).
	LogDirs        []DirectoryID
	OfflineLogDirs []DirectoryID
}

// Topic is a topic as the metadata log describes it.
type Topic struct {
	Name       string
	ID         TopicID
	Configs    map[string]string
	Partitions []*Partition // index = partition number
}

// Partition is one partition's assignment, leader and ISR.
type Partition struct {
	TopicID        TopicID
	Topic          string
	Partition      int32
	Replicas       []int32
	ISR            []int32
	Leader         int32 // -1 when none
	LeaderEpoch    int32
	PartitionEpoch int32
	// AddingReplicas and RemovingReplicas are the replicas a reassignment
	// (KIP-455) adds and removes; both are in Replicas until it
	// completes. Empty when none is in progress.
	AddingReplicas   []int32
	RemovingReplicas []int32
	// ELR is the eligible leader replicas (KIP-966): replicas that left
	// the ISR while it was below min.insync.replicas, so hold every
	// record below the high watermark, and may lead cleanly once the ISR
	// is empty. LastKnownELR is the partition's last leader when it went
	// leaderless, kept for Kafka's balanced recovery. Both are empty
	// while eligible.leader.replicas.version is 0.
	ELR          []int32
	LastKnownELR []int32
	// Directories are the log dirs of Replicas, aligned with them
	// (KIP-858): UNASSIGNED (zero) for a replica its broker has not
	// placed yet. Empty in a log written before dirs were recorded.
	Directories []DirectoryID
}

// State is the state machine the metadata log is applied to. It is not safe
// for concurrent use: its owner (a broker or the controller) guards it.
type State struct {
	// Offset is the offset of the last applied record, -1 before any.
	Offset int64

	Brokers        map[int32]*Broker
	Topics         map[string]*Topic
	TopicsByID     map[TopicID]*Topic
	BrokerConfigs  map[string]map[string]string // "" is the cluster default
	GroupConfigs   map[string]map[string]string // by group id
	NextProducerID int64
	ClientQuotas   map[string]*Quota // by QuotaKey (quotas.go)
	ACLs           map[string]*ACL   // by record id (acls.go)
	Scram          map[ScramKey]*ScramCredential
	// Features are the finalized feature levels (features.go), by
	// name: metadata.version once the cluster is formatted, and every
	// other feature above level 0 (a feature at level 0 is absent, as
	// in Kafka).
	Features map[string]int16
}

// NewState returns the empty state.
func NewState() *State {
	return &State{
		Offset:        -1,
		Brokers:       make(map[int32]*Broker),
		Topics:        make(map[string]*Topic),
		TopicsByID:    make(map[TopicID]*Topic),
		BrokerConfigs: make(map[string]map[string]string),
		GroupConfigs:  make(map[string]map[string]string),
	}
}

// Apply applies one record at offset. Records that do not fit the state
// (a partition of an unknown topic, say) are errors: the log is written only
// by the controller, which validates against the same state, so an error
// here means a bug, and the caller should report it loudly.
func (s *State) Apply(offset int64, r Record) error {
	if offset <= s.Offset {
		return fmt.Errorf("metadata: record at offset %d applied after %d", offset, s.Offset)
	}
	s.Offset = offset
	switch r := r.(type) {
	case *RegisterBroker:
		s.Brokers[r.ID] = &Broker{ID: r.ID, Host: r.Host, Port: r.Port, Rack: r.Rack, Epoch: r.Epoch, Fenced: r.Fenced, Listeners: slices.Clone(r.Listeners), LogDirs: slices.Clone(r.LogDirs)}
	case *BrokerRegistrationChange:
		b := s.Brokers[r.ID]
		if b == nil {
			return fmt.Errorf("metadata: registration change of unknown broker %d", r.ID)
		}
		b.OfflineLogDirs = nil
		for _, d := range b.LogDirs {
			if !slices.Contains(r.LogDirs, d) {
				b.OfflineLogDirs = append(b.OfflineLogDirs, d)
			}
		}
	case *FenceBroker:
		b := s.Brokers[r.ID]
		if b == nil {
			return fmt.Errorf("metadata: fence of unknown broker %d", r.ID)
		}
		b.Fenced = r.Fenced
	case *UnregisterBroker:
		delete(s.Brokers, r.ID)
	case *CreateTopic:
		if _, ok := s.Topics[r.Name]; ok {
			return fmt.Errorf("metadata: topic %q created twice", r.Name)
		}
		t := &Topic{Name: r.Name, ID: r.ID, Configs: make(map[string]string, len(r.Configs))}
		for k, v := range r.Configs {
			t.Configs[k] = v
		}
		s.Topics[r.Name] = t
		s.TopicsByID[r.ID] = t
	case *PartitionRecord:
		t := s.TopicsByID[r.TopicID]
		if t == nil {
			return fmt.Errorf("metadata: partition of unknown topic %s", r.TopicID)
		}
		if int(r.Partition) != len(t.Partitions) {
			return fmt.Errorf("metadata: partition %d of %q out of order (have %d)", r.Partition, t.Name, len(t.Partitions))
		}
		t.Partitions = append(t.Partitions, &Partition{
			TopicID: r.TopicID, Topic: t.Name, Partition: r.Partition,
			Replicas: slices.Clone(r.Replicas), ISR: slices.Clone(r.ISR),
			Leader: r.Leader, LeaderEpoch: r.LeaderEpoch, PartitionEpoch: r.PartitionEpoch,
			AddingReplicas: slices.Clone(r.AddingReplicas), RemovingReplicas: slices.Clone(r.RemovingReplicas),
			ELR: slices.Clone(r.ELR), LastKnownELR: slices.Clone(r.LastKnownELR),
			Directories: slices.Clone(r.Directories),
		})
	case *PartitionChange:
		p := s.Partition(r.TopicID, r.Partition)
		if p == nil {
			return fmt.Errorf("metadata: change of unknown partition %s/%d", r.TopicID, r.Partition)
		}
		if r.Leader != nil && *r.Leader != p.Leader {
			p.Leader = *r.Leader
			p.LeaderEpoch++
		}
		if r.ISR != nil {
			p.ISR = slices.Clone(r.ISR)
		}
		if r.Replicas != nil {
			if r.Directories == nil && len(p.Directories) > 0 {
				// Keep each remaining replica's dir; a new one is
				// unassigned.
				dirs := make([]DirectoryID, len(r.Replicas))
				for i, b := range r.Replicas {
					dirs[i] = p.Directory(b)
				}
				p.Directories = dirs
			}
			p.Replicas = slices.Clone(r.Replicas)
		}
		if r.Directories != nil {
			p.Directories = slices.Clone(r.Directories)
		}
		if r.AddingReplicas != nil {
			p.AddingReplicas = slices.Clone(r.AddingReplicas)
		}
		if r.RemovingReplicas != nil {
			p.RemovingReplicas = slices.Clone(r.RemovingReplicas)
		}
		if r.ELR != nil {
			p.ELR = slices.Clone(r.ELR)
		}
		if r.LastKnownELR != nil {
			p.LastKnownELR = slices.Clone(r.LastKnownELR)
		}
		p.PartitionEpoch++
	case *RemoveTopic:
		t := s.TopicsByID[r.ID]
		if t == nil {
			return fmt.Errorf("metadata: removal of unknown topic %s", r.ID)
		}
		delete(s.TopicsByID, r.ID)
		delete(s.Topics, t.Name)
	case *ConfigChange:
		var m map[string]string
		switch r.ResourceType {
		case 2:
			t := s.Topics[r.Name]
			if t == nil {
				return fmt.Errorf("metadata: config of unknown topic %q", r.Name)
			}
			m = t.Configs
		case 4:
			m = s.BrokerConfigs[r.Name]
			if m == nil {
				m = make(map[string]string)
				s.BrokerConfigs[r.Name] = m
			}
		case ResourceGroup:
			m = s.GroupConfigs[r.Name]
			if m == nil {
				m = make(map[string]string)
				s.GroupConfigs[r.Name] = m
			}
		default:
			return fmt.Errorf("metadata: config of resource type %d", r.ResourceType)
		}
		if r.Value == nil {
			delete(m, r.Key)
		} else {
			m[r.Key] = *r.Value
		}
	case *ClientQuota:
		s.applyClientQuota(r)
	case *ProducerIDs:
		s.NextProducerID = r.First + r.Size
	case *AccessControlEntry:
		s.applyACL(r)
	case *RemoveAccessControlEntry:
		delete(s.ACLs, r.ID)
	case *ScramCredential, *RemoveScramCredential:
		s.applyScram(r)
	case *FeatureLevelRecord:
		return s.applyFeatureLevel(r)
	default:
		return fmt.Errorf("metadata: unknown record %T", r)
	}
	return nil
}

// Partition returns a partition by topic id and index, or nil.
func (s *State) Partition(id TopicID, p int32) *Partition {
	t := s.TopicsByID[id]
	if t == nil || p < 0 || int(p) >= len(t.Partitions) {
		return nil
	}
	return t.Partitions[p]
}

// BrokerIDs returns the registered broker ids in ascending order.
func (s *State) BrokerIDs() []int32 {
	ids := make([]int32, 0, len(s.Brokers))
	for id := range s.Brokers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// TopicNames returns the topic names in ascending order.
func (s *State) TopicNames() []string {
	names := make([]string, 0, len(s.Topics))
	for n := range s.Topics {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
