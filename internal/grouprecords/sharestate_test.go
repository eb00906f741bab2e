package grouprecords

import "testing"

func decShareStateKey(b []byte) (ShareStateKey, error) {
	var k ShareStateKey
	err := k.ReadFrom(b)
	return k, err
}

func TestShareStateKeys(t *testing.T) {
	for _, tc := range []struct {
		k    ShareStateKey
		want []byte
	}{
		// ShareSnapshotKey: GroupId, TopicId, Partition.
		{ShareStateKey{Type: TypeShareSnapshot, GroupID: "sg", TopicID: topicA, Partition: 7}, cat(i16(0), kstr("sg"), topicA[:], i32(7))},
		// ShareUpdateKey: the same fields.
		{ShareStateKey{Type: TypeShareUpdate, GroupID: "sg", TopicID: topicB, Partition: 0}, cat(i16(1), kstr("sg"), topicB[:], i32(0))},
	} {
		check(t, "share state key", func() []byte { return tc.k.AppendTo(nil) }, tc.want, decShareStateKey, tc.k)
	}
	for _, typ := range []int16{2, 3, 10, 15} {
		if err := new(ShareStateKey).ReadFrom(cat(i16(typ), kstr("sg"), topicA[:], i32(0))); err != ErrType {
			t.Fatalf("type %d: %v", typ, err)
		}
	}
}

// stateBatch: FirstOffset int64, LastOffset int64, DeliveryState int8,
// DeliveryCount int16, no tags.
func stateBatch(first, last int64, state int8, count int16) []byte {
	return cat(i64(first), i64(last), []byte{byte(state)}, i16(count), noTags)
}

func TestShareSnapshotValue(t *testing.T) {
	v := ShareSnapshotValue{SnapshotEpoch: 65535, StateEpoch: 3, LeaderEpoch: 9, StartOffset: 100, CreateTimestamp: 1700000000000, WriteTimestamp: 1700000000500,
		StateBatches: []StateBatch{{100, 104, 0, 2}, {105, 105, 2, 1}, {106, 110, 4, 5}}}
	want := cat(i16(0), // version
		[]byte{0xff, 0xff}, // SnapshotEpoch uint16
		i32(3), i32(9), i64(100), i64(1700000000000), i64(1700000000500),
		[]byte{4}, // 3 batches
		stateBatch(100, 104, 0, 2), stateBatch(105, 105, 2, 1), stateBatch(106, 110, 4, 5),
		noTags)
	check(t, "ShareSnapshotValue", func() []byte { return v.AppendTo(nil) }, want, func(b []byte) (ShareSnapshotValue, error) {
		var d ShareSnapshotValue
		return d, d.ReadFrom(b)
	}, v)

	empty := ShareSnapshotValue{StartOffset: -1, StateBatches: []StateBatch{}}
	check(t, "empty ShareSnapshotValue", func() []byte { return empty.AppendTo(nil) },
		cat(i16(0), i16(0), i32(0), i32(0), i64(-1), i64(0), i64(0), []byte{1}, noTags),
		func(b []byte) (ShareSnapshotValue, error) {
			var d ShareSnapshotValue
			return d, d.ReadFrom(b)
		}, empty)
}

func TestShareUpdateValue(t *testing.T) {
	v := ShareUpdateValue{SnapshotEpoch: 2, LeaderEpoch: 4, StartOffset: -1, StateBatches: []StateBatch{{7, 9, 2, 1}}}
	want := cat(i16(0), i16(2), i32(4), i64(-1), []byte{2}, stateBatch(7, 9, 2, 1), noTags)
	check(t, "ShareUpdateValue", func() []byte { return v.AppendTo(nil) }, want, func(b []byte) (ShareUpdateValue, error) {
		var d ShareUpdateValue
		return d, d.ReadFrom(b)
	}, v)
}

// A tagged field the decoder does not know (Kafka 4.2's
// DeliveryCompleteCount, say) is skipped.
func TestShareStateUnknownTags(t *testing.T) {
	b := cat(i16(0), i16(1), i32(2), i64(30), []byte{1},
		[]byte{1, 0, 4}, i32(12)) // one tagged field: tag 0, 4 bytes
	var v ShareUpdateValue
	if err := v.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	if v.SnapshotEpoch != 1 || v.LeaderEpoch != 2 || v.StartOffset != 30 || len(v.StateBatches) != 0 {
		t.Fatalf("decoded %+v", v)
	}
}
