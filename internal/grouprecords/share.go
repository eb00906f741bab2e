package grouprecords

// The share-group records of __consumer_offsets (KIP-932), field by field
// as Kafka 4.2's schemas have them
// (group-coordinator/src/main/resources/common/message/ShareGroup*.json).
// Keys are framed as every record type here (an int16 record type, then
// the non-flexible key fields); every value is version 0, flexible.
// Record type 9 was ShareGroupPartitionMetadata, removed by KIP-1101 before
// share groups were production-ready; it is neither written nor read.

// Record types of the share-group records: the int16 a key starts with.
const (
	TypeShareGroupMemberMetadata           int16 = 10
	TypeShareGroupMetadata                 int16 = 11
	TypeShareGroupTargetAssignmentMetadata int16 = 12
	TypeShareGroupTargetAssignmentMember   int16 = 13
	TypeShareGroupCurrentMemberAssignment  int16 = 14
	TypeShareGroupStatePartitionMetadata   int16 = 15
)

// ShareKnown reports whether t is one of the share-group record types.
func ShareKnown(t int16) bool {
	return t >= TypeShareGroupMemberMetadata && t <= TypeShareGroupStatePartitionMetadata
}

func sharePerMember(t int16) bool {
	return t == TypeShareGroupMemberMetadata || t == TypeShareGroupTargetAssignmentMember ||
		t == TypeShareGroupCurrentMemberAssignment
}

// ShareKey is the key of a share-group record. Kafka's schemas:
//
//	ShareGroupMemberMetadataKey           (type 10): GroupId string, MemberId string
//	ShareGroupMetadataKey                 (type 11): GroupId string
//	ShareGroupTargetAssignmentMetadataKey (type 12): GroupId string
//	ShareGroupTargetAssignmentMemberKey   (type 13): GroupId string, MemberId string
//	ShareGroupCurrentMemberAssignmentKey  (type 14): GroupId string, MemberId string
//	ShareGroupStatePartitionMetadataKey   (type 15): GroupId string
type ShareKey struct {
	Type     int16
	GroupID  string
	MemberID string // types 10, 13 and 14
}

// AppendTo appends the key's bytes to dst.
func (k ShareKey) AppendTo(dst []byte) []byte {
	w := writer{dst}
	w.i16(k.Type)
	w.str(k.GroupID)
	if sharePerMember(k.Type) {
		w.str(k.MemberID)
	}
	return w.b
}

// ReadFrom decodes a key of any share-group record type.
func (k *ShareKey) ReadFrom(src []byte) error {
	r := reader{b: src}
	*k = ShareKey{Type: r.i16()}
	if r.err == nil && !ShareKnown(k.Type) {
		return ErrType
	}
	k.GroupID = r.str()
	if sharePerMember(k.Type) {
		k.MemberID = r.str()
	}
	return r.done()
}

// ShareGroupMetadataValue is the group's epoch (ShareGroupMetadataValue):
//
//	Epoch        int32
//	MetadataHash int64, tagged field 0, default 0 (KIP-1101): the hash of
//	             the subscribed topics' metadata, written only when not 0
type ShareGroupMetadataValue struct {
	Epoch        int32
	MetadataHash int64
}

// AppendTo appends the value (version 0) to dst.
func (v ShareGroupMetadataValue) AppendTo(dst []byte) []byte {
	return ConsumerGroupMetadataValue(v).AppendTo(dst) // the same layout
}

// ReadFrom decodes the value.
func (v *ShareGroupMetadataValue) ReadFrom(src []byte) error {
	var c ConsumerGroupMetadataValue
	err := c.ReadFrom(src)
	*v = ShareGroupMetadataValue(c)
	return err
}

// ShareGroupMemberMetadataValue is a member's identity and subscription
// (ShareGroupMemberMetadataValue):
//
//	RackId               compact nullable string
//	ClientId             compact string
//	ClientHost           compact string
//	SubscribedTopicNames compact array of compact strings
type ShareGroupMemberMetadataValue struct {
	RackID               *string
	ClientID             string
	ClientHost           string
	SubscribedTopicNames []string
}

// AppendTo appends the value (version 0) to dst.
func (v ShareGroupMemberMetadataValue) AppendTo(dst []byte) []byte {
	w := writer{dst}
	w.i16(0)
	w.cnstr(v.RackID)
	w.cstr(v.ClientID)
	w.cstr(v.ClientHost)
	w.arrayLen(len(v.SubscribedTopicNames))
	for _, t := range v.SubscribedTopicNames {
		w.cstr(t)
	}
	w.noTags()
	return w.b
}

// ReadFrom decodes the value.
func (v *ShareGroupMemberMetadataValue) ReadFrom(src []byte) error {
	r := reader{b: src}
	r.version()
	*v = ShareGroupMemberMetadataValue{RackID: r.cnstr(), ClientID: r.cstr(), ClientHost: r.cstr()}
	n := r.arrayLen(1)
	v.SubscribedTopicNames = make([]string, 0, n)
	for range n {
		v.SubscribedTopicNames = append(v.SubscribedTopicNames, r.cstr())
	}
	r.tags(nil)
	return r.done()
}

