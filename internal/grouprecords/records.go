package grouprecords

// The records, field by field as Kafka 4.2's schemas have them. Every
// value is version 0, the only one these schemas define.

// Key is the key of a consumer-group record: its type, the group, and,
// for the per-member records (member metadata, target assignment member,
// current member assignment), the member. Kafka's schemas:
//
//	ConsumerGroupMetadataKey                 (type 3): GroupId string
//	ConsumerGroupPartitionMetadataKey        (type 4): GroupId string
//	ConsumerGroupMemberMetadataKey           (type 5): GroupId string, MemberId string
//	ConsumerGroupTargetAssignmentMetadataKey (type 6): GroupId string
//	ConsumerGroupTargetAssignmentMemberKey   (type 7): GroupId string, MemberId string
//	ConsumerGroupCurrentMemberAssignmentKey  (type 8): GroupId string, MemberId string
type Key struct {
	Type     int16
	GroupID  string
	MemberID string // types 5, 7 and 8
}

// perMember reports whether records of type t are keyed by member too.
func perMember(t int16) bool {
	return t == TypeConsumerGroupMemberMetadata || t == TypeConsumerGroupTargetAssignmentMember ||
		t == TypeConsumerGroupCurrentMemberAssignment
}

// Known reports whether t is one of the consumer-group record types.
func Known(t int16) bool {
	return t >= TypeConsumerGroupMetadata && t <= TypeConsumerGroupCurrentMemberAssignment
}

// AppendTo appends the key's bytes to dst.
func (k Key) AppendTo(dst []byte) []byte {
	w := writer{dst}
	w.i16(k.Type)
	w.str(k.GroupID)
	if perMember(k.Type) {
		w.str(k.MemberID)
	}
	return w.b
}

// ReadFrom decodes a key of any consumer-group record type.
func (k *Key) ReadFrom(src []byte) error {
	r := reader{b: src}
	*k = Key{Type: r.i16()}
	if r.err == nil && !Known(k.Type) {
		return ErrType
	}
	k.GroupID = r.str()
	if perMember(k.Type) {
		k.MemberID = r.str()
	}
	return r.done()
}

// ConsumerGroupMetadataValue is the group's epoch (ConsumerGroupMetadataValue,
// flexible):
//
//	Epoch        int32
//	MetadataHash int64, tagged field 0, default 0 (Kafka 4.1+, KIP-1101):
//	             the hash of the subscribed topics' metadata, written
//	             only when not 0
type ConsumerGroupMetadataValue struct {
	Epoch        int32
	MetadataHash int64
}

// AppendTo appends the value (version 0) to dst.
func (v ConsumerGroupMetadataValue) AppendTo(dst []byte) []byte {
	w := writer{dst}
	w.i16(0)
	w.i32(v.Epoch)
	if v.MetadataHash == 0 {
		w.noTags()
		return w.b
	}
	w.uvarint(1) // one tagged field
	w.uvarint(0) // tag 0
	w.uvarint(8) // its size
	w.i64(v.MetadataHash)
	return w.b
}

// ReadFrom decodes the value.
func (v *ConsumerGroupMetadataValue) ReadFrom(src []byte) error {
	r := reader{b: src}
	r.version()
	*v = ConsumerGroupMetadataValue{Epoch: r.i32()}
	r.tags(func(tag uint64, f *reader) {
		if tag == 0 {
			v.MetadataHash = f.i64()
			f.err = f.done()
		}
	})
	return r.done()
}

// ConsumerGroupMemberMetadataValue is a member's subscription and identity
// (ConsumerGroupMemberMetadataValue, flexible):
//
//	InstanceId            compact nullable string
//	RackId                compact nullable string
//	ClientId              compact string
//	ClientHost            compact string
//	SubscribedTopicNames  compact array of compact strings
//	SubscribedTopicRegex  compact nullable string
//	RebalanceTimeoutMs    int32
//	ServerAssignor        compact nullable string
//	ClassicMemberMetadata nullable struct, tagged field 0
//
// ClassicMemberMetadata is null for a member of the consumer protocol.
// Its schema's "default": null is read by Kafka's generator as no default
// (an empty struct), so a null is written explicitly (tag 0, size 1, a 0
// byte), an empty struct is left out, and any other is written after a 1
// byte; a value without tag 0 reads back as the empty struct.
type ConsumerGroupMemberMetadataValue struct {
	InstanceID             *string
	RackID                 *string
	ClientID               string
	ClientHost             string
	SubscribedTopicNames   []string
	SubscribedTopicRegex   *string
	RebalanceTimeoutMillis int32
	ServerAssignor         *string
	ClassicMemberMetadata  *ClassicMemberMetadata
}

