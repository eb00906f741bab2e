package metadata

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Broker liveness and partition leadership, as KRaft's controller does it:
// brokers heartbeat; one that misses heartbeats for the session timeout is
// fenced, loses the leadership of its partitions (a new leader is elected
// from the ISR) and leaves every ISR. A fenced broker that heartbeats again
// is unfenced and leads partitions that had no leader left in their ISR.

// ErrStaleBrokerEpoch is returned by Heartbeat for a broker epoch that is
// not the broker's current registration (STALE_BROKER_EPOCH).
var ErrStaleBrokerEpoch = kerr.StaleBrokerEpoch

// Heartbeat records that broker id (registration epoch) is alive. A fenced
// broker is unfenced by its heartbeat. offline are the log dirs the
// broker reports offline (OfflineLogDirs): a change of them changes its
// registration and moves leaderships (logDirsChangeLocked). It returns
// whether the broker is fenced after the call.
func (c *Controller) Heartbeat(ctx context.Context, id int32, epoch int64, offline []DirectoryID) (bool, error) {
	c.beats.Lock()
	c.beats.last[id] = beat{c.cfg.Now(), epoch}
	c.beats.Unlock()
	if err := c.lockActive(ctx); err != nil {
		return true, err
	}
	defer c.mu.Unlock()
	b := c.mu.state.Brokers[id]
	if b == nil || b.Epoch != epoch {
		return true, ErrStaleBrokerEpoch
	}
	c.mu.lastBeat[id] = c.cfg.Now()
	dirs := c.logDirsChangeLocked(id, offline)
	if !b.Fenced {
		if len(dirs) > 0 {
			if err := c.proposeLocked(ctx, dirs...); err != nil {
				return false, err
			}
		}
		return false, nil
	}
	// The dirs first: an unfenced broker's election must not pick a
	// replica in a dir it just reported offline.
	if len(dirs) > 0 {
		if err := c.proposeLocked(ctx, dirs...); err != nil {
			return true, err
		}
	}
	recs := []Record{&FenceBroker{ID: id, Fenced: false}}
	recs = append(recs, c.electOnUnfenceLocked(id)...)
	if err := c.proposeLocked(ctx, recs...); err != nil {
		return true, err
	}
	return false, nil
}

// Stand records that broker id's heartbeat, just answered by Heartbeat
// as unfenced in registration epoch epoch, stands: the caller holds it
// (parked) on a connection that is known to carry every write at once
// (network.Watch), so the broker is alive for as long as it stands, and
// its session cannot expire meanwhile. gone is closed if the broker is
// fenced or registers again while it stands: the caller then answers it.
// The broker heartbeats every interval; end, called when the heartbeat
// stops standing (answered, or its connection closed or faulty), records
// the last of the heartbeats the broker would have sent by then as its
// last one, so the session runs from it as if those heartbeats had
// crossed the network, and a broker that dies is fenced when it would
// have been. end is idempotent.
func (c *Controller) Stand(id int32, epoch int64, interval time.Duration) (gone <-chan struct{}, end func()) {
	since := c.cfg.Now()
	s := standing{since: since, epoch: epoch, interval: interval, gone: make(chan struct{})}
	c.beats.Lock()
	if old, ok := c.beats.standing[id]; ok {
		close(old.gone) // a heartbeat stands only once
	}
	c.beats.standing[id] = s
	c.beats.Unlock()
	var once sync.Once
	return s.gone, func() {
		once.Do(func() {
			now := c.cfg.Now()
			last := now
			if interval > 0 {
				last = since.Add(now.Sub(since) / interval * interval)
			}
			c.beats.Lock()
			if cur, ok := c.beats.standing[id]; ok && cur.gone == s.gone {
				delete(c.beats.standing, id)
			}
			if b := c.beats.last[id]; b.epoch != epoch || b.at.Before(last) {
				c.beats.last[id] = beat{last, epoch}
			}
			c.beats.Unlock()
			c.kickRun()
		})
	}
}

