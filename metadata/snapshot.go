package metadata

// Metadata snapshots (KIP-630). As in KRaft, a snapshot is the metadata
// image written as records: replaying a snapshot's records into an empty
// State gives the State the log had at the snapshot's offset, and the log
// below it may then be dropped. The records are kcluster's own (the ones
// the log carries, in their wire form from codec.go); the frame around
// them is kcluster's too, not Kafka's record batches:
//
//	"KCSN" | version 1 (1 byte) | offset (int64) | epoch (uint64) |
//	record count (uvarint) | per record: length (uvarint), EncodeRecord bytes |
//	CRC-32C of everything before it (uint32, big-endian)
//
// all integers big-endian. Offset is the offset of the last record the
// snapshot covers (Kafka names a snapshot by the end offset, Offset+1, and
// the epoch of that record); epoch is the Raft term of that record (0 in
// the single-controller mode). The checksum makes a torn snapshot (a power
// cut while it was written) an error, never a wrong State.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"sort"
	"strings"
)

// Snapshot is the metadata state at an offset, as the records that rebuild
// it (KIP-630's snapshot). Readers treat it as immutable.
type Snapshot struct {
	// Offset is the offset of the last record the snapshot covers: the
	// log continues at Offset+1. -1 is the empty log's.
	Offset int64
	// Epoch is the Raft term of the record at Offset (0 outside the
	// quorum mode).
	Epoch uint64
	// Records rebuild the State in order.
	Records []Record
}

// EndOffset is Kafka's name of the snapshot (its SnapshotId.EndOffset):
// the offset of the first record it does not cover.
func (sn *Snapshot) EndOffset() int64 { return sn.Offset + 1 }

// ErrSnapshotCorrupt is returned by DecodeSnapshot for bytes that are not
// a whole snapshot (torn by a crash, or not a snapshot at all).
var ErrSnapshotCorrupt = errors.New("metadata: snapshot corrupt")

// Snapshot returns the state as a snapshot at its offset, with epoch.
func (s *State) Snapshot(epoch uint64) *Snapshot {
	return &Snapshot{Offset: s.Offset, Epoch: epoch, Records: s.Records()}
}

// Records returns records that, applied in order to an empty State, give
// s (its Offset aside): what KRaft's image writers emit. The order is
// deterministic, so two equal states give equal records: features first
// (metadata.version leads, as in Kafka's snapshots), then brokers, topics
// with their partitions, configs, quotas, ACLs, SCRAM credentials and the
// producer id block.
func (s *State) Records() []Record {
	var out []Record
	if lvl, ok := s.Features[FeatureMetadataVersion]; ok {
		out = append(out, &FeatureLevelRecord{Name: FeatureMetadataVersion, FeatureLevel: lvl})
	}
	for _, name := range sortedKeys(s.Features) {
		if name != FeatureMetadataVersion {
			out = append(out, &FeatureLevelRecord{Name: name, FeatureLevel: s.Features[name]})
		}
	}
	for _, id := range s.BrokerIDs() {
		b := s.Brokers[id]
		r := &RegisterBroker{ID: b.ID, Host: b.Host, Port: b.Port, Rack: b.Rack,
			Epoch: b.Epoch, Fenced: b.Fenced}
		if len(b.Listeners) > 0 {
			r.Listeners = slices.Clone(b.Listeners)
		}
		if len(b.LogDirs) > 0 {
			r.LogDirs = slices.Clone(b.LogDirs)
		}
		out = append(out, r)
		if len(b.OfflineLogDirs) > 0 {
			out = append(out, &BrokerRegistrationChange{ID: b.ID, Epoch: b.Epoch, LogDirs: nonNilDirs(b.OnlineLogDirs())})
		}
	}
	for _, name := range s.TopicNames() {
		t := s.Topics[name]
		out = append(out, &CreateTopic{Name: t.Name, ID: t.ID, Configs: clonedMap(t.Configs)})
		for _, p := range t.Partitions {
			out = append(out, &PartitionRecord{
				TopicID: p.TopicID, Partition: p.Partition,
				Replicas: ids(p.Replicas), ISR: ids(p.ISR),
				Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch,
				AddingReplicas: ids(p.AddingReplicas), RemovingReplicas: ids(p.RemovingReplicas),
				ELR: ids(p.ELR), LastKnownELR: ids(p.LastKnownELR),
				Directories: slices.Clone(p.Directories),
			})
		}
	}
	configs := func(typ int8, m map[string]map[string]string) {
		for _, name := range sortedKeys(m) {
			for _, k := range sortedKeys(m[name]) {
				v := m[name][k]
				out = append(out, &ConfigChange{ResourceType: typ, Name: name, Key: k, Value: &v})
			}
		}
	}
	configs(ResourceBroker, s.BrokerConfigs)
	configs(ResourceGroup, s.GroupConfigs)
	for _, k := range sortedKeys(s.ClientQuotas) {
		q := s.ClientQuotas[k]
		for _, key := range sortedKeys(q.Values) {
			v := q.Values[key]
			out = append(out, &ClientQuota{Entity: slices.Clone(q.Entity), Key: key, Value: &v})
		}
	}
	for _, id := range sortedKeys(s.ACLs) {
		out = append(out, &AccessControlEntry{ID: id, ACL: *s.ACLs[id]})
	}
	keys := make([]ScramKey, 0, len(s.Scram))
	for k := range s.Scram {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if c := strings.Compare(keys[i].User, keys[j].User); c != 0 {
			return c < 0
		}
		return keys[i].Mechanism < keys[j].Mechanism
	})
	for _, k := range keys {
		c := *s.Scram[k]
		out = append(out, &c)
	}
	if s.NextProducerID != 0 {
		// Kafka's ProducerIdsRecord carries the next producer id; a
		// block of size 0 starting there sets it.
		out = append(out, &ProducerIDs{Broker: -1, First: s.NextProducerID})
	}
	return out
}

