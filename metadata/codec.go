package metadata

import (
	"encoding/json"
	"fmt"
)

// Records cross the network (brokers fetch the log from the controller) and,
// in the quorum mode, go into Raft entries, so they have a wire form: JSON
// with the record type's name. Metadata is small and rare next to data;
// readability wins over compactness here. A record Kafka defines in its
// own format (FeatureLevelRecord) carries Kafka's bytes in the envelope.

type envelope struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// EncodeRecord returns the wire form of r.
func EncodeRecord(r Record) ([]byte, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return json.Marshal(envelope{Type: r.recordType(), Data: data})
}

// DecodeRecord parses the wire form of a record.
func DecodeRecord(b []byte) (Record, error) {
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("metadata: decoding record: %w", err)
	}
	var r Record
	switch env.Type {
	case "RegisterBroker":
		r = new(RegisterBroker)
	case "FenceBroker":
		r = new(FenceBroker)
	case "UnregisterBroker":
		r = new(UnregisterBroker)
	case "CreateTopic":
		r = new(CreateTopic)
	case "PartitionRecord":
		r = new(PartitionRecord)
	case "PartitionChange":
		r = new(PartitionChange)
	case "RemoveTopic":
		r = new(RemoveTopic)
	case "ConfigChange":
		r = new(ConfigChange)
	case "ClientQuota":
		r = new(ClientQuota)
	case "ProducerIDs":
		r = new(ProducerIDs)
	case "AccessControlEntry":
		r = new(AccessControlEntry)
	case "RemoveAccessControlEntry":
		r = new(RemoveAccessControlEntry)
	case "ScramCredential":
		r = new(ScramCredential)
	case "RemoveScramCredential":
		r = new(RemoveScramCredential)
	case "FeatureLevelRecord":
		r = new(FeatureLevelRecord)
	default:
		return nil, fmt.Errorf("metadata: unknown record type %q", env.Type)
	}
	if err := json.Unmarshal(env.Data, r); err != nil {
		return nil, fmt.Errorf("metadata: decoding %s: %w", env.Type, err)
	}
	return r, nil
}
