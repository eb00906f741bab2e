package kcluster

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// notController finds NOT_CONTROLLER wherever a response carries it, and
// DescribeQuorum's per-partition NOT_LEADER_OR_FOLLOWER; other codes are
// not it.
func TestNotController(t *testing.T) {
	nc := kerr.NotController.Code
	hb := kmsg.NewPtrBrokerHeartbeatResponse()
	hb.ErrorCode = nc
	ap := kmsg.NewPtrAlterPartitionResponse()
	apt := kmsg.NewAlterPartitionResponseTopic()
	app := kmsg.NewAlterPartitionResponseTopicPartition()
	app.ErrorCode = nc
	apt.Partitions = append(apt.Partitions, kmsg.NewAlterPartitionResponseTopicPartition(), app)
	ap.Topics = append(ap.Topics, apt)
	ct := kmsg.NewPtrCreateTopicsResponse()
	ctt := kmsg.NewCreateTopicsResponseTopic()
	ctt.ErrorCode = kerr.TopicAlreadyExists.Code
	ct.Topics = append(ct.Topics, ctt)
	dq := kmsg.NewPtrDescribeQuorumResponse()
	dqt := kmsg.NewDescribeQuorumResponseTopic()
	dqp := kmsg.NewDescribeQuorumResponseTopicPartition()
	dqp.ErrorCode = kerr.NotLeaderForPartition.Code
	dqt.Partitions = append(dqt.Partitions, dqp)
	dq.Topics = append(dq.Topics, dqt)
	notLeaderElsewhere := kmsg.NewPtrAlterPartitionResponse()
	nt := kmsg.NewAlterPartitionResponseTopic()
	np := kmsg.NewAlterPartitionResponseTopicPartition()
	np.ErrorCode = kerr.NotLeaderForPartition.Code
	nt.Partitions = append(nt.Partitions, np)
	notLeaderElsewhere.Topics = append(notLeaderElsewhere.Topics, nt)
	for _, tc := range []struct {
		name string
		resp kmsg.Response
		want bool
	}{
		{"top-level", hb, true},
		{"per partition", ap, true},
		{"another code per topic", ct, false},
		{"DescribeQuorum's NOT_LEADER_OR_FOLLOWER", dq, true},
		{"NOT_LEADER_OR_FOLLOWER elsewhere", notLeaderElsewhere, false},
		{"no error", kmsg.NewPtrAllocateProducerIDsResponse(), false},
	} {
		if got := notController(tc.resp); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
