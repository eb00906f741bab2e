package kcluster

// The simple assignor of share groups (Kafka 4.2's SimpleAssignor,
// KIP-932). Several members may read one partition, so the assignor
// never takes a partition from a member that is still subscribed to its
// topic: a member keeps its current target, and what changes is added to
// it in three steps, as Kafka's:
//
//  1. Each member is hashed to one of the partitions it subscribes to
//     (abs(javaHash(memberId) % n) over the subscribed topics' partitions,
//     topic by topic, each in partition order), so every member has work
//     even with more members than partitions.
//  2. The partitions that step 1 gave nobody and no member held are dealt
//     round robin to the members subscribed to their topic.
//  3. The result is each member's current partitions of the topics it
//     still subscribes to, with steps 1 and 2 added.
//
// When every member subscribes to the same topics (Kafka's homogeneous
// subscription) step 2 deals all the topics' partitions over all the
// members in one round; otherwise it deals each topic's over the members
// subscribed to it. Kafka iterates its members and topics in hash-map
// order; kcluster takes both sorted, so the assignment is deterministic.

import (
	"maps"
	"slices"
	"unicode/utf16"
)

type shareTP struct {
	topic     string
	partition int32
}

// javaStringHash is Java's String.hashCode, over UTF-16 code units.
func javaStringHash(s string) int32 {
	var h int32
	for _, u := range utf16.Encode([]rune(s)) {
		h = 31*h + int32(u)
	}
	return h
}

// assignShareSimple returns the target assignment (member → topic →
// partitions) of members subscribed to subs (member → topic names), where
// parts holds each topic's assignable partitions and current each member's
// current target. Every member of current appears in the result.
func assignShareSimple(subs map[string][]string, parts map[string][]int32, current map[string]map[string][]int32) map[string]map[string][]int32 {
	members := slices.Sorted(maps.Keys(current))
	for id := range subs {
		if _, ok := current[id]; !ok {
			members = append(members, id)
		}
	}
	slices.Sort(members)
	out := map[string]map[string][]int32{}
	if len(members) == 0 {
		return out
	}
	targets := func(topics []string) []shareTP {
		var out []shareTP
		for _, t := range slices.Sorted(slices.Values(topics)) {
			for _, p := range parts[t] {
				out = append(out, shareTP{t, p})
			}
		}
		return out
	}
	held := map[shareTP]bool{}
	for _, a := range current {
		for t, ps := range a {
			for _, p := range ps {
				held[shareTP{t, p}] = true
			}
		}
	}
	fresh := map[shareTP][]string{} // steps 1 and 2
	hash := func(id string, tps []shareTP) {
		if len(tps) == 0 {
			return
		}
		h := javaStringHash(id) % int32(len(tps))
		if h < 0 {
			h = -h
		}
		tp := tps[h]
		fresh[tp] = append(fresh[tp], id)
	}
	roundRobin := func(ids []string, tps []shareTP) {
		for i, tp := range tps {
			fresh[tp] = append(fresh[tp], ids[i%len(ids)])
		}
	}
	unassigned := func(tps []shareTP) []shareTP {
		var out []shareTP
		for _, tp := range tps {
			if fresh[tp] == nil && !held[tp] {
				out = append(out, tp)
			}
		}
		return out
	}
	subscribed := map[string][]string{} // topic → members, sorted
	for _, id := range members {
		for _, t := range subs[id] {
			if !slices.Contains(subscribed[t], id) {
				subscribed[t] = append(subscribed[t], id)
			}
		}
	}
	if homogeneous(members, subs) {
		tps := targets(subs[members[0]])
		for _, id := range members {
			hash(id, tps)
		}
		if len(tps) > 0 {
			roundRobin(members, unassigned(tps))
		}
	} else {
		var all []shareTP
		for _, id := range members {
			tps := targets(subs[id])
			hash(id, tps)
			for _, tp := range tps {
				if !slices.Contains(all, tp) {
					all = append(all, tp)
				}
			}
		}
		byTopic := map[string][]shareTP{}
		for _, tp := range unassigned(all) {
			byTopic[tp.topic] = append(byTopic[tp.topic], tp)
		}
		for _, t := range slices.Sorted(maps.Keys(byTopic)) {
			roundRobin(subscribed[t], byTopic[t])
		}
	}
	add := func(id string, tp shareTP) {
		if out[id] == nil {
			out[id] = map[string][]int32{}
		}
		if !slices.Contains(out[id][tp.topic], tp.partition) {
			out[id][tp.topic] = append(out[id][tp.topic], tp.partition)
		}
	}
	for _, id := range members {
		for t, ps := range current[id] {
			if !slices.Contains(subs[id], t) {
				continue
			}
			for _, p := range ps {
				if slices.Contains(parts[t], p) {
					add(id, shareTP{t, p})
				}
			}
		}
	}
	for tp, ids := range fresh {
		for _, id := range ids {
			add(id, tp)
		}
	}
	for _, id := range members {
		if out[id] == nil {
			out[id] = map[string][]int32{}
		}
		for t := range out[id] {
			slices.Sort(out[id][t])
		}
	}
	return out
}

// homogeneous reports whether every member subscribes to the same topics.
func homogeneous(members []string, subs map[string][]string) bool {
	if len(members) == 0 {
		return true
	}
	first := slices.Sorted(slices.Values(subs[members[0]]))
	for _, id := range members[1:] {
		if !slices.Equal(first, slices.Sorted(slices.Values(subs[id]))) {
			return false
		}
	}
	return true
}
