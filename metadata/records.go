// Package metadata is the cluster's event-sourced metadata: a log of records
// (as KRaft's __cluster_metadata) and the state machine every node builds by
// replaying it. The controller is the only writer; brokers learn everything
// they know about the cluster by reading the log (from a snapshot, or from
// the start) and applying each record to their own State, so two brokers
// that have applied the same prefix agree exactly.
//
// Two logs implement Log: MemLog (one controller, in memory) and RaftLog
// (a Raft quorum of controllers). Both are compacted behind snapshots
// (snapshot.go).
package metadata

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// Record is one metadata change. The concrete types below are the only
// implementations.
type Record interface{ recordType() string }

// TopicID is a topic's 16-byte UUID, as Kafka's.
type TopicID [16]byte

// String renders the id as hex.
func (id TopicID) String() string { return hex.EncodeToString(id[:]) }

// RegisterBroker records a broker joining (or rejoining) the cluster.
type RegisterBroker struct {
	ID        int32
	Host      string
	Port      int32
	Rack      *string
	Epoch     int64 // incremented on every registration of the same id
	Fenced    bool
	Listeners []Listener
	// LogDirs are the ids of the broker's log dirs (BrokerRegistration
	// LogDirs, KIP-858); empty for a broker that registered none.
	LogDirs []DirectoryID `json:",omitempty"`
}

// Listener is one advertised listener of a broker.
type Listener struct {
	Name     string
	Host     string
	Port     int32
	Protocol string // PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
}

// FenceBroker marks a broker fenced (true) or unfenced (false).
type FenceBroker struct {
	ID     int32
	Fenced bool
}

// UnregisterBroker removes a broker.
type UnregisterBroker struct{ ID int32 }

// CreateTopic records a new topic; its partitions follow as
// PartitionRecords.
type CreateTopic struct {
	Name    string
	ID      TopicID
	Configs map[string]string
}

// PartitionRecord creates a partition with its assignment.
type PartitionRecord struct {
	TopicID     TopicID
	Partition   int32
	Replicas    []int32
	ISR         []int32
	Leader      int32
	LeaderEpoch int32
	// ELR and LastKnownELR are Kafka's EligibleLeaderReplicas and
	// LastKnownElr (KIP-966), tagged fields of its PartitionRecord: empty
	// for a new partition.
	ELR          []int32 `json:",omitempty"`
	LastKnownELR []int32 `json:",omitempty"`
	// PartitionEpoch, AddingReplicas and RemovingReplicas are Kafka's
	// PartitionRecord fields of the same names: zero and empty for a new
	// partition, set by a snapshot of one that changed since.
	PartitionEpoch   int32   `json:",omitempty"`
	AddingReplicas   []int32 `json:",omitempty"`
	RemovingReplicas []int32 `json:",omitempty"`
	// Directories are the log dirs of the replicas, aligned with
	// Replicas (KIP-858); empty in a record written before dirs were
	// recorded, which reads as every replica UNASSIGNED.
	Directories []DirectoryID `json:",omitempty"`
}

// PartitionChange changes a partition's leader and/or ISR. A nil field is
// unchanged. A leader change bumps the leader epoch; any change bumps the
// partition epoch.
type PartitionChange struct {
	TopicID   TopicID
	Partition int32
	Leader    *int32
	ISR       []int32
	Replicas  []int32
	// AddingReplicas and RemovingReplicas replace the partition's
	// (KIP-455); nil leaves them, an empty non-nil slice clears them.
	AddingReplicas   []int32
	RemovingReplicas []int32
	// ELR and LastKnownELR replace the partition's eligible leader
	// replicas and last known ELR (KIP-966; Kafka's PartitionChangeRecord
	// EligibleLeaderReplicas and LastKnownElr, tagged fields): nil leaves
	// them, an empty non-nil slice clears them. A record written before
	// they existed decodes with both nil.
	ELR          []int32
	LastKnownELR []int32
	// Directories replaces the replicas' log dirs, aligned with the
	// replicas after the change (KIP-858); nil leaves them.
	Directories []DirectoryID `json:",omitempty"`
}

// RemoveTopic deletes a topic and all its partitions.
type RemoveTopic struct{ ID TopicID }

// ConfigChange sets (Value non-nil) or deletes a config of a resource.
// ResourceType is Kafka's: 2 topic, 4 broker.
type ConfigChange struct {
	ResourceType int8
	Name         string
	Key          string
	Value        *string
}

// ProducerIDs reserves a block of producer ids [First, First+Size) for a
// broker (InitProducerId, later).
type ProducerIDs struct {
	Broker int32
	First  int64
	Size   int64
}

