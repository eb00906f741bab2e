package metadata

import (
	"bytes"
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

// The envelope's form as json.Marshal writes it: {"type":"T","data":D}.
// Record type names are plain identifiers (no byte json escapes) and D is
// json.Marshal's own compact output, so EncodeRecord writes the envelope
// around D itself, the same bytes without marshalling D a second time, and
// DecodeRecord reads that form without scanning D twice; any other
// envelope (other spacing, field order) goes through encoding/json.
const (
	envelopeTypePrefix = `{"type":"`
	envelopeDataPrefix = `","data":`
)

// EncodeRecord returns the wire form of r.
func EncodeRecord(r Record) ([]byte, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	t := r.recordType()
	b := make([]byte, 0, len(envelopeTypePrefix)+len(t)+len(envelopeDataPrefix)+len(data)+1)
	b = append(b, envelopeTypePrefix...)
	b = append(b, t...)
	b = append(b, envelopeDataPrefix...)
	b = append(b, data...)
	return append(b, '}'), nil
}

// splitEnvelope returns the type and data of an envelope in
// EncodeRecord's form; ok is false for any other form.
func splitEnvelope(b []byte) (typ string, data []byte, ok bool) {
	rest, ok := bytes.CutPrefix(b, []byte(envelopeTypePrefix))
	if !ok {
		return "", nil, false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 || bytes.IndexByte(rest[:i], '\\') >= 0 {
		return "", nil, false
	}
	typ, rest = string(rest[:i]), rest[i:]
	if rest, ok = bytes.CutPrefix(rest, []byte(envelopeDataPrefix)); !ok || len(rest) < 2 || rest[len(rest)-1] != '}' {
		return "", nil, false
	}
	data = rest[:len(rest)-1]
	if data[0] != '{' || data[len(data)-1] != '}' {
		return "", nil, false
	}
	return typ, data, true
}

// DecodeRecord parses the wire form of a record.
func DecodeRecord(b []byte) (Record, error) {
	if typ, data, ok := splitEnvelope(b); ok {
		if r, err := decodeRecord(envelope{Type: typ, Data: data}); err == nil {
			return r, nil
		}
		// Not EncodeRecord's form after all (say, a field after
		// data): let encoding/json read the whole envelope.
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("metadata: decoding record: %w", err)
	}
	return decodeRecord(env)
}

// decodeRecord parses a record's data by its type.
func decodeRecord(env envelope) (Record, error) {
	var r Record
	switch env.Type {
	case "RegisterBroker":
		r = new(RegisterBroker)
	case "BrokerRegistrationChange":
		r = &BrokerRegistrationChange{}
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
