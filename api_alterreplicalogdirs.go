package kcluster

// AlterReplicaLogDirs v1-v2 (KIP-113; v0 is gone in Kafka 4, KIP-896):
// moves a replica to another of its broker's log dirs (LogDirs; the move
// itself, Kafka's future replica, is alterlogdirs.go). Kafka's
// ReplicaManager.alterReplicaLogDirs answers, per partition:
//   - LOG_DIR_NOT_FOUND when the destination is not one of the broker's
//     log dirs (dirName);
//   - KAFKA_STORAGE_ERROR when that dir is offline (FailLogDir, FailDisk);
//   - UNKNOWN_TOPIC_OR_PARTITION for a partition the metadata does not
//     have, REPLICA_NOT_AVAILABLE for one this broker holds no replica
//     of, KAFKA_STORAGE_ERROR for one in a dir that is offline;
//   - NONE when the replica is already in the destination (nothing
//     moves), or once its future replica is made there and copying.
// CLUSTER_AUTHORIZATION_FAILED for every partition without ALTER on the
// cluster (authz_rules.go).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { reg(1, 2, (*broker).handleAlterReplicaLogDirs) }

func (b *broker) handleAlterReplicaLogDirs(req *kmsg.AlterReplicaLogDirsRequest, r *request) (*kmsg.AlterReplicaLogDirsResponse, error) {
	return alterReplicaLogDirsResponse(req, func(dir, topic string, part int32) int16 {
		d := b.dirNamed(dir)
		switch {
		case d == nil:
			return kerr.LogDirNotFound.Code
		case b.offline.Load() || d.offline.Load():
			return kerr.KafkaStorageError.Code
		}
		rp, err := b.lookupPartition(topic, [16]byte{}, part)
		switch {
		case err == nil:
			return b.alterLogDir(rp, d)
		case err == kerr.NotLeaderForPartition:
			return kerr.ReplicaNotAvailable.Code
		case err == kerr.KafkaStorageError:
			return kerr.KafkaStorageError.Code
		default:
			return kerr.UnknownTopicOrPartition.Code
		}
	}), nil
}

// alterReplicaLogDirsResponse answers every partition of req with the code
// fn gives it, grouped by topic as Kafka groups them.
func alterReplicaLogDirsResponse(req *kmsg.AlterReplicaLogDirsRequest, fn func(dir, topic string, part int32) int16) *kmsg.AlterReplicaLogDirsResponse {
	resp := req.ResponseKind().(*kmsg.AlterReplicaLogDirsResponse)
	byTopic := map[string]int{}
	for _, d := range req.Dirs {
		for _, t := range d.Topics {
			i, ok := byTopic[t.Topic]
			if !ok {
				i = len(resp.Topics)
				byTopic[t.Topic] = i
				rt := kmsg.NewAlterReplicaLogDirsResponseTopic()
				rt.Topic = t.Topic
				resp.Topics = append(resp.Topics, rt)
			}
			for _, p := range t.Partitions {
				rp := kmsg.NewAlterReplicaLogDirsResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p, fn(d.Dir, t.Topic, p)
				resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, rp)
			}
		}
	}
	return resp
}
