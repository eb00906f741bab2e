package kcluster

import (
	"context"
	"fmt"
	"hash/crc32"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/kcluster/kcluster/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dial connects a raw kmsg client to addr.
func dial(t testing.TB, addr string) *wire.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	cl := wire.NewClient(conn, "kcluster-test")
	t.Cleanup(func() { cl.Close() })
	return cl
}

// do sends req at version v (its max if v < 0) and returns the response.
func do[R kmsg.Response](t testing.TB, cl *wire.Client, req kmsg.Request, v int16) R {
	t.Helper()
	if v < 0 {
		v = req.MaxVersion()
	}
	req.SetVersion(v)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatalf("%s v%d: %v", kmsg.NameForKey(req.Key()), v, err)
	}
	return resp.(R)
}

// createTopic creates a topic with CreateTopics through broker 1 and waits
// until every running broker has replayed it.
func createTopic(t *testing.T, c *Cluster, name string, parts int32, rf int16) [16]byte {
	t.Helper()
	cl := dial(t, c.Addrs()[0])
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, parts, rf
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10000
	resp := do[*kmsg.CreateTopicsResponse](t, cl, req, -1)
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	waitFor(t, c, "every broker to know topic "+name, func(*Cluster) bool { return true })
	return resp.Topics[0].TopicID
}

// metadataOf asks addr for the metadata of topics (every topic if none),
// at v12, letting it auto-create them.
func metadataOf(t *testing.T, cl interface {
}, addr string, topics ...string) *kmsg.MetadataResponse {
	t.Helper()
	c := dial(t, addr)
	req := kmsg.NewPtrMetadataRequest()
	for _, n := range topics {
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, mt)
		req.AllowAutoTopicCreation = true
	}
	if len(topics) == 0 {
		req.Topics = nil
	}
	return do[*kmsg.MetadataResponse](t, c, req, 12)
}

// leaderAddr finds the leader of topic/partition from broker 1's metadata.
func leaderAddr(t *testing.T, c *Cluster, topic string, part int32) (int32, string) {
	t.Helper()
	m := metadataOf(t, nil, c.Addrs()[0], topic)
	for _, p := range m.Topics[0].Partitions {
		if p.Partition == part {
			for _, b := range m.Brokers {
				if b.NodeID == p.Leader {
					return p.Leader, net.JoinHostPort(b.Host, fmt.Sprint(b.Port))
				}
			}
		}
	}
	t.Fatalf("no leader for %s/%d", topic, part)
	return 0, ""
}

// waitFor waits for cond and for every running broker to have applied
// the whole metadata log, so what the controller committed is what the
// brokers act on.
func waitFor(t *testing.T, c *Cluster, what string, cond Condition) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitFor(ctx, func(c *Cluster) bool { return cond(c) && metadataSettled(c) }); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func metadataSettled(c *Cluster) bool { return c.metadataSettled() }

func partState(t *testing.T, c *Cluster, topic string, p int32) PartitionState {
	t.Helper()
	st, err := c.PartitionState(topic, p)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func addrOf(c *Cluster, id int32) string { return c.Addrs()[id-1] }

// produceRequest is a Produce request of one batch to one partition, by
// topic name (so at most v12); the caller sets the version.
func produceRequest(topic string, part int32, acks int16, timeoutMillis int32, batch []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = acks, timeoutMillis
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = part, batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// produce sends batch to topic/part on addr with acks (v11, 10 s timeout)
// and returns the partition's response.
func produce(t *testing.T, cl interface{}, c *Cluster, addr, topic string, part int32, acks int16, batch []byte) *kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := produceRequest(topic, part, acks, 10000, batch)
	resp := do[*kmsg.ProduceResponse](t, dial(t, addr), req, 11)
	return &resp.Topics[0].Partitions[0]
}

// produceTo produces one batch with acks to the current leader.
func produceTo(t *testing.T, c *Cluster, topic string, acks int16, vals ...string) (int64, error) {
	t.Helper()
	st := partState(t, c, topic, 0)
	if st.Leader < 0 {
		return 0, kerr.LeaderNotAvailable
	}
	rp := produce(t, nil, c, addrOf(c, st.Leader), topic, 0, acks, makeBatch(time.Now().UnixMilli(), vals...))
	return rp.BaseOffset, kerr.ErrorForCode(rp.ErrorCode)
}

// fetch fetches topic/part (by name or id, as version v has it) from
// offset on addr, waiting up to 100 ms for a byte.
func fetch(t *testing.T, addr, topic string, id [16]byte, part int32, offset int64, v int16) *kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = 100
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = part, offset, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := do[*kmsg.FetchResponse](t, dial(t, addr), req, v)
	return &resp.Topics[0].Partitions[0]
}

// makeBatch builds an uncompressed v2 record batch of n records with the
// given values, first timestamp ts and 1 ms between records.
func makeBatch(ts int64, values ...string) []byte {
	return makeProducerBatch(-1, -1, -1, ts, values...)
}

// makeProducerBatch builds a batch from an idempotent producer (pid,
// epoch, first sequence); pid -1 for none.
func makeProducerBatch(pid int64, epoch int16, seq int32, ts int64, values ...string) []byte {
	var recs []byte
	for i, v := range values {
		r := kmsg.Record{
			TimestampDelta64: int64(i),
			OffsetDelta:      int32(i),
			Key:              nil,
			Value:            []byte(v),
		}
		body := r.AppendTo(nil)[1:] // Length 0 encodes as one byte
		r.Length = int32(len(body))
		recs = r.AppendTo(recs)
	}
	b := kmsg.RecordBatch{
		FirstOffset:          0,
		PartitionLeaderEpoch: -1,
		Magic:                2,
		LastOffsetDelta:      int32(len(values) - 1),
		FirstTimestamp:       ts,
		MaxTimestamp:         ts + int64(len(values)-1),
		ProducerID:           pid,
		ProducerEpoch:        epoch,
		FirstSequence:        seq,
		NumRecords:           int32(len(values)),
		Records:              recs,
	}
	raw := b.AppendTo(nil)
	// Length and CRC: AppendTo writes what is in the struct.
	be32 := func(o int, v uint32) {
		raw[o], raw[o+1], raw[o+2], raw[o+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	}
	be32(8, uint32(len(raw)-12))
	be32(17, crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// decodeValues returns the values of every record in the batches.
func decodeValues(t testing.TB, batches []byte) (offsets []int64, values []string) {
	t.Helper()
	for len(batches) > 0 {
		var b kmsg.RecordBatch
		if err := b.ReadFrom(batches); err != nil {
			t.Fatalf("decoding batch: %v", err)
		}
		recs := b.Records
		for i := 0; i < int(b.NumRecords); i++ {
			var r kmsg.Record
			l, n := varint(recs)
			if err := r.ReadFrom(recs[:n+int(l)]); err != nil {
				t.Fatalf("decoding record: %v", err)
			}
			recs = recs[n+int(l):]
			offsets = append(offsets, b.FirstOffset+int64(r.OffsetDelta))
			values = append(values, string(r.Value))
		}
		batches = batches[12+int(b.Length):]
	}
	return
}

func varint(b []byte) (int64, int) {
	var ux uint64
	var s uint
	for i, c := range b {
		if c < 0x80 {
			ux |= uint64(c) << s
			x := int64(ux >> 1)
			if ux&1 != 0 {
				x = ^x
			}
			return x, i + 1
		}
		ux |= uint64(c&0x7f) << s
		s += 7
	}
	return 0, 0
}
