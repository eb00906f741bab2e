package kcluster

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The gauges of an external cluster, through the Kafka protocol: what an
// admin client can see. Per-replica log-end offsets, high watermarks and
// sizes are not visible that way; their maps stay empty.

// brokers is Brokers from Metadata: the registered, unfenced brokers it
// lists, all running.
func (e *external) brokers(c *Cluster) []BrokerState {
	resp, err := e.metadata(c.ctx, []string{})
	if err != nil {
		return nil
	}
	var out []BrokerState
	for _, b := range resp.Brokers {
		out = append(out, BrokerState{ID: b.NodeID, Addr: b.Host + ":" + strconv.Itoa(int(b.Port)), Running: true})
	}
	slices.SortFunc(out, func(a, b BrokerState) int { return int(a.ID - b.ID) })
	return out
}

// topics is Topics from Metadata, internal topics included.
func (e *external) topics(c *Cluster) []string {
	resp, err := e.metadata(c.ctx, nil)
	if err != nil {
		return nil
	}
	var out []string
	for _, t := range resp.Topics {
		if t.Topic != nil && t.ErrorCode == 0 {
			out = append(out, topicName(t))
		}
	}
	slices.Sort(out)
	return out
}

// partitionState is PartitionState from Metadata (leader, epoch,
// replicas, ISR) and the leader's ListOffsets: the high watermark
// (latest, read_uncommitted), the last stable offset (latest,
// read_committed) and the log start offset (earliest).
func (e *external) partitionState(c *Cluster, topic string, partition int32) (PartitionState, error) {
	st := PartitionState{Topic: topic, Partition: partition, Leader: -1, HighWatermark: -1, LogStartOffset: -1, LastStableOffset: -1,
		LogEndOffsets: map[int32]int64{}, HighWatermarks: map[int32]int64{}, LogStartOffsets: map[int32]int64{}, LogSizes: map[int32]int64{}}
	resp, err := e.metadata(c.ctx, []string{topic})
	if err != nil {
		return st, err
	}
	unknown := fmt.Errorf("%w: %s/%d", ErrUnknownPartition, topic, partition)
	if len(resp.Topics) != 1 {
		return st, unknown
	}
	t := resp.Topics[0]
	if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return st, unknown
		}
		return st, fmt.Errorf("kcluster: metadata of %s: %w", topic, err)
	}
	i := slices.IndexFunc(t.Partitions, func(p kmsg.MetadataResponseTopicPartition) bool { return p.Partition == partition })
	if i < 0 {
		return st, unknown
	}
	p := t.Partitions[i]
	st.Leader, st.LeaderEpoch = p.Leader, p.LeaderEpoch
	st.Replicas, st.ISR = slices.Clone(p.Replicas), slices.Clone(p.ISR)
	if st.Leader < 0 {
		return st, nil
	}
	// A leader that is gone or moving answers with an error: its offsets
	// stay -1, as the embedded cluster's do for a leader that is down.
	if hw, err := e.offset(c, topic, partition, -1, 0); err == nil {
		st.HighWatermark = hw
	}
	if lso, err := e.offset(c, topic, partition, -1, 1); err == nil {
		st.LastStableOffset = lso
	}
	if lo, err := e.offset(c, topic, partition, -2, 0); err == nil {
		st.LogStartOffset = lo
	}
	return st, nil
}

// offset is ListOffsets for one partition at timestamp ts (-1 latest, -2
// earliest) and isolation level (0 read_uncommitted, 1 read_committed).
func (e *external) offset(c *Cluster, topic string, partition int32, ts int64, isolation int8) (int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID, req.IsolationLevel = -1, isolation
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = partition, ts, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	r, err := e.request(c.ctx, req)
	if err != nil {
		return -1, err
	}
	for _, t := range r.(*kmsg.ListOffsetsResponse).Topics {
		for _, p := range t.Partitions {
			if t.Topic == topic && p.Partition == partition {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return -1, err
				}
				return p.Offset, nil
			}
		}
	}
	return -1, fmt.Errorf("kcluster: ListOffsets answered without %s/%d", topic, partition)
}