// ClassicMemberMetadata is what a member of a consumer group that joined
// with the classic protocol (JoinGroup) supports:
//
//	SessionTimeoutMs   int32
//	SupportedProtocols compact array of {Name compact string, Metadata compact bytes, tagged fields}
//	tagged fields
type ClassicMemberMetadata struct {
	SessionTimeoutMillis int32
	SupportedProtocols   []ClassicProtocol
}

// ClassicProtocol is one protocol a classic member supports.
type ClassicProtocol struct {
	Name     string
	Metadata []byte
}

func (c *ClassicMemberMetadata) isDefault() bool {
	return c.SessionTimeoutMillis == 0 && len(c.SupportedProtocols) == 0
}

func (c *ClassicMemberMetadata) appendTo(w *writer) {
	w.i32(c.SessionTimeoutMillis)
	w.arrayLen(len(c.SupportedProtocols))
	for _, p := range c.SupportedProtocols {
		w.cstr(p.Name)
		w.cbytes(p.Metadata)
		w.noTags()
	}
	w.noTags()
}

func (c *ClassicMemberMetadata) readFrom(r *reader) {
	c.SessionTimeoutMillis = r.i32()
	n := r.arrayLen(3)
	for range n {
		p := ClassicProtocol{Name: r.cstr(), Metadata: r.cbytes()}
		r.tags(nil)
		c.SupportedProtocols = append(c.SupportedProtocols, p)
	}
	r.tags(nil)
}

// AppendTo appends the value (version 0) to dst.
func (v ConsumerGroupMemberMetadataValue) AppendTo(dst []byte) []byte {
	w := writer{dst}
	w.i16(0)
	w.cnstr(v.InstanceID)
	w.cnstr(v.RackID)
	w.cstr(v.ClientID)
	w.cstr(v.ClientHost)
	w.arrayLen(len(v.SubscribedTopicNames))
	for _, t := range v.SubscribedTopicNames {
		w.cstr(t)
	}
	w.cnstr(v.SubscribedTopicRegex)
	w.i32(v.RebalanceTimeoutMillis)
	w.cnstr(v.ServerAssignor)
	switch c := v.ClassicMemberMetadata; {
	case c == nil:
		w.uvarint(1) // one tagged field
		w.uvarint(0) // tag 0
		w.uvarint(1) // its size
		w.uvarint(0) // null
	case c.isDefault():
		w.noTags()
	default:
		var s writer
		s.uvarint(1) // present
		c.appendTo(&s)
		w.uvarint(1)
		w.uvarint(0)
		w.uvarint(uint64(len(s.b)))
		w.b = append(w.b, s.b...)
	}
	return w.b
}

// ReadFrom decodes the value.
func (v *ConsumerGroupMemberMetadataValue) ReadFrom(src []byte) error {
	r := reader{b: src}
	r.version()
	*v = ConsumerGroupMemberMetadataValue{
		InstanceID: r.cnstr(),
		RackID:     r.cnstr(),
		ClientID:   r.cstr(),
		ClientHost: r.cstr(),
	}
	n := r.arrayLen(1)
	v.SubscribedTopicNames = make([]string, 0, n)
	for range n {
		v.SubscribedTopicNames = append(v.SubscribedTopicNames, r.cstr())
	}
	v.SubscribedTopicRegex = r.cnstr()
	v.RebalanceTimeoutMillis = r.i32()
	v.ServerAssignor = r.cnstr()
	v.ClassicMemberMetadata = &ClassicMemberMetadata{}
	r.tags(func(tag uint64, f *reader) {
		if tag != 0 {
			return
		}
		if f.uvarint() == 0 {
			v.ClassicMemberMetadata = nil
		} else {
			v.ClassicMemberMetadata.readFrom(f)
		}
		f.err = f.done()
	})
	return r.done()
}

// TopicPartitions are partitions of one topic, by topic id: the
// TopicPartition(s) struct of the assignment records.
//
//	TopicId    uuid
//	Partitions compact array of int32
//	tagged fields
type TopicPartitions struct {
	TopicID    [16]byte
	Partitions []int32
}

func appendTopicPartitions(w *writer, ts []TopicPartitions) {
	w.arrayLen(len(ts))
	for _, t := range ts {
		w.uuid(t.TopicID)
		w.int32s(t.Partitions)
		w.noTags()
	}
}