// ShareGroupTargetAssignmentMetadataValue is the epoch of the group's
// target assignment: AssignmentEpoch int32.
type ShareGroupTargetAssignmentMetadataValue = ConsumerGroupTargetAssignmentMetadataValue

// ShareGroupTargetAssignmentMemberValue is a member's target assignment:
// TopicPartitions, a compact array of TopicPartitions.
type ShareGroupTargetAssignmentMemberValue = ConsumerGroupTargetAssignmentMemberValue

// ShareGroupCurrentMemberAssignmentValue is a member's current assignment
// (ShareGroupCurrentMemberAssignmentValue):
//
//	MemberEpoch         int32
//	PreviousMemberEpoch int32
//	State               int8
//	AssignedPartitions  compact array of TopicPartitions
//
// A share-group member has no partitions pending revocation: several
// members may hold one partition.
type ShareGroupCurrentMemberAssignmentValue struct {
	MemberEpoch         int32
	PreviousMemberEpoch int32
	State               int8
	AssignedPartitions  []TopicPartitions
}

// AppendTo appends the value (version 0) to dst.
func (v ShareGroupCurrentMemberAssignmentValue) AppendTo(dst []byte) []byte {
	w := writer{dst}
	w.i16(0)
	w.i32(v.MemberEpoch)
	w.i32(v.PreviousMemberEpoch)
	w.i8(v.State)
	appendTopicPartitions(&w, v.AssignedPartitions)
	w.noTags()
	return w.b
}

// ReadFrom decodes the value.
func (v *ShareGroupCurrentMemberAssignmentValue) ReadFrom(src []byte) error {
	r := reader{b: src}
	r.version()
	*v = ShareGroupCurrentMemberAssignmentValue{MemberEpoch: r.i32(), PreviousMemberEpoch: r.i32(), State: r.i8()}
	v.AssignedPartitions = readTopicPartitions(&r)
	r.tags(nil)
	return r.done()
}

// ShareGroupStatePartitionMetadataValue is which topics' share-partition
// state the group is initializing, has initialized, and is deleting
// (ShareGroupStatePartitionMetadataValue, as Kafka 4.2 has it):
//
//	InitializingTopics compact array of TopicPartitionsInfo
//	InitializedTopics  compact array of TopicPartitionsInfo
//	DeletingTopics     compact array of {TopicId uuid, TopicName compact string, tagged fields}
//
// where TopicPartitionsInfo is {TopicId uuid, TopicName compact string,
// Partitions compact array of int32, CreateTimestamp int64, tagged fields}.
type ShareGroupStatePartitionMetadataValue struct {
	InitializingTopics []ShareTopicPartitions
	InitializedTopics  []ShareTopicPartitions
	DeletingTopics     []ShareTopic
}

// ShareTopicPartitions is a topic, by id and name, and some of its
// partitions (TopicPartitionsInfo); CreateTimestamp is when the topic was
// added to its set, in milliseconds.
type ShareTopicPartitions struct {
	TopicID         [16]byte
	TopicName       string
	Partitions      []int32
	CreateTimestamp int64
}

// ShareTopic is a topic by id and name (TopicInfo).
type ShareTopic struct {
	TopicID   [16]byte
	TopicName string
}

func appendTopicPartitionsInfo(w *writer, ts []ShareTopicPartitions) {
	w.arrayLen(len(ts))
	for _, t := range ts {
		w.uuid(t.TopicID)
		w.cstr(t.TopicName)
		w.int32s(t.Partitions)
		w.i64(t.CreateTimestamp)
		w.noTags()
	}
}

func readTopicPartitionsInfo(r *reader) []ShareTopicPartitions {
	n := r.arrayLen(27)
	out := make([]ShareTopicPartitions, 0, n)
	for range n {
		t := ShareTopicPartitions{TopicID: r.uuid(), TopicName: r.cstr(), Partitions: r.int32s(), CreateTimestamp: r.i64()}
		r.tags(nil)
		out = append(out, t)
	}
	return out
}

// AppendTo appends the value (version 0) to dst.
func (v ShareGroupStatePartitionMetadataValue) AppendTo(dst []byte) []byte {
	w := writer{dst}
	w.i16(0)
	appendTopicPartitionsInfo(&w, v.InitializingTopics)
	appendTopicPartitionsInfo(&w, v.InitializedTopics)
	w.arrayLen(len(v.DeletingTopics))
	for _, t := range v.DeletingTopics {
		w.uuid(t.TopicID)
		w.cstr(t.TopicName)
		w.noTags()
	}
	w.noTags()
	return w.b
}

// ReadFrom decodes the value.
func (v *ShareGroupStatePartitionMetadataValue) ReadFrom(src []byte) error {
	r := reader{b: src}
	r.version()
	*v = ShareGroupStatePartitionMetadataValue{}
	v.InitializingTopics = readTopicPartitionsInfo(&r)
	v.InitializedTopics = readTopicPartitionsInfo(&r)
	n := r.arrayLen(18)
	v.DeletingTopics = make([]ShareTopic, 0, n)
	for range n {
		t := ShareTopic{TopicID: r.uuid(), TopicName: r.cstr()}
		r.tags(nil)
		v.DeletingTopics = append(v.DeletingTopics, t)
	}
	r.tags(nil)
	return r.done()
}
