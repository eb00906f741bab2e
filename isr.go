package kcluster

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"slices"
	"time"
)

// isrLoop is the leader's side of ISR maintenance (Kafka's
// maybeShrinkIsr/maybeExpandIsr): every half replica.lag.time.max.ms it
// drops from the ISR followers that have not caught up for that long; it
// adds back replicas that have caught up to the high watermark as soon as a
// fetch shows it (read pokes isrWake); and it asks the
// controller to commit the change (AlterPartition), so every broker learns
// the new ISR from the metadata log. It also checkpoints high watermarks.
func (b *broker) isrLoop() {
	tick := b.cfg.replicaLagTimeMax / 2
	if tick < 10*time.Millisecond {
		tick = 10 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	lastCheckpoint := time.Now()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		case <-b.isrWake:
			// A follower out of the ISR caught up: expand now, as
			// Kafka does on the fetch itself, not at the next tick.
		}
		b.mu.RLock()
		reps := make([]*replica, 0, len(b.mu.replicas))
		for _, r := range b.mu.replicas {
			reps = append(reps, r)
		}
		b.mu.RUnlock()
		checkpoint := time.Since(lastCheckpoint) >= b.cfg.hwCheckpoint
		if checkpoint {
			lastCheckpoint = time.Now()
		}
		for _, r := range reps {
			if checkpoint {
				r.checkpoint(false)
			}
			r.maybeChangeISR(b.ctx)
		}
	}
}

// maybeChangeISR proposes a new ISR if followers fell out or caught up.
func (r *replica) maybeChangeISR(ctx context.Context) {
	r.mu.Lock()
	if r.mu.closed || r.mu.leader != r.b.id {
		r.mu.Unlock()
		return
	}
	now := time.Now()
	lag := r.b.cfg.replicaLagTimeMax
	isr := slices.Clone(r.mu.isr)
	changed := false
	// Shrink: ISR followers not caught up within the lag time. A
	// follower at the leader's log end is caught up whenever it last
	// fetched (Kafka's isCaughtUp): a caught-up follower parks its fetch
	// for up to replica.fetch.wait.max.ms. A dead follower that is
	// caught up stays until the controller fences it.
	leo := r.log.LogEndOffset()
	isr = slices.DeleteFunc(isr, func(id int32) bool {
		if id == r.b.id {
			return false
		}
		f := r.mu.followers[id]
		out := f == nil || (f.leo != leo && now.Sub(f.lastCaughtUp) > lag)
		changed = changed || out
		return out
	})
	// Expand: replicas out of the ISR whose log end reached the high
	// watermark and the start of the leader's epoch.
	epochStart := int64(0)
	if es := r.log.EpochEntries(); len(es) > 0 {
		epochStart = es[len(es)-1].StartOffset
	}
	for _, id := range r.mu.replicas {
		if id == r.b.id || slices.Contains(isr, id) {
			continue
		}
		f := r.mu.followers[id]
		if f != nil && f.leo >= r.mu.hw && f.leo >= epochStart && now.Sub(f.lastCaughtUp) <= lag {
			isr = append(isr, id)
			changed = true
		}
	}
	leaderEpoch, partEpoch := r.mu.epoch, r.mu.partitionEpoch
	r.mu.Unlock()
	if !changed {
		return
	}
	if err := r.b.alterPartition(ctx, r.id, r.part, leaderEpoch, partEpoch, isr); err != nil {
		r.b.log.Debug("AlterPartition refused", "topic", r.topic, "partition", r.part, "isr", isr, "err", err)
		return
	}
	r.b.log.Info("ISR changed", "topic", r.topic, "partition", r.part, "isr", isr)
}

// alterPartition asks the controller to commit a new ISR (AlterPartition
// v2, over the network).
func (b *broker) alterPartition(ctx context.Context, id [16]byte, part, leaderEpoch, partEpoch int32, isr []int32) error {
	req := kmsg.NewPtrAlterPartitionRequest()
	req.SetVersion(2)
	req.BrokerID, req.BrokerEpoch = b.id, b.epoch
	t := kmsg.NewAlterPartitionRequestTopic()
	t.TopicID = id
	p := kmsg.NewAlterPartitionRequestTopicPartition()
	p.Partition, p.LeaderEpoch, p.PartitionEpoch, p.NewISR = part, leaderEpoch, partEpoch, isr
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kresp, err := b.cc.request(actx, req)
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.AlterPartitionResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return err
			}
		}
	}
	return nil
}
