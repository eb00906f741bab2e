package chaos

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster"
)

// The replica agreement check: below the high watermark every replica
// holds the same records (KIP-101, KIP-279). A diverged record that was
// never acknowledged escapes the acknowledgement check, and reading through
// the leader shows only the leader's log. So, once everything is healed,
// each replica of each partition is made leader in turn, with Kafka's own
// admin requests, as any user could: a reassignment that only reorders the
// replicas (it completes at once and makes the replica the preferred
// leader), then a preferred election. The whole partition is read through
// each leader and compared, offset by offset, control records included.
// Finally the original order and leader are restored.

// checkReplicasAgree runs the agreement check on every partition of the
// run's topics, all partitions at once: in round i, replica i of each
// partition (in its original order) leads it.
func (r *run) checkReplicasAgree(ctx context.Context) {
	cl, err := r.client()
	if err != nil {
		r.violation("the replica agreement check: %v", err)
		return
	}
	defer cl.Close()
	type tp struct {
		topic string
		p     int32
	}
	orig := map[tp][]int32{}
	var parts []tp
	rf := 0
	for _, topic := range r.topics() {
		for p := range r.cfg.Partitions {
			st, err := r.c.PartitionState(topic, p)
			if err != nil {
				r.violation("%s/%d: %v", topic, p, err)
				return
			}
			k := tp{topic, p}
			orig[k] = slices.Clone(st.Replicas)
			parts = append(parts, k)
			rf = max(rf, len(st.Replicas))
		}
	}
	first := map[tp][]stored{}
	firstLeader := map[tp]int32{}
	for round := range rf + 1 {
		orders := map[tp][]int32{}
		for _, k := range parts {
			o := orig[k]
			i := round % len(o) // the last round restores the original order
			orders[k] = append(slices.Clone(o[i:]), o[:i]...)
		}
		var topics []string
		ps := map[string][]int32{}
		for _, k := range parts {
			if _, ok := ps[k.topic]; !ok {
				topics = append(topics, k.topic)
			}
			ps[k.topic] = append(ps[k.topic], k.p)
		}
		var order [][]int32
		for _, t := range topics {
			for _, p := range ps[t] {
				order = append(order, orders[tp{t, p}])
			}
		}
		if !r.lead(ctx, cl, topics, ps, order) {
			return
		}
		if round == rf {
			break
		}
		for _, k := range parts {
			recs, ok := r.readPartition(ctx, k.topic, k.p)
			if !ok {
				return
			}
			leader := orders[k][0]
			if round == 0 {
				first[k], firstLeader[k] = recs, leader
				continue
			}
			if d := firstDifference(first[k], recs); d != "" {
				r.violation("%s/%d: read through leader %d and through leader %d, the logs differ: %s", k.topic, k.p, firstLeader[k], leader, d)
				return
			}
		}
	}
	r.logf("every replica of every partition serves the same log")
}

// lead makes order[i] the replicas of the i-th partition named by topics
// and ps (the same set, reordered) and each first replica the leader, by a
// preferred election, and waits for each to lead a fully replicated
// partition.
func (r *run) lead(ctx context.Context, cl *kgo.Client, topics []string, ps map[string][]int32, order [][]int32) bool {
	wctx, cancel := context.WithTimeout(ctx, r.cfg.Recovery)
	defer cancel()
	re := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	el := kmsg.NewPtrElectLeadersRequest()
	el.ElectionType = 0 // preferred
	want := map[string]map[int32]int32{}
	i := 0
	for _, topic := range topics {
		rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
		rt.Topic = topic
		et := kmsg.NewElectLeadersRequestTopic()
		et.Topic = topic
		want[topic] = map[int32]int32{}
		for _, p := range ps[topic] {
			rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
			rp.Partition, rp.Replicas = p, order[i]
			rt.Partitions = append(rt.Partitions, rp)
			et.Partitions = append(et.Partitions, p)
			want[topic][p] = order[i][0]
			i++
		}
		re.Topics = append(re.Topics, rt)
		el.Topics = append(el.Topics, et)
	}
	resp, err := re.RequestWith(wctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err == nil {
					err = kerr.ErrorForCode(p.ErrorCode)
				}
			}
		}
	}
	if err != nil {
		r.violation("reordering the replicas to %v: %v", order, err)
		return false
	}
	for {
		eresp, err := el.RequestWith(wctx, cl)
		if err == nil {
			err = kerr.ErrorForCode(eresp.ErrorCode)
			for _, t := range eresp.Topics {
				for _, p := range t.Partitions {
					if e := kerr.ErrorForCode(p.ErrorCode); err == nil && e != kerr.ElectionNotNeeded {
						err = e
					}
				}
			}
		}
		if err == nil {
			break
		}
		if !kerr.IsRetriable(err) && err != kerr.PreferredLeaderNotAvailable {
			r.violation("electing the preferred leaders of %v: %v", order, err)
			return false
		}
		if wctx.Err() != nil {
			r.violation("electing the preferred leaders of %v: %v, until %v passed", order, err, r.cfg.Recovery)
			return false
		}
	}
	err = r.c.WaitFor(wctx, func(c *kcluster.Cluster) bool {
		for topic, m := range want {
			for p, leader := range m {
				st, err := c.PartitionState(topic, p)
				if err != nil || st.Leader != leader || !kcluster.FullyReplicated(topic, p)(c) {
					return false
				}
			}
		}
		return true
	})
	if err != nil {
		r.violation("the preferred leaders of %v did not lead fully replicated partitions: %v\n%s", order, err, r.c)
		return false
	}
	return true
}

// readPartition reads one partition from its start to its high watermark
// through its leader, control records included; ok is false when it could
// not (a violation is recorded).
func (r *run) readPartition(ctx context.Context, topic string, p int32) (recs []stored, ok bool) {
	wctx, cancel := context.WithTimeout(ctx, r.cfg.Recovery)
	defer cancel()
	st, err := r.c.PartitionState(topic, p)
	if err != nil {
		r.violation("%s/%d: %v", topic, p, err)
		return nil, false
	}
	cl, err := r.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().AtStart()}}), kgo.KeepControlRecords())
	if err != nil {
		r.violation("reading %s/%d: %v", topic, p, err)
		return nil, false
	}
	defer cl.Close()
	for next := int64(0); next < st.HighWatermark; {
		fs := cl.PollFetches(wctx)
		if wctx.Err() != nil {
			r.violation("reading %s/%d through leader %d did not reach the high watermark %d in %v (read to %d)", topic, p, st.Leader, st.HighWatermark, r.cfg.Recovery, next)
			return nil, false
		}
		fs.EachRecord(func(rec *kgo.Record) {
			next = rec.Offset + 1
			v := string(rec.Value)
			if rec.Attrs.IsControl() {
				v = fmt.Sprintf("control %x", rec.Key)
			}
			recs = append(recs, stored{rec.Offset, v})
		})
	}
	return recs, true
}

// firstDifference describes where a and b first differ, or "".
func firstDifference(a, b []stored) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("offset %d holds %q in one and, at offset %d, %q in the other", a[i].offset, a[i].value, b[i].offset, b[i].value)
		}
	}
	if len(a) != len(b) {
		return fmt.Sprintf("one has %d records, the other %d", len(a), len(b))
	}
	return ""
}
