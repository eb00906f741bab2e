package grouprecords

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
)

// The expected bytes of every test are built here field by field from
// Kafka's schemas, not with the package's writer: big-endian integers,
// int16-length strings in keys, and in values compact strings and arrays
// (length+1 as an unsigned varint; every length here is under 127, so
// one byte), and a tagged-field count (then tag, size, data) at the end
// of every struct.

func i16(v int16) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
func i32(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
func i64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

// key string: int16 length, bytes.
func kstr(s string) []byte { return append(i16(int16(len(s))), s...) }

// compact string: length+1, bytes.
func cstr(s string) []byte { return append([]byte{byte(len(s) + 1)}, s...) }

var (
	null   = []byte{0x00} // compact nullable string: null
	noTags = []byte{0x00} // tagged fields: none
)

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var topicA = [16]byte{0xa0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
var topicB = [16]byte{0xb0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// check encodes, compares with want, and decodes back.
func check[T any](t *testing.T, name string, enc func() []byte, want []byte, dec func([]byte) (T, error), orig T) {
	t.Helper()
	got := enc()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s:\n got % x\nwant % x", name, got, want)
	}
	back, err := dec(got)
	if err != nil {
		t.Fatalf("%s: decoding: %v", name, err)
	}
	if !reflect.DeepEqual(back, orig) {
		t.Fatalf("%s: decoded %+v, want %+v", name, back, orig)
	}
	for i := range got { // every truncation fails, none panics
		if _, err := dec(got[:i]); err == nil {
			t.Fatalf("%s: %d of %d bytes decoded without an error", name, i, len(got))
		}
	}
}

func decKey(b []byte) (Key, error) {
	var k Key
	err := k.ReadFrom(b)
	return k, err
}

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		k    Key
		want []byte
	}{
		// ConsumerGroupMetadataKey: GroupId.
		{Key{Type: TypeConsumerGroupMetadata, GroupID: "grp"}, cat(i16(3), kstr("grp"))},
		// ConsumerGroupPartitionMetadataKey: GroupId (tombstones only).
		{Key{Type: TypeConsumerGroupPartitionMetadata, GroupID: "grp"}, cat(i16(4), kstr("grp"))},
		// ConsumerGroupMemberMetadataKey: GroupId, MemberId.
		{Key{Type: TypeConsumerGroupMemberMetadata, GroupID: "grp", MemberID: "m-1"}, cat(i16(5), kstr("grp"), kstr("m-1"))},
		// ConsumerGroupTargetAssignmentMetadataKey: GroupId.
		{Key{Type: TypeConsumerGroupTargetAssignmentMetadata, GroupID: "grp"}, cat(i16(6), kstr("grp"))},
		// ConsumerGroupTargetAssignmentMemberKey: GroupId, MemberId.
		{Key{Type: TypeConsumerGroupTargetAssignmentMember, GroupID: "grp", MemberID: "m-1"}, cat(i16(7), kstr("grp"), kstr("m-1"))},
		// ConsumerGroupCurrentMemberAssignmentKey: GroupId, MemberId.
		{Key{Type: TypeConsumerGroupCurrentMemberAssignment, GroupID: "grp", MemberID: "m-1"}, cat(i16(8), kstr("grp"), kstr("m-1"))},
	} {
		check(t, "key", func() []byte { return tc.k.AppendTo(nil) }, tc.want, decKey, tc.k)
		if typ, ok := Type(tc.want); !ok || typ != tc.k.Type {
			t.Fatalf("Type(% x) = %d", tc.want, typ)
		}
	}
	// Kafka's other record types are not these keys.
	for _, typ := range []int16{0, 1, 2, 9, 16} {
		if err := new(Key).ReadFrom(cat(i16(typ), kstr("grp"))); err != ErrType {
			t.Fatalf("type %d: %v", typ, err)
		}
	}
}

func TestConsumerGroupMetadataValue(t *testing.T) {
	dec := func(b []byte) (ConsumerGroupMetadataValue, error) {
		var v ConsumerGroupMetadataValue
		err := v.ReadFrom(b)
		return v, err
	}
	// Epoch; MetadataHash 0 is its default and is not written.
	v := ConsumerGroupMetadataValue{Epoch: 7}
	check(t, "no hash", func() []byte { return v.AppendTo(nil) }, cat(i16(0), i32(7), noTags), dec, v)
	// MetadataHash: tagged field 0, 8 bytes.
	v = ConsumerGroupMetadataValue{Epoch: 7, MetadataHash: 0x1122334455667788}
	want := cat(i16(0), i32(7), []byte{1, 0, 8}, i64(0x1122334455667788))
	check(t, "hash", func() []byte { return v.AppendTo(nil) }, want, dec, v)
	// An unknown tagged field (tag 5, 2 bytes) is skipped.
	if got, err := dec(cat(i16(0), i32(7), []byte{1, 5, 2, 0xff, 0xff})); err != nil || got != (ConsumerGroupMetadataValue{Epoch: 7}) {
		t.Fatalf("unknown tag: %+v %v", got, err)
	}
	if _, err := dec(cat(i16(1), i32(7), noTags)); err != ErrVersion {
		t.Fatalf("version 1: %v", err)
	}
}

