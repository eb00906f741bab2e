package kcluster

import (
	"context"

	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// isrLoop is the leader's side of ISR maintenance (Kafka's
// maybeShrinkIsr/maybeExpandIsr): every half replica.lag.time.max.ms it
// drops from the ISR followers that have not caught up for that long; it
// adds back replicas that have caught up to the high watermark as soon as a
// fetch shows it (read pokes isrWake); and it asks the
// controller to commit the change (AlterPartition), so every broker learns
// the new ISR from the metadata log. It also checkpoints high watermarks.
//
// It ticks only while there is something to watch: a follower in an ISR
// behind its leader's log end (one at the log end is never dropped), a
// high watermark not checkpointed, or a change the controller has not
// taken yet. When a pass finds none, the loop sleeps until a partition
// changes (partition.notify arms it), or a follower catches up.
func (b *broker) isrLoop() {
	every := b.cfg.replicaLagTimeMax / 2
	if every < 10*time.Millisecond {
		every = 10 * time.Millisecond
	}
	tk := newTicks(every)
	defer tk.stop()
	lastCheckpoint := time.Now()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-tk.c():
			tk.none()
		case <-b.isrWake:
			// A follower out of the ISR caught up: expand now, as
			// Kafka does on the fetch itself, not at the next tick.
		case <-b.isrArm.ch:
			tk.atNextTick() // a change: look at the next tick
			continue
		}
		// From here on, a change arms the loop again (isrArm), so one
		// that comes during this pass is not missed if it ends asleep.
		b.isrArm.listen()
		b.mu.RLock()
		reps := make([]*partition, 0, len(b.mu.replicas))
		for _, r := range b.mu.replicas {
			reps = append(reps, r)
		}
		b.mu.RUnlock()
		sortReplicas(reps) // proposals in the same order in every replay
		checkpoint := time.Since(lastCheckpoint) >= b.cfg.hwCheckpoint
		if checkpoint {
			lastCheckpoint = time.Now()
		}
		var props []isrProposal
		busy := false
		for _, r := range reps {
			if checkpoint {
				r.checkpoint(false)
			}
			p, ok, behind := r.proposeISR()
			if ok {
				props = append(props, p)
			}
			busy = busy || behind || r.uncheckpointed()
		}
		b.alterPartitions(b.ctx, props)
		if busy || len(props) > 0 {
			tk.atNextTick()
		}
	}
}

// alterPartitions asks the controller to commit the proposed ISRs in one
// AlterPartition request (v3: members with their broker epochs, KIP-903;
// over the network), as Kafka's
// AlterPartitionManager batches them, and logs each outcome.
func (b *broker) alterPartitions(ctx context.Context, props []isrProposal) {
	if len(props) == 0 {
		return
	}
	req := kmsg.NewPtrAlterPartitionRequest()
	req.SetVersion(3)
	req.BrokerID, req.BrokerEpoch = b.id, b.epoch
	byTopic := map[[16]byte]int{}
	for _, pr := range props {
		i, ok := byTopic[pr.r.id]
		if !ok {
			i = len(req.Topics)
			byTopic[pr.r.id] = i
			t := kmsg.NewAlterPartitionRequestTopic()
			t.TopicID = pr.r.id
			req.Topics = append(req.Topics, t)
		}
		p := kmsg.NewAlterPartitionRequestTopicPartition()
		p.Partition, p.LeaderEpoch, p.PartitionEpoch = pr.r.part, pr.leaderEpoch, pr.partEpoch
		for i, id := range pr.isr {
			p.NewEpochISR = append(p.NewEpochISR, kmsg.AlterPartitionRequestTopicPartitionNewEpochISR{BrokerID: id, BrokerEpoch: pr.brokerEpochs[i]})
		}
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
	}
	deltas := isrDeltas(props)
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kresp, err := b.pc.request(actx, req)
	if err == nil {
		err = kerr.ErrorForCode(kresp.(*kmsg.AlterPartitionResponse).ErrorCode)
	}
	if err != nil {
		b.log.Debug("AlterPartition failed", "partitions", len(props), "err", err)
		return
	}
	type key struct {
		id   [16]byte
		part int32
	}
	errs := map[key]int16{}
	for _, t := range kresp.(*kmsg.AlterPartitionResponse).Topics {
		for _, p := range t.Partitions {
			errs[key{t.TopidID, p.Partition}] = p.ErrorCode
		}
	}
	for i, pr := range props {
		code, ok := errs[key{pr.r.id, pr.r.part}]
		if !ok || code != 0 {
			b.log.Debug("AlterPartition refused", "topic", pr.r.topic, "partition", pr.r.part, "isr", pr.isr, "err", kerr.ErrorForCode(code), "answered", ok)
			continue
		}
		b.c.markISR(b.id, deltas[i])
		b.log.Info("ISR changed", "topic", pr.r.topic, "partition", pr.r.part, "isr", pr.isr)
	}
}
