package kcluster

// Where a coordinator's key lives: its partition of the coordinator's
// internal topic, as Kafka computes it, and the topic itself, created
// through the controller on the first FindCoordinator that needs it.

import (
	"context"
	"errors"
	"time"
	"unicode/utf16"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

// keyPartition is Kafka's partitionFor: Utils.abs(key.hashCode()) %
// partitions, with Java's String.hashCode over UTF-16 code units.
func keyPartition(key string, partitions int32) int32 {
	var h int32
	for _, u := range utf16.Encode([]rune(key)) {
		h = 31*h + int32(u)
	}
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % partitions
}

// numPartitions is the partition count of the coordinator's topic as the
// metadata has it, or the configured count before the topic exists (as
// Kafka's coordinators are started with).
func (rt *coordinatorRuntime[S]) numPartitions() int32 {
	rt.b.mu.RLock()
	defer rt.b.mu.RUnlock()
	if t := rt.b.mu.state.Topics[rt.cfg.topic]; t != nil && len(t.Partitions) > 0 {
		return int32(len(t.Partitions))
	}
	return rt.cfg.partitions
}

// partitionFor is the partition of the coordinator's topic holding key.
func (rt *coordinatorRuntime[S]) partitionFor(key string) int32 {
	return keyPartition(key, rt.numPartitions())
}

// mayLead reports whether this broker's metadata makes it the leader of
// key's partition (the runtime has not caught up yet), or does not have
// the topic yet (just created through another broker).
func (rt *coordinatorRuntime[S]) mayLead(key string) bool {
	rt.b.mu.RLock()
	defer rt.b.mu.RUnlock()
	t := rt.b.mu.state.Topics[rt.cfg.topic]
	if t == nil || len(t.Partitions) == 0 {
		return true
	}
	return t.Partitions[keyPartition(key, int32(len(t.Partitions)))].Leader == rt.b.id
}

// ensureTopic creates the coordinator's topic through the controller if
// the metadata does not have it yet (as Kafka does on the first
// FindCoordinator), and reports whether it exists now.
func (rt *coordinatorRuntime[S]) ensureTopic() bool {
	b := rt.b
	b.mu.RLock()
	exists := b.mu.state.Topics[rt.cfg.topic] != nil
	brokers := 0
	for _, br := range b.mu.state.Brokers {
		if !br.Fenced {
			brokers++
		}
	}
	b.mu.RUnlock()
	if exists {
		return true
	}
	rf := rt.cfg.rf
	if n := len(b.c.ports); int(rf) > n {
		rf = int16(n) // Kafka would refuse to create it
	}
	if int(rf) > brokers {
		return false
	}
	const timeout = 10 * time.Second
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(7)
	req.TimeoutMillis = int32(timeout.Milliseconds())
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = rt.cfg.topic, rt.cfg.partitions, rf
	for k, v := range rt.cfg.topicConfigs(rf) {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		t.Configs = append(t.Configs, c)
	}
	req.Topics = append(req.Topics, t)
	resp, err := b.forwardCreateTopics(req, nil)
	if err == nil {
		if err = kerr.ErrorForCode(resp.Topics[0].ErrorCode); errors.Is(err, kerr.TopicAlreadyExists) {
			err = nil
		}
	}
	if err != nil {
		b.log.Warn("creating "+rt.cfg.topic, "err", err)
		return false
	}
	// Created, here or through another broker just before: this
	// broker's metadata has it once it catches up.
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	return b.waitState(ctx, func(st *metadata.State) bool { return st.Topics[rt.cfg.topic] != nil }) == nil
}

// coordinatorFor returns the broker coordinating key: the leader of its
// partition (FindCoordinator), once the topic exists.
func (rt *coordinatorRuntime[S]) coordinatorFor(key string) (int32, error) {
	if !rt.ensureTopic() {
		return -1, kerr.CoordinatorNotAvailable
	}
	b := rt.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	t := b.mu.state.Topics[rt.cfg.topic]
	if t == nil || len(t.Partitions) == 0 {
		return -1, kerr.CoordinatorNotAvailable
	}
	p := t.Partitions[keyPartition(key, int32(len(t.Partitions)))]
	if p.Leader < 0 {
		return -1, kerr.CoordinatorNotAvailable
	}
	if br := b.mu.state.Brokers[p.Leader]; br == nil || br.Fenced {
		return -1, kerr.CoordinatorNotAvailable
	}
	return p.Leader, nil
}
