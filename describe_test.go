package kcluster

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeLogDirs: each broker reports the size of every replica it
// holds, which grows with what is produced.
func TestDescribeLogDirs(t *testing.T) {
	c := Start(t, Brokers(3))
	createTopic(t, c, "ld", 1, 2)
	produceN(t, c, "ld", 10, time.Now().UnixMilli(), 100)
	waitFor(t, c, "both replicas", inSync("ld", 2))
	st := partState(t, c, "ld", 0)
	for i, addr := range c.Addrs() {
		id := int32(i + 1)
		resp := do[*kmsg.DescribeLogDirsResponse](t, dial(t, addr), kmsg.NewPtrDescribeLogDirsRequest(), -1)
		if len(resp.Dirs) != 1 || resp.Dirs[0].ErrorCode != 0 {
			t.Fatalf("broker %d: %+v", id, resp.Dirs)
		}
		var size int64 = -1
		for _, tp := range resp.Dirs[0].Topics {
			if tp.Topic == "ld" {
				size = tp.Partitions[0].Size
			}
		}
		if want, holds := st.LogSizes[id]; !holds {
			if size != -1 {
				t.Fatalf("broker %d reports ld/0 (%d bytes) without a replica", id, size)
			}
		} else if size != want || size < 10*100 {
			t.Fatalf("broker %d reports %d bytes for ld/0, want %d", id, size, want)
		}
	}
}

// DescribeTopicPartitions pages through partitions with its cursor.
func TestDescribeTopicPartitions(t *testing.T) {
	c := Start(t, Brokers(3))
	createTopic(t, c, "dtp-a", 3, 2)
	createTopic(t, c, "dtp-b", 2, 3)
	req := kmsg.NewPtrDescribeTopicPartitionsRequest()
	for _, n := range []string{"dtp-b", "dtp-a", "nope"} {
		rt := kmsg.NewDescribeTopicPartitionsRequestTopic()
		rt.Topic = n
		req.Topics = append(req.Topics, rt)
	}
	req.ResponsePartitionLimit = 4
	resp := do[*kmsg.DescribeTopicPartitionsResponse](t, dial(t, c.Addrs()[0]), req, 0)
	if len(resp.Topics) != 2 || *resp.Topics[0].Topic != "dtp-a" || len(resp.Topics[0].Partitions) != 3 || len(resp.Topics[1].Partitions) != 1 {
		t.Fatalf("first page: %+v", resp.Topics)
	}
	if resp.NextCursor == nil || resp.NextCursor.Topic != "dtp-b" || resp.NextCursor.Partition != 1 {
		t.Fatalf("cursor %+v", resp.NextCursor)
	}
	st := partState(t, c, "dtp-a", 1)
	if p := resp.Topics[0].Partitions[1]; p.LeaderID != st.Leader || !slices.Equal(p.Replicas, st.Replicas) {
		t.Fatalf("dtp-a/1: %+v, state %+v", p, st)
	}
	req.Cursor = &kmsg.DescribeTopicPartitionsRequestCursor{Topic: resp.NextCursor.Topic, Partition: resp.NextCursor.Partition}
	resp = do[*kmsg.DescribeTopicPartitionsResponse](t, dial(t, c.Addrs()[1]), req, 0)
	if len(resp.Topics) != 2 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].Partition != 1 ||
		resp.Topics[1].ErrorCode != kerr.UnknownTopicOrPartition.Code || resp.NextCursor != nil {
		t.Fatalf("second page: %+v cursor %+v", resp.Topics, resp.NextCursor)
	}
}

// AlterReplicaLogDirs: a broker has one log dir, so a replica may only be
// asked to stay there; another dir is LOG_DIR_NOT_FOUND, a partition the
// broker holds no replica of REPLICA_NOT_AVAILABLE, an unknown one
// UNKNOWN_TOPIC_OR_PARTITION, as Kafka's ReplicaManager answers.
func TestAlterReplicaLogDirs(t *testing.T) {
	c := Start(t, Brokers(3))
	createTopic(t, c, "ard", 1, 2)
	st := partState(t, c, "ard", 0)
	var holder, other int32
	for id := int32(1); id <= 3; id++ {
		if _, ok := st.LogSizes[id]; ok {
			holder = id
		} else {
			other = id
		}
	}
	dirOf := func(id int32) string {
		resp := do[*kmsg.DescribeLogDirsResponse](t, dial(t, c.Addrs()[id-1]), kmsg.NewPtrDescribeLogDirsRequest(), -1)
		return resp.Dirs[0].Dir
	}
	alter := func(id int32, dir string, topic string, v int16) []kmsg.AlterReplicaLogDirsResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrAlterReplicaLogDirsRequest()
		d := kmsg.NewAlterReplicaLogDirsRequestDir()
		d.Dir = dir
		rt := kmsg.NewAlterReplicaLogDirsRequestDirTopic()
		rt.Topic, rt.Partitions = topic, []int32{0}
		d.Topics = append(d.Topics, rt)
		req.Dirs = append(req.Dirs, d)
		resp := do[*kmsg.AlterReplicaLogDirsResponse](t, dial(t, c.Addrs()[id-1]), req, v)
		if len(resp.Topics) != 1 || resp.Topics[0].Topic != topic || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("broker %d: %+v", id, resp.Topics)
		}
		return resp.Topics[0].Partitions
	}
	for _, tc := range []struct {
		name  string
		id    int32
		dir   string
		topic string
		want  error
	}{
		{"stays in its dir", holder, dirOf(holder), "ard", nil},
		{"another dir", holder, dirOf(holder) + "-2", "ard", kerr.LogDirNotFound},
		{"no replica here", other, dirOf(other), "ard", kerr.ReplicaNotAvailable},
		{"unknown topic", holder, dirOf(holder), "nope", kerr.UnknownTopicOrPartition},
	} {
		for _, v := range []int16{1, 2} {
			got := alter(tc.id, tc.dir, tc.topic, v)[0]
			if err := kerr.ErrorForCode(got.ErrorCode); err != tc.want {
				t.Errorf("%s (v%d): %v, want %v", tc.name, v, err, tc.want)
			}
		}
	}
	if after := partState(t, c, "ard", 0); !slices.Equal(after.Replicas, st.Replicas) {
		t.Fatalf("replicas moved: %v, then %v", st.Replicas, after.Replicas)
	}
}
