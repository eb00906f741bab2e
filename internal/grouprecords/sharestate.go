package grouprecords

// The share coordinator's records of __share_group_state (KIP-932), field
// by field as Kafka's schemas have them
// (share-coordinator/src/main/resources/common/message/ShareSnapshot*.json
// and ShareUpdate*.json). They are framed as the group records are: a key
// is an int16 record type (0 ShareSnapshot, 1 ShareUpdate) then the
// non-flexible key fields; a value is version 0, flexible.
//
// Kafka 4.2's values also carry KIP-1226's DeliveryCompleteCount. It is
// not written here, and decoded only by skipping it as an unknown tagged
// field: the count is recomputed from the state batches.

// Record types of the share coordinator's records.
const (
	TypeShareSnapshot int16 = 0
	TypeShareUpdate   int16 = 1
)

// ShareStateKey is the key of a ShareSnapshot or ShareUpdate record, the
// share-partition it is about. Kafka's schemas (both):
//
//	GroupId   string
//	TopicId   uuid
//	Partition int32
type ShareStateKey struct {
	Type      int16 // TypeShareSnapshot or TypeShareUpdate
	GroupID   string
	TopicID   [16]byte
	Partition int32
}

// AppendTo appends the key's bytes to dst.
func (k ShareStateKey) AppendTo(dst []byte) []byte {
	w := writer{dst}
	w.i16(k.Type)
	w.str(k.GroupID)
	w.uuid(k.TopicID)
	w.i32(k.Partition)
	return w.b
}

// ReadFrom decodes a ShareSnapshot or ShareUpdate key.
func (k *ShareStateKey) ReadFrom(src []byte) error {
	r := reader{b: src}
	*k = ShareStateKey{Type: r.i16()}
	if r.err == nil && k.Type != TypeShareSnapshot && k.Type != TypeShareUpdate {
		return ErrType
	}
	k.GroupID = r.str()
	k.TopicID = r.uuid()
	k.Partition = r.i32()
	return r.done()
}

// StateBatch is a range of offsets in one delivery state:
//
//	FirstOffset   int64
//	LastOffset    int64
//	DeliveryState int8: 0 available, 2 acknowledged, 4 archived
//	DeliveryCount int16
type StateBatch struct {
	FirstOffset   int64
	LastOffset    int64
	DeliveryState int8
	DeliveryCount int16
}

const stateBatchSize = 8 + 8 + 1 + 2 + 1 // with its tagged-field count

func (w *writer) stateBatches(bs []StateBatch) {
	w.arrayLen(len(bs))
	for _, b := range bs {
		w.i64(b.FirstOffset)
		w.i64(b.LastOffset)
		w.i8(b.DeliveryState)
		w.i16(b.DeliveryCount)
		w.noTags()
	}
}

func (r *reader) stateBatches() []StateBatch {
	n := r.arrayLen(stateBatchSize)
	out := make([]StateBatch, 0, n)
	for range n {
		out = append(out, StateBatch{FirstOffset: r.i64(), LastOffset: r.i64(), DeliveryState: r.i8(), DeliveryCount: r.i16()})
		r.tags(nil)
	}
	return out
}

// ShareSnapshotValue is a share-partition's whole state:
//
//	SnapshotEpoch   uint16
//	StateEpoch      int32
//	LeaderEpoch     int32
//	StartOffset     int64
//	CreateTimestamp int64 (ms)
//	WriteTimestamp  int64 (ms)
//	StateBatches    compact array of StateBatch
type ShareSnapshotValue struct {
	SnapshotEpoch   uint16
	StateEpoch      int32
	LeaderEpoch     int32
	StartOffset     int64
	CreateTimestamp int64
	WriteTimestamp  int64
	StateBatches    []StateBatch
}

// AppendTo appends the value (version 0) to dst.
func (v ShareSnapshotValue) AppendTo(dst []byte) []byte {
	w := writer{dst}
	w.i16(0)
	w.i16(int16(v.SnapshotEpoch))
	w.i32(v.StateEpoch)
	w.i32(v.LeaderEpoch)
	w.i64(v.StartOffset)
	w.i64(v.CreateTimestamp)
	w.i64(v.WriteTimestamp)
	w.stateBatches(v.StateBatches)
	w.noTags()
	return w.b
}

// ReadFrom decodes the value.
func (v *ShareSnapshotValue) ReadFrom(src []byte) error {
	r := reader{b: src}
	r.version()
	*v = ShareSnapshotValue{SnapshotEpoch: uint16(r.i16()), StateEpoch: r.i32(), LeaderEpoch: r.i32(), StartOffset: r.i64(),
		CreateTimestamp: r.i64(), WriteTimestamp: r.i64()}
	v.StateBatches = r.stateBatches()
	r.tags(nil)
	return r.done()
}

// ShareUpdateValue is a change to a share-partition's state, laid over
// its last snapshot and the updates since:
//
//	SnapshotEpoch uint16
//	LeaderEpoch   int32
//	StartOffset   int64: -1 when the start offset does not move
//	StateBatches  compact array of StateBatch
type ShareUpdateValue struct {
	SnapshotEpoch uint16
	LeaderEpoch   int32
	StartOffset   int64
	StateBatches  []StateBatch
}

// AppendTo appends the value (version 0) to dst.
func (v ShareUpdateValue) AppendTo(dst []byte) []byte {
	w := writer{dst}
	w.i16(0)
	w.i16(int16(v.SnapshotEpoch))
	w.i32(v.LeaderEpoch)
	w.i64(v.StartOffset)
	w.stateBatches(v.StateBatches)
	w.noTags()
	return w.b
}

// ReadFrom decodes the value.
func (v *ShareUpdateValue) ReadFrom(src []byte) error {
	r := reader{b: src}
	r.version()
	*v = ShareUpdateValue{SnapshotEpoch: uint16(r.i16()), LeaderEpoch: r.i32(), StartOffset: r.i64()}
	v.StateBatches = r.stateBatches()
	r.tags(nil)
	return r.done()
}
