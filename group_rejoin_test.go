package kcluster

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The only member of a stable group (its leader) joins again, as a client
// does after losing its coordinator: the join phase completes at once,
// since every member has joined, not after the rebalance timeout.
func TestGroupLeaderRejoinCompletesAtOnce(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "t", 1, 1)
	cl, _ := coordinator(t, c, "g")
	first := join(t, cl, "g", nil, 10000)
	if s := syncGroup(t, cl, "g", first.MemberID, first.Generation, map[string][]byte{first.MemberID: nil}); s.ErrorCode != 0 {
		t.Fatalf("SyncGroup: %v", kerr.ErrorForCode(s.ErrorCode))
	}
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group, req.MemberID, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = "g", first.MemberID, 10000, 60000
	req.ProtocolType, req.Protocols = "consumer", consumerProtocol("t")
	start := time.Now()
	resp := do[*kmsg.JoinGroupResponse](t, cl, req, -1)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil || resp.Generation != first.Generation+1 {
		t.Fatalf("rejoin: %v, generation %d", err, resp.Generation)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("rejoin of the only member took %v: it waited for the rebalance timeout", d)
	}
}