// ids clones a list of broker ids, nil when empty: a snapshot does not
// keep the difference, so equal states give equal bytes.
func ids(s []int32) []int32 {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

func clonedMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// State replays the snapshot into a new State at the snapshot's offset.
func (sn *Snapshot) State() (*State, error) {
	s := NewState()
	for i, r := range sn.Records {
		s.Offset = -1
		if err := s.Apply(0, r); err != nil {
			return nil, fmt.Errorf("metadata: snapshot at %d, record %d: %w", sn.Offset, i, err)
		}
	}
	s.Offset = sn.Offset
	return s, nil
}

var (
	snapshotMagic = []byte("KCSN")
	castagnoli    = crc32.MakeTable(crc32.Castagnoli)
)

const snapshotVersion = 1

// EncodeSnapshot returns the snapshot's bytes (the format at the top of
// this file).
func EncodeSnapshot(sn *Snapshot) ([]byte, error) {
	b := append([]byte(nil), snapshotMagic...)
	b = append(b, snapshotVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(sn.Offset))
	b = binary.BigEndian.AppendUint64(b, sn.Epoch)
	b = binary.AppendUvarint(b, uint64(len(sn.Records)))
	for _, r := range sn.Records {
		rb, err := EncodeRecord(r)
		if err != nil {
			return nil, err
		}
		b = binary.AppendUvarint(b, uint64(len(rb)))
		b = append(b, rb...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// DecodeSnapshot parses EncodeSnapshot's bytes; anything else, a torn
// snapshot included, is ErrSnapshotCorrupt.
func DecodeSnapshot(b []byte) (*Snapshot, error) {
	const head = 4 + 1 + 8 + 8
	if len(b) < head+1+4 || !bytes.Equal(b[:4], snapshotMagic) {
		return nil, fmt.Errorf("%w: no header", ErrSnapshotCorrupt)
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrSnapshotCorrupt)
	}
	if body[4] != snapshotVersion {
		return nil, fmt.Errorf("%w: version %d", ErrSnapshotCorrupt, body[4])
	}
	sn := &Snapshot{Offset: int64(binary.BigEndian.Uint64(body[5:])), Epoch: binary.BigEndian.Uint64(body[13:])}
	rest := body[head:]
	n, w := binary.Uvarint(rest)
	if w <= 0 || n > uint64(len(rest)) {
		return nil, fmt.Errorf("%w: record count", ErrSnapshotCorrupt)
	}
	rest = rest[w:]
	sn.Records = make([]Record, 0, n)
	for range n {
		l, w := binary.Uvarint(rest)
		if w <= 0 || l > uint64(len(rest)-w) {
			return nil, fmt.Errorf("%w: record length", ErrSnapshotCorrupt)
		}
		r, err := DecodeRecord(rest[w : w+int(l)])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSnapshotCorrupt, err)
		}
		sn.Records = append(sn.Records, r)
		rest = rest[w+int(l):]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the records", ErrSnapshotCorrupt, len(rest))
	}
	return sn, nil
}
