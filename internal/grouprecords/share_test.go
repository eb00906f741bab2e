package grouprecords

import "testing"

func decShareKey(b []byte) (ShareKey, error) {
	var k ShareKey
	err := k.ReadFrom(b)
	return k, err
}

func TestShareKeys(t *testing.T) {
	for _, tc := range []struct {
		k    ShareKey
		want []byte
	}{
		// ShareGroupMemberMetadataKey: GroupId, MemberId.
		{ShareKey{Type: TypeShareGroupMemberMetadata, GroupID: "sg", MemberID: "m-1"}, cat(i16(10), kstr("sg"), kstr("m-1"))},
		// ShareGroupMetadataKey: GroupId.
		{ShareKey{Type: TypeShareGroupMetadata, GroupID: "sg"}, cat(i16(11), kstr("sg"))},
		// ShareGroupTargetAssignmentMetadataKey: GroupId.
		{ShareKey{Type: TypeShareGroupTargetAssignmentMetadata, GroupID: "sg"}, cat(i16(12), kstr("sg"))},
		// ShareGroupTargetAssignmentMemberKey: GroupId, MemberId.
		{ShareKey{Type: TypeShareGroupTargetAssignmentMember, GroupID: "sg", MemberID: "m-1"}, cat(i16(13), kstr("sg"), kstr("m-1"))},
		// ShareGroupCurrentMemberAssignmentKey: GroupId, MemberId.
		{ShareKey{Type: TypeShareGroupCurrentMemberAssignment, GroupID: "sg", MemberID: "m-1"}, cat(i16(14), kstr("sg"), kstr("m-1"))},
		// ShareGroupStatePartitionMetadataKey: GroupId.
		{ShareKey{Type: TypeShareGroupStatePartitionMetadata, GroupID: "sg"}, cat(i16(15), kstr("sg"))},
	} {
		check(t, "share key", func() []byte { return tc.k.AppendTo(nil) }, tc.want, decShareKey, tc.k)
	}
	// Consumer-group types, and type 9 (the removed
	// ShareGroupPartitionMetadata), are not share keys.
	for _, typ := range []int16{2, 3, 8, 9, 16} {
		if err := new(ShareKey).ReadFrom(cat(i16(typ), kstr("sg"))); err != ErrType {
			t.Fatalf("type %d: %v", typ, err)
		}
	}
}

func TestShareGroupMetadataValue(t *testing.T) {
	dec := func(b []byte) (ShareGroupMetadataValue, error) {
		var v ShareGroupMetadataValue
		err := v.ReadFrom(b)
		return v, err
	}
	v := ShareGroupMetadataValue{Epoch: 3}
	check(t, "epoch", func() []byte { return v.AppendTo(nil) }, cat(i16(0), i32(3), noTags), dec, v)
	v.MetadataHash = 42
	check(t, "hash", func() []byte { return v.AppendTo(nil) }, cat(i16(0), i32(3), []byte{1, 0, 8}, i64(42)), dec, v)
}

func TestShareGroupMemberMetadataValue(t *testing.T) {
	dec := func(b []byte) (ShareGroupMemberMetadataValue, error) {
		var v ShareGroupMemberMetadataValue
		err := v.ReadFrom(b)
		return v, err
	}
	v := ShareGroupMemberMetadataValue{ClientID: "cli", ClientHost: "/127.0.0.1", SubscribedTopicNames: []string{"a", "bb"}}
	want := cat(i16(0),
		null,                            // RackId
		cstr("cli"), cstr("/127.0.0.1"), // ClientId, ClientHost
		[]byte{3}, cstr("a"), cstr("bb"), // SubscribedTopicNames
		noTags)
	check(t, "member", func() []byte { return v.AppendTo(nil) }, want, dec, v)
	r := "r1"
	v = ShareGroupMemberMetadataValue{RackID: &r, ClientID: "c", ClientHost: "h", SubscribedTopicNames: []string{}}
	check(t, "member with rack", func() []byte { return v.AppendTo(nil) }, cat(i16(0), cstr("r1"), cstr("c"), cstr("h"), []byte{1}, noTags), dec, v)
}

func TestShareGroupCurrentMemberAssignmentValue(t *testing.T) {
	dec := func(b []byte) (ShareGroupCurrentMemberAssignmentValue, error) {
		var v ShareGroupCurrentMemberAssignmentValue
		err := v.ReadFrom(b)
		return v, err
	}
	v := ShareGroupCurrentMemberAssignmentValue{MemberEpoch: 5, PreviousMemberEpoch: 4, State: MemberStable,
		AssignedPartitions: []TopicPartitions{{TopicID: topicA, Partitions: []int32{0, 1}}}}
	want := cat(i16(0), i32(5), i32(4), []byte{0}, // MemberEpoch, PreviousMemberEpoch, State
		[]byte{2}, topicA[:], []byte{3}, i32(0), i32(1), noTags, // AssignedPartitions: 1 element
		noTags)
	check(t, "current assignment", func() []byte { return v.AppendTo(nil) }, want, dec, v)
}

func TestShareGroupStatePartitionMetadataValue(t *testing.T) {
	dec := func(b []byte) (ShareGroupStatePartitionMetadataValue, error) {
		var v ShareGroupStatePartitionMetadataValue
		err := v.ReadFrom(b)
		return v, err
	}
	v := ShareGroupStatePartitionMetadataValue{
		InitializingTopics: []ShareTopicPartitions{{TopicID: topicB, TopicName: "bb", Partitions: []int32{0, 1}, CreateTimestamp: 7}},
		InitializedTopics:  []ShareTopicPartitions{{TopicID: topicA, TopicName: "a", Partitions: []int32{2}, CreateTimestamp: 5}},
		DeletingTopics:     []ShareTopic{{TopicID: topicB, TopicName: "bb"}},
	}
	want := cat(i16(0),
		[]byte{2}, topicB[:], cstr("bb"), []byte{3}, i32(0), i32(1), i64(7), noTags, // InitializingTopics: 1 element
		[]byte{2}, topicA[:], cstr("a"), []byte{2}, i32(2), i64(5), noTags, // InitializedTopics: 1 element
		[]byte{2}, topicB[:], cstr("bb"), noTags, // DeletingTopics: 1 element
		noTags)
	check(t, "state partition metadata", func() []byte { return v.AppendTo(nil) }, want, dec, v)
	v = ShareGroupStatePartitionMetadataValue{InitializingTopics: []ShareTopicPartitions{}, InitializedTopics: []ShareTopicPartitions{}, DeletingTopics: []ShareTopic{}}
	check(t, "empty", func() []byte { return v.AppendTo(nil) }, cat(i16(0), []byte{1}, []byte{1}, []byte{1}, noTags), dec, v)
}