func TestConsumerGroupMemberMetadataValue(t *testing.T) {
	dec := func(b []byte) (ConsumerGroupMemberMetadataValue, error) {
		var v ConsumerGroupMemberMetadataValue
		err := v.ReadFrom(b)
		return v, err
	}
	s := func(v string) *string { return &v }

	// A dynamic member of the consumer protocol: no instance id, rack or
	// regex; ClassicMemberMetadata null, written as tag 0 of size 1
	// holding a 0.
	v := ConsumerGroupMemberMetadataValue{
		ClientID: "cli", ClientHost: "/127.0.0.1",
		SubscribedTopicNames: []string{"a", "bb"}, RebalanceTimeoutMillis: 45000, ServerAssignor: s("uniform"),
	}
	want := cat(i16(0),
		null,                  // InstanceId
		null,                  // RackId
		cstr("cli"),           // ClientId
		cstr("/127.0.0.1"),    // ClientHost
		[]byte{3},             // SubscribedTopicNames: 2 elements
		cstr("a"), cstr("bb"), //
		null,               // SubscribedTopicRegex
		i32(45000),         // RebalanceTimeoutMs
		cstr("uniform"),    // ServerAssignor
		[]byte{1, 0, 1, 0}, // one tagged field: tag 0, size 1, null
	)
	check(t, "dynamic member", func() []byte { return v.AppendTo(nil) }, want, dec, v)

	// A static member with a rack and a regex, no server assignor.
	v = ConsumerGroupMemberMetadataValue{
		InstanceID: s("i-1"), RackID: s("r1"), ClientID: "c", ClientHost: "h",
		SubscribedTopicNames: []string{}, SubscribedTopicRegex: s("t.*"), RebalanceTimeoutMillis: -1,
	}
	want = cat(i16(0), cstr("i-1"), cstr("r1"), cstr("c"), cstr("h"), []byte{1}, cstr("t.*"), i32(-1), null, []byte{1, 0, 1, 0})
	check(t, "static member", func() []byte { return v.AppendTo(nil) }, want, dec, v)

	// A classic member (KIP-848 online migration): tag 0 holds a 1, then
	// the struct: SessionTimeoutMs, SupportedProtocols, tagged fields.
	v.ClassicMemberMetadata = &ClassicMemberMetadata{SessionTimeoutMillis: 10000, SupportedProtocols: []ClassicProtocol{{Name: "range", Metadata: []byte{9, 9}}}}
	classic := cat([]byte{1}, i32(10000), []byte{2}, cstr("range"), []byte{3, 9, 9}, noTags, noTags)
	want = cat(i16(0), cstr("i-1"), cstr("r1"), cstr("c"), cstr("h"), []byte{1}, cstr("t.*"), i32(-1), null,
		[]byte{1, 0, byte(len(classic))}, classic)
	check(t, "classic member", func() []byte { return v.AppendTo(nil) }, want, dec, v)

	// The empty struct is the field's default: not written, and a value
	// without tag 0 reads back as it.
	v.ClassicMemberMetadata = &ClassicMemberMetadata{}
	want = cat(i16(0), cstr("i-1"), cstr("r1"), cstr("c"), cstr("h"), []byte{1}, cstr("t.*"), i32(-1), null, noTags)
	check(t, "default classic metadata", func() []byte { return v.AppendTo(nil) }, want, dec, v)
}

func TestConsumerGroupTargetAssignmentMetadataValue(t *testing.T) {
	dec := func(b []byte) (ConsumerGroupTargetAssignmentMetadataValue, error) {
		var v ConsumerGroupTargetAssignmentMetadataValue
		err := v.ReadFrom(b)
		return v, err
	}
	v := ConsumerGroupTargetAssignmentMetadataValue{AssignmentEpoch: 12}
	check(t, "target epoch", func() []byte { return v.AppendTo(nil) }, cat(i16(0), i32(12), noTags), dec, v)
	// Kafka 4.3's AssignmentTimestamp (tag 0) is skipped.
	if got, err := dec(cat(i16(0), i32(12), []byte{1, 0, 8}, i64(99))); err != nil || got.AssignmentEpoch != 12 {
		t.Fatalf("with a timestamp: %+v %v", got, err)
	}
}