// Run applies records other nodes commit and, while this controller is
// active, fences brokers whose sessions expire and moves leadership back
// to preferred replicas, until ctx ends. It wakes only when there is
// something to do: a session may expire (then at least eight times per
// session, so that a stall of this loop is seen), a leader-imbalance
// check is due while leaders are not preferred, a standing heartbeat
// ended, or the state changed. With every heartbeat standing and every
// leader preferred, it sleeps.
func (c *Controller) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.applier(ctx) }()
	defer wg.Wait()
	maxWait := c.cfg.SessionTimeout / 8
	if maxWait <= 0 {
		maxWait = 50 * time.Millisecond
	}
	t := time.NewTimer(maxWait)
	defer t.Stop()
	// Leader-imbalance checks keep the phase of a ticker started now
	// (leader.imbalance.check.interval.seconds), so a rebalance comes as
	// long after an imbalance appears as a ticker would have it; the loop
	// wakes for a check only while a change may have left leaders
	// unbalanced (changed) or the last check found them so.
	phase := c.cfg.Now()
	nextRebalance := phase.Add(c.cfg.LeaderImbalanceCheck)
	changed, imbalanced := true, false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
			changed = true
		}
		next := c.expireSessions(ctx)
		now := c.cfg.Now()
		if c.cfg.AutoLeaderRebalance && !now.Before(nextRebalance) {
			if changed || imbalanced {
				imbalanced = c.rebalanceLeaders(ctx)
				changed = false
			}
			steps := now.Sub(phase)/c.cfg.LeaderImbalanceCheck + 1
			nextRebalance = phase.Add(steps * c.cfg.LeaderImbalanceCheck)
		}
		var wake time.Time
		if !next.IsZero() {
			// A millisecond past the deadline, so the check finds
			// the session expired rather than just short of it.
			wake = minTime(now.Add(maxWait), next.Add(time.Millisecond))
		}
		if c.cfg.AutoLeaderRebalance && (changed || imbalanced) {
			wake = minTime(wake, nextRebalance)
		}
		if !c.Active() {
			// A standby (quorum mode) looks again soon: when it
			// becomes active, every session must start promptly.
			wake = minTime(wake, now.Add(maxWait))
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		if !wake.IsZero() {
			t.Reset(max(wake.Sub(now), time.Millisecond))
		}
	}
}

// minTime is the earlier of a and b, a zero time standing for none.
func minTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// expireSessions fences every unfenced broker whose last heartbeat is a
// session timeout old, and returns when the next session expires if no
// heartbeat comes first (zero if none can: every unfenced broker's
// heartbeat stands, or there is none).
func (c *Controller) expireSessions(ctx context.Context) time.Time {
	if err := c.lockActive(ctx); err != nil {
		c.mu.Lock()
		c.mu.active = false
		c.mu.Unlock()
		return time.Time{}
	}
	defer c.mu.Unlock()
	now := c.cfg.Now()
	stalled := !c.mu.lastCheck.IsZero() && now.Sub(c.mu.lastCheck) > c.cfg.SessionTimeout/2
	c.mu.lastCheck = now
	if !c.mu.active || stalled {
		// A controller that just became active has heard no heartbeat:
		// every session starts now (as a new KRaft controller does).
		// So do they after this loop was held up for half a session
		// (it runs at least eight times a session while one may
		// expire): the controller was not running, or not getting its
		// lock, and a broker must not be fenced for the controller's
		// own stall.
		c.mu.active = true
		for id := range c.mu.state.Brokers {
			c.mu.lastBeat[id] = now
		}
		return now.Add(c.cfg.SessionTimeout)
	}
	c.beats.Lock()
	beats := maps.Clone(c.beats.last)
	standing := maps.Clone(c.beats.standing)
	c.beats.Unlock()
	var next time.Time
	for _, id := range c.mu.state.BrokerIDs() {
		b := c.mu.state.Brokers[id]
		if b.Fenced {
			continue
		}
		if s, ok := standing[id]; ok && s.epoch == b.Epoch {
			continue // alive while its heartbeat stands
		}
		last := c.mu.lastBeat[id]
		if hb := beats[id]; hb.epoch == b.Epoch && hb.at.After(last) {
			last = hb.at
		}
		if due := last.Add(c.cfg.SessionTimeout); now.Before(due) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		c.fenceLocked(ctx, id)
	}
	if next.IsZero() {
		// No session runs: the loop sleeps, and its next check is no
		// sign of a stall.
		c.mu.lastCheck = time.Time{}
	}
	return next
}

