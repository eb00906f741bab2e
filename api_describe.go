package kcluster

// DescribeLogDirs v1-v5 (KIP-113; v0 is gone in Kafka 4, KIP-896; KIP-827 total and usable bytes from v4,
// answered -1: the FS is not asked; KIP-1066 cordoning from v5: never)
// and DescribeTopicPartitions v0 (KIP-966, with its response partition
// limit, capped at 2000 as Kafka's max.request.partition.size.limit, and
// its cursor, as Kafka's DescribeTopicPartitionsRequestHandler, and the
// partitions' eligible leader replicas and last known ELR). A broker
// describes its one log directory: the size of every replica it holds.

import (
	"slices"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

func init() {
	reg(1, 5, (*broker).handleDescribeLogDirs)
	reg(0, 0, (*broker).handleDescribeTopicPartitions)
}

// logDirName is the directory a broker reports (its storage root).
func (b *broker) logDirName() string {
	if b.c.cfg.dir != "" {
		return b.c.cfg.fs.PathJoin(b.c.cfg.dir, "broker-"+itoa(b.id))
	}
	return "/kcluster/broker-" + itoa(b.id)
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func (b *broker) handleDescribeLogDirs(req *kmsg.DescribeLogDirsRequest, r *request) (*kmsg.DescribeLogDirsResponse, error) {
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = b.logDirName()
	dir.TotalBytes, dir.UsableBytes = -1, -1
	type rep struct {
		topic string
		part  int32
		size  int64
	}
	var reps []rep
	for _, rp := range b.replicasSnapshot() {
		if req.Topics != nil {
			i := slices.IndexFunc(req.Topics, func(t kmsg.DescribeLogDirsRequestTopic) bool { return t.Topic == rp.topic })
			if i < 0 || !slices.Contains(req.Topics[i].Partitions, rp.part) {
				continue
			}
		}
		reps = append(reps, rep{rp.topic, rp.part, rp.log.Size()})
	}
	sort.Slice(reps, func(i, j int) bool {
		if reps[i].topic != reps[j].topic {
			return reps[i].topic < reps[j].topic
		}
		return reps[i].part < reps[j].part
	})
	for _, x := range reps {
		if n := len(dir.Topics); n == 0 || dir.Topics[n-1].Topic != x.topic {
			t := kmsg.NewDescribeLogDirsResponseDirTopic()
			t.Topic = x.topic
			dir.Topics = append(dir.Topics, t)
		}
		p := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
		p.Partition, p.Size = x.part, x.size
		t := &dir.Topics[len(dir.Topics)-1]
		t.Partitions = append(t.Partitions, p)
	}
	resp.Dirs = append(resp.Dirs, dir)
	return resp, nil
}

func (b *broker) handleDescribeTopicPartitions(req *kmsg.DescribeTopicPartitionsRequest, r *request) (*kmsg.DescribeTopicPartitionsResponse, error) {
	resp := req.ResponseKind().(*kmsg.DescribeTopicPartitionsResponse)
	limit := max(min(2000, int(req.ResponsePartitionLimit)), 1)
	cursorTopic := ""
	if req.Cursor != nil {
		cursorTopic = req.Cursor.Topic
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	st := b.mu.state
	var names []string
	if len(req.Topics) == 0 {
		names = st.TopicNames()
	} else {
		for _, t := range req.Topics {
			names = append(names, t.Topic)
		}
		slices.Sort(names)
		names = slices.Compact(names)
	}
	names = slices.DeleteFunc(names, func(n string) bool { return n < cursorTopic })
	// A cursor must name a listed topic and a partition >= 0; Kafka
	// refuses the request otherwise, each named topic with
	// INVALID_REQUEST.
	if req.Cursor != nil && (req.Cursor.Partition < 0 || (len(req.Topics) > 0 && !slices.Contains(names, cursorTopic))) {
		for _, t := range req.Topics {
			rt := kmsg.NewDescribeTopicPartitionsResponseTopic()
			rt.Topic, rt.ErrorCode = kmsg.StringPtr(t.Topic), kerr.InvalidRequest.Code
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	}
	remaining := limit
	for _, name := range names {
		if remaining == 0 {
			// The previous topics filled the response: the next
			// one starts the next page.
			resp.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: name, Partition: 0}
			break
		}
		rt := kmsg.NewDescribeTopicPartitionsResponseTopic()
		rt.Topic = kmsg.StringPtr(name)
		rt.AuthorizedOperations = -2147483648
		rt.IsInternal = isInternalTopic(name)
		t := st.Topics[name]
		if t == nil {
			if len(req.Topics) > 0 { // an every-topic request lists what exists
				rt.ErrorCode = kerr.UnknownTopicOrPartition.Code
				if !metadata.ValidTopicName(name) {
					rt.ErrorCode = kerr.InvalidTopicException.Code
				}
				resp.Topics = append(resp.Topics, rt)
			}
			continue
		}
		rt.TopicID = t.ID
		start := 0
		if req.Cursor != nil && name == cursorTopic {
			start = min(int(req.Cursor.Partition), len(t.Partitions))
		}
		end := min(len(t.Partitions), start+remaining)
		for _, p := range t.Partitions[start:end] {
			rp := kmsg.NewDescribeTopicPartitionsResponseTopicPartition()
			rp.Partition, rp.LeaderID, rp.LeaderEpoch = p.Partition, p.Leader, p.LeaderEpoch
			if st.Brokers[p.Leader] == nil {
				rp.LeaderID = -1 // Kafka answers no error for a partition without a leader
			}
			rp.Replicas, rp.ISR = slices.Clone(p.Replicas), slices.Clone(p.ISR)
			// KIP-966: empty unless eligible.leader.replicas.version
			// is 1 and the ISR is below min.insync.replicas.
			rp.EligibleLeaderReplicas = append([]int32{}, p.ELR...)
			rp.LastKnownELR = append([]int32{}, p.LastKnownELR...)
			rp.OfflineReplicas = []int32{}
			for _, id := range p.Replicas {
				if br := st.Brokers[id]; br == nil || br.Fenced {
					rp.OfflineReplicas = append(rp.OfflineReplicas, id)
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
		if end < len(t.Partitions) {
			resp.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: name, Partition: int32(end)}
			break
		}
		remaining -= end - start
	}
	return resp, nil
}