func TestConsumerGroupTargetAssignmentMemberValue(t *testing.T) {
	dec := func(b []byte) (ConsumerGroupTargetAssignmentMemberValue, error) {
		var v ConsumerGroupTargetAssignmentMemberValue
		err := v.ReadFrom(b)
		return v, err
	}
	v := ConsumerGroupTargetAssignmentMemberValue{TopicPartitions: []TopicPartitions{
		{TopicID: topicA, Partitions: []int32{0, 2}},
		{TopicID: topicB, Partitions: []int32{}},
	}}
	want := cat(i16(0),
		[]byte{3},                                    // TopicPartitions: 2 elements
		topicA[:], []byte{3}, i32(0), i32(2), noTags, // TopicId, Partitions, tags
		topicB[:], []byte{1}, noTags,
		noTags)
	check(t, "target member", func() []byte { return v.AppendTo(nil) }, want, dec, v)
}

func TestConsumerGroupCurrentMemberAssignmentValue(t *testing.T) {
	dec := func(b []byte) (ConsumerGroupCurrentMemberAssignmentValue, error) {
		var v ConsumerGroupCurrentMemberAssignmentValue
		err := v.ReadFrom(b)
		return v, err
	}
	v := ConsumerGroupCurrentMemberAssignmentValue{
		MemberEpoch: 5, PreviousMemberEpoch: 4, State: MemberUnrevokedPartitions,
		AssignedPartitions:          []TopicPartitions{{TopicID: topicA, Partitions: []int32{1}}},
		PartitionsPendingRevocation: []TopicPartitions{{TopicID: topicB, Partitions: []int32{3, 4}}},
	}
	want := cat(i16(0),
		i32(5), i32(4), []byte{1}, // MemberEpoch, PreviousMemberEpoch, State
		[]byte{2}, topicA[:], []byte{2}, i32(1), noTags, // AssignedPartitions
		[]byte{2}, topicB[:], []byte{3}, i32(3), i32(4), noTags, // PartitionsPendingRevocation
		noTags)
	check(t, "current assignment", func() []byte { return v.AppendTo(nil) }, want, dec, v)

	// A static member that left for a restart: epoch -2.
	v = ConsumerGroupCurrentMemberAssignmentValue{MemberEpoch: -2, PreviousMemberEpoch: 4, AssignedPartitions: []TopicPartitions{}, PartitionsPendingRevocation: []TopicPartitions{}}
	check(t, "static leave", func() []byte { return v.AppendTo(nil) }, cat(i16(0), i32(-2), i32(4), []byte{0}, []byte{1}, []byte{1}, noTags), dec, v)

	// Kafka 4.3's AssignmentEpochs (tag 0 of a TopicPartitions) is skipped.
	in := cat(i16(0), i32(5), i32(4), []byte{0},
		[]byte{2}, topicA[:], []byte{2}, i32(1), []byte{1, 0, 5, 2}, i32(5),
		[]byte{1}, noTags)
	got, err := dec(in)
	if err != nil || len(got.AssignedPartitions) != 1 || got.AssignedPartitions[0].Partitions[0] != 1 {
		t.Fatalf("with assignment epochs: %+v %v", got, err)
	}
}

// Counts larger than the bytes that remain are refused at once, not
// looped over.
func TestHugeCounts(t *testing.T) {
	var v ConsumerGroupCurrentMemberAssignmentValue
	huge := []byte{0xff, 0xff, 0xff, 0xff, 0x0f}
	if err := v.ReadFrom(cat(i16(0), i32(1), i32(0), []byte{0}, huge)); err != ErrShort {
		t.Fatalf("huge array: %v", err)
	}
	var m ConsumerGroupMetadataValue
	if err := m.ReadFrom(cat(i16(0), i32(1), huge)); err != ErrShort {
		t.Fatalf("huge tag count: %v", err)
	}
}

func FuzzReadFrom(f *testing.F) {
	f.Add(ConsumerGroupMemberMetadataValue{ClientID: "c", SubscribedTopicNames: []string{"t"}}.AppendTo(nil))
	f.Add(ConsumerGroupCurrentMemberAssignmentValue{AssignedPartitions: []TopicPartitions{{Partitions: []int32{1}}}}.AppendTo(nil))
	f.Add(Key{Type: 5, GroupID: "g", MemberID: "m"}.AppendTo(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var k Key
		if k.ReadFrom(b) == nil && !bytes.Equal(k.AppendTo(nil), b) {
			t.Fatalf("key % x re-encoded as % x", b, k.AppendTo(nil))
		}
		new(ConsumerGroupMetadataValue).ReadFrom(b)
		new(ConsumerGroupMemberMetadataValue).ReadFrom(b)
		new(ConsumerGroupTargetAssignmentMetadataValue).ReadFrom(b)
		new(ConsumerGroupTargetAssignmentMemberValue).ReadFrom(b)
		new(ConsumerGroupCurrentMemberAssignmentValue).ReadFrom(b)
	})
}
