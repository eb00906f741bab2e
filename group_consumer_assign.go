package kcluster

// The KIP-848 server-side assignment of a consumer group: the members'
// subscriptions resolved against the metadata, the subscription hash
// (KIP-1101), and the assignors, as Kafka's group coordinator has them
// (UniformAssignor, RangeAssignor).

import (
	"encoding/binary"
	"hash/fnv"
	"slices"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

func (gs *groupShard) topicNames(ts []kmsg.ConsumerGroupHeartbeatRequestTopic) map[string][]int32 {
	out := map[string][]int32{}
	b := gs.gc.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, t := range ts {
		if tt := b.mu.state.TopicsByID[t.TopicID]; tt != nil {
			out[tt.Name] = append(out[tt.Name], t.Partitions...)
		}
	}
	return out
}

func (gs *groupShard) topicIDs() map[string][16]byte {
	out := map[string][16]byte{}
	b := gs.gc.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	for name, t := range b.mu.state.Topics {
		out[name] = t.ID
	}
	return out
}

// subscriptionHash is the hash of the metadata of the topics g's members
// subscribe to, as they are now (0 for none).
func (gs *groupShard) subscriptionHash(g *group) int64 {
	b := gs.gc.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	seen := map[string]bool{}
	for _, m := range g.cg.members {
		for _, t := range memberTopics(m, b.mu.state) {
			seen[t] = true
		}
	}
	return topicsHash(b.mu.state, sortedKeys(seen))
}

// topicsHash is kcluster's metadata hash of a group's subscribed topics
// (KIP-1101, Kafka's computeGroupHash over computeTopicHash): for each
// existing topic, by name, its id, name, partition count and, per
// partition, the sorted racks of its replicas; 0 when there is none. The
// inputs are Kafka's; the function (64-bit FNV-1a) is not Kafka's XXH3,
// so a Kafka broker reading kcluster's records would find the hash
// changed and bump the group epoch once, as after its own hash changes.
func topicsHash(st *metadata.State, topics []string) int64 {
	h := fnv.New64a()
	var buf []byte
	n := 0
	for _, name := range topics {
		t := st.Topics[name]
		if t == nil {
			continue
		}
		n++
		buf = append(buf[:0], 0) // hash version
		buf = append(buf, t.ID[:]...)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(name)))
		buf = append(buf, name...)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(t.Partitions)))
		for i, p := range t.Partitions {
			buf = binary.BigEndian.AppendUint32(buf, uint32(i))
			var racks []string
			for _, r := range p.Replicas {
				if br := st.Brokers[r]; br != nil && br.Rack != nil {
					racks = append(racks, *br.Rack)
				}
			}
			slices.Sort(racks)
			for _, r := range racks {
				buf = binary.BigEndian.AppendUint32(buf, uint32(len(r)))
				buf = append(buf, r...)
			}
		}
		h.Write(buf)
	}
	if n == 0 {
		return 0
	}
	return int64(h.Sum64())
}

// memberTopics is the existing topics m subscribes to.
func memberTopics(m *cgMember, st *metadata.State) []string {
	var out []string
	for _, t := range m.topics {
		if st.Topics[t] != nil {
			out = append(out, t)
		}
	}
	if m.regex != nil {
		if re, err := compileRE2(*m.regex); err == nil {
			for _, name := range st.TopicNames() {
				if re.MatchString(name) && !slices.Contains(out, name) {
					out = append(out, name)
				}
			}
		}
	}
	return out
}

// assignLocked recomputes the target assignment at the group epoch with
// the group's assignor: the one most members ask for (ties and none: the
// default).
func (gs *groupShard) assignLocked(g *group) {
	cg := g.cg
	cg.assignor = chooseAssignor(cg)
	b := gs.gc.b
	subs := map[string][]string{} // member → topics
	sizes := map[string]int{}
	b.mu.RLock()
	for id, m := range cg.members {
		subs[id] = memberTopics(m, b.mu.state)
		for _, t := range subs[id] {
			sizes[t] = len(b.mu.state.Topics[t].Partitions)
		}
	}
	cg.metadataHash = topicsHash(b.mu.state, sortedKeys(sizes))
	b.mu.RUnlock()
	if cg.assignor == "range" {
		cg.target = assignRange(subs, sizes)
	} else {
		cg.target = assignUniform(subs, sizes, cg.target)
	}
	cg.assignmentEpoch = cg.epoch
}

