package kcluster

import (
	"maps"
	"slices"
	"testing"
)

type shareAssignCase struct {
	name    string
	subs    map[string][]string
	parts   map[string]int32
	current map[string]map[string][]int32
	want    map[string]map[string][]int32
	// again is the assignment of the same members given want as their
	// current one (nil: want again).
	again map[string]map[string][]int32
}

func partitionsUpTo(n int32) []int32 {
	ps := make([]int32, n)
	for i := range ps {
		ps[i] = int32(i)
	}
	return ps
}

// TestShareAssignorSimple checks the simple assignor (Kafka's
// SimpleAssignor) on the scenarios of Kafka's SimpleAssignorTest, with
// outputs worked out by hand from its rules: javaHash("member1") is
// 948881623 and each next member's one more, so member1 hashes to
// partition 3 of 5, 1 of 3, 1 of 2; member2 to 4 of 5, 2 of 3, 0 of 2;
// member3 to 1 of 2; member4 to 0 of 2.
func TestShareAssignorSimple(t *testing.T) {
	for _, tc := range []shareAssignCase{{
		// Homogeneous, two members, two topics: the hash gives each a
		// partition of t3, the rest of the partitions are dealt round
		// robin.
		name:    "two members two topics",
		subs:    map[string][]string{"member1": {"t1", "t3"}, "member2": {"t1", "t3"}},
		parts:   map[string]int32{"t1": 3, "t3": 2},
		current: map[string]map[string][]int32{"member1": nil, "member2": nil},
		want: map[string]map[string][]int32{
			"member1": {"t1": {0, 2}, "t3": {0}},
			"member2": {"t1": {1}, "t3": {1}},
		},
	}, {
		// More members than partitions: every member gets one, each
		// partition is shared by two.
		name:    "members outnumber partitions",
		subs:    map[string][]string{"member1": {"t1"}, "member2": {"t1"}, "member3": {"t1"}, "member4": {"t1"}},
		parts:   map[string]int32{"t1": 2},
		current: map[string]map[string][]int32{"member1": nil, "member2": nil, "member3": nil, "member4": nil},
		want: map[string]map[string][]int32{
			"member1": {"t1": {1}}, "member2": {"t1": {0}}, "member3": {"t1": {1}}, "member4": {"t1": {0}},
		},
	}, {
		// Heterogeneous: each member hashed over its own topics, the
		// rest of each topic dealt to the members subscribed to it.
		name:    "heterogeneous",
		subs:    map[string][]string{"member1": {"t1"}, "member2": {"t1", "t2"}, "member3": {"t2"}},
		parts:   map[string]int32{"t1": 3, "t2": 2},
		current: map[string]map[string][]int32{"member1": nil, "member2": nil, "member3": nil},
		want: map[string]map[string][]int32{
			"member1": {"t1": {0, 1}},
			"member2": {"t1": {2}, "t2": {0, 1}},
			"member3": {"t2": {1}},
		},
	}, {
		// A member joins: the current member keeps everything it has,
		// the new one shares the partition it hashes to.
		name:    "member joins",
		subs:    map[string][]string{"member1": {"t1"}, "member2": {"t1"}},
		parts:   map[string]int32{"t1": 3},
		current: map[string]map[string][]int32{"member1": {"t1": {0, 1, 2}}, "member2": nil},
		want:    map[string]map[string][]int32{"member1": {"t1": {0, 1, 2}}, "member2": {"t1": {2}}},
	}, {
		// A member leaves: its partitions, held by nobody now, go to the
		// member left, which keeps its own.
		name:    "member leaves",
		subs:    map[string][]string{"member1": {"t1"}},
		parts:   map[string]int32{"t1": 3},
		current: map[string]map[string][]int32{"member1": {"t1": {0, 2}}},
		want:    map[string]map[string][]int32{"member1": {"t1": {0, 1, 2}}},
	}, {
		// A member that stops subscribing to a topic loses its
		// partitions. As in Kafka, they count as held in this round (the
		// current assignment had them), so nobody gets them until the
		// next: the group coordinator bumps the epoch for initialized
		// partitions in no target (initializedUnassignedLocked).
		name:    "unsubscribe",
		subs:    map[string][]string{"member1": {"t2"}, "member2": {"t1", "t2"}},
		parts:   map[string]int32{"t1": 3, "t2": 2},
		current: map[string]map[string][]int32{"member1": {"t1": {0, 1}, "t2": {0}}, "member2": {"t1": {2}, "t2": {1}}},
		want:    map[string]map[string][]int32{"member1": {"t2": {0, 1}}, "member2": {"t1": {2}, "t2": {1}}},
		again:   map[string]map[string][]int32{"member1": {"t2": {0, 1}}, "member2": {"t1": {0, 1, 2}, "t2": {1}}},
	}, {
		name:    "no topics",
		subs:    map[string][]string{},
		parts:   map[string]int32{},
		current: map[string]map[string][]int32{"member1": nil},
		want:    map[string]map[string][]int32{"member1": {}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			parts := map[string][]int32{}
			for tp, n := range tc.parts {
				parts[tp] = partitionsUpTo(n)
			}
			got := assignShareSimple(tc.subs, parts, tc.current)
			for _, a := range tc.want {
				for tp := range a {
					slices.Sort(a[tp])
				}
			}
			if !maps.EqualFunc(got, tc.want, func(a, b map[string][]int32) bool { return maps.EqualFunc(a, b, slices.Equal) }) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			// Sticky: the assignment given back as current is kept.
			want := tc.again
			if want == nil {
				want = got
			}
			if again := assignShareSimple(tc.subs, parts, got); !maps.EqualFunc(again, want, func(a, b map[string][]int32) bool { return maps.EqualFunc(a, b, slices.Equal) }) {
				t.Fatalf("reassigning its own output: %v, want %v", again, want)
			}
		})
	}
}