// groups is Groups from ListGroups, which the client sends to every
// broker.
func (e *external) groups(c *Cluster) []string {
	r, err := e.request(c.ctx, kmsg.NewPtrListGroupsRequest())
	if err != nil {
		return nil
	}
	var out []string
	for _, g := range r.(*kmsg.ListGroupsResponse).Groups {
		out = append(out, g.Group)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// group is Group from the group's coordinator: ConsumerGroupDescribe for
// a KIP-848 group, DescribeGroups for a classic one (which tells neither
// the generation, left -1, nor the leader), OffsetFetch for the committed
// offsets, and the partitions' high watermarks for the lag.
func (e *external) group(c *Cluster, name string) (GroupState, error) {
	st := GroupState{Group: name, Coordinator: -1, Generation: -1}
	unknown := fmt.Errorf("%w: %s", ErrUnknownGroup, name)
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey, fc.CoordinatorKeys = name, []string{name}
	r, err := e.request(c.ctx, fc)
	if err != nil {
		return st, fmt.Errorf("%w (%v)", unknown, err)
	}
	fcr := r.(*kmsg.FindCoordinatorResponse)
	st.Coordinator = fcr.NodeID
	if len(fcr.Coordinators) > 0 {
		st.Coordinator = fcr.Coordinators[0].NodeID
	}
	if !e.consumerGroup(c, name, &st) && !e.classicGroup(c, name, &st) {
		return st, unknown
	}
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Group = name
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = name
	of.Groups = append(of.Groups, rg)
	r, err = e.request(c.ctx, of)
	if err != nil {
		return st, fmt.Errorf("kcluster: OffsetFetch %s: %w", name, err)
	}
	ofr := r.(*kmsg.OffsetFetchResponse)
	st.Offsets, st.Lag = map[string]map[int32]int64{}, map[string]map[int32]int64{}
	add := func(topic string, p int32, off int64) {
		if off < 0 {
			return
		}
		if st.Offsets[topic] == nil {
			st.Offsets[topic] = map[int32]int64{}
		}
		st.Offsets[topic][p] = off
		if ps, err := c.PartitionState(topic, p); err == nil && ps.HighWatermark >= 0 {
			if st.Lag[topic] == nil {
				st.Lag[topic] = map[int32]int64{}
			}
			st.Lag[topic][p] = max(ps.HighWatermark-off, 0)
		}
	}
	for _, t := range ofr.Topics {
		for _, p := range t.Partitions {
			add(t.Topic, p.Partition, p.Offset)
		}
	}
	for _, g := range ofr.Groups {
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				add(t.Topic, p.Partition, p.Offset)
			}
		}
	}
	return st, nil
}

// consumerGroup fills st from ConsumerGroupDescribe; false when name is
// no KIP-848 group (or the cluster does not serve the API).
func (e *external) consumerGroup(c *Cluster, name string, st *GroupState) bool {
	req := kmsg.NewPtrConsumerGroupDescribeRequest()
	req.Groups = []string{name}
	r, err := e.request(c.ctx, req)
	if err != nil {
		return false
	}
	gs := r.(*kmsg.ConsumerGroupDescribeResponse).Groups
	if len(gs) != 1 || gs[0].ErrorCode != 0 || gs[0].State == "Dead" {
		return false
	}
	g := gs[0]
	st.Type, st.State, st.Generation, st.ProtocolType, st.Protocol = "consumer", g.State, g.Epoch, "consumer", g.AssignorName
	for _, m := range g.Members {
		gm := GroupMember{ID: m.MemberID, ClientID: m.ClientID, ClientHost: m.ClientHost, Epoch: m.MemberEpoch, Assigned: map[string][]int32{}}
		if m.InstanceID != nil {
			gm.InstanceID = *m.InstanceID
		}
		for _, tp := range m.Assignment.TopicPartitions {
			gm.Assigned[tp.Topic] = slices.Sorted(slices.Values(tp.Partitions))
		}
		st.Members = append(st.Members, gm)
	}
	return true
}

// classicGroup fills st from DescribeGroups; false when name is no
// classic group.
func (e *external) classicGroup(c *Cluster, name string, st *GroupState) bool {
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{name}
	r, err := e.request(c.ctx, req)
	if err != nil {
		return false
	}
	gs := r.(*kmsg.DescribeGroupsResponse).Groups
	if len(gs) != 1 || gs[0].ErrorCode != 0 || gs[0].State == "Dead" {
		return false
	}
	g := gs[0]
	st.Type, st.State, st.ProtocolType, st.Protocol = "classic", g.State, g.ProtocolType, g.Protocol
	for _, m := range g.Members {
		gm := GroupMember{ID: m.MemberID, ClientID: m.ClientID, ClientHost: m.ClientHost, Assigned: map[string][]int32{}}
		if m.InstanceID != nil {
			gm.InstanceID = *m.InstanceID
		}
		var a kmsg.ConsumerMemberAssignment
		if g.ProtocolType == "consumer" && len(m.MemberAssignment) > 0 && a.ReadFrom(m.MemberAssignment) == nil {
			for _, t := range a.Topics {
				gm.Assigned[t.Topic] = slices.Sorted(slices.Values(t.Partitions))
			}
		}
		st.Members = append(st.Members, gm)
	}
	return true
}

// string is String for an external cluster: its brokers and partitions as
// Metadata shows them.
func (e *external) string(c *Cluster) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "external cluster %s (%s=%s)\n", e.clusterID, BootstrapEnv, strings.Join(e.addrs, ","))
	for _, b := range e.brokers(c) {
		fmt.Fprintf(&sb, "broker %d %s\n", b.ID, b.Addr)
	}
	resp, err := e.metadata(c.ctx, nil)
	if err != nil {
		fmt.Fprintf(&sb, "metadata: %v\n", err)
		return sb.String()
	}
	slices.SortFunc(resp.Topics, func(a, b kmsg.MetadataResponseTopic) int {
		return strings.Compare(topicName(a), topicName(b))
	})
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			fmt.Fprintf(&sb, "%s/%d leader %d epoch %d replicas %v isr %v\n", topicName(t), p.Partition, p.Leader, p.LeaderEpoch, p.Replicas, p.ISR)
		}
	}
	return sb.String()
}

// topicName is a Metadata topic's name ("" for one named by id only).
func topicName(t kmsg.MetadataResponseTopic) string {
	if t.Topic == nil {
		return ""
	}
	return *t.Topic
}
