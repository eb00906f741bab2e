package kcluster

// DescribeLogDirs v1-v5 (KIP-113; v0 is gone in Kafka 4, KIP-896; KIP-827
// total and usable bytes from v4, from the dir's file system, -1 where it
// cannot tell (in memory); KIP-1066 cordoning from v5: never). A broker
// describes each of its log dirs (LogDirs): an offline one with
// KAFKA_STORAGE_ERROR and nothing else, as Kafka's
// ReplicaManager.describeLogDirs; an online one with the size of every
// replica in it, and of every future replica moving into it
// (AlterReplicaLogDirs, IsFuture).

import (
	"slices"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { reg(1, 5, (*broker).handleDescribeLogDirs) }

// dirName is the name the broker gives log dir d in DescribeLogDirs and
// AlterReplicaLogDirs: its path on disk (Dir), else the path under
// /kcluster.
func (b *broker) dirName(d *logDir) string {
	if b.c.cfg.dir != "" {
		return d.path
	}
	return "/kcluster/" + d.path
}

// dirNamed returns the broker's log dir named name, or nil.
func (b *broker) dirNamed(name string) *logDir {
	for _, d := range b.dirs {
		if b.dirName(d) == name {
			return d
		}
	}
	return nil
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func (b *broker) handleDescribeLogDirs(req *kmsg.DescribeLogDirsRequest, r *request) (*kmsg.DescribeLogDirsResponse, error) {
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	type rep struct {
		topic  string
		part   int32
		size   int64
		future bool
	}
	wanted := func(topic string, part int32) bool {
		if req.Topics == nil {
			return true
		}
		i := slices.IndexFunc(req.Topics, func(t kmsg.DescribeLogDirsRequestTopic) bool { return t.Topic == topic })
		return i >= 0 && slices.Contains(req.Topics[i].Partitions, part)
	}
	byDir := map[*logDir][]rep{}
	for _, rp := range b.replicasSnapshot() {
		if !wanted(rp.topic, rp.part) {
			continue
		}
		byDir[rp.dir] = append(byDir[rp.dir], rep{rp.topic, rp.part, rp.log.Size(), false})
		if f := rp.futureLog(); f != nil {
			byDir[f.dir] = append(byDir[f.dir], rep{rp.topic, rp.part, f.log.Size(), true})
		}
	}
	for _, d := range b.dirs {
		dir := kmsg.NewDescribeLogDirsResponseDir()
		dir.Dir = b.dirName(d)
		dir.TotalBytes, dir.UsableBytes = -1, -1
		if d.offline.Load() {
			dir.ErrorCode = kerr.KafkaStorageError.Code
			resp.Dirs = append(resp.Dirs, dir)
			continue
		}
		if u, err := d.fs.GetDiskUsage(d.path); err == nil && u.TotalBytes > 0 {
			dir.TotalBytes, dir.UsableBytes = int64(u.TotalBytes), int64(u.AvailBytes)
		}
		reps := byDir[d]
		sort.Slice(reps, func(i, j int) bool {
			if reps[i].topic != reps[j].topic {
				return reps[i].topic < reps[j].topic
			}
			if reps[i].part != reps[j].part {
				return reps[i].part < reps[j].part
			}
			return !reps[i].future
		})
		for _, x := range reps {
			if n := len(dir.Topics); n == 0 || dir.Topics[n-1].Topic != x.topic {
				t := kmsg.NewDescribeLogDirsResponseDirTopic()
				t.Topic = x.topic
				dir.Topics = append(dir.Topics, t)
			}
			p := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			p.Partition, p.Size, p.IsFuture = x.part, x.size, x.future
			t := &dir.Topics[len(dir.Topics)-1]
			t.Partitions = append(t.Partitions, p)
		}
		resp.Dirs = append(resp.Dirs, dir)
	}
	return resp, nil
}