// FenceBroker fences a broker now and moves its leaderships away: the
// controlled-shutdown path (the broker asked to stop) and the session
// expiry path share it.
func (c *Controller) FenceBroker(ctx context.Context, id int32) error {
	if err := c.lockActive(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	b := c.mu.state.Brokers[id]
	if b == nil {
		return kerr.BrokerIDNotRegistered
	}
	if b.Fenced {
		return nil
	}
	return c.fenceLocked(ctx, id)
}

// FenceBrokerAt is FenceBroker for a broker's own request: its epoch must
// be its current registration's.
func (c *Controller) FenceBrokerAt(ctx context.Context, id int32, epoch int64) error {
	if err := c.lockActive(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	b := c.mu.state.Brokers[id]
	if b == nil || b.Epoch != epoch {
		return ErrStaleBrokerEpoch
	}
	if b.Fenced {
		return nil
	}
	return c.fenceLocked(ctx, id)
}

func (c *Controller) fenceLocked(ctx context.Context, id int32) error {
	recs := []Record{&FenceBroker{ID: id, Fenced: true}}
	return c.proposeLocked(ctx, append(recs, c.removeBrokerLocked(id, false)...)...)
}

// removeBrokerLocked returns the changes that take broker id out of every
// ISR and move its leaderships to other replicas (Kafka's
// handleBrokerFenced). Without eligible leader replicas the last ISR
// member stays, so that it (and only it) can lead again cleanly; with
// them the ISR may become empty, and the members that leave an ISR below
// min.insync.replicas join the ELR (partition_change.go). unclean is a
// broker that restarted without a clean shutdown (Kafka's
// handleBrokerUncleanShutdown): it leaves every ELR too, and may not lead
// until it is back in an ISR.
func (c *Controller) removeBrokerLocked(id int32, unclean bool) []Record {
	var recs []Record
	st := c.mu.state
	acceptable := func(r int32) bool { return r != id && c.liveLocked(r) }
	for _, name := range st.TopicNames() {
		t := st.Topics[name]
		for _, p := range t.Partitions {
			if !slices.Contains(p.ISR, id) && p.Leader != id && !(unclean && slices.Contains(p.ELR, id)) {
				continue
			}
			b := c.changeLocked(t, p, acceptable)
			if unclean {
				b.uncleanShutdown = id
			}
			b.isr = without(p.ISR, []int32{id})
			if ch := b.build(); ch != nil {
				recs = append(recs, ch)
			}
		}
	}
	return recs
}

// minISRLocked is the min.insync.replicas the controller keeps the ELR
// by: the topic's, else the cluster-wide dynamic default, else the
// static one, at most the replication factor (Kafka's
// getTopicEffectiveMinIsr).
func (c *Controller) minISRLocked(t *Topic, p *Partition) int {
	n := max(c.cfg.MinInsyncReplicas, 1)
	v, ok := t.Configs["min.insync.replicas"]
	if !ok {
		v, ok = c.mu.state.BrokerConfigs[""]["min.insync.replicas"]
	}
	if ok {
		if m, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && m >= 1 {
			n = m
		}
	}
	return min(n, max(len(p.Replicas), 1))
}

func (c *Controller) uncleanLocked(t *Topic) bool {
	if v, ok := t.Configs["unclean.leader.election.enable"]; ok {
		b, err := strconv.ParseBool(v)
		return err == nil && b
	}
	// The cluster-wide dynamic broker default, then the static one.
	if v, ok := c.mu.state.BrokerConfigs[""]["unclean.leader.election.enable"]; ok {
		b, err := strconv.ParseBool(v)
		return err == nil && b
	}
	return c.cfg.UncleanElection
}

// electOnUnfenceLocked gives leaderless partitions a leader now that id is
// back (Kafka's handleBrokerUnfenced): a live ISR member, or with the ISR
// empty a live ELR member (clean); with the ISR and ELR empty the last
// known leader; with unclean election any live replica (its ISR then
// restarts as just it).
func (c *Controller) electOnUnfenceLocked(id int32) []Record {
	var recs []Record
	st := c.mu.state
	acceptable := func(r int32) bool { return r == id || c.liveLocked(r) }
	for _, name := range st.TopicNames() {
		t := st.Topics[name]
		for _, p := range t.Partitions {
			if p.Leader >= 0 {
				continue
			}
			if ch := c.changeLocked(t, p, acceptable).build(); ch != nil {
				recs = append(recs, ch)
			}
		}
	}
	return recs
}

// rebalanceLeaders moves leadership to each partition's preferred replica
// (the first) when it is live and in the ISR (auto.leader.rebalance.enable).
func (c *Controller) rebalanceLeaders(ctx context.Context) (imbalanced bool) {
	if c.lockActive(ctx) != nil {
		return false
	}
	defer c.mu.Unlock()
	var recs []Record
	st := c.mu.state
	for _, name := range st.TopicNames() {
		t := st.Topics[name]
		for _, p := range t.Partitions {
			pref := p.Replicas[0]
			b := st.Brokers[pref]
			if p.Leader == pref || b == nil || b.Fenced || !slices.Contains(p.ISR, pref) {
				continue
			}
			ch := c.changeLocked(t, p, nil)
			ch.election = electPreferred
			if rec := ch.build(); rec != nil {
				recs = append(recs, rec)
			}
		}
	}
	if len(recs) > 0 {
		return c.proposeLocked(ctx, recs...) != nil
	}
	return false
}

// AlterPartition applies a leader's ISR change (Kafka's AlterPartition): the
// request must come from the current leader at the current leader epoch and
// partition epoch, and the new ISR may only hold live replicas.
func (c *Controller) AlterPartition(ctx context.Context, id TopicID, part, leader, leaderEpoch, partitionEpoch int32, isr []int32, brokerEpochs []int64) error {
	if err := c.lockActive(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	p := c.mu.state.Partition(id, part)
	if p == nil {
		return kerr.UnknownTopicOrPartition
	}
	if p.Leader != leader {
		return kerr.NotLeaderForPartition
	}
	if leaderEpoch != p.LeaderEpoch {
		return kerr.FencedLeaderEpoch
	}
	if partitionEpoch != p.PartitionEpoch {
		return kerr.InvalidUpdateVersion
	}
	if !slices.Contains(isr, leader) {
		return kerr.InvalidRequest
	}
	for i, r := range isr {
		b := c.mu.state.Brokers[r]
		if !slices.Contains(p.Replicas, r) || b == nil || b.Fenced || !c.dirOnlineLocked(p.Directory(r), r) {
			return kerr.IneligibleReplica
		}
		// KIP-903: the leader's knowledge of a member is of the
		// member's current registration, or the member restarted
		// since (and may have lost what the leader thinks it has).
		if i < len(brokerEpochs) && brokerEpochs[i] >= 0 && brokerEpochs[i] != b.Epoch {
			return kerr.IneligibleReplica
		}
	}
	b := c.changeLocked(c.mu.state.TopicsByID[id], p, nil)
	b.isr = slices.Clone(isr)
	ch := b.build()
	if ch == nil {
		return nil
	}
	return c.proposeLocked(ctx, ch)
}
