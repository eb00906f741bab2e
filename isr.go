package kcluster

import (
	"context"
	"slices"

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

// isrProposal is a leader's proposed ISR for one partition, at the leader
// and partition epochs it was computed under.
type isrProposal struct {
	r                      *partition
	leaderEpoch, partEpoch int32
	isr                    []int32
	// brokerEpochs are the members' broker epochs as their fetches
	// named them (-1: not known), so the controller can refuse a
	// member whose state is of a previous incarnation (KIP-903).
	brokerEpochs []int64
}

// proposeISR proposes a new ISR if followers fell out or caught up.
// behind reports an ISR follower behind the log end: one the ISR may
// drop later if it does not catch up.
func (r *partition) proposeISR() (_ isrProposal, changed, behind bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed || r.mu.leader != r.b.id {
		return isrProposal{}, false, false
	}
	now := time.Now()
	lag := r.b.cfg.replicaLagTimeMax
	isr := slices.Clone(r.mu.isr)
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
		behind = behind || f == nil || f.leo != leo
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
		// Caught up as Kafka's Replica.isCaughtUp has it: at the
		// leader's log end, or within the lag time. A follower whose
		// fetch is held at the log end fetches nothing new, so its
		// lastCaughtUp stands still while it stays caught up.
		if f != nil && f.leo >= r.mu.hw && f.leo >= epochStart && (f.leo >= leo || now.Sub(f.lastCaughtUp) <= lag) {
			isr = append(isr, id)
			changed = true
		}
	}
	epochs := make([]int64, len(isr))
	for i, id := range isr {
		epochs[i] = -1
		if id == r.b.id {
			epochs[i] = r.b.epoch
		} else if f := r.mu.followers[id]; f != nil {
			epochs[i] = f.brokerEpoch
		}
	}
	return isrProposal{r: r, leaderEpoch: r.mu.epoch, partEpoch: r.mu.partitionEpoch, isr: isr, brokerEpochs: epochs}, changed, behind
}

// wakeISRForCaughtUpLocked wakes the ISR loop when the metadata leaves
// out of the ISR a follower that this leader last saw caught up to the
// high watermark. Its fetch may be held at the log end, so no read of it
// would wake the loop: a leader that applied a fence of the follower
// late (its metadata fetch was behind) applies the follower's return in
// the same batch and sees neither a new unfencing nor a new fetch.
func (r *partition) wakeISRForCaughtUpLocked() {
	for id, f := range r.mu.followers {
		if f.leo >= r.mu.hw && !slices.Contains(r.mu.isr, id) && slices.Contains(r.mu.replicas, id) {
			select {
			case r.b.isrWake <- struct{}{}:
			default:
			}
			return
		}
	}
}