// chooseAssignor is the group's assignor: the one most members ask for
// (ties and none: the default).
func chooseAssignor(cg *consumerGroup) string {
	votes := map[string]int{}
	for _, m := range cg.members {
		if m.assignor != "" {
			votes[m.assignor]++
		}
	}
	best := serverAssignors[0]
	for _, a := range serverAssignors {
		if votes[a] > votes[best] {
			best = a
		}
	}
	return best
}

// assignRange gives each member, per topic, a contiguous range of
// partitions: members subscribed to the topic in id order, the first
// (partitions % members) one more.
func assignRange(subs map[string][]string, sizes map[string]int) map[string]map[string][]int32 {
	out := map[string]map[string][]int32{}
	for id := range subs {
		out[id] = map[string][]int32{}
	}
	for _, t := range sortedKeys(sizes) {
		var ms []string
		for id, ts := range subs {
			if slices.Contains(ts, t) {
				ms = append(ms, id)
			}
		}
		sort.Strings(ms)
		if len(ms) == 0 {
			continue
		}
		n, per, extra := sizes[t], sizes[t]/len(ms), sizes[t]%len(ms)
		p := 0
		for i, id := range ms {
			cnt := per
			if i < extra {
				cnt++
			}
			for j := 0; j < cnt && p < n; j++ {
				out[id][t] = append(out[id][t], int32(p))
				p++
			}
		}
	}
	return out
}

// assignUniform spreads every subscribed partition evenly over the
// members subscribed to its topic, keeping each partition with its
// previous target owner while that owner is under its share (sticky, as
// Kafka's UniformAssignor aims to be).
func assignUniform(subs map[string][]string, sizes map[string]int, prev map[string]map[string][]int32) map[string]map[string][]int32 {
	out := map[string]map[string][]int32{}
	count := map[string]int{}
	ids := sortedKeys(subs)
	for _, id := range ids {
		out[id] = map[string][]int32{}
	}
	if len(ids) == 0 {
		return out
	}
	type tp struct {
		t string
		p int32
	}
	var all []tp
	for _, t := range sortedKeys(sizes) {
		for p := 0; p < sizes[t]; p++ {
			all = append(all, tp{t, int32(p)})
		}
	}
	// Fair shares: len(all)/members each, remainder to the first ones.
	members := 0
	for _, id := range ids {
		if len(subs[id]) > 0 {
			members++
		}
	}
	floor := 0
	extra := 0
	if members > 0 {
		floor, extra = len(all)/members, len(all)%members
	}
	owner := map[tp]string{}
	// Keep previous targets up to the floor share first.
	for _, id := range ids {
		for _, t := range sortedKeys(prev[id]) {
			if !slices.Contains(subs[id], t) {
				continue
			}
			for _, p := range prev[id][t] {
				x := tp{t, p}
				if int(p) < sizes[t] && owner[x] == "" && count[id] < floor {
					owner[x] = id
					count[id]++
				}
			}
		}
	}
	// Then up to floor+1 for as many members as the remainder allows.
	for _, id := range ids {
		if extra == 0 {
			break
		}
		for _, t := range sortedKeys(prev[id]) {
			if !slices.Contains(subs[id], t) || count[id] > floor {
				continue
			}
			for _, p := range prev[id][t] {
				x := tp{t, p}
				if int(p) < sizes[t] && owner[x] == "" && count[id] == floor && extra > 0 {
					owner[x] = id
					count[id]++
					extra--
				}
			}
		}
	}
	// Hand out the rest to the least-loaded subscribed member.
	for _, x := range all {
		if owner[x] != "" {
			continue
		}
		best := ""
		for _, id := range ids {
			if !slices.Contains(subs[id], x.t) {
				continue
			}
			if best == "" || count[id] < count[best] {
				best = id
			}
		}
		if best == "" {
			continue
		}
		owner[x] = best
		count[best]++
	}
	for x, id := range owner {
		out[id][x.t] = append(out[id][x.t], x.p)
	}
	for _, m := range out {
		for t := range m {
			slices.Sort(m[t])
		}
	}
	return out
}
