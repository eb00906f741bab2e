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
// run's topics.
func (r *run) checkReplicasAgree(ctx context.Context) {
	cl, err := r.client()
	if err != nil {
		r.violation("the replica agreement check: %v", err)
		return
	}
	defer cl.Close()
	for _, topic := range r.topics() {
		for p := range r.cfg.Partitions {
			if !r.partitionReplicasAgree(ctx, cl, topic, p) {
				return
			}
		}
	}
	r.logf("every replica of every partition serves the same log")
}

// partitionReplicasAgree checks one partition; false when it could not
// finish (a violation is recorded).
func (r *run) partitionReplicasAgree(ctx context.Context, cl *kgo.Client, topic string, p int32) bool {
	st, err := r.c.PartitionState(topic, p)
	if err != nil {
		r.violation("%s/%d: %v", topic, p, err)
		return false
	}
	orig := slices.Clone(st.Replicas)
	var first []stored
	firstLeader := int32(-1)
	for _, id := range orig {
		order := append([]int32{id}, slices.DeleteFunc(slices.Clone(orig), func(b int32) bool { return b == id })...)
		if !r.lead(ctx, cl, topic, p, order) {
			return false
		}
		recs, ok := r.readPartition(ctx, topic, p)
		if !ok {
			return false
		}
		if firstLeader < 0 {
			first, firstLeader = recs, id
			continue
		}
		if d := firstDifference(first, recs); d != "" {
			r.violation("%s/%d: read through leader %d and through leader %d, the logs differ: %s", topic, p, firstLeader, id, d)
			return false
		}
	}
	return r.lead(ctx, cl, topic, p, orig)
}

// lead makes order the partition's replicas (the same set, reordered) and
// its first replica the leader, by a preferred election, and waits for it
// to lead a fully replicated partition.
func (r *run) lead(ctx context.Context, cl *kgo.Client, topic string, p int32, order []int32) bool {
	wctx, cancel := context.WithTimeout(ctx, r.cfg.Recovery)
	defer cancel()
	re := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
	rp.Partition, rp.Replicas = p, order
	rt.Partitions = append(rt.Partitions, rp)
	re.Topics = append(re.Topics, rt)
	resp, err := re.RequestWith(wctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
		if err == nil {
			err = kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
		}
	}
	if err != nil {
		r.violation("%s/%d: reordering the replicas to %v: %v", topic, p, order, err)
		return false
	}
	for {
		el := kmsg.NewPtrElectLeadersRequest()
		el.ElectionType = 0 // preferred
		et := kmsg.NewElectLeadersRequestTopic()
		et.Topic, et.Partitions = topic, []int32{p}
		el.Topics = append(el.Topics, et)
		eresp, err := el.RequestWith(wctx, cl)
		if err == nil {
			err = kerr.ErrorForCode(eresp.ErrorCode)
			if err == nil && len(eresp.Topics) == 1 && len(eresp.Topics[0].Partitions) == 1 {
				if err = kerr.ErrorForCode(eresp.Topics[0].Partitions[0].ErrorCode); err == kerr.ElectionNotNeeded {
					err = nil
				}
			}
		}
		if err == nil {
			break
		}
		if !kerr.IsRetriable(err) && err != kerr.PreferredLeaderNotAvailable {
			r.violation("%s/%d: electing %d: %v", topic, p, order[0], err)
			return false
		}
		if wctx.Err() != nil {
			r.violation("%s/%d: electing %d: %v, until %v passed", topic, p, order[0], err, r.cfg.Recovery)
			return false
		}
	}
	err = r.c.WaitFor(wctx, func(c *kcluster.Cluster) bool {
		st, err := c.PartitionState(topic, p)
		return err == nil && st.Leader == order[0] && kcluster.FullyReplicated(topic, p)(c)
	})
	if err != nil {
		st, _ := r.c.PartitionState(topic, p)
		r.violation("%s/%d: broker %d did not become leader of a fully replicated partition: %v (%+v)", topic, p, order[0], err, st)
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
