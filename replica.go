package kcluster

import "time"

// A remote replica as its partition's leader sees it (Kafka's Replica):
// the follower's log-end offset and log start as its fetches report them,
// the broker epoch its fetches name, and when it was last caught up.
// updateFetchState is Kafka's Replica.updateFetchStateOrThrow. The leader
// keeps one per follower, guarded by the partition's mu.

// replica is what a leader knows of one follower (Kafka's Replica):
// its log-end offset and when it was last caught up, by Kafka's rule: a
// fetch at or past the leader's log end at the time of the previous fetch
// means the follower was caught up at that previous fetch.
type replica struct {
	// brokerEpoch is the registration epoch the follower's fetches
	// name (-1 until one does): a new one is a restarted broker, whose
	// state starts over (KIP-903).
	brokerEpoch       int64
	leo               int64
	lastCaughtUp      time.Time
	lastFetch         time.Time
	lastFetchLeaderLE int64
	logStart          int64 // as its fetches report it; -1 unknown
	// agreed is where the agreement check (invariants builds) goes
	// on: below it the follower's batches were found equal to the
	// leader's.
	agreed int64
}

// newReplica is a follower the leader has not heard from: its log
// end unknown (Kafka's -1), caught up as of now, so that the lag clock of
// an ISR member starts with the leader's term.
func newReplica(now time.Time) *replica {
	return &replica{brokerEpoch: -1, leo: -1, logStart: -1, lastCaughtUp: now}
}

// updateFetchState takes what a fetch from this follower says: offset, its
// fetch offset, is its log end (it may also go down: the follower
// truncated); leaderLEO is the leader's log end as the fetch is served.
// By Kafka's rule, a fetch at or past the leader's log end means the
// follower is caught up now, and a fetch at or past the leader's log end
// at the previous fetch means it was caught up then. reread is the same
// fetch read again after it was parked: the follower stayed where it was
// all along, so if it was at the log end at the previous read it was
// caught up until the append that woke the fetch, a moment ago (a parked
// fetch is one that fetches again and again, as often as its MaxWait
// would have had it). A fetch naming a new broker epoch (KIP-903) is a
// restarted follower: what the leader knew of its log is of its previous
// life (a power cut may have taken the rest), and it is not caught up
// until its fetches say so.
func (f *replica) updateFetchState(brokerEpoch, offset, leaderLEO int64, now time.Time, reread bool) {
	if brokerEpoch >= 0 && f.brokerEpoch >= 0 && brokerEpoch != f.brokerEpoch {
		*f = replica{brokerEpoch: brokerEpoch, leo: -1, logStart: -1}
	}
	if brokerEpoch >= 0 {
		f.brokerEpoch = brokerEpoch
	}
	switch {
	case offset >= leaderLEO:
		f.lastCaughtUp = now
	case offset >= f.lastFetchLeaderLE && reread && !f.lastFetch.IsZero():
		f.lastCaughtUp = now
	case offset >= f.lastFetchLeaderLE && !f.lastFetch.IsZero():
		f.lastCaughtUp = f.lastFetch
	}
	f.lastFetch, f.lastFetchLeaderLE = now, leaderLEO
	f.leo = offset
}
