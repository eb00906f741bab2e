package kcluster

// A group as its coordinator's shard holds it (Kafka's Group): its name,
// kind and state, and its committed offsets, shared by the classic
// protocol (group_classic.go) and KIP-848 consumer groups
// (group_consumer.go). Every method runs with the group's shard locked.

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Group states, by Kafka's names (classic groups use the first five,
// consumer groups Empty, Assigning, Reconciling, Stable and Dead).
const (
	stateEmpty       = "Empty"
	statePreparing   = "PreparingRebalance"
	stateCompleting  = "CompletingRebalance"
	stateStable      = "Stable"
	stateDead        = "Dead"
	stateAssigning   = "Assigning"
	stateReconciling = "Reconciling"
)

// Group types (ListGroups v5, KIP-848).
const (
	kindClassic  = "classic"
	kindConsumer = "consumer"
)

// kindShare (KIP-932) is in group_share.go.

type group struct {
	name       string
	kind       string
	state      string
	stateSince time.Time

	// classic protocol
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	joinOrder    []string             // member ids in join order (leader choice)
	pending      map[string]time.Time // KIP-394: ids handed out, awaiting their join
	statics      map[string]string    // group.instance.id → member id
	joinDeadline time.Time            // PreparingRebalance ends at the latest here
	initialJoin  bool                 // the rebalance started from Empty (initial delay)
	newMember    bool                 // a member joined during the current initial delay
	rebalanceEnd time.Time            // initial delay: never beyond the rebalance timeout
	syncDeadline time.Time            // CompletingRebalance: the leader's assignment is due

	offsets map[string]map[int32]offsetEntry
	cg      *consumerGroup // KIP-848 state, for kind consumer
	sg      *shareGroup    // KIP-932 state, for kind share
}

type offsetEntry struct {
	offset      int64
	leaderEpoch int32
	metadata    string
	commitTs    int64
	expireTs    int64
	// recordOffset is where the commit's record is in __consumer_offsets:
	// a transaction's offsets, applied at its commit marker, replace
	// only an offset committed before them (Kafka's
	// OffsetMetadataManager.replayEndTransactionMarker).
	recordOffset int64
}

func newGroup(name string, now time.Time) *group {
	return &group{
		name: name, kind: kindClassic, state: stateEmpty, stateSince: now,
		members: map[string]*member{}, pending: map[string]time.Time{}, statics: map[string]string{},
	}
}

func (g *group) setState(s string, now time.Time) {
	if g.state != s {
		g.state, g.stateSince = s, now
	}
}

func (g *group) setOffset(topic string, p int32, o offsetEntry) {
	if g.offsets == nil {
		g.offsets = map[string]map[int32]offsetEntry{}
	}
	if g.offsets[topic] == nil {
		g.offsets[topic] = map[int32]offsetEntry{}
	}
	g.offsets[topic][p] = o
}

func (g *group) deleteOffset(topic string, p int32) {
	if ps := g.offsets[topic]; ps != nil {
		delete(ps, p)
		if len(ps) == 0 {
			delete(g.offsets, topic)
		}
	}
}

func (g *group) numOffsets() int {
	n := 0
	for _, ps := range g.offsets {
		n += len(ps)
	}
	return n
}

// isEmptyState reports whether the group has no members.
func (g *group) isEmptyState() bool {
	if g.cg != nil && len(g.cg.members) > 0 || g.sg != nil && len(g.sg.members) > 0 {
		return false
	}
	return len(g.members) == 0 && g.state == stateEmpty
}

// isDeletable reports whether nothing is left of the group.
func (g *group) isDeletable() bool {
	return g.isEmptyState() && g.numOffsets() == 0 && g.protocolType == "" && g.cg == nil && g.sg == nil
}

// offsetExpired is Kafka's offset expiration condition (KIP-211, and
// KIP-496 for topics a stable group no longer subscribes to).
func (g *group) offsetExpired(topic string, o offsetEntry, now time.Time, retention time.Duration) bool {
	at := g.offsetExpiry(topic, o, retention)
	return !at.IsZero() && !now.Before(at)
}

// offsetExpiry is when the offset expires if the group stays as it is
// (zero: it does not).
func (g *group) offsetExpiry(topic string, o offsetEntry, retention time.Duration) time.Time {
	after := func(base int64) time.Time { return time.UnixMilli(base + retention.Milliseconds()) }
	if o.expireTs > 0 {
		return time.UnixMilli(o.expireTs)
	}
	switch {
	case g.isEmptyState() && (g.protocolType != "" || g.cg != nil):
		return after(g.stateSince.UnixMilli())
	case g.protocolType == "" && g.cg == nil:
		return after(o.commitTs) // a simple group
	case g.kind == kindClassic && g.protocolType == "consumer" && g.state == stateStable:
		if !slices.Contains(g.subscribedTopicsLocked(), topic) {
			return after(o.commitTs)
		}
	}
	return time.Time{}
}

// subscribedTopicsLocked is the union of the members' subscriptions: for
// classic "consumer" groups decoded from the selected protocol's metadata
// (ConsumerMemberMetadata), for consumer groups from the heartbeats.
func (g *group) subscribedTopicsLocked() []string {
	seen := map[string]bool{}
	if g.kind == kindConsumer && g.cg != nil {
		for _, m := range g.cg.members {
			for _, t := range m.topics {
				seen[t] = true
			}
		}
	} else {
		for _, m := range g.members {
			var meta kmsg.ConsumerMemberMetadata
			if meta.ReadFrom(m.metadataFor(g.protocol)) == nil {
				for _, t := range meta.Topics {
					seen[t] = true
				}
			}
		}
	}
	return sortedKeys(seen)
}