func readTopicPartitions(r *reader) []TopicPartitions {
	n := r.arrayLen(18)
	out := make([]TopicPartitions, 0, n)
	for range n {
		t := TopicPartitions{TopicID: r.uuid(), Partitions: r.int32s()}
		r.tags(nil) // KIP-1251's AssignmentEpochs (tag 0, Kafka 4.3) among them
		out = append(out, t)
	}
	return out
}

// ConsumerGroupTargetAssignmentMetadataValue is the epoch of the group's
// target assignment (ConsumerGroupTargetAssignmentMetadataValue,
// flexible):
//
//	AssignmentEpoch int32
type ConsumerGroupTargetAssignmentMetadataValue struct {
	AssignmentEpoch int32
}

// AppendTo appends the value (version 0) to dst.
func (v ConsumerGroupTargetAssignmentMetadataValue) AppendTo(dst []byte) []byte {
	w := writer{dst}
	w.i16(0)
	w.i32(v.AssignmentEpoch)
	w.noTags()
	return w.b
}

// ReadFrom decodes the value.
func (v *ConsumerGroupTargetAssignmentMetadataValue) ReadFrom(src []byte) error {
	r := reader{b: src}
	r.version()
	*v = ConsumerGroupTargetAssignmentMetadataValue{AssignmentEpoch: r.i32()}
	r.tags(nil)
	return r.done()
}

// ConsumerGroupTargetAssignmentMemberValue is a member's target assignment
// (ConsumerGroupTargetAssignmentMemberValue, flexible):
//
//	TopicPartitions compact array of TopicPartitions
type ConsumerGroupTargetAssignmentMemberValue struct {
	TopicPartitions []TopicPartitions
}

// AppendTo appends the value (version 0) to dst.
func (v ConsumerGroupTargetAssignmentMemberValue) AppendTo(dst []byte) []byte {
	w := writer{dst}
	w.i16(0)
	appendTopicPartitions(&w, v.TopicPartitions)
	w.noTags()
	return w.b
}

// ReadFrom decodes the value.
func (v *ConsumerGroupTargetAssignmentMemberValue) ReadFrom(src []byte) error {
	r := reader{b: src}
	r.version()
	*v = ConsumerGroupTargetAssignmentMemberValue{TopicPartitions: readTopicPartitions(&r)}
	r.tags(nil)
	return r.done()
}

// Member states of ConsumerGroupCurrentMemberAssignmentValue.State
// (Kafka's MemberState).
const (
	MemberStable               int8 = 0 // the member owns its target assignment
	MemberUnrevokedPartitions  int8 = 1 // it must give up partitions first
	MemberUnreleasedPartitions int8 = 2 // partitions of its target are still owned by others
	MemberUnknown              int8 = 127
)

// ConsumerGroupCurrentMemberAssignmentValue is where a member is in its
// reconciliation (ConsumerGroupCurrentMemberAssignmentValue, flexible):
//
//	MemberEpoch                 int32
//	PreviousMemberEpoch         int32
//	State                       int8
//	AssignedPartitions          compact array of TopicPartitions
//	PartitionsPendingRevocation compact array of TopicPartitions
//
// A static member that left to come back (heartbeat epoch -2) is written
// with MemberEpoch -2.
type ConsumerGroupCurrentMemberAssignmentValue struct {
	MemberEpoch                 int32
	PreviousMemberEpoch         int32
	State                       int8
	AssignedPartitions          []TopicPartitions
	PartitionsPendingRevocation []TopicPartitions
}

// AppendTo appends the value (version 0) to dst.
func (v ConsumerGroupCurrentMemberAssignmentValue) AppendTo(dst []byte) []byte {
	w := writer{dst}
	w.i16(0)
	w.i32(v.MemberEpoch)
	w.i32(v.PreviousMemberEpoch)
	w.i8(v.State)
	appendTopicPartitions(&w, v.AssignedPartitions)
	appendTopicPartitions(&w, v.PartitionsPendingRevocation)
	w.noTags()
	return w.b
}

// ReadFrom decodes the value.
func (v *ConsumerGroupCurrentMemberAssignmentValue) ReadFrom(src []byte) error {
	r := reader{b: src}
	r.version()
	*v = ConsumerGroupCurrentMemberAssignmentValue{
		MemberEpoch:         r.i32(),
		PreviousMemberEpoch: r.i32(),
		State:               r.i8(),
	}
	v.AssignedPartitions = readTopicPartitions(&r)
	v.PartitionsPendingRevocation = readTopicPartitions(&r)
	r.tags(nil)
	return r.done()
}