func (*RegisterBroker) recordType() string   { return "RegisterBroker" }
func (*FenceBroker) recordType() string      { return "FenceBroker" }
func (*UnregisterBroker) recordType() string { return "UnregisterBroker" }
func (*CreateTopic) recordType() string      { return "CreateTopic" }
func (*PartitionRecord) recordType() string  { return "PartitionRecord" }
func (*PartitionChange) recordType() string  { return "PartitionChange" }
func (*RemoveTopic) recordType() string      { return "RemoveTopic" }
func (*ConfigChange) recordType() string     { return "ConfigChange" }
func (*ProducerIDs) recordType() string      { return "ProducerIDs" }

// FeatureLevelRecord finalizes one feature at a level (KIP-584, KIP-778):
// Kafka's FeatureLevelRecord (metadata api key 12, version 0). Level 0
// takes the feature out of the finalized set. Unlike the records above,
// which travel as JSON, it travels in Kafka's own bytes (AppendTo), inside
// the record envelope of codec.go.
type FeatureLevelRecord struct {
	Name         string
	FeatureLevel int16
}

func (*FeatureLevelRecord) recordType() string { return "FeatureLevelRecord" }

// featureLevelRecordKey is FeatureLevelRecord's api key in Kafka's
// metadata record schema.
const featureLevelRecordKey = 12

// AppendTo appends the record as Kafka's MetadataRecordSerde writes it:
// the frame version (1), the api key (12) and the record version (0) as
// unsigned varints, then the version 0 fields, which are flexible: Name as
// a compact string (its length + 1 as an unsigned varint, then its bytes),
// FeatureLevel as a big-endian int16, and an empty tagged-field section
// (a zero count).
func (r *FeatureLevelRecord) AppendTo(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, 1)
	dst = binary.AppendUvarint(dst, featureLevelRecordKey)
	dst = binary.AppendUvarint(dst, 0)
	dst = binary.AppendUvarint(dst, uint64(len(r.Name))+1)
	dst = append(dst, r.Name...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(r.FeatureLevel))
	return binary.AppendUvarint(dst, 0)
}

// ReadFrom parses bytes written by AppendTo (or by Kafka). Tagged fields
// it does not know are skipped, as Kafka's reader skips them; trailing
// bytes are an error, as in MetadataRecordSerde.
func (r *FeatureLevelRecord) ReadFrom(b []byte) error {
	uv := func(what string) (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, fmt.Errorf("metadata: FeatureLevelRecord: reading %s", what)
		}
		b = b[n:]
		return v, nil
	}
	frame, err := uv("frame version")
	if err != nil {
		return err
	}
	if frame != 1 {
		return fmt.Errorf("metadata: FeatureLevelRecord: frame version %d, only 1 is known", frame)
	}
	key, err := uv("api key")
	if err != nil {
		return err
	}
	if key != featureLevelRecordKey {
		return fmt.Errorf("metadata: FeatureLevelRecord: api key %d, want %d", key, featureLevelRecordKey)
	}
	version, err := uv("version")
	if err != nil {
		return err
	}
	if version != 0 {
		return fmt.Errorf("metadata: FeatureLevelRecord: version %d, only 0 is known", version)
	}
	n, err := uv("name length")
	if err != nil {
		return err
	}
	if n == 0 || n-1 > uint64(len(b)) {
		return errors.New("metadata: FeatureLevelRecord: bad name length")
	}
	name := string(b[:n-1])
	b = b[n-1:]
	if len(b) < 2 {
		return errors.New("metadata: FeatureLevelRecord: short feature level")
	}
	level := int16(binary.BigEndian.Uint16(b))
	b = b[2:]
	tags, err := uv("tagged field count")
	if err != nil {
		return err
	}
	for ; tags > 0; tags-- {
		if _, err := uv("tag"); err != nil {
			return err
		}
		size, err := uv("tag size")
		if err != nil {
			return err
		}
		if size > uint64(len(b)) {
			return errors.New("metadata: FeatureLevelRecord: bad tagged field size")
		}
		b = b[size:]
	}
	if len(b) > 0 {
		return fmt.Errorf("metadata: FeatureLevelRecord: %d bytes of garbage after the record", len(b))
	}
	r.Name, r.FeatureLevel = name, level
	return nil
}

// MarshalJSON puts the record's Kafka bytes in the envelope (as a base64
// JSON string).
func (r *FeatureLevelRecord) MarshalJSON() ([]byte, error) {
	return json.Marshal(r.AppendTo(nil))
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (r *FeatureLevelRecord) UnmarshalJSON(b []byte) error {
	var raw []byte
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	return r.ReadFrom(raw)
}
