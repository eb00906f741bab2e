package kcluster

// The broker's fetches of the metadata log from the active controller
// (Kafka's broker-side KafkaRaftClient fetch, feeding its
// BrokerMetadataListener), and its read-your-writes barrier.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

// fetchMetadata long-polls the controller for entries from offset next.
// Below the controller's log start it returns the id of the snapshot to
// load instead.
func (b *broker) fetchMetadata(next int64) ([]metadata.Entry, *kmsg.FetchResponseTopicPartitionSnapshotID, error) {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.ReplicaID = b.id
	req.MaxWaitMillis = 500
	req.MinBytes = 1
	req.MaxBytes = 64 << 20
	req.SessionEpoch = -1
	t := kmsg.NewFetchRequestTopic()
	t.Topic = metadataTopic
	p := kmsg.NewFetchRequestTopicPartition()
	p.FetchOffset = next
	p.PartitionMaxBytes = 64 << 20
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	// The in-memory controller holds the fetch while the connection
	// stands (handleMetadataFetch): then it waits without a deadline.
	kresp, err := b.mc.requestStanding(b.ctx, 10*time.Second, func() kmsg.Request { return req })
	if err != nil {
		return nil, nil, err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, nil, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return nil, nil, errors.New("kcluster: malformed metadata fetch response")
	}
	rp := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
		return nil, nil, err
	}
	if rp.SnapshotID.EndOffset >= 0 {
		return nil, &rp.SnapshotID, nil
	}
	es, err := decodeMetadataBatches(rp.RecordBatches)
	return es, nil, err
}

// readYourWrites catches this broker up with what the controller has
// committed, within half a second, so that a change acknowledged through
// another broker is visible here too: before a describe of something the
// controller owns (configs, ACLs, quotas, SCRAM users), a Metadata request
// for a topic this broker does not know, or a follower fetch naming a
// partition or epoch it has not applied. Kafka's brokers may answer from a
// cache that lags a just-acknowledged change; a test should not have to
// poll for it.
func (b *broker) readYourWrites() {
	ctx, cancel := context.WithTimeout(b.ctx, 500*time.Millisecond)
	defer cancel()
	b.syncMetadata(ctx)
}

// syncMetadata is a read-your-writes barrier for a request naming a topic
// this broker does not know: the topic may have just been created through
// another broker, its record committed and on its way here. It asks the
// controller how far the metadata log is committed (a Fetch that does not
// wait) and waits, within ctx, until this broker has applied that far.
// Without it, a client that creates a topic through one broker and asks
// another for it gets UNKNOWN_TOPIC_OR_PARTITION and backs off (franz-go:
// 250 ms). Errors end the wait: the request is then answered from what
// the broker knows, as before.
func (b *broker) syncMetadata(ctx context.Context) {
	b.mu.RLock()
	next := b.mu.state.Offset + 1
	b.mu.RUnlock()
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.ReplicaID = b.id
	req.SessionEpoch = -1
	t := kmsg.NewFetchRequestTopic()
	t.Topic = metadataTopic
	p := kmsg.NewFetchRequestTopicPartition()
	p.FetchOffset = next
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	kresp, err := b.ac.request(ctx, req)
	if err != nil {
		return
	}
	resp := kresp.(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return
	}
	b.waitMetadata(ctx, resp.Topics[0].Partitions[0].HighWatermark-1)
}

// waitMetadata waits until the broker has applied the log through offset.
func (b *broker) waitMetadata(ctx context.Context, offset int64) error {
	for {
		b.mu.RLock()
		done := b.mu.state.Offset >= offset
		ch := b.mu.changed
		b.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
