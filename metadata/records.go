// Package metadata is the cluster's event-sourced metadata: a log of records
// (as KRaft's __cluster_metadata) and the state machine every node builds by
// replaying it. The controller is the only writer; brokers learn everything
// they know about the cluster by reading the log from the start and applying
// each record to their own State, so two brokers that have applied the same
// prefix agree exactly.
//
// Two logs implement Log: MemLog (one controller, in memory) and, later, a
// Raft quorum of controllers.
package metadata

import (
	"encoding/hex"
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
